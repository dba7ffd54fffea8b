"""Compressed record batches (a gateway's producer, or the broker's ``compression.type``) through a real
worker and a real replay: lz4, snappy, zstd and gzip batches in one events topic are all decoded.

Before the codec libraries were dependencies, aiokafka raised ``UnsupportedCodecError`` on the first lz4
batch (the replay exited with a traceback; the worker could not consume the partition)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from streams.replay import partition_for
from tests.kafka_utils import canonical, consume_alerts, run_detect, wire
from tests.test_replay_kafka import replay, summary
from tests.test_streaming_kafka import scenario, wait_for_events

pytestmark = pytest.mark.kafka
CODECS = ("lz4", "snappy", "zstd", "gzip")
PARTITIONS = 6  # of the test topics (kafka_env)


def codec_of(event: dict) -> str:
    """One codec per partition: each partition's records then come from one producer in event-time order, so
    the partition order is the order ``detect`` sees (the pipeline's equivalence rule)."""
    return CODECS[partition_for(event["tenant_id"], PARTITIONS) % len(CODECS)]


def produce_compressed(bootstrap: str, topic: str, events: list[dict]) -> None:
    """The events through four producers, one per codec; timestamps = event time as a gateway stamps them."""
    producers = {c: KafkaProducer(bootstrap_servers=bootstrap, compression_type=c, linger_ms=20, acks="all")
                 for c in CODECS}
    try:
        for ev in events:
            producers[codec_of(ev)].send(topic, key=ev["tenant_id"].encode(), value=wire(ev),
                                         timestamp_ms=int(round(ev["ts"] * 1000)))
    finally:
        for p in producers.values():
            p.flush()
            p.close()


def test_a_worker_and_a_replay_read_every_compression_codec(kafka_env, worker_factory, tmp_path: Path) -> None:
    events = scenario()
    assert {codec_of(e) for e in events} == set(CODECS)
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    worker = worker_factory(kafka_env)
    worker.wait_ready()
    produce_compressed(bootstrap, kafka_env["DISTILLGUARD_EVENTS_TOPIC"], events)
    reference = run_detect(events, tmp_path)
    wait_for_events(worker, len(events))
    want = {a["alert_id"] for a in reference if a["kind"] == "tenant"}
    assert want, "the scenario raises tenant alerts"
    live = consume_alerts(bootstrap, kafka_env["DISTILLGUARD_ALERTS_TOPIC"],
                          until=lambda rs: {a["alert_id"] for a in rs if a["kind"] == "tenant"} >= want, timeout=90)
    assert {a["alert_id"] for a in live if a["kind"] == "tenant"} == want
    assert worker.metric("distillguard_events_total", result="invalid") == 0
    assert worker.stop() == 0

    out = tmp_path / "replay.jsonl"
    done = summary(replay(kafka_env, "--run-id", "codecs", "--output", str(out),
                          "--checkpoint", str(tmp_path / "ck.json")))
    assert done["status"] == "complete" and done["events"] == len(events) and done["dead_letter"] == 0
    replayed = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert {canonical(a) for a in replayed if a["kind"] == "tenant" and a["alert_id"] in want} == {
        canonical(a) for a in live if a["kind"] == "tenant"}
