"""``distillguard replay`` on the real broker with real processes (the replay issue's acceptance tests)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from detectors import synthetic as syn
from streams.replay import partition_for
from tests.kafka_utils import REPO, canonical, consume_alerts, run_detect, wire
from tests.test_streaming_kafka import scenario, wait_for_events

pytestmark = pytest.mark.kafka


def produce_timed(bootstrap: str, topic: str, events: list[dict]) -> None:
    """Produce like a gateway that stamps each record with its event's time (CreateTime = event time)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024, acks="all")
    for ev in events:
        producer.send(topic, key=ev["tenant_id"].encode(), value=wire(ev), timestamp_ms=int(round(ev["ts"] * 1000)))
    producer.flush()
    producer.close()


def replay(env: dict[str, str], *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "distillguard.cli", "replay", "--no-progress", "--json", *args]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return proc


def summary(proc: subprocess.CompletedProcess) -> dict:
    return orjson.loads(proc.stdout.strip().splitlines()[-1])


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def read_all(bootstrap: str, topic: str) -> list[tuple]:
    """Every record of ``topic`` (partition, offset, key, value, timestamp, headers), group-less."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
        end = c.end_offsets(tps)
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out: list[tuple] = []
        deadline = time.time() + 60
        while any(c.position(tp) < end[tp] for tp in tps) and time.time() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out += [(r.partition, r.offset, r.key, r.value, r.timestamp, tuple(r.headers or ())) for r in recs]
        return sorted(out)
    finally:
        c.close()


def live_footprint(bootstrap: str, app_id: str) -> tuple:
    """The live group's committed offsets and every record of its changelog topics."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        committed = admin.list_group_offsets(app_id)[app_id]
        offsets = sorted((tp.topic, tp.partition, om.offset, om.metadata) for tp, om in committed.items())
        changelogs = sorted(t for t in admin.list_topics() if t.startswith(f"{app_id}-") and t.endswith("-changelog"))
    finally:
        admin.close()
    return offsets, {t: read_all(bootstrap, t) for t in changelogs}


def delete_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if topic in admin.list_topics():
            admin.delete_topics([topic])
    finally:
        admin.close()


@pytest.fixture(scope="module")
def events() -> list[dict]:
    """The streaming tests' scenario (built once: every test here only reads it)."""
    return scenario()


def test_replay_reproduces_live_alerts_and_leaves_live_state_alone(events, kafka_env, worker_factory, tmp_path: Path):
    bootstrap, app_id = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], kafka_env["DISTILLGUARD_APP_ID"]
    worker = worker_factory(kafka_env)
    worker.wait_ready()
    produce_timed(bootstrap, kafka_env["DISTILLGUARD_EVENTS_TOPIC"], events)
    reference = run_detect(events, tmp_path)  # while the worker processes the events
    wait_for_events(worker, len(events))
    want = {a["alert_id"] for a in reference if a["kind"] == "tenant"}
    live = consume_alerts(bootstrap, kafka_env["DISTILLGUARD_ALERTS_TOPIC"],
                          until=lambda rs: {a["alert_id"] for a in rs if a["kind"] == "tenant"} >= want, timeout=90)
    live_tenant = {canonical(a) for a in live if a["kind"] == "tenant"}
    assert {a["alert_id"] for a in live if a["kind"] == "tenant"} == want
    assert worker.stop(signal.SIGTERM) == 0
    before = live_footprint(bootstrap, app_id)
    assert before[0], "the live group has committed offsets"
    assert any(before[1].values()), "the live group has changelog records"

    run_id = f"{app_id}-live"
    out_topic = f"{kafka_env['DISTILLGUARD_ALERTS_TOPIC']}.replay.{run_id}"  # the default: from the alerts topic
    try:
        dry = replay(kafka_env, "--run-id", run_id, "--dry-run", "--checkpoint", str(tmp_path / "ck.json"))
        plan = summary(dry)
        assert plan["estimated_records"] == len(events) and not (tmp_path / "ck.json").exists()
        done = summary(replay(kafka_env, "--run-id", run_id, "--checkpoint", str(tmp_path / "ck.json")))
        assert done["status"] == "complete" and done["events"] == len(events) and done["dead_letter"] == 0
        got = [orjson.loads(r[3]) for r in read_all(bootstrap, out_topic)]
        assert {canonical(a) for a in got if a["kind"] == "tenant"} == live_tenant, "id for id, byte for byte"
        assert all(a["metadata"]["replay_run_id"] == run_id for a in got)
        assert done["alerts"] == len(got) and done["by_kind"]["tenant"] == len(live_tenant)
        after = live_footprint(bootstrap, app_id)
        assert after == before, "the replay left the live group's offsets and state topics untouched"
        assert not read_all(bootstrap, kafka_env["DISTILLGUARD_DLQ_TOPIC"])
    finally:
        delete_topic(bootstrap, out_topic)


def test_time_and_tenant_subsets_equal_detect_over_the_subset(events, kafka_env, tmp_path: Path):
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    topic = kafka_env["DISTILLGUARD_EVENTS_TOPIC"]
    split = syn.T0 + 7200  # an invalid atk-1 record in the middle of the log, inside the time range
    produce_timed(bootstrap, topic, [e for e in events if e["ts"] < split])
    bad = KafkaProducer(bootstrap_servers=bootstrap)
    bad.send(topic, key=b"atk-1", value=b"{not json", timestamp_ms=int(split * 1000)).get(30)
    bad.close()
    produce_timed(bootstrap, topic, [e for e in events if e["ts"] >= split])
    lo, hi = syn.T0 + 1800, syn.T0 + 5 * 3600
    cases = {
        "time": (["--from", "2026-06-21T00:30Z", "--to", "2026-06-21T05:00Z"],
                 [e for e in events if lo <= e["ts"] < hi]),
        "tenant": (["--tenant", "atk-1", "--tenant", "chat-1"],
                   [e for e in events if e["tenant_id"] in ("atk-1", "chat-1")]),
    }
    tenants_file = tmp_path / "tenants.txt"
    tenants_file.write_text("# suspicious\nprobe-1\nhyd-0\nhyd-1\nhyd-2\nhyd-3\nhyd-4\nhyd-5\n")
    wanted = set(tenants_file.read_text().split()) - {"#", "suspicious"}
    cases["time+tenants-file"] = (["--from", "2026-06-21T00:30Z", "--to", "2026-06-21T05:00Z",
                                   "--tenants-file", str(tenants_file)],
                                  [e for e in events if lo <= e["ts"] < hi and e["tenant_id"] in wanted])
    for name, (args, subset) in cases.items():
        d = tmp_path / name
        d.mkdir()
        reference = run_detect(subset, d)
        assert reference, f"{name}: the subset alerts"
        res = summary(replay(kafka_env, *args, "--output", str(d / "replay.jsonl"), "--dead-letter",
                             str(d / "dl.jsonl"), "--checkpoint", str(d / "ck.json")))
        got = read_jsonl(d / "replay.jsonl")
        assert res["events"] == len(subset), name
        assert sorted(canonical(a) for a in got) == sorted(canonical(a) for a in reference), name
        if name != "time+tenants-file":  # the bad record is atk-1's, inside the time range
            assert res["dead_letter"] == 1 and read_jsonl(d / "dl.jsonl")[0]["source_topic"] == topic
        if name.startswith("time"):
            plan = summary(replay(kafka_env, *args, "--dry-run", "--output", str(d / "x.jsonl")))
            assert plan["plan"]["resolved_by"] == "time-index"
            assert plan["estimated_records"] < len(events), "the time index narrows the offsets read"
    offs = summary(replay(kafka_env, "--offsets", "0:0-,1:0-", "--output", str(tmp_path / "o.jsonl"),
                          "--checkpoint", str(tmp_path / "o.json")))
    in_p01 = [e for e in events if partition_for(e["tenant_id"], 6) in (0, 1)]
    assert offs["events"] == len(in_p01)


def test_interrupted_replay_resumes_to_the_same_output(events, kafka_env, tmp_path: Path):
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    produce_timed(bootstrap, kafka_env["DISTILLGUARD_EVENTS_TOPIC"], events)
    run_id = f"{kafka_env['DISTILLGUARD_APP_ID']}-resume"
    full = tmp_path / "full.jsonl"
    replay(kafka_env, "--run-id", run_id, "--output", str(full), "--checkpoint", str(tmp_path / "full.json"))
    expected = full.read_bytes()
    assert expected.count(b"\n") >= 5

    # file output: SIGKILL mid-run (after checkpoints), then --resume
    ck = tmp_path / "file.json"
    part = tmp_path / "part.jsonl"
    killed = replay(kafka_env, "--run-id", run_id, "--output", str(part), "--checkpoint", str(ck),
                    "--checkpoint-events", "4000", "--crash-after", "21000", check=False)
    assert killed.returncode == -signal.SIGKILL
    assert orjson.loads(ck.read_bytes())["status"] == "running"
    done = summary(replay(kafka_env, "--resume", "--checkpoint", str(ck)))
    assert done["status"] == "complete" and done["records"] == len(events)
    assert part.read_bytes() == expected

    # topic output: SIGKILL, then SIGTERM (clean stop with a checkpoint), then --resume
    ck2 = tmp_path / "topic.json"
    out_topic = f"{kafka_env['DISTILLGUARD_ALERTS_TOPIC']}.replay.{run_id}"
    try:
        killed = replay(kafka_env, "--run-id", run_id, "--checkpoint", str(ck2), "--checkpoint-events", "3000",
                        "--crash-after", "17000", check=False)
        assert killed.returncode == -signal.SIGKILL
        stopped = replay(kafka_env, "--resume", "--checkpoint", str(ck2), "--crash-after", "24000",
                         "--crash-signal", "TERM", check=False)  # SIGTERM: clean stop with a checkpoint
        assert stopped.returncode == 130, stopped.stderr.decode()[-2000:]
        assert summary(stopped)["status"] == "interrupted" and summary(stopped)["records"] == 24000
        assert orjson.loads(ck2.read_bytes())["status"] == "interrupted"
        done = summary(replay(kafka_env, "--resume", "--checkpoint", str(ck2)))
        assert done["status"] == "complete"
        got = read_all(bootstrap, out_topic)
        want = [orjson.loads(line) for line in expected.splitlines()]
        by_part: dict[int, list[bytes]] = {}
        for a in want:
            subject = a.get("tenant_id") or a.get("cluster_id") or a["alert_id"]
            by_part.setdefault(partition_for(subject, 6), []).append(orjson.dumps(a))
        got_part: dict[int, list[bytes]] = {}
        for p, _, _, value, _, _ in got:
            got_part.setdefault(p, []).append(value)
        assert got_part == by_part, "every alert exactly once, in order, on the topic"
    finally:
        delete_topic(bootstrap, out_topic)
