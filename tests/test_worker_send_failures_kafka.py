"""Records the broker refuses are not lost: the worker checks every send before committing its source events.

``await topic.send()`` in Faust only buffers a record; a record the broker refuses (here: a topic whose
``max.message.bytes`` is smaller than the record) used to be logged by Faust as a warning while the event
that produced it was acked, committed and counted. These tests make a real broker refuse the worker's
alerts and dead letters, then fix the topic, and check that every record arrives, that the refusal was
logged as a distillguard event and counted, and that the group's committed offsets never passed the events
whose records were refused. And that a verdict's extra fields (prompt text) never reach an internal topic.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from detectors import synthetic as syn
from tests.kafka_utils import consume, consume_alerts, flush_events, produce, run_detect

pytestmark = pytest.mark.kafka
PARTITIONS = 6
REFUSING = "300"  # max.message.bytes smaller than any alert or dead letter the worker writes
DEFAULT_MAX = "1048588"  # the broker's default
FAST = {"DISTILLGUARD_CHECKPOINT_SECONDS": "1"}  # checkpoints (where sends are confirmed) every second


def set_max_bytes(bootstrap: str, topic: str, value: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": value})])
    finally:
        admin.close()


def log_events(worker, name: str) -> list[dict]:
    """The worker's distillguard log records (JSON lines) named ``name``."""
    out = []
    for line in worker.log_text().splitlines():
        if line.startswith("{"):
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if rec.get("event") == name:
                out.append(rec)
    return out


def wait_for_log(worker, name: str, timeout: float = 30, **fields: object) -> list[dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [r for r in log_events(worker, name) if all(r.get(k) == v for k, v in fields.items())]
        if found:
            return found
        assert worker.alive(), worker.log_text()[-3000:]
        time.sleep(0.3)
    raise AssertionError(f"no {name} {fields} in the worker log:\n{worker.log_text()[-3000:]}")


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: probe.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS)}
    finally:
        probe.close()


def scenario() -> list[dict]:
    events = syn.merge(syn.extraction("atk-1", start=syn.T0, hours=2, rate=1.0, seed=11),
                       syn.chat("chat-1", start=syn.T0, hours=3, seed=13))
    return events + flush_events(max(e["ts"] for e in events) + 6 * 3600, PARTITIONS)


def test_refused_alerts_are_sent_again_and_not_committed_past(kafka_env, worker_factory, tmp_path):
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    events_topic, alerts_topic = kafka_env["DISTILLGUARD_EVENTS_TOPIC"], kafka_env["DISTILLGUARD_ALERTS_TOPIC"]
    events = scenario()
    expected = {a["alert_id"] for a in run_detect(events, tmp_path)}
    assert expected, "the scenario raises alerts"
    set_max_bytes(bootstrap, alerts_topic, REFUSING)
    worker = worker_factory(kafka_env | FAST)
    worker.wait_ready()
    produce(bootstrap, events_topic, events)

    failed = wait_for_log(worker, "send_failed", role="alerts")
    assert failed[0]["topic"] == alerts_topic and "source_partition" in failed[0]
    assert "MessageSizeTooLarge" in failed[0]["reason"]
    wait_for_log(worker, "partition_restarted", consecutive_failures=1, retry_in_seconds=1.0)
    # retried after its back-off, refused again: it stalls (backing off), it does not go on without the alerts
    wait_for_log(worker, "partition_restarted", consecutive_failures=2, retry_in_seconds=2.0)
    time.sleep(3)  # a few of Faust's commit intervals (2.8 s) while the topic still refuses
    during = committed_offsets(bootstrap, kafka_env["DISTILLGUARD_APP_ID"], events_topic)
    assert consume(bootstrap, alerts_topic, idle_ms=500) == []
    assert worker.metric("distillguard_send_failures_total", topic="alerts") >= 1
    assert worker.metric("distillguard_alerts_total") == 0  # counted once written, not when buffered
    # the stall shows: /readyz names the held partitions, the gauge counts them, and their lag is what waits
    status, body = worker.get("/readyz")
    doc = orjson.loads(body)
    assert status == 503 and doc["ready"] is False and "send_failed" in doc["reason"], doc
    held = {f["partition"] for f in doc["failing_partitions"]}
    assert {f["topic"] for f in doc["failing_partitions"]} == {events_topic}
    restarted = {r["partition"] for r in log_events(worker, "partition_restarted") if "stage" not in r}
    assert held and held <= restarted, (held, restarted)
    assert worker.metric("distillguard_partitions_failing") >= len(held)
    deadline = time.time() + 15  # the lag gauge is refreshed every 5 s
    while not all(worker.metric("distillguard_consumer_lag", partition=str(p)) > 0 for p in held):
        assert time.time() < deadline, f"no lag reported for the held partitions {held}"
        time.sleep(0.5)

    set_max_bytes(bootstrap, alerts_topic, DEFAULT_MAX)
    live = consume_alerts(bootstrap, alerts_topic, until=lambda rs: expected <= {a["alert_id"] for a in rs},
                          timeout=45)
    assert expected <= {a["alert_id"] for a in live}
    first_source: dict[int, int] = defaultdict(lambda: 1 << 62)
    for a in live:
        meta = a["metadata"]
        p = meta["source_partition"]
        first_source[p] = min(first_source[p], meta["source_offset"])
    for p, offset in first_source.items():  # nothing committed past an event whose alert was refused
        assert during[p] <= offset, f"partition {p}: committed {during[p]} past the alerting event {offset}"
    deadline = time.time() + 30  # ready again once a checkpoint passes what failed
    while (status := worker.get("/readyz")[0]) != 200 or worker.metric("distillguard_partitions_failing") != 0:
        assert time.time() < deadline, f"/readyz {status} after the topic accepted the alerts again"
        time.sleep(0.5)
    assert worker.alive()


def test_refused_dead_letters_are_sent_again_and_not_committed_past(kafka_env, worker_factory):
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    events_topic, dlq_topic = kafka_env["DISTILLGUARD_EVENTS_TOPIC"], kafka_env["DISTILLGUARD_DLQ_TOPIC"]
    set_max_bytes(bootstrap, dlq_topic, REFUSING)
    worker = worker_factory(kafka_env | FAST)
    worker.wait_ready()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    bad: set[tuple[int, int]] = set()
    valid = syn.chat("chat-1", start=syn.T0, hours=1, seed=3)
    for i, ev in enumerate(valid):
        producer.send(events_topic, key=ev["tenant_id"].encode(), value=orjson.dumps(ev))
        if i % 50 == 0:  # an unreadable input every 50 events, larger than the topic's limit once dead-lettered
            md = producer.send(events_topic, key=ev["tenant_id"].encode(), value=b"{" + b"x" * 400).get(30)
            bad.add((md.partition, md.offset))
    producer.flush()
    producer.close()

    failed = wait_for_log(worker, "send_failed", role="dead_letters")
    assert failed[0]["topic"] == dlq_topic
    time.sleep(3)
    during = committed_offsets(bootstrap, kafka_env["DISTILLGUARD_APP_ID"], events_topic)
    for p, offset in bad:
        assert during[p] <= min(o for q, o in bad if q == p), f"partition {p} committed past a refused dead letter"
    assert consume(bootstrap, dlq_topic, idle_ms=500) == []
    assert worker.metric("distillguard_send_failures_total", topic="dead_letters") >= 1
    assert worker.metric("distillguard_dead_letters_total") == 0

    set_max_bytes(bootstrap, dlq_topic, DEFAULT_MAX)

    def sources(rs) -> set[tuple[int, int]]:
        return {(d["source_partition"], d["source_offset"]) for d in (orjson.loads(r.value) for r in rs)}
    records = consume(bootstrap, dlq_topic, until=lambda rs: bad <= sources(rs), timeout=45)
    assert bad <= sources(records)
    assert worker.alive()


def test_verdict_extra_fields_stay_out_of_internal_topics(kafka_env, worker_factory):
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    feedback_topic, app_id = kafka_env["DISTILLGUARD_FEEDBACK_TOPIC"], kafka_env["DISTILLGUARD_APP_ID"]
    marker = f"PROMPT-{uuid.uuid4().hex}"
    worker = worker_factory(kafka_env)
    worker.wait_ready()
    verdicts = [
        {"alert_id": "t-unknown-1", "label": "false_positive", "tenant_id": "tenant-a", "note": "checked",
         "extra": {"prompt_text": f"{marker} think step by step"}, "prompt_text": marker},
        {"alert_id": "c-unknown-1", "label": "false_positive", "tenant_id": "tenant-b",
         "extra": {"prompt_text": marker}},
    ]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for v in verdicts:
        producer.send(feedback_topic, key=v["tenant_id"].encode(), value=orjson.dumps(v))
    producer.flush()
    producer.close()

    by_tenant = consume(bootstrap, f"{app_id}-feedback-by-tenant", until=lambda rs: len(rs) >= 1, timeout=30)
    assert len(by_tenant) == 1
    assert orjson.loads(by_tenant[0].value) == {"alert_id": "t-unknown-1", "label": "false_positive",
                                                "tenant_id": "tenant-a", "note": "checked"}
    summaries = consume(bootstrap, f"{app_id}-cluster-summaries", idle_ms=1500)
    assert all(marker.encode() not in (r.value or b"") for r in summaries)
    assert any(b"c-unknown-1" in (r.value or b"") for r in summaries)
    # both verdicts logged the same way: the tenant's and the cluster's
    wait_for_log(worker, "feedback_unmatched", alert_id="t-unknown-1")
    wait_for_log(worker, "feedback_unmatched", alert_id="c-unknown-1", scope="cluster")
    assert marker not in worker.log_text()


def test_refused_tenant_snapshots_are_written_again_and_hold_the_offsets(kafka_env, worker_factory):
    """The tenant-state changelog refuses the snapshots (e21 of the audit): the checkpoint's events are not
    acked, and once the topic accepts them every tenant's snapshot is in the changelog (those refused are
    written again, not only the tenants changed since) and the offsets are committed to the end."""
    from kafka.admin import NewTopic

    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    events_topic, app_id = kafka_env["DISTILLGUARD_EVENTS_TOPIC"], kafka_env["DISTILLGUARD_APP_ID"]
    changelog = f"{app_id}-tenant-state-changelog"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:  # created before the worker (which declares it only if missing) with a limit below a snapshot
        admin.create_topics([NewTopic(changelog, PARTITIONS, 1, topic_configs={
            "cleanup.policy": "compact", "max.message.bytes": "1500"})])
    finally:
        admin.close()
    events = scenario()
    worker = worker_factory(kafka_env | FAST)
    worker.wait_ready()
    produce(bootstrap, events_topic, events)

    failed = wait_for_log(worker, "send_failed", role="tenant_state")
    assert failed[0]["topic"] == changelog and "MessageSizeTooLarge" in failed[0]["reason"]
    time.sleep(3)
    during = committed_offsets(bootstrap, app_id, events_topic)
    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        ends = {p: o for tp, o in probe.end_offsets([TopicPartition(events_topic, p)
                                                      for p in range(PARTITIONS)]).items() for p in [tp.partition]}
    finally:
        probe.close()
    refused = {r["source_partition"] for r in log_events(worker, "send_failed") if r["role"] == "tenant_state"}
    for p in refused:
        assert during[p] < ends[p], f"partition {p} committed to its end while its snapshots were refused"
    assert worker.metric("distillguard_send_failures_total", topic="tenant_state") >= 1

    set_max_bytes(bootstrap, changelog, DEFAULT_MAX)
    deadline = time.time() + 40
    while time.time() < deadline:
        if committed_offsets(bootstrap, app_id, events_topic) == ends:
            break
        time.sleep(1)
    assert committed_offsets(bootstrap, app_id, events_topic) == ends
    keys = {r.key for r in consume(bootstrap, changelog, idle_ms=1500)}
    missing = {e["tenant_id"] for e in events} - {k.decode(errors="replace") for k in keys if k}
    assert not missing, f"tenants without a snapshot in the changelog: {sorted(missing)[:5]}"
    assert worker.alive()


def test_refused_notifications_are_sent_again_and_hold_the_delivery_input(kafka_env, worker_factory, tmp_path):
    """The notifications topic refuses pages (e22 of the audit): the delivery input that produced them is not
    committed and they are not counted; once the topic accepts them every incident is paged."""
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    notes_topic, app_id = kafka_env["DISTILLGUARD_NOTIFICATIONS_TOPIC"], kafka_env["DISTILLGUARD_APP_ID"]
    events = scenario()
    opened = {a["alert_id"] for a in run_detect(events, tmp_path) if a["status"] == "open"}
    assert opened
    set_max_bytes(bootstrap, notes_topic, REFUSING)
    worker = worker_factory(kafka_env | FAST)
    worker.wait_ready()
    produce(bootstrap, kafka_env["DISTILLGUARD_EVENTS_TOPIC"], events)

    failed = wait_for_log(worker, "send_failed", role="notifications")
    assert failed[0]["topic"] == notes_topic
    wait_for_log(worker, "partition_restarted", stage="delivery", consecutive_failures=2)
    delivery = TopicPartition(f"{app_id}-delivery", 0)
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=app_id, enable_auto_commit=False)
    try:
        time.sleep(3)
        committed, end = probe.committed(delivery) or 0, probe.end_offsets([delivery])[delivery]
    finally:
        probe.close()
    assert committed < end, "the delivery input was committed while its notification was refused"
    assert worker.metric("distillguard_notifications_total") == 0
    assert worker.metric("distillguard_send_failures_total", topic="notifications") >= 1

    set_max_bytes(bootstrap, notes_topic, DEFAULT_MAX)

    def paged(rs) -> set[str]:
        return {orjson.loads(r.value)["notification"]["incident_alert_id"] for r in rs}
    records = consume(bootstrap, notes_topic, until=lambda rs: opened <= paged(rs), timeout=45)
    assert opened <= paged(records)
    assert worker.metric("distillguard_notifications_total") >= len(opened)
