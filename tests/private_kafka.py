"""A private local broker for tests that stop, restart or reconfigure it (never the shared one).

Runs ``docker/kafka-local.sh`` with its own ``DG_KAFKA_HOME`` and ports. With ``sasl=True`` the broker
also gets a SASL_SSL listener: a throw-away CA and a broker certificate for 127.0.0.1 made with openssl
(PEM keystore), SCRAM-SHA-512 users created when the storage is formatted, the inter-broker listener
staying PLAINTEXT.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

from tests.conftest import REPO, free_port

SCRIPT = REPO / "docker" / "kafka-local.sh"
SCRAM = "SCRAM-SHA-512"
SASL_USER = "dg-worker"
SASL_PASSWORD = f"pw-{uuid.uuid4().hex}"  # unique, so any leak is found by a plain substring search


def _free_pair() -> int:
    """A port p with p+1 free as well (the script puts the controller on p+1)."""
    import socket

    for _ in range(50):
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    raise RuntimeError("no two adjacent free ports")


def make_certs(d: Path) -> tuple[Path, Path]:
    """A CA and a broker certificate (SAN IP:127.0.0.1, DNS:localhost); returns (ca.pem, broker keystore.pem)."""
    d.mkdir(parents=True, exist_ok=True)

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=distillguard-test-ca")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
         "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "broker.crt", "-days", "2", "-extfile", "san.ext")
    ossl("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.pk8")
    keystore = d / "broker-keystore.pem"  # PKCS#8 key, then the chain: Kafka's PEM key store format
    keystore.write_text((d / "broker.pk8").read_text() + (d / "broker.crt").read_text() + (d / "ca.pem").read_text())
    return d / "ca.pem", keystore


class PrivateBroker:
    """One private broker: ``start()``, ``stop()`` (data kept), ``reset()`` (everything removed)."""

    def __init__(self, home: Path, *, users: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = _free_pair()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.users = users or {}
        self.sasl_port: int | None = None
        self.start_seconds = 0.0  # how long the last start took (JVM start to first metadata answer)
        self.cafile: Path | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DG_KAFKA_", "DISTILLGUARD_"))}
        self.env.update(DG_KAFKA_HOME=str(home), DG_KAFKA_PORT=str(self.port),
                        DG_KAFKA_HEAP_OPTS="-Xms128m -Xmx512m", DG_KAFKA_STOP_TIMEOUT="20")
        if self.users:
            self._configure_sasl()

    def _configure_sasl(self) -> None:
        self.sasl_port = free_port()
        self.sasl_bootstrap = f"127.0.0.1:{self.sasl_port}"
        self.cafile, keystore = make_certs(self.home / "tls")
        props = self.home / "sasl_ssl.properties"
        props.write_text("\n".join([
            f"sasl.enabled.mechanisms={SCRAM}",
            f"listener.name.sasl_ssl.sasl.enabled.mechanisms={SCRAM}",
            ("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
             "org.apache.kafka.common.security.scram.ScramLoginModule required;"),
            "listener.name.sasl_ssl.ssl.keystore.type=PEM",
            f"listener.name.sasl_ssl.ssl.keystore.location={keystore}",
            "listener.name.sasl_ssl.ssl.client.auth=none",
            "",
        ]))
        self.env.update(
            DG_KAFKA_EXTRA_LISTENERS=f"SASL_SSL://127.0.0.1:{self.sasl_port}",
            DG_KAFKA_EXTRA_PROPERTIES=str(props),
            DG_KAFKA_FORMAT_ARGS=" ".join(f"--add-scram {SCRAM}=[name={u},password={p}]"
                                          for u, p in self.users.items()),
        )

    def _script(self, command: str, timeout: float = 180) -> None:
        res = subprocess.run(["bash", str(SCRIPT), command], env=self.env, cwd=REPO, capture_output=True, check=False,
                             text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"kafka-local.sh {command} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")

    def start(self) -> None:
        t0 = time.monotonic()
        self._script("start")
        self.start_seconds = time.monotonic() - t0

    def stop(self) -> None:
        self._script("stop")

    def reset(self) -> None:
        self._script("reset")
