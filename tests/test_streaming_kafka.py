"""The streaming pipeline on the real broker, with real worker processes (issue 5's acceptance tests)."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from detectors import synthetic as syn
from tests.kafka_utils import (canonical, consume_alerts, flush_events, partition_for, produce, read_topic,
                               run_detect)

pytestmark = pytest.mark.kafka
PARTITIONS = 6


def scenario(hours_shift: float = 0.0) -> list[dict]:
    """Two attackers, a hydra cluster and benign neighbours, then far-later events on every partition.

    The trailing "flush" events (from ``watermark_quorum`` tenants per partition, since one tenant alone
    cannot move a partition's clock) move every partition's watermark past the end, so the live pipeline
    closes the same windows that ``detect`` closes at end of input.
    """
    start = syn.T0 + hours_shift * 3600
    events = syn.merge(
        syn.extraction("atk-1", start=start, hours=3, rate=1.0, seed=11),
        syn.probing("probe-1", start=start + 1800, hours=2, rate=1.0, seed=12),
        syn.chat("chat-1", start=start, hours=6, seed=13),
        syn.batch("batch-1", start=start, hours=6, rate=0.3, seed=14),
        syn.hydra("hyd", n_tenants=10, start=start + 3600, hours=4, seed=15),
    )
    end = max(e["ts"] for e in events) + 6 * 3600
    events += flush_events(end, PARTITIONS)
    return events


def incidents(alerts: list[dict]) -> dict[str, set[str]]:
    """Open alert ids by subject (tenant id, or the sorted member list of a cluster)."""
    out: dict[str, set[str]] = defaultdict(set)
    for a in alerts:
        if a["status"] == "open":
            out[a.get("tenant_id") or ",".join(sorted(a["tenant_ids"]))].add(a["alert_id"])
    return dict(out)


def wait_for_events(worker, n: int, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if worker.metric("distillguard_events_total", result="valid") >= n:
            return
        assert worker.alive(), worker.log_text()[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"worker processed {worker.metric('distillguard_events_total')} of {n} events")


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> tuple[list[dict], list[dict]]:
    """The scenario and what ``distillguard detect`` alerts on it (the reference for every live run)."""
    events = scenario()
    alerts = run_detect(events, tmp_path_factory.mktemp("detect"))
    kinds = {a["kind"] for a in alerts}
    assert {"tenant", "cluster"} <= kinds, "the scenario exercises both stages"
    return events, alerts


def test_live_alerts_equal_detect_alerts(expected, kafka_env, worker_factory):
    events, reference = expected
    bootstrap, alerts_topic = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], kafka_env["DISTILLGUARD_ALERTS_TOPIC"]
    worker = worker_factory(kafka_env)
    worker.wait_ready()
    # unreadable records on the internal summary topic go to the DLQ and change nothing (the stage keeps going)
    junk = [b"not json", b'{"type": "batch", "partition": 0, "summaries": [{"key": "x"}], "seq": [[0, 0]]}',
            b'{"type": "batch", "partition": "p", "summaries": []}']
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for value in junk:
        producer.send(f"{kafka_env['DISTILLGUARD_APP_ID']}-cluster-summaries", key=b"s", value=value)
    producer.flush()
    producer.close()
    produce(bootstrap, kafka_env["DISTILLGUARD_EVENTS_TOPIC"], events)
    wait_for_events(worker, len(events))
    dead = consume_alerts(bootstrap, kafka_env["DISTILLGUARD_DLQ_TOPIC"], until=lambda rs: len(rs) >= len(junk), timeout=60)
    assert sorted(d["reason"].split(":")[0] for d in dead) == ["cluster record failed"] * len(junk), dead
    want_tenant = {canonical(a) for a in reference if a["kind"] == "tenant"}
    want_cluster = {(a["alert_id"], a["status"], tuple(a["tenant_ids"])) for a in reference if a["kind"] == "cluster"}
    live = consume_alerts(bootstrap, alerts_topic,
                          until=lambda rs: {canonical(a) for a in rs if a["kind"] == "tenant"} >= want_tenant
                          and len([a for a in rs if a["kind"] == "cluster"]) >= len(want_cluster), timeout=90)
    assert {canonical(a) for a in live if a["kind"] == "tenant"} == want_tenant
    got_cluster = {(a["alert_id"], a["status"], tuple(a["tenant_ids"])) for a in live if a["kind"] == "cluster"}
    assert got_cluster == want_cluster


def test_two_workers_share_partitions_and_hand_over_state(expected, kafka_env, worker_factory):
    events, reference = expected
    bootstrap, topic = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], kafka_env["DISTILLGUARD_EVENTS_TOPIC"]
    a, b = worker_factory(kafka_env, "a"), worker_factory(kafka_env, "b")
    a.wait_ready()
    b.wait_ready()
    half = len(events) // 2
    produce(bootstrap, topic, events[:half])
    deadline = time.time() + 180
    while time.time() < deadline:
        na = a.metric("distillguard_events_total", result="valid")
        nb = b.metric("distillguard_events_total", result="valid")
        if na + nb >= half:
            break
        time.sleep(1)
    assert na > 0 and nb > 0, f"both workers take a share of the load ({na}, {nb})"
    assert b.stop(signal.SIGTERM) == 0
    produce(bootstrap, topic, events[half:])
    live = consume_alerts(bootstrap, kafka_env["DISTILLGUARD_ALERTS_TOPIC"],
                          until=lambda rs: incidents(rs).keys() >= incidents(reference).keys(), timeout=240)
    got, want = incidents(live), incidents(reference)
    assert got.keys() >= want.keys(), f"missed incidents: {set(want) - set(got)}"
    for subject, ids in want.items():
        assert got[subject] == ids, f"{subject}: opened with ids {got[subject]}, expected {ids}"
    assert "partition_started" in a.log_text()


def test_partition_resumed_past_its_checkpoint_catches_up(expected, kafka_env, worker_factory):
    """A worker whose group resumes a partition past its restored checkpoint (a rebalance before the
    partition's first checkpoint can do that: docs/RELIABILITY.md) reads the events in between itself.

    Made deterministic here: before any worker runs, the group's offsets are committed half-way into
    every partition while the state table is empty. Without the catch-up the first halves would be
    missing from the state, and the alerts would differ from ``detect``'s.
    """
    events, reference = expected
    bootstrap, topic = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], kafka_env["DISTILLGUARD_EVENTS_TOPIC"]
    produce(bootstrap, topic, events)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    committer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=kafka_env["DISTILLGUARD_APP_ID"],
                              enable_auto_commit=False)
    try:
        committer.assign(tps)
        half = {tp: end // 2 for tp, end in committer.end_offsets(tps).items()}
        committer.commit({tp: OffsetAndMetadata(n, "", -1) for tp, n in half.items()})
    finally:
        committer.close()
    assert all(n > 0 for n in half.values())
    worker = worker_factory(kafka_env)
    worker.wait_ready()
    wait_for_events(worker, len(events))
    assert worker.metric("distillguard_catch_up_events_total") == sum(half.values())
    assert worker.log_text().count("partition_caught_up") == PARTITIONS
    want_tenant = {canonical(a) for a in reference if a["kind"] == "tenant"}
    want_cluster = {(a["alert_id"], a["status"], tuple(a["tenant_ids"])) for a in reference if a["kind"] == "cluster"}
    live = consume_alerts(bootstrap, kafka_env["DISTILLGUARD_ALERTS_TOPIC"],
                          until=lambda rs: {canonical(a) for a in rs if a["kind"] == "tenant"} >= want_tenant
                          and len([a for a in rs if a["kind"] == "cluster"]) >= len(want_cluster), timeout=90)
    assert {canonical(a) for a in live if a["kind"] == "tenant"} == want_tenant
    got_cluster = {(a["alert_id"], a["status"], tuple(a["tenant_ids"])) for a in live if a["kind"] == "cluster"}
    assert got_cluster == want_cluster


def test_cluster_windows_close_with_empty_partitions(kafka_env, worker_factory, tmp_path: Path):
    """Half the events partitions never get an event. Their worker declares them idle (docs/STREAMING.md,
    "Idle partitions"), so they do not hold cluster windows back, and the cluster alerts equal ``detect``'s.

    Everything is produced before the worker starts: a partition with events is caught up only after its
    last (flush) event, so the only partitions ever declared idle are the empty ones and the finished ones.
    """
    used = {0, 1, 2}
    events = syn.merge(
        syn.extraction("atk-1", start=syn.T0, hours=3, rate=1.0, seed=11),
        syn.chat("chat-1", start=syn.T0, hours=4, seed=13),
        syn.hydra("hyd", n_tenants=20, start=syn.T0 + 1800, hours=3, seed=15),
    )
    events = [e for e in events if partition_for(e["tenant_id"], PARTITIONS) in used]
    events += [e for e in flush_events(max(e["ts"] for e in events) + 6 * 3600, PARTITIONS)
               if partition_for(e["tenant_id"], PARTITIONS) in used]
    reference = run_detect(events, tmp_path)
    want_cluster = {(a["alert_id"], a["status"], tuple(a["tenant_ids"])) for a in reference if a["kind"] == "cluster"}
    assert want_cluster, "the hydra tenants on the used partitions form a cluster"
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    produce(bootstrap, kafka_env["DISTILLGUARD_EVENTS_TOPIC"], events)
    worker = worker_factory({**kafka_env, "DISTILLGUARD_IDLE_PARTITION_SECONDS": "2"})
    worker.wait_ready()
    wait_for_events(worker, len(events))
    want_tenant = {canonical(a) for a in reference if a["kind"] == "tenant"}
    live = consume_alerts(bootstrap, kafka_env["DISTILLGUARD_ALERTS_TOPIC"],
                          until=lambda rs: {canonical(a) for a in rs if a["kind"] == "tenant"} >= want_tenant
                          and len([a for a in rs if a["kind"] == "cluster"]) >= len(want_cluster), timeout=90)
    got_cluster = {(a["alert_id"], a["status"], tuple(a["tenant_ids"])) for a in live if a["kind"] == "cluster"}
    assert got_cluster == want_cluster
    assert {canonical(a) for a in live if a["kind"] == "tenant"} == want_tenant
    idle = {orjson.loads(line)["partition"] for line in worker.log_text().splitlines()
            if line.startswith("{") and orjson.loads(line).get("event") == "partition_idle"}
    assert set(range(PARTITIONS)) - used <= idle, idle
    deadline = time.time() + 15  # the gauge is refreshed every 5 s
    while worker.metric("distillguard_partitions_idle") < PARTITIONS - len(used) and time.time() < deadline:
        time.sleep(0.5)
    assert worker.metric("distillguard_partitions_idle") >= PARTITIONS - len(used)
    # a worker that stops withdraws its declarations: the next owner, not a lapse, decides
    assert worker.stop(signal.SIGTERM) == 0
    markers = [orjson.loads(r.value) for r in read_topic(bootstrap, f"{kafka_env['DISTILLGUARD_APP_ID']}-cluster-summaries")]
    last = {m["partition"]: m.get("idle") for m in markers if "idle" in m}
    assert {p: last.get(p) for p in set(range(PARTITIONS)) - used} == dict.fromkeys(set(range(PARTITIONS)) - used, False)


def test_quiet_partitions_checkpoint_and_commit_everything(kafka_env, worker_factory):
    """A partition that stops getting events is checkpointed within ``checkpoint_seconds`` all the same,
    so its last events are acked and their offsets committed (before, they waited for the partition's
    next event: the group's lag never reached 0 and ``checkpoint_age_seconds`` grew without bound)."""
    bootstrap, topic = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], kafka_env["DISTILLGUARD_EVENTS_TOPIC"]
    events = syn.merge(syn.chat("chat-1", hours=2, seed=3), syn.batch("batch-1", hours=2, rate=0.2, seed=4),
                       syn.extraction("atk-1", hours=1, rate=0.5, seed=5))
    per_partition = defaultdict(int)
    for e in events:
        per_partition[partition_for(e["tenant_id"], PARTITIONS)] += 1
    assert 0 < min(per_partition.values()) < 2000  # fewer than checkpoint_events on a partition: its tail waits
    worker = worker_factory(kafka_env)
    worker.wait_ready()
    produce(bootstrap, topic, events)
    wait_for_events(worker, len(events))
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=kafka_env["DISTILLGUARD_APP_ID"],
                          enable_auto_commit=False)
    try:
        ends = probe.end_offsets(tps)
        deadline = time.time() + 40
        while time.time() < deadline:
            committed = {tp: probe.committed(tp) or 0 for tp in tps}
            if committed == ends and worker.metric("distillguard_checkpoint_age_seconds") == 0:
                break
            time.sleep(1)
    finally:
        probe.close()
    assert committed == ends, f"committed {committed} of {ends}"
    assert worker.metric("distillguard_checkpoint_age_seconds") == 0


def test_kill_9_and_restart_loses_no_incident(expected, kafka_env, worker_factory):
    events, reference = expected
    bootstrap, topic = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], kafka_env["DISTILLGUARD_EVENTS_TOPIC"]
    # a killed worker sends no LeaveGroup: the broker drops it (and lets the second one in) only when its
    # session times out, 60 s by Faust's default; 10 s (Kafka's old default) keeps that wait short
    env = {**kafka_env, "BROKER_SESSION_TIMEOUT": "10"}
    first = worker_factory(env, "first")
    first.wait_ready()
    produce(bootstrap, topic, events)
    deadline = time.time() + 120
    while first.metric("distillguard_events_total", result="valid") < len(events) * 0.4 and time.time() < deadline:
        time.sleep(0.5)
    first.stop(signal.SIGKILL)
    second = worker_factory(env, "second")
    second.wait_ready()
    live = consume_alerts(bootstrap, kafka_env["DISTILLGUARD_ALERTS_TOPIC"],
                          until=lambda rs: incidents(rs).keys() >= incidents(reference).keys(), timeout=240)
    got, want = incidents(live), incidents(reference)
    assert got.keys() >= want.keys(), f"missed incidents: {set(want) - set(got)}"
    for subject, ids in want.items():
        assert got[subject] == ids, f"{subject}: duplicates must carry the same alert_id"
    by_id = defaultdict(set)
    for alert in live:
        by_id[alert["alert_id"]].add(canonical(alert))
    differing = {k: sorted(v) for k, v in by_id.items() if len(v) > 1}
    assert not differing, f"a re-sent alert is byte-identical: {differing}"


def test_false_positive_verdict_stops_repeat_alerts(kafka_env, worker_factory, tmp_path: Path):
    """An attacker pattern that comes back after its incident resolved opens a second incident ... unless
    an analyst called the first one a false positive."""
    first = syn.extraction("tenant-fp", start=syn.T0, hours=2, rate=1.0, seed=21)
    second = syn.extraction("tenant-fp", start=syn.T0 + 8 * 3600, hours=2, rate=1.0, seed=22)
    for i, ev in enumerate(second):
        ev["event_id"] = f"tenant-fp-b{i:06d}"
    control = run_detect(first + second, tmp_path)
    assert len([a for a in control if a["status"] == "open"]) == 2, "without a verdict the pattern re-opens"

    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    alerts_topic = kafka_env["DISTILLGUARD_ALERTS_TOPIC"]
    worker = worker_factory(kafka_env)
    worker.wait_ready()
    produce(bootstrap, kafka_env["DISTILLGUARD_EVENTS_TOPIC"], first)
    opened = consume_alerts(bootstrap, alerts_topic, until=lambda rs: any(a["status"] == "open" for a in rs))
    alert = next(a for a in opened if a["status"] == "open")
    # verdicts that break schemas/feedback.schema.json go to the dead-letter topic with their reason, unapplied
    produce_feedback(bootstrap, kafka_env["DISTILLGUARD_FEEDBACK_TOPIC"], {"label": "true_positive", "tenant_id": "tenant-fp"})
    produce_feedback(bootstrap, kafka_env["DISTILLGUARD_FEEDBACK_TOPIC"],
                     {"alert_id": alert["alert_id"], "label": "maybe", "tenant_id": "tenant-fp"})
    dead = consume_alerts(bootstrap, kafka_env["DISTILLGUARD_DLQ_TOPIC"], until=lambda rs: len(rs) >= 2)
    assert sorted(d["reason"] for d in dead) == [
        "invalid feedback: alert_id is missing",
        "invalid feedback: label must be one of true_positive, false_positive, benign_expected"]
    assert {d["source_topic"] for d in dead} == {kafka_env["DISTILLGUARD_FEEDBACK_TOPIC"]}
    # a verdict naming another alert id (a typo) must not silence this incident
    produce_feedback(bootstrap, kafka_env["DISTILLGUARD_FEEDBACK_TOPIC"],
                     {"alert_id": alert["alert_id"][:-4] + "0000", "label": "false_positive", "tenant_id": "tenant-fp"})
    deadline = time.time() + 60
    while "feedback_unmatched" not in worker.log_text() and time.time() < deadline:
        time.sleep(0.5)
    assert "feedback_unmatched" in worker.log_text()
    produce_feedback(bootstrap, kafka_env["DISTILLGUARD_FEEDBACK_TOPIC"],
                     {"alert_id": alert["alert_id"], "label": "false_positive", "tenant_id": "tenant-fp",
                      "note": "internal red team"})
    deadline = time.time() + 60
    while "feedback_applied" not in worker.log_text() and time.time() < deadline:
        time.sleep(0.5)
    assert "feedback_applied" in worker.log_text()
    produce(bootstrap, kafka_env["DISTILLGUARD_EVENTS_TOPIC"], second)
    wait_for_events(worker, len(first) + len(second))
    # a stopped worker has flushed every alert it will ever send: the topic up to its end is all of them
    assert worker.stop() == 0
    live = [orjson.loads(r.value) for r in read_topic(bootstrap, alerts_topic)]
    assert [a["alert_id"] for a in live if a["status"] == "open"] == [alert["alert_id"]]
    assert any(a["status"] == "resolved" and a["reasons"][0]["signal"] == "analyst_feedback" for a in live)
    feedback_resolved = [a for a in live if a["status"] == "resolved" and a["reasons"][0]["signal"] == "analyst_feedback"]
    assert len(feedback_resolved) == 1 and alert["alert_id"] in feedback_resolved[0]["reasons"][0]["text"], \
        "resolved by the verdict that names it, not by the mistyped one"


def produce_feedback(bootstrap: str, topic: str, record: dict) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, value=orjson.dumps(record)).get(timeout=30)
    producer.close()


def test_cluster_stage_state_survives_a_worker_handover(expected, kafka_env, worker_factory):
    """The cluster stage's checkpoint moves with the summary topic: cluster alerts equal a clean run's.

    With records of at most 1 KiB (``state_chunk_bytes``) the checkpoint is written as many chunks, as a
    large one is in production (above ~1 MB a single record was refused and the worker crashed), and the
    second worker restores it from them.
    """
    events, reference = expected
    kafka_env = dict(kafka_env, DISTILLGUARD_STATE_CHUNK_BYTES="1024")
    bootstrap, topic = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], kafka_env["DISTILLGUARD_EVENTS_TOPIC"]
    first = worker_factory(kafka_env, "first")
    first.wait_ready()
    cut = int(len(events) * 0.6)  # the hydra is active on both sides of the cut
    produce(bootstrap, topic, events[:cut])
    wait_for_events(first, cut)
    wait_for_checkpoint(bootstrap, f"{kafka_env['DISTILLGUARD_APP_ID']}-cluster-state-changelog")
    assert first.stop(signal.SIGTERM) == 0
    assert "cluster_stage_started" in first.log_text()
    second = worker_factory(kafka_env, "second")
    second.wait_ready()
    produce(bootstrap, topic, events[cut:])
    want = {(a["alert_id"], a["status"], tuple(a["tenant_ids"])) for a in reference if a["kind"] == "cluster"}
    live = consume_alerts(bootstrap, kafka_env["DISTILLGUARD_ALERTS_TOPIC"],
                          until=lambda rs: {(a["alert_id"], a["status"], tuple(a["tenant_ids"]))
                                            for a in rs if a["kind"] == "cluster"} >= want, timeout=180)
    got = {(a["alert_id"], a["status"], tuple(a["tenant_ids"])) for a in live if a["kind"] == "cluster"}
    assert got == want
    restored = [orjson.loads(line) for line in second.log_text().splitlines() if '"cluster_stage_started"' in line]
    assert restored and restored[0]["checkpointed_offset"] >= 0, "the second worker restored the first one's checkpoint"
    changelog = read_topic(bootstrap, f"{kafka_env['DISTILLGUARD_APP_ID']}-cluster-state-changelog")
    assert max(len(r.value) for r in changelog if r.value) <= 1024
    headers = [orjson.loads(r.value[4:]) for r in changelog if r.key == b"cluster" and r.value]  # b"DGCH" + JSON
    assert headers and all(h["chunks"] == -(-h["bytes"] // 1024) for h in headers), headers
    assert max(h["chunks"] for h in headers) >= 2, "a checkpoint written as more than one record"


def wait_for_checkpoint(bootstrap: str, changelog: str, timeout: float = 60) -> None:
    """Until the cluster stage has written a checkpoint (a record on its table's changelog topic)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        deadline = time.time() + timeout
        while sum(consumer.end_offsets([TopicPartition(changelog, 0)]).values()) == 0:
            assert time.time() < deadline, "the cluster stage wrote no checkpoint"
            time.sleep(0.5)
    finally:
        consumer.close()


def test_a_restarted_worker_resolves_the_incident_of_a_tenant_that_went_quiet(kafka_env, worker_factory, tmp_path: Path):
    """The attacker stops before the first worker's last checkpoint, with its last window open and its
    incident open. The second worker restores tenants only when something names them; the partition's
    checkpoint tells it which windows and incidents are still pending, so other tenants' traffic moving the
    watermark closes the attacker's window and resolves its incident, as ``detect`` does."""
    bootstrap, topic = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], kafka_env["DISTILLGUARD_EVENTS_TOPIC"]
    # a tenant named like partition 0's checkpoint record: its state must not overwrite that record
    first_part = syn.merge(syn.extraction("atk-quiet", start=syn.T0, hours=1.0, rate=1.0, seed=11),
                           syn.chat("chat-1", start=syn.T0, hours=1.05, seed=13, peak_rate=0.3),
                           syn.chat("__checkpoint__/0", start=syn.T0, hours=1.05, seed=14, peak_rate=0.3))
    later = flush_events(syn.T0 + 6 * 3600, PARTITIONS)
    reference = [a for a in run_detect(first_part + later, tmp_path) if a.get("tenant_id") == "atk-quiet"]
    want = next(a for a in reference if a["status"] == "resolved")
    env = {**kafka_env, "DISTILLGUARD_CHECKPOINT_SECONDS": "1"}
    first = worker_factory(env, "first")
    first.wait_ready()
    produce(bootstrap, topic, first_part)
    wait_for_events(first, len(first_part))
    opened = consume_alerts(bootstrap, kafka_env["DISTILLGUARD_ALERTS_TOPIC"],
                            until=lambda rs: any(a["status"] == "open" for a in rs))
    assert not any(a["status"] == "resolved" for a in opened)
    # every event checkpointed and committed: the second worker re-processes none of them (which would restore
    # the attacker through its events and hide what this test is about)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=kafka_env["DISTILLGUARD_APP_ID"],
                          enable_auto_commit=False)
    try:
        ends, deadline = probe.end_offsets(tps), time.time() + 60
        while {tp: probe.committed(tp) or 0 for tp in tps} != ends:
            assert time.time() < deadline, "the first worker did not commit every event"
            time.sleep(0.5)
    finally:
        probe.close()
    assert first.stop(signal.SIGTERM) == 0
    second = worker_factory(env, "second")
    second.wait_ready()
    produce(bootstrap, topic, later)
    live = consume_alerts(bootstrap, kafka_env["DISTILLGUARD_ALERTS_TOPIC"],
                          until=lambda rs: any(a["status"] == "resolved" for a in rs), timeout=120)
    got = [a for a in live if a["status"] == "resolved" and a.get("tenant_id") == "atk-quiet"]
    assert got, "the quiet tenant's incident was never resolved after the restart"
    assert canonical(got[0]) == canonical(want)
    log = second.log_text()
    assert "Traceback" not in log and '"level":"error"' not in log, log[-3000:]
