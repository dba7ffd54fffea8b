"""Issue 7: the worker, ``simulate`` and ``replay`` over SASL_SSL (SCRAM-SHA-512, TLS with a test CA).

A private broker (docker/kafka-local.sh with its extra-listener and format hooks) gets a SASL_SSL
listener with a certificate from a throw-away CA; the distillguard processes reach it only through
their settings: the worker reads its password from a file, ``topics``, ``simulate`` and ``replay``
from the environment. The password must appear in no output of any of them.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError

from tests.conftest import REPO, WorkerProcess, dg_env, free_port
from tests.kafka_utils import canonical
from tests.private_kafka import SASL_PASSWORD, SASL_USER, SCRAM, PrivateBroker

pytestmark = pytest.mark.kafka
USER, PASSWORD = SASL_USER, SASL_PASSWORD  # the password is unique, so any leak is found by a substring search
SIM = ["--preset", "demo", "--days", "1", "--tenants", "4", "--intensity", "0.1", "--volume", "0.3", "--seed", "7"]


@pytest.fixture(scope="module")
def broker(private_broker: PrivateBroker) -> PrivateBroker:
    """The session's private broker (conftest.py), which has the SASL_SSL listener and the user USER."""
    return private_broker


def sasl_env(broker: PrivateBroker, tmp: Path, *, password: str | None = PASSWORD, via: str = "env") -> dict[str, str]:
    """A distillguard environment for the SASL_SSL listener; the password from the env or from a file."""
    env = dg_env("sec", broker.sasl_bootstrap, DISTILLGUARD_SECURITY_PROTOCOL="SASL_SSL",
                 DISTILLGUARD_SASL_MECHANISM=SCRAM, DISTILLGUARD_SASL_USERNAME=USER,
                 DISTILLGUARD_SSL_CAFILE=str(broker.cafile), DISTILLGUARD_PARTITIONS="3",
                 DISTILLGUARD_DATA_DIR=str(tmp / "data"))
    if via == "file":
        secret = tmp / "sasl-password"
        secret.write_text(f"{password}\n")
        secret.chmod(0o600)
        env["DISTILLGUARD_SASL_PASSWORD_FILE"] = str(secret)
    else:
        env["DISTILLGUARD_SASL_PASSWORD"] = password or ""
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distillguard.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, check=False)


def read_topic(env: dict[str, str], topic: str, until, timeout: float = 90) -> list[dict]:
    """Read ``topic`` over SASL_SSL with the clients module's own configuration."""
    from distillguard.settings import Settings
    from streams.clients import kafka_python_config

    settings = Settings(**{k.removeprefix("DISTILLGUARD_").lower(): v for k, v in env.items()
                           if k.startswith("DISTILLGUARD_")})
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", enable_auto_commit=False,
                             **kafka_python_config(settings))
    out: list[dict] = []
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and not until(out):
            for recs in consumer.poll(timeout_ms=200).values():
                out.extend(orjson.loads(r.value) for r in recs)
    finally:
        consumer.close()
    return out


def test_worker_simulate_replay_over_sasl_ssl(broker, tmp_path: Path):
    file_env = sasl_env(broker, tmp_path, via="file")
    env = sasl_env(broker, tmp_path, via="env")
    outputs: dict[str, str] = {}

    res = cli(env, "topics", "create")
    outputs["topics"] = res.stdout + res.stderr
    assert res.returncode == 0, outputs["topics"]

    worker = WorkerProcess(file_env, tmp_path / "worker.log")
    try:
        # while the worker starts: the reference, the same simulated events through `detect` (no broker)
        res = cli(env, "simulate", *SIM, "--out", str(tmp_path / "events.jsonl"))
        assert res.returncode == 0, res.stderr
        res = cli(env, "detect", "--input", str(tmp_path / "events.jsonl"), "--output", str(tmp_path / "detect.jsonl"),
                  "--no-progress")
        assert res.returncode == 0, res.stderr
        reference = [orjson.loads(line) for line in (tmp_path / "detect.jsonl").read_bytes().splitlines()]
        assert any(a["kind"] == "tenant" and a["status"] == "open" for a in reference)

        worker.wait_ready(timeout=120)
        res = cli(env, "simulate", *SIM, "--to", "kafka", "--labels", str(tmp_path / "labels.json"))
        outputs["simulate"] = res.stdout + res.stderr
        assert res.returncode == 0, outputs["simulate"]
        sent = orjson.loads((tmp_path / "labels.json").read_bytes())["counts"]["valid_events"]

        deadline = time.time() + 120
        while worker.metric("distillguard_events_total", result="valid") < sent and time.time() < deadline:
            assert worker.alive(), worker.log_text()[-3000:]
            time.sleep(0.5)
        assert worker.metric("distillguard_events_total", result="valid") == sent
        live = read_topic(env, env["DISTILLGUARD_ALERTS_TOPIC"],
                          until=lambda rs: any(a["kind"] == "tenant" and a["status"] == "open" for a in rs))
        opened = {canonical(a) for a in live if a["kind"] == "tenant" and a["status"] == "open"}
        assert opened, "alerts arrive over SASL_SSL"
        assert opened <= {canonical(a) for a in reference}, "live alerts are detect's alerts"
    finally:
        worker.stop()
    outputs["worker"] = worker.log_text()
    assert "partition_started" in outputs["worker"]

    # replay (kafka-python planner + aiokafka fetcher) over SASL_SSL reproduces detect's tenant alerts
    res = cli(env, "replay", "--no-progress", "--json", "--run-id", "sec-replay",
              "--checkpoint", str(tmp_path / "replay.ck"), "--output", str(tmp_path / "replay.jsonl"))
    outputs["replay"] = res.stdout + res.stderr
    assert res.returncode == 0, outputs["replay"]
    replayed = [orjson.loads(line) for line in (tmp_path / "replay.jsonl").read_bytes().splitlines()]
    assert {canonical(a) for a in replayed if a["kind"] == "tenant"} == \
        {canonical(a) for a in reference if a["kind"] == "tenant"}

    for name, text in outputs.items():
        assert PASSWORD not in text, f"the SASL password leaked into the {name} output"
    assert "SASL_SSL" in outputs["worker"], "the worker logs the security protocol it uses"


@pytest.mark.parametrize("via", ["env", "file"])
def test_wrong_password_fails_clearly_without_leaking(broker, tmp_path: Path, via: str):
    wrong = f"wrong-{uuid.uuid4().hex}"
    env = sasl_env(broker, tmp_path, password=wrong, via=via)
    commands = [["worker", "--web-port", str(free_port())]]  # the worker reads its password from the file in production
    if via == "env":
        commands += [["replay", "--no-progress", "--offsets", "0:0-", "--output", str(tmp_path / "x.jsonl")],
                     ["simulate", *SIM, "--to", "kafka"]]
    for args in commands:
        res = cli(env, *args, timeout=120)
        text = res.stdout + res.stderr
        assert res.returncode != 0, text
        assert "authentication failed" in text.lower(), text[-2000:]
        assert "Traceback" not in text, text[-2000:]
        assert wrong not in text and PASSWORD not in text


def test_plaintext_client_on_the_sasl_ssl_port_fails(broker):
    with pytest.raises(KafkaError):
        admin = KafkaAdminClient(bootstrap_servers=broker.sasl_bootstrap, security_protocol="PLAINTEXT",
                                 request_timeout_ms=5000, api_version_auto_timeout_ms=5000)
        admin.close()
    # and TLS with the right CA but no SASL handshake is refused too
    ctx = ssl.create_default_context(cafile=str(broker.cafile))
    with pytest.raises(KafkaError):
        admin = KafkaAdminClient(bootstrap_servers=broker.sasl_bootstrap, security_protocol="SSL", ssl_context=ctx,
                                 request_timeout_ms=5000, api_version_auto_timeout_ms=5000)
        admin.close()
