"""Poison and hostile input through Kafka: a real worker keeps going, dead-letters every bad input with its
reason, processes every valid one, detects the attacker inside, and its memory stays bounded.

The mix (``DG_HOSTILE_EVENTS`` messages, default 20,000; ``make test`` and ``make soak`` send 100,000): real traffic (an
extraction attacker among benign tenants), then malformed inputs of a dozen kinds as raw bytes (invalid
UTF-8, deep nesting, oversized strings, NaN/Infinity, huge numbers, duplicate keys, missing fields, wrong
types, non-objects, truncated JSON, control characters in timestamps, invalid dates, prompt text in a bad
event), replayed event ids, valid events with control characters and newlines in their ids, and valid
events with timestamps far in the past and future (year 1970, year 9999, a confirmed 30-day jump, a tenant
stepping 23 h per event). The far-time events are processed as late or clamped events and cannot move
the partition clocks (docs/RELIABILITY.md, "Hostile input").
"""

from __future__ import annotations

import os
import time
from collections import Counter

import orjson
import pytest
from kafka import KafkaProducer

from detectors import Engine
from detectors import synthetic as syn
from detectors.common import iso
from tests.kafka_utils import consume, flush_events, read_topic, wire

pytestmark = pytest.mark.kafka
PARTITIONS = 6
TOTAL = int(os.environ.get("DG_HOSTILE_EVENTS", "20000"))
MAX_EVENT_BYTES = 32 * 1024

# kind -> the start of the dead-letter reason the worker must give
EXPECTED_REASON = {
    "invalid_utf8": "invalid JSON",
    "deep_nesting": "invalid JSON",
    "oversized": "oversized",
    "nan_infinity": "invalid JSON",
    "huge_number": "input_tokens: must be <=",
    "huge_float": "invalid JSON",
    "duplicate_key": "input_tokens: must be >=",
    "missing_field": "tenant_id: required field missing",
    "wrong_type": "output_tokens: expected integer",
    "not_object": "not a JSON object",
    "truncated": "invalid JSON",
    "newline_timestamp": "timestamp: does not match",
    "invalid_date": "timestamp: not a valid date-time",
    "secret_prompt": "account_id: required field missing",
}


def real_traffic() -> list[dict]:
    """An extraction attacker among benign tenants, then quorum-many far-later events per partition."""
    events = syn.merge(syn.extraction("atk-1", start=syn.T0, hours=2, rate=0.5, seed=11),
                       syn.chat("chat-1", start=syn.T0, hours=3, seed=13),
                       syn.chat("chat-2", start=syn.T0, hours=3, seed=14),
                       syn.batch("batch-1", start=syn.T0, hours=3, rate=0.2, seed=15))
    return events


def far_time_events() -> list[dict]:
    """Valid events whose timestamps are far off: each tenant on its own (one tenant cannot move a clock)."""
    out = []
    for i in range(40):
        out.append(syn._event("evil-9999", i, 253402300000.0 + i))
        out.append(syn._event("evil-1970", i, 1000.0 + i, model="fresh-model"))
        out.append(syn._event("evil-jump", i, syn.T0 + 3600 + (30 * 86400 if i >= 20 else 0) + i))
        out.append(syn._event("evil-step", i, syn.T0 + 3600 + 23 * 3600 * i))
    for ev in out:
        ev["timestamp"] = iso(ev["ts"])
    return out


def control_char_events() -> list[dict]:
    out = []
    for i in range(60):
        tid = ["ctl\n\x00tenant", "ctl\u202e\x1b[2Jtenant", "ctl\r\nsplit"][i % 3]
        ev = syn._event(tid, i, syn.T0 + 600 + i * 30)
        ev["event_id"] = f"id\n{i}\x00\x7f"
        ev["account_id"] = "acct\x1b]0;title\x07"
        out.append(ev)
    return out


def hostile(kind: str, i: int, template: bytes) -> bytes:
    base = orjson.loads(template)
    if kind == "invalid_utf8":
        return template[:20] + b"\xff\xfe\xc3\x28" + template[20:]
    if kind == "deep_nesting":
        return b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}"
    if kind == "oversized":
        return orjson.dumps({**base, "user_agent": "u" * (MAX_EVENT_BYTES + 100)})
    if kind == "nan_infinity":
        return template[:-1] + (b',"temperature":NaN}' if i % 2 else b',"top_p":-Infinity}')
    if kind == "huge_number":
        return template[:-1] + b',"input_tokens":1' + b"0" * 30 + b"}"
    if kind == "huge_float":
        return template[:-1] + b',"temperature":1e999}'
    if kind == "duplicate_key":
        return template[:-1] + b',"input_tokens":-5}'
    if kind == "missing_field":
        return orjson.dumps({k: v for k, v in base.items() if k != "tenant_id"})
    if kind == "wrong_type":
        return orjson.dumps({**base, "output_tokens": "12"})
    if kind == "not_object":
        return [b"[1,2,3]", b'"event"', b"null", b"42"][i % 4]
    if kind == "truncated":
        return template[: len(template) // 2]
    if kind == "newline_timestamp":
        return orjson.dumps({**base, "timestamp": base["timestamp"] + "\n"})
    if kind == "invalid_date":
        return orjson.dumps({**base, "timestamp": "2026-02-30T10:00:00Z"})
    if kind == "secret_prompt":
        return orjson.dumps({k: v for k, v in base.items() if k != "account_id"} | {"prompt_text": f"SECRET-{i} step by step"})
    raise AssertionError(kind)


def build() -> tuple[list[tuple[bytes, bytes, str]], list[dict], int]:
    """(key, value, kind) messages in send order, the valid events, and the number of replays."""
    real = real_traffic()
    valid = real + control_char_events() + far_time_events()
    valid.sort(key=lambda e: e["ts"] if e["ts"] < syn.T0 + 30 * 86400 else syn.T0 + 4 * 3600)
    valid += flush_events(syn.T0 + 12 * 3600, PARTITIONS)
    n_bad = max(0, TOTAL - len(valid))
    n_replay = min(n_bad // 10, sum(1 for e in valid if not e["tenant_id"].startswith("flush")))  # one per event
    kinds = sorted(EXPECTED_REASON)
    per_kind = {k: (n_bad - n_replay) // len(kinds) for k in kinds}
    per_kind["oversized"] = min(per_kind["oversized"], 300)  # each one is 32 KB on the shared broker
    spare = n_bad - n_replay - sum(per_kind.values())
    for j in range(spare):  # the rest (oversized's share, rounding) goes to the other kinds in turn
        per_kind[[k for k in kinds if k != "oversized"][j % (len(kinds) - 1)]] += 1
    bad = [(k, j) for k in kinds for j in range(per_kind[k])]
    msgs: list[tuple[bytes, bytes, str]] = []
    replay_every = max(1, (len(valid) - 12) // max(1, n_replay))
    replays = 0
    bad_every = max(1, (len(valid) + len(bad)) // max(1, len(bad)))
    b = 0
    for i, ev in enumerate(valid):
        data = wire(ev)
        msgs.append((ev["tenant_id"].encode(), data, "valid"))
        if replays < n_replay and i % replay_every == 0 and not ev["tenant_id"].startswith("flush"):
            msgs.append((ev["tenant_id"].encode(), data, "replay"))  # a gateway retry: same id, right after
            replays += 1
        while b < len(bad) and b * bad_every <= len(msgs):
            kind, j = bad[b]
            msgs.append((f"h:{kind}:{j}".encode(), hostile(kind, j, data), kind))
            b += 1
    tail = msgs.pop()  # the flush events stay last
    msgs += [(f"h:{k}:{j}".encode(), hostile(k, j, wire(real[0])), k) for k, j in bad[b:]]
    msgs.append(tail)
    return msgs, valid, replays


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_hostile_mix_is_dead_lettered_with_reasons_and_the_attacker_still_detected(kafka_env, worker_factory):
    msgs, valid, n_replay = build()
    expected_bad = Counter(kind for _, _, kind in msgs if kind != "valid")
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    env = dict(kafka_env, DISTILLGUARD_MAX_EVENT_BYTES=str(MAX_EVENT_BYTES), DISTILLGUARD_PARTITIONS=str(PARTITIONS))
    worker = worker_factory(env)
    worker.wait_ready()
    rss_start = peak = rss_mb(worker.proc.pid)

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=512 * 1024, acks=1,
                             max_request_size=4 * 1024 * 1024)
    for key, value, _ in msgs:
        producer.send(env["DISTILLGUARD_EVENTS_TOPIC"], key=key, value=value)
    producer.flush()
    producer.close()

    n_valid, n_bad = len(valid), sum(expected_bad.values())
    deadline = time.time() + 600
    while time.time() < deadline:
        assert worker.alive(), worker.log_text()[-3000:]
        peak = max(peak, rss_mb(worker.proc.pid))
        if (worker.metric("distillguard_events_total", result="valid") >= n_valid
                and worker.metric("distillguard_dead_letters_total") >= n_bad):
            break
        time.sleep(1)
    assert worker.metric("distillguard_events_total", result="valid") == n_valid, "every valid event processed"
    assert worker.metric("distillguard_dead_letters_total") == n_bad
    assert worker.metric("distillguard_dead_letters_total", reason="replay") == n_replay


    def adjusted() -> float:
        return (worker.metric("distillguard_event_time_adjusted_total", kind="future_clamped")
                + worker.metric("distillguard_event_time_adjusted_total", kind="late"))

    deadline = time.time() + 30  # the detector's counters reach /metrics on the worker's 5 s progress timer
    while adjusted() == 0 and time.time() < deadline:
        time.sleep(1)
    assert adjusted() > 0, "far-time events were processed as late or clamped"

    dlq = consume(bootstrap, env["DISTILLGUARD_DLQ_TOPIC"], until=lambda rs: len(rs) >= n_bad, timeout=180)
    assert len(dlq) == n_bad
    seen: Counter = Counter()
    for rec in dlq:
        body = orjson.loads(rec.value)
        key = rec.key.decode(errors="replace")
        kind = key.split(":")[1] if key.startswith("h:") else "replay"
        want = "event_id: replay" if kind == "replay" else EXPECTED_REASON[kind]
        assert body["reason"].startswith(want), (kind, body["reason"])
        assert "SECRET-" not in body["raw"], "prompt text never reaches the dead-letter topic"
        assert body["source_topic"] == env["DISTILLGUARD_EVENTS_TOPIC"]
        seen[kind] += 1
    assert seen == expected_bad, "every bad input is dead-lettered once, under its own reason"

    peak = max(peak, rss_mb(worker.proc.pid))
    assert worker.alive()
    assert worker.stop() == 0  # a stopped worker has flushed every alert: the topic to its end is all of them

    # the attacker among the hostile traffic is detected, exactly as the embedded engine sees the valid events
    alerts = [orjson.loads(r.value) for r in read_topic(bootstrap, env["DISTILLGUARD_ALERTS_TOPIC"])]
    engine = Engine()
    reference = engine.process_many(valid) + engine.finish()
    opened = {a["tenant_id"] for a in alerts if a["kind"] == "tenant" and a["status"] == "open"}
    assert "atk-1" in opened
    assert opened == {a["tenant_id"] for a in reference if a["kind"] == "tenant" and a["status"] == "open"}

    print(f"\nhostile mix: {len(msgs)} messages ({n_valid} valid, {n_bad} dead-lettered: {dict(seen)}); "
          f"worker RSS {rss_start:.0f} MB at start, peak {peak:.0f} MB")
    assert peak < rss_start + 250, f"worker memory grew from {rss_start:.0f} to {peak:.0f} MB"
