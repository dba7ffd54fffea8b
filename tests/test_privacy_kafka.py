"""Issue 7: raw prompt text goes nowhere; attacker-controlled strings are escaped in logs, never metric labels.

Extends tests/test_ingest_kafka.py (marker absent from the app's public topics and from the log) to
everything a worker writes: every topic of the test's app including Faust's internal changelog and
repartition topics, the state directory, the alert payloads, and the log, whose lines must each be one
valid JSON object even when tenant ids and feedback fields carry newlines, ANSI escapes and JSON
fragments. The attacking tenants' ids are hostile, so their state and alerts exercise every path.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from detectors import synthetic as syn
from tests.kafka_utils import produce

pytestmark = pytest.mark.kafka
MARKER = f"PRIVACY-MARKER-{uuid.uuid4().hex}"
HOSTILE = [
    'evil\n{"level":"critical","event":"forged"}',  # a newline that would start a forged log record
    "ansi\x1b[31mred\x1b[0m\r\x07bell",  # terminal escapes, carriage return, bell
    'json"},{"x":"\\u0000\\',  # JSON-breaking quotes, braces and backslashes
]
FORGED_ALERT_ID = 't-\x1b[2Jforged\n{"level":"critical","event":"pwned"}'


def events() -> list[dict]:
    """Three extraction attackers with hostile ids (every third prompt carries the marker) and a benign chat."""
    streams = []
    for i, tenant in enumerate(HOSTILE):
        evs = syn.extraction(tenant, start=syn.T0, hours=1.5, rate=0.5, seed=40 + i)
        for j, ev in enumerate(evs):
            if j % 3 == 0:
                ev["prompt_text"] = f"{MARKER} think step by step about case {j}"
        streams.append(evs)
    chat = syn.chat("chat-priv", start=syn.T0, hours=2, seed=44)
    for j, ev in enumerate(chat):
        ev["prompt_text"] = f"{MARKER} hello {j}"
    streams.append(chat)
    return syn.merge(*streams)


def read_everything(bootstrap: str, topics: list[str]) -> dict[str, list]:
    """Every record of ``topics`` from the beginning (group-less)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_partition_fetch_bytes=2_000_000)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        end = consumer.end_offsets(tps)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: dict[str, list] = {t: [] for t in topics}
        deadline = time.time() + 90
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.time() < deadline:
            for tp, recs in consumer.poll(timeout_ms=500).items():
                out[tp.topic].extend(recs)
        assert all(consumer.position(tp) >= end[tp] for tp in tps), "read every topic to its end"
        return out
    finally:
        consumer.close()


def test_no_prompt_text_anywhere_and_hostile_strings_escaped(kafka_env, worker_factory, tmp_path: Path):
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    app_id = kafka_env["DISTILLGUARD_APP_ID"]
    prefix = kafka_env["DISTILLGUARD_EVENTS_TOPIC"].rsplit(".", 1)[0]
    evs = events()
    kafka_env["DISTILLGUARD_CHECKPOINT_SECONDS"] = "1"  # state reaches the changelog soon after the last event
    worker = worker_factory(kafka_env)
    worker.wait_ready()
    produce(bootstrap, kafka_env["DISTILLGUARD_EVENTS_TOPIC"], evs)
    deadline = time.time() + 120
    while worker.metric("distillguard_events_total", result="valid") < len(evs) and time.time() < deadline:
        assert worker.alive(), worker.log_text()[-3000:]
        time.sleep(1)
    assert worker.metric("distillguard_events_total", result="valid") == len(evs)

    # an analyst verdict whose fields are hostile too: they reach a log line of the worker
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(kafka_env["DISTILLGUARD_FEEDBACK_TOPIC"],
                  value=orjson.dumps({"alert_id": FORGED_ALERT_ID, "label": "false_positive",
                                      "tenant_id": HOSTILE[0]})).get(timeout=30)
    producer.close()
    deadline = time.time() + 60
    while '"event":"feedback_' not in worker.log_text() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # past the last checkpoint interval: every tenant's state is in the changelog
    status, body = worker.get("/metrics")
    assert status == 200
    metrics_text = body.decode()
    data_dir = Path(kafka_env["DISTILLGUARD_DATA_DIR"])
    assert worker.stop() == 0
    log_bytes = worker.log_path.read_bytes()

    # every topic of this test's app, internal ones included
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        topics = sorted(t for t in admin.list_topics() if t.startswith(prefix))
    finally:
        admin.close()
    internal = [t for t in topics if t.startswith(app_id)]
    assert any(t.endswith("-changelog") for t in internal) and f"{app_id}-cluster-summaries" in internal, topics
    records = read_everything(bootstrap, topics)
    for topic, recs in records.items():
        if topic == kafka_env["DISTILLGUARD_EVENTS_TOPIC"]:
            continue  # the input: the gateway's own bytes
        for r in recs:
            assert MARKER.encode() not in (r.value or b"") + (r.key or b""), f"prompt text leaked into {topic}"
            assert b"prompt_text" not in (r.value or b""), f"a prompt_text field reached {topic}"

    # alerts: hostile tenant ids survive intact inside valid JSON, and no alert carries prompt text
    alerts = [orjson.loads(r.value) for r in records[kafka_env["DISTILLGUARD_ALERTS_TOPIC"]]]
    assert {a["tenant_id"] for a in alerts if a["kind"] == "tenant" and a["status"] == "open"} == set(HOSTILE)
    changelog = [r for t in internal if t.endswith("tenant-state-changelog") for r in records[t]]
    assert {r.key for r in changelog} >= {t.encode() for t in HOSTILE}, "hostile tenants' state was checkpointed"

    # the state directory
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    for p in files:
        assert MARKER.encode() not in p.read_bytes(), f"prompt text in state file {p}"

    # the log: one JSON object a line, no raw control characters, hostile values escaped, no forged records
    assert MARKER.encode() not in log_bytes
    assert b"\x1b" not in log_bytes and b"\r" not in log_bytes and b"\x07" not in log_bytes
    lines = [line for line in log_bytes.split(b"\n") if line.strip()]
    parsed = []
    for line in lines:
        rec = orjson.loads(line)  # raises on any line that is not one complete JSON document
        assert isinstance(rec, dict), line
        parsed.append(rec)
    applied = [r for r in parsed if r.get("event") in ("feedback_applied", "feedback_not_applied", "feedback_unmatched")]
    assert applied, "the hostile verdict was logged"
    assert applied[0]["alert_id"] == 't-\\x1b[2Jforged\\x0a{"level":"critical","event":"pwned"}'
    assert not [r for r in parsed if r.get("event") in {"forged", "pwned"} or r.get("level") == "critical"]

    # metrics: no tenant id (hostile or not) and no prompt text in any sample or label
    for tenant in [*HOSTILE, "chat-priv"]:
        assert tenant not in metrics_text and repr(tenant)[1:-1] not in metrics_text
    for fragment in ("evil", "ansi", "json\"", "chat-priv", MARKER):
        assert fragment not in metrics_text
