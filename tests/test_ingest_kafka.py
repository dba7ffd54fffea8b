"""Issue 2's end-to-end check: a real worker process validates and routes events on the real broker."""

from __future__ import annotations

import random
import time

import orjson
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient

from tests.kafka_utils import consume, read_topic

pytestmark = pytest.mark.kafka
MARKER = "PROMPT-MARKER-7f3a9c-do-not-leak"


def valid_event(i: int, rng: random.Random) -> dict:
    ev = {
        "event_id": f"ev-{i}",
        "timestamp": f"2026-06-25T{10 + i % 10:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z",
        "tenant_id": f"tenant-{i % 37}",
        "account_id": f"acct-{i % 101}",
        "model": rng.choice(["atlas-3", "atlas-3-mini"]),
        "input_tokens": rng.randint(0, 4000),
        "output_tokens": rng.randint(0, 2000),
        "temperature": rng.choice([0, 0.7, 1.0]),
        "unknown_extra_field": {"nested": [1, 2]},
    }
    if i % 5 == 0:
        ev["prompt_text"] = f"{MARKER} please think step by step about item {i}"
    return ev


def invalid_inputs(rng: random.Random) -> list[tuple[bytes, str]]:
    """(raw bytes, expected reason prefix): 500 inputs over ten kinds of defect."""
    base = valid_event(0, rng) | {"prompt_text": MARKER}
    required = ["event_id", "timestamp", "tenant_id", "account_id", "model", "input_tokens", "output_tokens"]
    cases: list[tuple[bytes, str]] = []
    for i in range(50):
        cases.append((b'{"event_id": "broken", "prompt_text": "' + MARKER.encode() + b'", ', "invalid JSON"))
        cases.append((orjson.dumps([base, i]), "not a JSON object"))
        field = required[i % len(required)]
        cases.append((orjson.dumps({k: v for k, v in base.items() if k != field}), f"{field}: required field missing"))
        cases.append((orjson.dumps(base | {"input_tokens": str(i)}), "input_tokens: expected integer, got string"))
        cases.append((orjson.dumps(base | {"output_tokens": -1 - i}), "output_tokens: must be >= 0"))
        cases.append((orjson.dumps(base | {"timestamp": f"25/06/2026 10:{i % 60:02d}"}), "timestamp: does not match"))
        cases.append((orjson.dumps(base | {"timestamp": "2026-02-30T10:00:00Z"}), "timestamp: not a valid date-time"))
        cases.append((orjson.dumps(base | {"schema_version": 2 + i}), "schema_version: must be one of"))
        cases.append((orjson.dumps(base | {"user_agent": "x" * 300_000}), "oversized"))
        cases.append((orjson.dumps(base | {"logprobs": "yes"}), "logprobs: expected boolean, got string"))
    return cases


def test_worker_validates_routes_and_never_leaks_prompt_text(kafka_env, worker_factory):
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    events_topic, dlq_topic = kafka_env["DISTILLGUARD_EVENTS_TOPIC"], kafka_env["DISTILLGUARD_DLQ_TOPIC"]
    worker = worker_factory(kafka_env)
    worker.wait_ready()

    rng = random.Random(7)
    valid = [orjson.dumps(valid_event(i, rng)) for i in range(5000)]
    invalid = invalid_inputs(rng)
    items = [(raw, None) for raw in valid] + invalid
    rng.shuffle(items)
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=2_000_000, linger_ms=5)
    sent = [(producer.send(events_topic, key=f"k{i % 13}".encode(), value=raw), reason) for i, (raw, reason) in enumerate(items)]
    producer.flush()
    expected_dlq = {}
    valid_positions = set()
    for future, reason in sent:
        md = future.get(timeout=30)
        if reason is None:
            valid_positions.add((md.partition, md.offset))
        else:
            expected_dlq[(md.partition, md.offset)] = reason
    producer.close()
    assert len(expected_dlq) == 500 and len(valid_positions) == 5000

    deadline = time.time() + 120
    while time.time() < deadline and worker.metric("distillguard_events_total", result="valid") < 5000:
        time.sleep(1)
    assert worker.metric("distillguard_events_total", result="valid") == 5000
    assert worker.metric("distillguard_events_total", result="invalid") == 500

    records = [orjson.loads(m.value) for m in consume(bootstrap, dlq_topic, until=lambda rs: len(rs) >= 500, timeout=60)]
    assert len(records) == 500
    by_source = {(r["source_partition"], r["source_offset"]): r for r in records}
    assert set(by_source) == set(expected_dlq), "every invalid input is dead-lettered once, no valid one is"
    for pos, reason in expected_dlq.items():
        record = by_source[pos]
        assert record["reason"].startswith(reason), (record["reason"], reason)
        assert record["source_topic"] == events_topic
    oversized = [r for r in records if r["reason"].startswith("oversized")]
    assert oversized and all(r["truncated"] and len(r["raw"]) <= 256 * 1024 for r in oversized)
    assert not (set(by_source) & valid_positions)

    assert worker.alive()
    assert worker.stop() == 0, "SIGTERM stops the worker cleanly"
    # the marker must appear on no topic but the input, and in no log line (the stopped worker has flushed
    # everything it wrote, so each topic read up to its end offsets is all of it)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    prefix = events_topic.rsplit(".", 1)[0]
    topics = [t for t in admin.list_topics() if t.startswith(prefix) and t != events_topic]
    admin.close()
    assert dlq_topic in topics
    for topic in topics:
        for message in read_topic(bootstrap, topic):
            assert MARKER.encode() not in (message.value or b""), f"prompt text leaked into {topic}"
    assert MARKER not in worker.log_text()
