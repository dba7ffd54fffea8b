"""Issue 7: the broker goes away for 30 s while a worker runs under load, then comes back.

A private broker (so stopping it disturbs nobody) and one real worker process. A producer thread keeps
sending at a steady rate, through the outage (kafka-python buffers and retries; idempotence keeps its
retries from duplicating events). Afterwards: the worker is the same process, it processed every event
(lag 0, its alerts equal ``distillguard detect``'s over the same events), alerts came after the restart,
and its log says when it lost the broker and when it had it back. The measured figures go to
docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from detectors import synthetic as syn
from tests.conftest import WorkerProcess, dg_env
from tests.kafka_utils import canonical, flush_events, run_detect, wire
from tests.private_kafka import PrivateBroker

pytestmark = pytest.mark.kafka
PARTITIONS = 3
OUTAGE_SECONDS = 30.0
RATE = 350.0  # events per second from the producer thread


def scenario() -> list[dict]:
    """Two extraction attackers, a prober, a hydra group and benign neighbours over 4 h of event time,
    then far-later events on every partition (as many tenants as the watermark quorum) so the live
    pipeline closes the windows ``detect`` closes."""
    s = syn.T0
    events = syn.merge(
        syn.extraction("atk-1", start=s, hours=4, rate=0.12, seed=11),
        syn.extraction("atk-2", start=s + 3600, hours=3, rate=0.12, seed=12),
        syn.probing("probe-1", start=s + 1800, hours=3, rate=0.12, seed=13),
        syn.chat("chat-1", start=s, hours=4, seed=14),
        syn.batch("batch-1", start=s, hours=4, rate=0.05, seed=15),
        syn.hydra("hyd", n_tenants=8, start=s + 1800, hours=3.5, seed=16),
    )
    end = max(e["ts"] for e in events) + 6 * 3600
    events += flush_events(end, PARTITIONS)
    return events


class PacedProducer(threading.Thread):
    """Sends ``events`` at ``RATE`` per second whatever the broker does; remembers what failed to re-send it."""

    def __init__(self, bootstrap: str, topic: str, events: list[dict]) -> None:
        super().__init__(daemon=True)
        self.topic, self.events = topic, events
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                      linger_ms=20, retries=2**31 - 1, delivery_timeout_ms=180_000,
                                      max_block_ms=120_000, request_timeout_ms=10_000)
        self.failed: list[dict] = []
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            t0 = time.monotonic()
            for n, ev in enumerate(self.events):
                ahead = n / RATE - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
                fut = self.producer.send(self.topic, key=ev["tenant_id"].encode(), value=wire(ev))
                fut.add_errback(lambda _exc, ev=ev: self.failed.append(ev))
                self.sent += 1
            self.producer.flush(timeout=240)
            for ev in list(self.failed):  # anything the retries gave up on is sent again (the worker must get it)
                self.producer.send(self.topic, key=ev["tenant_id"].encode(), value=wire(ev)).get(timeout=60)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.producer.close()


@pytest.fixture(scope="module")
def broker(private_broker: PrivateBroker) -> PrivateBroker:
    """The session's private broker (conftest.py): this test stops and restarts it, nobody else uses it meanwhile."""
    return private_broker


def read_alerts(bootstrap: str, topic: str) -> list[tuple[float, dict]]:
    """Every alert with its record timestamp (seconds, the worker's send time)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        end = consumer.end_offsets(tps)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[tuple[float, dict]] = []
        deadline = time.time() + 60
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.time() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend((r.timestamp / 1000, orjson.loads(r.value)) for r in recs)
        return out
    finally:
        consumer.close()


def test_worker_rides_out_a_30s_broker_outage(broker: PrivateBroker, tmp_path: Path):
    from distillguard.settings import Settings
    from streams.admin import create_topics

    events = scenario()
    env = dg_env("outage", broker.bootstrap, DISTILLGUARD_PARTITIONS=str(PARTITIONS),
                 DISTILLGUARD_DATA_DIR=str(tmp_path / "data"))
    # every topic the worker's settings name (whatever topics later features add)
    create_topics(Settings(**{k.removeprefix("DISTILLGUARD_").lower(): v for k, v in env.items()
                              if k.startswith("DISTILLGUARD_")}))
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        worker.wait_ready(timeout=120)
        pid = worker.proc.pid
        producer = PacedProducer(broker.bootstrap, env["DISTILLGUARD_EVENTS_TOPIC"], events)
        producer.start()
        reference = run_detect(events, tmp_path)  # meanwhile: what `detect` says about the same events
        assert any(a["status"] == "open" for a in reference)

        deadline = time.time() + 60
        while worker.metric("distillguard_events_total", result="valid") < 1500 and time.time() < deadline:
            time.sleep(0.5)
        assert worker.metric("distillguard_events_total", result="valid") >= 1500, "the worker is under load"
        t_down = time.time()
        broker.stop()
        # the broker takes a while to start: begin early enough that it answers again ~30 s after it went
        time.sleep(max(0.0, OUTAGE_SECONDS - broker.start_seconds - (time.time() - t_down)))
        broker.start()
        t_back = time.time()
        assert t_back - t_down >= OUTAGE_SECONDS - 5
        assert worker.alive() and worker.proc.pid == pid, "the worker survives the outage without a restart"

        producer.join(timeout=240)
        assert not producer.is_alive() and producer.error is None, producer.error
        caught_up = None
        deadline = time.time() + 180
        while time.time() < deadline:
            assert worker.alive(), worker.log_text()[-3000:]
            if worker.metric("distillguard_events_total", result="valid") >= len(events):
                caught_up = time.time()
                break
            time.sleep(0.5)
        assert caught_up is not None, (f"processed {worker.metric('distillguard_events_total', result='valid')} "
                                       f"of {len(events)}:\n{worker.log_text()[-3000:]}")
        time.sleep(6)  # one progress tick for the lag gauge and the last alerts
        lag = worker.metric("distillguard_consumer_lag")
        processed = worker.metric("distillguard_events_total", result="valid")
        assert worker.proc.pid == pid
    finally:
        worker.stop()
    log_text = worker.log_text()

    # every event reached the topic exactly once (idempotent retries) ...
    topic_events = read_alerts(broker.bootstrap, env["DISTILLGUARD_EVENTS_TOPIC"])
    ids = Counter(ev["event_id"] for _, ev in topic_events)
    live = read_alerts(broker.bootstrap, env["DISTILLGUARD_ALERTS_TOPIC"])
    got = {canonical(a) for _, a in live if a["kind"] == "tenant"}
    want = {canonical(a) for a in reference if a["kind"] == "tenant"}
    after = sorted(ts for ts, _ in live if ts >= t_back)
    lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    lost = [r for r in lines if r.get("event") == "broker_unreachable"]
    back = [r for r in lines if r.get("event") == "broker_reachable"]
    figures = {
        "events": len(events), "processed_valid": processed, "reprocessed": processed - len(events),
        "events_missing_on_topic": len(events) - len(ids), "producer_resent": len(producer.failed),
        "tenant_alerts_missing": len(want - got), "tenant_alerts_unexpected": len(got - want),
        "alerts": len(live), "duplicate_alerts": len(live) - len({canonical(a) for _, a in live}),
        "outage_s": round(t_back - t_down, 1), "logged_outage_s": back[0]["outage_seconds"] if back else None,
        "first_alert_after_back_s": round(after[0] - t_back, 1) if after else None,
        "caught_up_after_back_s": round(caught_up - t_back, 1),
    }
    print("broker outage figures:", json.dumps(figures))

    assert len(ids) == len(events) and max(ids.values()) == 1
    # ... and the worker processed all of them: no lag left, its alerts are detect's alerts
    assert lag == 0
    assert got == want, f"missing {want - got}, unexpected {got - want}"
    assert {a["alert_id"] for _, a in live} >= {a["alert_id"] for a in reference}
    assert after, "alerts keep coming after the broker is back"
    assert lost and back, "the log says the broker went away and came back"
    assert abs(back[0]["outage_seconds"] - (t_back - t_down)) < 10, (back[0], t_back - t_down)
