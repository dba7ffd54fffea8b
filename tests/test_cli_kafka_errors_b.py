"""Kafka settings and broker refusals end in one line per cause and exit status 2, never a traceback.

Every test runs the real CLI (or a real worker) as a subprocess. The ones marked ``kafka`` use the local
broker with topics of their own (prefix ``fixb``), deleted at teardown; the others need no broker, since
the error must come before any connection.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from tests.conftest import dg_env, free_port

REPO = Path(__file__).resolve().parent.parent
DEV_FULL = Path("/dev/full")

# every command that talks to Kafka, with the arguments it needs to get as far as the broker
KAFKA_COMMANDS = {
    "topics": ["topics", "create"],
    "alerts": ["alerts", "tail"],
    "feedback": ["feedback", "--alert-id", "a-1", "--tenant", "acme", "--label", "true_positive"],
    "simulate": ["simulate", "--tenants", "1", "--days", "1", "--to", "kafka"],
    "worker": ["worker", "--web-port", str(free_port())],
}


def run_cli(*args: str, env: dict[str, str], stdout: int | None = subprocess.PIPE,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "distillguard.cli", *args], cwd=REPO, env=env, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, check=False)


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A broker address where nothing listens, topics of a prefix nobody uses, a data dir of the test's own."""
    env = dg_env(f"fixb{uuid.uuid4().hex[:8]}", f"127.0.0.1:{closed_port()}",
                 DISTILLGUARD_DATA_DIR=str(tmp_path / "data"))
    env.update(extra)
    return env


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def message_lines(stderr: str) -> list[str]:
    """stderr without the JSON log lines."""
    return [line for line in stderr.splitlines() if line and not line.startswith("{")]


def assert_one_line(res: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit status 2, no traceback, exactly one message line, which contains every ``expected`` text."""
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    lines = message_lines(res.stderr)
    assert len(lines) == 1, res.stderr
    for text in expected:
        assert text in lines[0], res.stderr
    return lines[0]


def topic_names(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def public_topics(env: dict[str, str]) -> list[str]:
    return [env[f"DISTILLGUARD_{k}_TOPIC"] for k in ("EVENTS", "DLQ", "ALERTS", "FEEDBACK", "NOTIFICATIONS")]


# ------------------------------------------------------------------ 1. password, CA, certificate and key files
def _file_cases(tmp_path: Path) -> dict[str, tuple[dict[str, str], list[str]]]:
    """{case: (settings, texts the one line must contain)}; the password files hold ``s3cret`` bytes."""
    not_utf8 = tmp_path / "pw-binary"
    not_utf8.write_bytes(b"\xff\xfes3cret-pw\n")
    empty = tmp_path / "pw-empty"
    empty.write_text("\n")
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("s3cret-not-a-certificate\n")
    sasl = {"DISTILLGUARD_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "DISTILLGUARD_SASL_MECHANISM": "PLAIN",
            "DISTILLGUARD_SASL_USERNAME": "u"}
    return {
        "missing password file": ({**sasl, "DISTILLGUARD_SASL_PASSWORD_FILE": "/nope/pw"},
                                  ["DISTILLGUARD_SASL_PASSWORD_FILE", "'/nope/pw'", "No such file or directory"]),
        "password file not UTF-8": ({**sasl, "DISTILLGUARD_SASL_PASSWORD_FILE": str(not_utf8)},
                                    ["DISTILLGUARD_SASL_PASSWORD_FILE", repr(str(not_utf8)), "is not UTF-8 text"]),
        "empty password file": ({**sasl, "DISTILLGUARD_SASL_PASSWORD_FILE": str(empty)},
                                ["DISTILLGUARD_SASL_PASSWORD_FILE", repr(str(empty)), "is empty"]),
        "missing CA": ({"DISTILLGUARD_SECURITY_PROTOCOL": "SSL", "DISTILLGUARD_SSL_CAFILE": "/nope/ca.pem"},
                       ["DISTILLGUARD_SSL_CAFILE", "'/nope/ca.pem'", "No such file or directory"]),
        "CA not PEM": ({"DISTILLGUARD_SECURITY_PROTOCOL": "SASL_SSL", "DISTILLGUARD_SSL_CAFILE": str(not_pem),
                        "DISTILLGUARD_SASL_USERNAME": "u", "DISTILLGUARD_SASL_PASSWORD": "pw"},
                       ["DISTILLGUARD_SSL_CAFILE", repr(str(not_pem)), "is not a PEM CA certificate"]),
        "missing certificate": ({"DISTILLGUARD_SECURITY_PROTOCOL": "SSL", "DISTILLGUARD_SSL_CERTFILE": "/nope/c.pem"},
                                ["DISTILLGUARD_SSL_CERTFILE", "'/nope/c.pem'", "No such file or directory"]),
        "certificate not PEM": ({"DISTILLGUARD_SECURITY_PROTOCOL": "SSL", "DISTILLGUARD_SSL_CERTFILE": str(not_pem)},
                                ["DISTILLGUARD_SSL_CERTFILE", repr(str(not_pem)), "is not a PEM certificate"]),
    }


@pytest.mark.parametrize("command", list(KAFKA_COMMANDS))
def test_unusable_password_ca_or_certificate_file_is_one_line_in_every_kafka_command(tmp_path: Path,
                                                                                     command: str) -> None:
    """Each command names the setting and the file, exit 2, at once, and never shows the file's content."""
    for case, (settings, expected) in _file_cases(tmp_path).items():
        started = time.monotonic()
        res = run_cli(*KAFKA_COMMANDS[command], env=base_env(tmp_path, **settings), timeout=60)
        line = assert_one_line(res, f"distillguard {command}: ", *expected)
        assert "s3cret" not in res.stderr + res.stdout, (case, line)
        assert time.monotonic() - started < 30, f"{case}: reported before any connection attempt"
        assert "broker_unreachable_at_start" not in res.stderr, case


def test_key_problems_name_the_key_file(tmp_path: Path) -> None:
    """A missing key, a key that does not match and an encrypted key (which would prompt) are one line each."""
    def make(name: str, *extra: str) -> tuple[Path, Path]:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-keyout", f"{name}.key", "-out",
                        f"{name}.pem", "-days", "1", "-subj", f"/CN={name}", *extra], cwd=tmp_path, check=True,
                       capture_output=True, timeout=60)
        return tmp_path / f"{name}.pem", tmp_path / f"{name}.key"

    cert, _ = make("a", "-nodes")
    _, other_key = make("b", "-nodes")
    locked_cert, locked_key = make("c", "-passout", "pass:s3cret-pass")
    ssl = {"DISTILLGUARD_SECURITY_PROTOCOL": "SSL"}
    cases = [
        ({"DISTILLGUARD_SSL_CERTFILE": str(cert), "DISTILLGUARD_SSL_KEYFILE": "/nope/k.pem"},
         ["DISTILLGUARD_SSL_KEYFILE", "'/nope/k.pem'", "No such file or directory"]),
        ({"DISTILLGUARD_SSL_CERTFILE": str(cert), "DISTILLGUARD_SSL_KEYFILE": str(other_key)},
         ["DISTILLGUARD_SSL_CERTFILE", repr(str(cert)), repr(str(other_key)), "not a matching"]),
        ({"DISTILLGUARD_SSL_CERTFILE": str(locked_cert), "DISTILLGUARD_SSL_KEYFILE": str(locked_key)},
         ["DISTILLGUARD_SSL_KEYFILE", repr(str(locked_key)), "encrypted private key"]),
        ({"DISTILLGUARD_SSL_KEYFILE": str(other_key)}, ["DISTILLGUARD_SSL_KEYFILE is set without"]),
    ]
    for settings, expected in cases:
        res = run_cli("topics", "create", env=base_env(tmp_path, **ssl, **settings), timeout=30)
        assert_one_line(res, "distillguard topics: ", *expected)


# ------------------------------------------------------------------------------------- 2. bootstrap servers
@pytest.mark.parametrize(("value", "why"), [
    ("localhost", "entry 'localhost' has no port"),
    ("127.0.0.1:abc", "entry '127.0.0.1:abc' has port 'abc'"),
    ("127.0.0.1:99999", "entry '127.0.0.1:99999' has port '99999', not a number from 1 to 65535"),
    ("127.0.0.1:9092,", "entry '' is empty"),
    ("::1:9092", "entry '::1:9092' has no valid host"),
])
@pytest.mark.parametrize("command", ["topics", "worker", "feedback"])
def test_malformed_bootstrap_servers_is_one_line(tmp_path: Path, value: str, why: str, command: str) -> None:
    res = run_cli(*KAFKA_COMMANDS[command], env=base_env(tmp_path, DISTILLGUARD_BOOTSTRAP_SERVERS=value), timeout=30)
    assert_one_line(res, f"distillguard {command}: invalid settings: DISTILLGUARD_BOOTSTRAP_SERVERS", why)


def test_ipv6_bootstrap_server_is_valid_and_tried(tmp_path: Path) -> None:
    """``[::1]:port`` passes the check and reaches the connection attempt (nothing listens there)."""
    port = closed_port()
    res = run_cli("topics", "create", env=base_env(tmp_path, DISTILLGUARD_BOOTSTRAP_SERVERS=f"[::1]:{port}"),
                  timeout=60)
    assert_one_line(res, "distillguard topics: cannot connect to Kafka over PLAINTEXT", f"[::1]:{port}: ")
    assert "invalid settings" not in res.stderr


# ----------------------------------------------------------------------------- 3, 4, 5. topics create, broker
@pytest.mark.kafka
def test_topics_the_broker_refuses_are_one_line_each(fixb_env: dict[str, str]) -> None:
    bootstrap = fixb_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    names = public_topics(fixb_env)
    for extra, error in [({"DISTILLGUARD_REPLICATION_FACTOR": "3"}, "InvalidReplicationFactorError: "),
                         ({"DISTILLGUARD_PARTITIONS": "100000"}, "PolicyViolationError: ")]:
        res = run_cli("topics", "create", env={**fixb_env, **extra}, timeout=90)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        lines = message_lines(res.stderr)
        assert lines[:-1] == [line for line in lines[:-1] if error in line] and len(lines) == len(names) + 1, lines
        assert [line.split(": ")[1] for line in lines[:-1]] == names
        assert lines[-1] == f"distillguard topics: {len(names)} of {len(names)} topics not created; none created"
        assert res.stdout == ""
        assert not set(names) & topic_names(bootstrap)

    # a name Kafka refuses (a space) is refused with the settings, before any topic is created (twelfth
    # session; it used to be refused by the broker while the other topics were created)
    bad = fixb_env["DISTILLGUARD_EVENTS_TOPIC"] + " bad"
    res = run_cli("topics", "create", "--partitions", "2", env={**fixb_env, "DISTILLGUARD_EVENTS_TOPIC": bad},
                  timeout=90)
    assert_one_line(res, "distillguard topics: invalid settings: DISTILLGUARD_EVENTS_TOPIC", repr(bad),
                    "is not a Kafka topic name")
    assert res.stdout == "" and not set(names) & topic_names(bootstrap)


@pytest.mark.kafka
def test_existing_topics_show_the_partitions_the_broker_has(fixb_env: dict[str, str]) -> None:
    names = public_topics(fixb_env)
    first = run_cli("topics", "create", "--partitions", "2", env=fixb_env, timeout=90)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"{name}: created (2 partitions)" for name in names]

    fresh = fixb_env["DISTILLGUARD_NOTIFICATIONS_TOPIC"] + ".new"
    again = run_cli("topics", "create", "--partitions", "3",
                    env={**fixb_env, "DISTILLGUARD_NOTIFICATIONS_TOPIC": fresh}, timeout=90)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        *(f"{name}: exists (2 partitions, not the 3 configured: an existing topic keeps its partitions)"
          for name in names[:-1]),
        f"{fresh}: created (3 partitions)"]

    same = run_cli("topics", "create", "--partitions", "2", env=fixb_env, timeout=90)
    assert same.stdout.splitlines() == [f"{name}: exists (2 partitions)" for name in names]


@pytest.mark.kafka
def test_topics_create_reader_of_stdout_gone_exits_quietly(fixb_env: dict[str, str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = run_cli("topics", "create", env=fixb_env, stdout=write_end, timeout=90)
    finally:
        os.close(write_end)
    assert res.returncode == 141, res.stderr
    assert "Traceback" not in res.stderr and not message_lines(res.stderr), res.stderr
    if DEV_FULL.exists():
        full = os.open(DEV_FULL, os.O_WRONLY)
        try:
            res = run_cli("topics", "create", env=fixb_env, stdout=full, timeout=90)
        finally:
            os.close(full)
        assert_one_line(res, "distillguard topics: cannot write stdout: No space left on device")


# --------------------------------------------------------------------------------------- 6. worker data dir
def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory this process cannot create files in (root ignores modes: a sysfs directory then)."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        return locked
    for candidate in (Path("/sys"), Path("/proc/self")):
        try:
            fd, probe = tempfile.mkstemp(dir=candidate)
        except OSError:
            return candidate
        os.close(fd)
        os.unlink(probe)
    pytest.skip("no unwritable directory for root on this system")


def test_worker_data_dir_that_is_a_file_or_unwritable_is_one_line(tmp_path: Path) -> None:
    """Checked before the broker wait (nothing listens at the broker address): exit 2 at once, no Faust lines."""
    regular = tmp_path / "state"
    regular.write_text("not a directory\n")
    unwritable = _unwritable_dir(tmp_path)
    cases = [
        (["--data-dir", str(regular)], f"data directory {str(regular)!r} is not a directory"),
        (["--data-dir", str(regular / "sub")], f"data directory {str(regular / 'sub')!r} cannot be created"),
        (["--data-dir", str(unwritable)], f"data directory {str(unwritable)!r} is not writable"),
    ]
    for args, expected in cases:
        started = time.monotonic()
        res = run_cli("worker", "--web-port", str(free_port()), *args, env=base_env(tmp_path), timeout=30)
        assert_one_line(res, "distillguard worker: ", expected, "set --data-dir or DISTILLGUARD_DATA_DIR")
        assert time.monotonic() - started < 20 and "broker_unreachable_at_start" not in res.stderr
    res = run_cli("worker", "--web-port", str(free_port()), env=base_env(tmp_path, DISTILLGUARD_DATA_DIR=str(regular)),
                  timeout=30)
    assert_one_line(res, f"distillguard worker: data directory {str(regular)!r} is not a directory")


# ------------------------------------------------------------------------------- 7. broker_up at readiness
@pytest.mark.kafka
def test_broker_up_reads_1_as_soon_as_the_worker_is_ready(fixb_env: dict[str, str], worker_factory,
                                                          tmp_path: Path) -> None:
    """The first probe runs seconds after readiness: the gauge must not read 0 until then. The data dir is
    nested under directories that do not exist yet: the start-up check creates them."""
    created = run_cli("topics", "create", "--partitions", "1", env=fixb_env, timeout=90)
    assert created.returncode == 0, created.stderr
    nested = tmp_path / "a" / "b" / "data"
    worker = worker_factory({**fixb_env, "DISTILLGUARD_DATA_DIR": str(nested), "DISTILLGUARD_PARTITIONS": "1"})
    worker.wait_ready()
    assert worker.metric("distillguard_broker_up") == 1.0, worker.log_text()[-3000:]
    assert nested.is_dir()


# -------------------------------------------------------------------------------- 8. webhook URL is a secret
@pytest.mark.parametrize(("url", "shown"), [
    ("hooks.slack.com/services/T0/B0/XOXSECRETTOKEN", None),
    ("ftp://hooks.example.com/services/T0/B0/XOXSECRETTOKEN", "'ftp://hooks.example.com/...'"),
])
@pytest.mark.parametrize("command", ["topics", "worker"])
def test_invalid_webhook_url_is_not_echoed(tmp_path: Path, url: str, shown: str | None, command: str) -> None:
    res = run_cli(*KAFKA_COMMANDS[command], env=base_env(tmp_path, DISTILLGUARD_WEBHOOK_URL=url), timeout=30)
    line = assert_one_line(res, f"distillguard {command}: invalid settings: DISTILLGUARD_WEBHOOK_URL",
                           "must be an http:// or https:// URL")
    assert "XOXSECRETTOKEN" not in res.stderr and "services" not in res.stderr, line
    if shown:
        assert f"= {shown}:" in line
    else:
        assert " = " not in line


def test_invalid_webhook_url_in_config_file_is_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "dg.toml"
    config.write_text('webhook_url = "hooks.slack.com/services/T0/B0/XOXSECRETTOKEN"\npartitions = 0\n')
    res = run_cli("--config", str(config), "topics", "create", env=base_env(tmp_path), timeout=30)
    line = assert_one_line(res, "DISTILLGUARD_WEBHOOK_URL", "DISTILLGUARD_PARTITIONS / 'partitions' in the config "
                           "file = '0'")
    assert "XOXSECRETTOKEN" not in res.stderr and "slack" not in line
