"""Helpers for tests that talk to the real local broker with kafka-python."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.partitioner import murmur2

REPO = Path(__file__).resolve().parent.parent


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as Java and aiokafka) picks for ``key``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def flush_events(after: float, partitions: int) -> list[dict[str, Any]]:
    """One event a tenant, at ``after`` and later, from ``watermark_quorum`` fresh tenants on every partition.

    A partition's clock moves only when that many tenants reach a time, so this is what closes every
    window in the live pipeline that ``detect`` closes at the end of its input.
    """
    from detectors import synthetic as syn
    from detectors.common import DetectorConfig

    quorum = DetectorConfig().watermark_quorum
    names: dict[int, list[str]] = {p: [] for p in range(partitions)}
    i = 0
    while any(len(v) < quorum for v in names.values()):
        bucket = names[partition_for(f"flush-{i}", partitions)]
        if len(bucket) < quorum:
            bucket.append(f"flush-{i}")
        i += 1
    tenants = sorted(n for v in names.values() for n in v)
    return [syn._event(t, 0, after + k) for k, t in enumerate(tenants)]


def wire(event: dict[str, Any]) -> bytes:
    """An event as the gateway sends it (no derived ``ts``)."""
    return orjson.dumps({k: v for k, v in event.items() if k != "ts"})


def produce(bootstrap: str, topic: str, events: Iterable[dict[str, Any]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024, acks="all")
    n = 0
    for ev in events:
        producer.send(topic, key=ev["tenant_id"].encode(), value=wire(ev))
        n += 1
    producer.flush()
    producer.close()
    return n


def consume(bootstrap: str, topic: str, until: Callable[[list], bool] | None = None, timeout: float = 120,
            idle_ms: int = 3000) -> list:
    """Read ``topic`` from the start until ``until(records)`` holds (or, without it, until idle).

    ``until`` is checked as records arrive, so the call returns as soon as it holds, with everything the
    topic held at that moment (read up to its end offsets): no idle gap is waited out.
    """
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=idle_ms)
    out: list = []
    deadline = time.time() + timeout
    try:
        if until is None:
            out.extend(consumer)
            return out
        checked = -1
        while time.time() < deadline:
            for recs in consumer.poll(timeout_ms=200).values():
                out.extend(recs)
            if len(out) != checked:
                checked = len(out)
                if until(out):
                    _drain(consumer, out, deadline)
                    break
    finally:
        consumer.close()
    return out


def _drain(consumer: KafkaConsumer, out: list, deadline: float) -> bool:
    """Read on until every assigned partition is at the end offset it has now; False if the deadline came first."""
    tps = list(consumer.assignment())
    end = consumer.end_offsets(tps)
    while any(consumer.position(tp) < end[tp] for tp in tps):
        if time.time() >= deadline:
            return False
        for recs in consumer.poll(timeout_ms=200).values():
            out.extend(recs)
    return True


def read_topic(bootstrap: str, topic: str, timeout: float = 60) -> list:
    """Every record ``topic`` holds now: each partition read from the start up to its current end offset.

    For a topic nobody writes to any more (its writer stopped): deterministic, and no idle gap to wait out.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=2_000_000)
    out: list = []
    deadline = time.time() + timeout
    try:
        parts = consumer.partitions_for_topic(topic)
        while not parts and time.time() < deadline:
            time.sleep(0.2)
            parts = consumer.partitions_for_topic(topic)
        assert parts, f"topic {topic} has no partitions"
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        assert _drain(consumer, out, deadline), f"{topic}: not read to its end offsets in {timeout}s"
    finally:
        consumer.close()
    return out


def consume_alerts(bootstrap: str, topic: str, until: Callable[[list[dict]], bool] | None = None,
                   timeout: float = 120) -> list[dict]:
    records = consume(bootstrap, topic, (lambda rs: until([orjson.loads(r.value) for r in rs])) if until else None,
                      timeout)
    return [orjson.loads(r.value) for r in records]


def run_detect(events: list[dict[str, Any]], tmp: Path, feedback: list[dict] | None = None) -> list[dict]:
    """``distillguard detect`` as a real subprocess over a real file; returns its alerts."""
    src, out = tmp / "events.jsonl", tmp / "detect-alerts.jsonl"
    src.write_bytes(b"".join(wire(e) + b"\n" for e in events))
    cmd = [sys.executable, "-m", "distillguard.cli", "detect", "--input", str(src), "--output", str(out),
           "--no-progress"]
    if feedback:
        fb = tmp / "feedback.jsonl"
        fb.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in feedback))
        cmd += ["--feedback", str(fb)]
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True, timeout=600)
    return [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]


def canonical(alert: dict) -> bytes:
    """An alert without producer metadata, as comparable bytes."""
    return orjson.dumps({k: v for k, v in alert.items() if k != "metadata"}, option=orjson.OPT_SORT_KEYS)
