"""Shared fixtures: the real local Kafka broker (started by ``make test``), per-test topics, worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KAFKA_PORT = int(os.environ.get("DG_KAFKA_PORT", "19092"))
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The local broker's address; fails (does not skip) when it is not running."""
    deadline = time.time() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", KAFKA_PORT), timeout=2):
                return BOOTSTRAP
        except OSError:
            if time.time() > deadline:
                pytest.fail(f"no Kafka broker on {BOOTSTRAP}: start it with `docker/kafka-local.sh start` (make test does)")
            time.sleep(1)


def dg_env(prefix: str, bootstrap: str, **extra: str) -> dict[str, str]:
    """Environment for a distillguard process whose topics and group are private to one test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILLGUARD_")}
    env.update(
        DISTILLGUARD_BOOTSTRAP_SERVERS=bootstrap,
        DISTILLGUARD_EVENTS_TOPIC=f"{prefix}.events",
        DISTILLGUARD_DLQ_TOPIC=f"{prefix}.dlq",
        DISTILLGUARD_ALERTS_TOPIC=f"{prefix}.alerts",
        DISTILLGUARD_FEEDBACK_TOPIC=f"{prefix}.feedback",
        DISTILLGUARD_NOTIFICATIONS_TOPIC=f"{prefix}.notifications",
        DISTILLGUARD_APP_ID=f"{prefix}-app",
        DISTILLGUARD_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
        # Faust reads this from the environment: a worker hears of a rebalance (another worker joining or
        # leaving) at its next heartbeat, so 1 s instead of the default 3 s shortens every hand-over
        BROKER_HEARTBEAT_INTERVAL="1",
    )
    env.update(extra)
    return env


@pytest.fixture
def kafka_env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Private topics (created here, deleted afterwards) and the env that points a process at them."""
    from distillguard.settings import Settings
    from streams.admin import create_topics, delete_topics

    prefix = f"t{uuid.uuid4().hex[:10]}"
    env = dg_env(prefix, kafka_bootstrap, DISTILLGUARD_DATA_DIR=str(tmp_path / "data"))
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        events_topic=env["DISTILLGUARD_EVENTS_TOPIC"],
        dlq_topic=env["DISTILLGUARD_DLQ_TOPIC"],
        alerts_topic=env["DISTILLGUARD_ALERTS_TOPIC"],
        feedback_topic=env["DISTILLGUARD_FEEDBACK_TOPIC"],
        notifications_topic=env["DISTILLGUARD_NOTIFICATIONS_TOPIC"],
        app_id=env["DISTILLGUARD_APP_ID"],
    )
    create_topics(settings)
    yield env
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        groups = [g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix)]
        if groups:
            try:
                admin.delete_groups(groups)
            except Exception:  # noqa: BLE001 - a group still shutting down is cleaned up with the broker
                pass
    finally:
        admin.close()
    delete_topics(settings, mine)


@pytest.fixture(scope="session")
def private_broker(tmp_path_factory) -> Iterator:
    """A private broker (PLAINTEXT, plus SASL_SSL with user ``SASL_USER``) for the tests that stop it or need
    SASL: started once per session (a JVM start and a CA each cost ~10 s), removed at the end."""
    from tests.private_kafka import SASL_PASSWORD, SASL_USER, PrivateBroker

    b = PrivateBroker(tmp_path_factory.mktemp("kafka-private"), users={SASL_USER: SASL_PASSWORD})
    try:
        b.start()  # inside the try: a broker that failed half-way through its start is removed too
        yield b
    finally:
        b.reset()


class WorkerProcess:
    """A real ``distillguard worker`` subprocess with its log captured to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, web_port: int | None = None) -> None:
        self.web_port = web_port or free_port()
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "distillguard.cli", "worker", "--web-port", str(self.web_port)],
            env=env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                status, _ = self.get("/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log_text()[-3000:]}")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of one metric whose labels include ``labels``."""
        from prometheus_client.parser import text_string_to_metric_families

        _, body = self.get("/metrics")
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator:
    """Start workers with ``worker_factory(env)``; all are stopped at teardown."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], name: str = "worker") -> WorkerProcess:
        w = WorkerProcess(env, tmp_path / f"{name}-{len(started)}.log")
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def fixb_env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The env of a process whose topics (none created here) all start with a private ``fixb`` prefix;
    every topic and consumer group of that prefix is deleted at teardown."""
    import contextlib

    from kafka.admin import KafkaAdminClient

    prefix = f"fixb{uuid.uuid4().hex[:10]}"
    env = dg_env(prefix, kafka_bootstrap, DISTILLGUARD_DATA_DIR=str(tmp_path / "data"))
    yield env
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        groups = [g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix)]
        if groups:
            with contextlib.suppress(Exception):  # a group still shutting down goes with the broker
                admin.delete_groups(groups)
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()
