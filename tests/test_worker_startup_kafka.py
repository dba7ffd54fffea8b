"""Start-up of ``distillguard worker``: a broker not up yet, a missing events topic, a taken web port.

Real worker processes (``distillguard worker`` subprocesses) against the real local broker; nothing of
Kafka is mocked.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid

import orjson
import pytest

from tests.conftest import REPO, WorkerProcess, dg_env, free_port
from tests.kafka_utils import produce

pytestmark = pytest.mark.kafka


def _log_events(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _closed_port() -> int:
    """A local port where nothing listens (bound for a moment by free_port, then released)."""
    port = free_port()
    with socket.socket() as s:  # make sure: connecting must be refused
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


def test_worker_waits_for_a_broker_that_is_not_up_and_stops_cleanly_on_sigterm(tmp_path):
    """A worker whose bootstrap server does not answer keeps waiting (it used to exit 1 after ~3 s).

    Covered: the worker is alive after 8 s and after 35 s, logged ``broker_unreachable_at_start`` once
    and then ``waiting_for_broker`` with its attempt count and elapsed seconds, did not start Faust, and
    SIGTERM while it waits ends it within 5 s with exit code 0 and no traceback.
    Not covered here: the broker actually coming up while the worker waits (that needs a broker this
    test may start and stop; the shared one must not be touched). What the worker does once ``preflight``
    succeeds is the ordinary start-up, covered by the ready-worker test below. Ctrl-C (exit 130) was
    only checked by hand.
    """
    env = dg_env(f"t{uuid.uuid4().hex[:10]}", f"127.0.0.1:{_closed_port()}",
                 DISTILLGUARD_DATA_DIR=str(tmp_path / "data"))
    worker = WorkerProcess(env, tmp_path / "waiting.log")
    try:
        time.sleep(8)
        assert worker.alive(), f"worker exited with {worker.proc.returncode}:\n{worker.log_text()[-3000:]}"
        events = [e["event"] for e in _log_events(worker.log_text())]
        assert events.count("broker_unreachable_at_start") == 1, worker.log_text()[-3000:]
        first = next(e for e in _log_events(worker.log_text()) if e["event"] == "broker_unreachable_at_start")
        assert "waiting for the broker" in first["action"]
        assert "worker_starting" not in events  # Faust is not started while the broker is away

        deadline = time.time() + 45  # backoff 1, 2, 4, 8, 15 s: the attempt at ~30 s logs waiting_for_broker
        waiting: list[dict] = []
        while time.time() < deadline and not waiting:
            time.sleep(1)
            assert worker.alive(), f"worker exited with {worker.proc.returncode}:\n{worker.log_text()[-3000:]}"
            waiting = [e for e in _log_events(worker.log_text()) if e["event"] == "waiting_for_broker"]
        assert waiting, f"no waiting_for_broker line:\n{worker.log_text()[-3000:]}"
        assert waiting[0]["attempts"] >= 5 and waiting[0]["elapsed_seconds"] >= 25, waiting[0]
        assert len(waiting) == 1  # at most one line per 30 s

        t0 = time.time()
        worker.proc.send_signal(signal.SIGTERM)
        rc = worker.proc.wait(10)
        took = time.time() - t0
    finally:
        worker.stop()
    text = worker.log_text()
    assert rc == 0, text[-3000:]
    assert took < 5, f"SIGTERM took {took:.1f} s"
    assert "Traceback" not in text, text[-3000:]
    assert any(e["event"] == "worker_stopped" for e in _log_events(text)), text[-3000:]


def test_worker_on_a_taken_web_port_stops_at_once_with_one_line(kafka_env, tmp_path):
    """A port already listened on (as by another worker): exit code 2, one line saying what to set, no traceback."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        t0 = time.time()
        r = subprocess.run([sys.executable, "-m", "distillguard.cli", "worker", "--web-port", str(port)],
                           env=kafka_env, cwd=REPO, capture_output=True, timeout=120, check=False)
        took = time.time() - t0
    err = r.stderr.decode()
    assert r.returncode == 2, (r.returncode, err, r.stdout.decode()[-2000:])
    line = (f"distillguard worker: web port {port} on 0.0.0.0 is in use (another worker?): "
            "set --web-port or DISTILLGUARD_WEB_PORT")
    assert err.strip().splitlines() == [line], err
    assert "Traceback" not in err + r.stdout.decode()
    assert "worker_starting" not in r.stdout.decode()  # stopped before Faust (and before the broker wait)
    assert took < 30, took


def test_second_worker_on_a_running_workers_port_is_refused_and_the_first_stays_ready(kafka_env, worker_factory,
                                                                                       tmp_path):
    """The audit's case with real processes: a worker started normally becomes ready; a second one on its
    web port (aiohttp's own listening socket) exits 2 with the one-line message; the first stays ready."""
    first = worker_factory(kafka_env, name="first")
    first.wait_ready()
    status, body = first.get("/readyz")
    assert (status, orjson.loads(body)) == (200, {"ready": True})
    assert "broker_unreachable_at_start" not in first.log_text()

    second = WorkerProcess(kafka_env, tmp_path / "second.log", web_port=first.web_port)
    try:
        rc = second.proc.wait(60)
    finally:
        second.stop()
    text = second.log_text()
    assert rc == 2, text[-3000:]
    assert (f"distillguard worker: web port {first.web_port} on 0.0.0.0 is in use (another worker?): "
            "set --web-port or DISTILLGUARD_WEB_PORT") in text.splitlines(), text[-3000:]
    assert "Traceback" not in text
    assert first.get("/readyz")[0] == 200 and first.alive()


def test_missing_events_topic_keeps_the_worker_unready_until_it_is_created(kafka_env, worker_factory):
    """Events topic missing: /readyz answers 503 naming it (for well over the 30-s subscribe wait, after
    which it used to turn 200), and the warning says how to fix it. Once the topic is created (kafka-python
    admin) the worker becomes ready and processes an event from it."""
    from distillguard.settings import Settings
    from streams.admin import TopicSpec, create_topics

    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    prefix = kafka_env["DISTILLGUARD_APP_ID"].removesuffix("-app")
    missing = f"{prefix}.events-missing"  # under the test's prefix: deleted by kafka_env's clean-up
    env = dict(kafka_env, DISTILLGUARD_EVENTS_TOPIC=missing)
    worker = worker_factory(env)

    t0 = time.time()
    named_at = None
    while time.time() - t0 < 45 or named_at is None or time.time() - named_at < 10:
        assert time.time() - t0 < 120, f"/readyz never named the missing topic:\n{worker.log_text()[-3000:]}"
        assert worker.alive(), worker.log_text()[-3000:]
        try:
            status, body = worker.get("/readyz")
        except OSError:  # web server not up yet
            time.sleep(0.5)
            continue
        assert status == 503, (round(time.time() - t0, 1), body)
        doc = orjson.loads(body)
        if "missing_topics" in doc:
            assert doc["missing_topics"] == [missing] and doc["ready"] is False
            assert "distillguard topics create" in doc["reason"]
            named_at = named_at or time.time()
        elif named_at is not None:
            raise AssertionError(f"/readyz stopped naming the missing topic: {doc}")
        time.sleep(1)
    warnings = [e for e in _log_events(worker.log_text()) if e["event"] == "topics_missing_at_subscribe"]
    assert warnings and warnings[0]["topics"] == [missing], worker.log_text()[-3000:]
    assert "distillguard topics create" in warnings[0]["action"]

    settings = Settings(bootstrap_servers=bootstrap)
    assert create_topics(settings, [TopicSpec(missing, settings.partitions, {})]) == {missing: "created"}
    created = time.time()
    worker.wait_ready(timeout=90)
    became_ready = time.time() - created
    appeared = [e for e in _log_events(worker.log_text()) if e["event"] == "topics_appeared"]
    assert appeared and appeared[0]["topics"] == [missing], worker.log_text()[-3000:]

    event = {"event_id": "ev-startup-1", "timestamp": "2026-06-25T10:00:00.000Z", "tenant_id": "tenant-1",
             "account_id": "acct-1", "model": "atlas-3", "input_tokens": 10, "output_tokens": 20}
    produce(bootstrap, missing, [event])
    deadline = time.time() + 60
    while worker.metric("distillguard_events_total", result="valid") < 1 and time.time() < deadline:
        time.sleep(0.5)
    assert worker.metric("distillguard_events_total", result="valid") == 1, worker.log_text()[-3000:]
    print(f"ready {became_ready:.1f} s after the topic was created")
