"""Events whose record key is not their tenant_id are counted and warned about (twelfth-session audit).

Reproduced before: the same events keyed by ``event_id`` split every tenant over the six partitions' stages
(37 alerts instead of 19, some incidents missed) with no log line and no metric. The worker still processes
such events (refusing them would lose valid events); it now counts them in
``distillguard_events_miskeyed_total`` and logs ``events_miskeyed`` at most once a minute per partition,
without the key or the tenant id (both are input).
"""

from __future__ import annotations

import json
import time

from kafka import KafkaProducer

from detectors import synthetic as syn
from tests.kafka_utils import wire


def test_events_keyed_otherwise_than_by_tenant_are_counted_and_warned_about(kafka_env, worker_factory) -> None:
    worker = worker_factory(kafka_env)
    worker.wait_ready()
    events = [syn._event(f"acme-{i % 3}", i, syn.T0 + i) for i in range(30)]
    producer = KafkaProducer(bootstrap_servers=kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], acks="all")
    topic = kafka_env["DISTILLGUARD_EVENTS_TOPIC"]
    for i, ev in enumerate(events):
        key = {0: ev["event_id"].encode(), 1: None}.get(i % 5, ev["tenant_id"].encode())  # 12 of 30 mis-keyed
        producer.send(topic, key=key, value=wire(ev))
    producer.flush()
    producer.close()

    deadline = time.time() + 60
    while worker.metric("distillguard_events_total", result="valid") < len(events) and time.time() < deadline:
        time.sleep(0.5)
    assert worker.metric("distillguard_events_total", result="valid") == len(events), worker.log_text()[-3000:]
    assert worker.metric("distillguard_events_miskeyed_total") == 12, worker.log_text()[-3000:]
    lines = [json.loads(line) for line in worker.log_text().splitlines() if '"events_miskeyed"' in line]
    assert lines, worker.log_text()[-3000:]
    partitions = [rec["partition"] for rec in lines]
    assert len(partitions) == len(set(partitions)), lines  # at most one warning a minute per partition
    assert all("tenant_id" in rec["action"] for rec in lines)
    assert not any("acme" in line for line in worker.log_text().splitlines()
                   if '"events_miskeyed"' in line)
