"""``distillguard replay`` defects found by the replay audit, each reproduced on the real broker with real processes.

Every test drives the CLI as a subprocess against the local broker (no mock of Kafka): failed alert sends,
records lost to retention or a recreated topic, resume from another directory or with a moved output,
output topics that belong to the live pipeline, promotion of records that are not replay alerts,
reruns over an unfinished run, planning notes in real runs, Ctrl-C while a partition stalls, unusable
paths found up front, one-line argument errors and the default output topic name.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from detectors import synthetic as syn
from tests.conftest import dg_env
from tests.kafka_utils import REPO, wire
from tests.test_replay_kafka import produce_timed, read_all
from tests.test_streaming_kafka import scenario

pytestmark = pytest.mark.kafka


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def events() -> list[dict]:
    return scenario()


@pytest.fixture
def rp_env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Like ``kafka_env`` (private topics, deleted afterwards), with the OCSF/ECS topics private too."""
    from distillguard.settings import Settings
    from streams.admin import create_topics

    prefix = f"fixrp{uuid.uuid4().hex[:10]}"
    env = dg_env(prefix, kafka_bootstrap, DISTILLGUARD_DATA_DIR=str(tmp_path / "data"),
                 DISTILLGUARD_OCSF_TOPIC=f"{prefix}.ocsf", DISTILLGUARD_ECS_TOPIC=f"{prefix}.ecs")
    env["PREFIX"] = prefix
    settings = Settings(bootstrap_servers=kafka_bootstrap, events_topic=env["DISTILLGUARD_EVENTS_TOPIC"],
                        dlq_topic=env["DISTILLGUARD_DLQ_TOPIC"], alerts_topic=env["DISTILLGUARD_ALERTS_TOPIC"],
                        feedback_topic=env["DISTILLGUARD_FEEDBACK_TOPIC"],
                        notifications_topic=env["DISTILLGUARD_NOTIFICATIONS_TOPIC"], app_id=env["DISTILLGUARD_APP_ID"])
    create_topics(settings)
    yield env
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


# ---------------------------------------------------------------------------------------------- helpers
def dg(env: dict[str, str], *args: str, cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess:
    """``distillguard replay ARGS`` as a real subprocess (no progress bar, JSON summary)."""
    cmd = [sys.executable, "-m", "distillguard.cli", "replay", "--no-progress", "--json", *args]
    return subprocess.run(cmd, check=False, env=env, cwd=cwd, capture_output=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return orjson.loads(proc.stdout.strip().splitlines()[-1])


def human(proc: subprocess.CompletedProcess) -> list[str]:
    """stderr without the JSON log lines."""
    return [line for line in proc.stderr.decode().splitlines() if line.strip() and not line.startswith("{")]


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit status 2 with one human line (no traceback) that contains ``words``; returns the line."""
    lines = human(proc)
    assert proc.returncode == 2, (proc.returncode, proc.stderr.decode()[-3000:])
    assert "Traceback" not in proc.stderr.decode(), proc.stderr.decode()[-3000:]
    assert len(lines) == 1, lines
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert b"complete" not in proc.stdout
    return lines[0]


def checkpoint(path: Path) -> dict:
    return orjson.loads(path.read_bytes())


def set_topic_config(bootstrap: str, topic: str, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={k.replace("_", "."): v for k, v in configs.items()})])
    finally:
        admin.close()
    time.sleep(1)  # the broker applies a dynamic topic config asynchronously


def create_topic(bootstrap: str, topic: str, partitions: int = 6, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1,
                                      topic_configs={k.replace("_", "."): v for k, v in configs.items()})])
    finally:
        admin.close()


def delete_topic_and_wait(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic])
        deadline = time.time() + 60
        while topic in admin.list_topics() and time.time() < deadline:
            time.sleep(0.2)
    finally:
        admin.close()


def crashed_run(env: dict[str, str], *args: str, after: int = 9000, cwd: Path = REPO) -> None:
    """A run killed (SIGKILL) after ``after`` records, with checkpoints every 3000."""
    proc = dg(env, *args, "--checkpoint-events", "3000", "--crash-after", str(after), cwd=cwd)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]


def values(records: list[tuple]) -> list[bytes]:
    return sorted(r[3] for r in records)


# ---------------------------------------------------------------------------------------------- 1. failed sends
def test_failed_alert_sends_fail_the_run_and_resume_writes_each_alert_once(events, rp_env, tmp_path: Path):
    bootstrap, prefix = rp_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], rp_env["PREFIX"]
    produce_timed(bootstrap, rp_env["DISTILLGUARD_EVENTS_TOPIC"], events)
    ok(dg(rp_env, "--run-id", "snd", "--output", str(tmp_path / "ref.jsonl"), "--checkpoint", str(tmp_path / "r.json")))
    expected = sorted(tmp_path.joinpath("ref.jsonl").read_bytes().splitlines())
    small = f"{prefix}.small"
    create_topic(bootstrap, small, max_message_bytes="1500")  # smaller than most alerts: the broker refuses them
    ck = tmp_path / "snd.json"
    proc = dg(rp_env, "--run-id", "snd", "--output-topic", small, "--checkpoint", str(ck))
    refused(proc, "cannot write alerts to topic", small)
    assert checkpoint(ck)["status"] == "failed", "never complete; the checkpoint is kept for --resume"
    set_topic_config(bootstrap, small, max_message_bytes="1000000")
    done = ok(dg(rp_env, "--resume", "--checkpoint", str(ck)))
    assert done["status"] == "complete"
    assert values(read_all(bootstrap, small)) == expected, "every alert exactly once after the resume"


# ---------------------------------------------------------------------------------------------- 2. retention
def test_resume_refuses_records_lost_to_retention_or_a_recreated_topic(events, rp_env, tmp_path: Path):
    bootstrap = rp_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    topic = rp_env["DISTILLGUARD_EVENTS_TOPIC"]
    produce_timed(bootstrap, topic, events)
    ck = tmp_path / "ret.json"
    crashed_run(rp_env, "--run-id", "ret", "--output", str(tmp_path / "ret.jsonl"), "--checkpoint", str(ck))
    doc = checkpoint(ck)
    nxt = {int(p): o for p, o in doc["next_offsets"].items()}
    ends = {r["partition"]: r["end"] for r in doc["plan"]["ranges"]}
    p = max((q for q in nxt if nxt[q] + 10 < ends[q]), key=lambda q: ends[q] - nxt[q])
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_records({TopicPartition(topic, p): nxt[p] + 5})  # as retention would
    finally:
        admin.close()

    line = refused(dg(rp_env, "--resume", "--checkpoint", str(ck)), f"partition {p}",
                   f"offsets {nxt[p]}-{nxt[p] + 4}", "--accept-gap")
    assert "no longer retained" in line
    assert checkpoint(ck)["next_offsets"] == doc["next_offsets"], "the refused resume left the checkpoint alone"

    # a real run over a time range says that part of it may be gone (defect 7: notes outside --dry-run)
    timed = dg(rp_env, "--from", "2026-06-21T00:00Z", "--to", "2026-06-21T03:00Z",
               "--output", str(tmp_path / "t.jsonl"), "--checkpoint", str(tmp_path / "t.json"))
    ok(timed)
    assert any(f"note: partition {p}: offsets 0-{nxt[p] + 4} are no longer retained" in ln for ln in human(timed))

    done = dg(rp_env, "--resume", "--accept-gap", "--checkpoint", str(ck))
    assert ok(done)["status"] == "complete"
    assert any(f"partition {p}: skipping offsets {nxt[p]}-{nxt[p] + 4}" in ln for ln in human(done))
    assert ok(done)["records"] == sum(r["end"] - r["start"] for r in doc["plan"]["ranges"]) - 5

    # the topic deleted and recreated (even with as many records): its offsets name other records
    ck2 = tmp_path / "rec.json"
    crashed_run(rp_env, "--run-id", "rec", "--output", str(tmp_path / "rec.jsonl"), "--checkpoint", str(ck2))
    delete_topic_and_wait(bootstrap, topic)
    create_topic(bootstrap, topic)
    produce_timed(bootstrap, topic, events)
    refused(dg(rp_env, "--resume", "--checkpoint", str(ck2)), "deleted and recreated")


# ---------------------------------------------------------------------------------------------- 3. paths
def test_resume_works_from_another_directory_and_refuses_a_moved_output(events, rp_env, tmp_path: Path):
    produce_timed(rp_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], rp_env["DISTILLGUARD_EVENTS_TOPIC"], events)
    ok(dg(rp_env, "--run-id", "dirs", "--output", str(tmp_path / "ref.jsonl"), "--dead-letter",
          str(tmp_path / "ref-dl.jsonl"), "--checkpoint", str(tmp_path / "ref.json")))
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    crashed_run(rp_env, "--run-id", "dirs", "--output", "out.jsonl", "--dead-letter", "dl.jsonl",
                "--checkpoint", "ck.json", cwd=a)
    doc = checkpoint(a / "ck.json")
    assert doc["options"]["output"] == str(a / "out.jsonl") and doc["options"]["dead_letter"] == str(a / "dl.jsonl")
    size = doc["output"]["position"]
    assert size > 0

    (a / "out.jsonl").rename(a / "moved.jsonl")
    refused(dg(rp_env, "--resume", "--checkpoint", str(a / "ck.json"), cwd=b), "out.jsonl", "missing")
    assert not (a / "out.jsonl").exists() and not (b / "out.jsonl").exists()
    (a / "out.jsonl").write_bytes(b'{"short"}\n')
    refused(dg(rp_env, "--resume", "--checkpoint", str(a / "ck.json"), cwd=b), "fewer than", str(size))
    assert (a / "out.jsonl").read_bytes() == b'{"short"}\n', "no NUL padding, nothing written"

    (a / "moved.jsonl").replace(a / "out.jsonl")
    ok(dg(rp_env, "--resume", "--checkpoint", str(a / "ck.json"), cwd=b))
    assert (a / "out.jsonl").read_bytes() == (tmp_path / "ref.jsonl").read_bytes()
    assert (a / "dl.jsonl").read_bytes() == (tmp_path / "ref-dl.jsonl").read_bytes()
    assert not list(b.iterdir()), "nothing written relative to the other directory"


# ---------------------------------------------------------------------------------------------- 4. output guard
def test_output_topic_guard_refuses_every_live_topic_and_the_replayed_one(rp_env, tmp_path: Path):
    prefix = rp_env["PREFIX"]
    for topic in (f"{prefix}.notifications", f"{prefix}.ocsf", f"{prefix}.ecs", f"{prefix}.events",
                  f"{prefix}.alerts", f"{prefix}.dlq", f"{prefix}.feedback", f"{prefix}-app-tenant-state-changelog"):
        refused(dg(rp_env, "--output-topic", topic, "--dry-run"), "refusing", topic)
    other = f"{prefix}.other-events"
    create_topic(rp_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], other)
    refused(dg(rp_env, "--topic", other, "--output-topic", other, "--dry-run"), "the topic being replayed")


# ---------------------------------------------------------------------------------------------- 5. promote
def test_promote_validates_every_record_before_sending_and_checks_the_sends(events, rp_env, tmp_path: Path):
    bootstrap = rp_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    live = rp_env["DISTILLGUARD_ALERTS_TOPIC"]
    produce_timed(bootstrap, rp_env["DISTILLGUARD_EVENTS_TOPIC"], events)
    out = tmp_path / "out.jsonl"
    ok(dg(rp_env, "--run-id", "prom", "--output", str(out), "--checkpoint", str(tmp_path / "ck.json")))
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(alerts) >= 5
    secret = "SECRET-PROMPT-TEXT-42"
    usage = orjson.loads(wire(syn.chat("t-1", hours=0.1, seed=1)[0]))
    usage["prompt_text"] = secret
    no_id = {k: v for k, v in alerts[1].items() if k != "alert_id"}
    no_run = {**alerts[2], "metadata": {}}
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join([orjson.dumps(alerts[0]), orjson.dumps(usage), orjson.dumps(no_id),
                                b'{"prompt_text": "' + secret.encode() + b'", ', orjson.dumps(no_run)]) + b"\n")
    proc = dg(rp_env, "--promote", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr.decode()
    lines = human(proc)
    assert "4 of 5 records are not replay alerts; nothing was promoted" in lines[0]
    assert [ln.split(":")[0].strip() for ln in lines[1:]] == ["line 2", "line 3", "line 4", "line 5"], lines
    assert "alert_id" in lines[2] and "not JSON" in lines[3] and "replay_run_id" in lines[4]
    assert secret not in proc.stderr.decode() + proc.stdout.decode(), "never echoes prompt text"
    assert not read_all(bootstrap, live), "nothing reached the live topic"

    # a send the broker refuses is an error (exit 2), not a silent "promoted"
    set_topic_config(bootstrap, live, max_message_bytes="1500")
    refused(dg(rp_env, "--promote", str(out)), "could not be sent", live)
    set_topic_config(bootstrap, live, max_message_bytes="1000000")
    stats = ok(dg(rp_env, "--promote", str(out)))
    assert stats["promoted"] + stats["already_live"] == len(alerts) and stats["promoted"] > 0
    on_topic = [orjson.loads(r[3])["alert_id"] for r in read_all(bootstrap, live)]
    assert sorted(on_topic) == sorted(a["alert_id"] for a in alerts), "each alert once on the live topic"


# ---------------------------------------------------------------------------------------------- 6. reruns
def test_rerun_of_an_unfinished_run_or_into_a_written_topic_is_refused(events, rp_env, tmp_path: Path):
    bootstrap = rp_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    produce_timed(bootstrap, rp_env["DISTILLGUARD_EVENTS_TOPIC"], events)
    ck = tmp_path / "dup.json"
    crashed_run(rp_env, "--run-id", "dup", "--checkpoint", str(ck))
    out_topic = f"{rp_env['DISTILLGUARD_ALERTS_TOPIC']}.replay.dup"
    before = read_all(bootstrap, out_topic)
    refused(dg(rp_env, "--run-id", "dup", "--checkpoint", str(ck)), "unfinished checkpoint", "--resume")
    refused(dg(rp_env, "--run-id", "dup", "--checkpoint", str(ck), "--restart"), "already holds", out_topic)
    assert checkpoint(ck)["status"] == "running", "the refused reruns left the checkpoint alone"
    assert read_all(bootstrap, out_topic) == before, "and wrote nothing to the topic"
    assert ok(dg(rp_env, "--resume", "--checkpoint", str(ck)))["status"] == "complete"

    # file output: --restart gives the unfinished run up and starts over
    ok(dg(rp_env, "--run-id", "f", "--output", str(tmp_path / "ref.jsonl"), "--checkpoint", str(tmp_path / "r.json")))
    ckf = tmp_path / "f.json"
    crashed_run(rp_env, "--run-id", "f", "--output", str(tmp_path / "f.jsonl"), "--checkpoint", str(ckf))
    refused(dg(rp_env, "--run-id", "f", "--output", str(tmp_path / "f.jsonl"), "--checkpoint", str(ckf)),
            "--resume", "--restart")
    done = ok(dg(rp_env, "--run-id", "f", "--output", str(tmp_path / "f.jsonl"), "--checkpoint", str(ckf),
                 "--restart"))
    assert done["status"] == "complete" and done["records"] == len(events)
    assert (tmp_path / "f.jsonl").read_bytes() == (tmp_path / "ref.jsonl").read_bytes()


# ---------------------------------------------------------------------------------------------- 7. notes
def test_real_runs_print_the_plan_notes(events, rp_env, tmp_path: Path):
    produce_timed(rp_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], rp_env["DISTILLGUARD_EVENTS_TOPIC"], events)
    cases = {
        "future": (["--from", "2030-01-01T00:00Z", "--to", "2030-01-02T00:00Z"], "the broker's time index puts no record"),
        "start": (["--offsets", "0:99999999-"], "partition 0: start 99999999 is past the log end"),
        "end": (["--offsets", "0:0-99999999"], "partition 0: end 99999999 is past the log end"),
    }
    for name, (args, note) in cases.items():
        proc = dg(rp_env, *args, "--output", str(tmp_path / f"{name}.jsonl"), "--checkpoint", str(tmp_path / f"{name}.json"))
        ok(proc)
        assert any(ln.startswith("distillguard replay: note: ") and note in ln for ln in human(proc)), (name, human(proc))


# ---------------------------------------------------------------------------------------------- 8. Ctrl-C while stalled
def test_sigint_while_a_partition_stalls_stops_within_a_second(rp_env, tmp_path: Path):
    bootstrap = rp_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    topic = f"{rp_env['PREFIX']}.stall"
    create_topic(bootstrap, topic, partitions=1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=1024 * 1024, acks="all")
    for _ in range(20000):  # 20 MB: more than one fetch (8 MB a partition)
        producer.send(topic, key=b"k", value=b"x" * 1000)
    producer.flush()
    producer.close()
    ck = tmp_path / "stall.json"
    proc = subprocess.Popen([sys.executable, "-m", "distillguard.cli", "replay", "--no-progress", "--json",
                             "--topic", topic, "--output", str(tmp_path / "stall.jsonl"), "--checkpoint", str(ck)],
                            env=rp_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not ck.exists() and time.time() < deadline:  # the first checkpoint is written before any read
            time.sleep(0.005)
        proc.send_signal(signal.SIGSTOP)
        delete_topic_and_wait(bootstrap, topic)  # the records still to fetch will never come
        proc.send_signal(signal.SIGCONT)
        time.sleep(3)
        assert proc.poll() is None, "the reader waits for the partition"
        t0 = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=150)
        took = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert took < 3, f"SIGINT took {took:.1f}s"
    summary = orjson.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "interrupted" and summary["records"] < 20000
    doc = checkpoint(ck)
    assert doc["status"] == "interrupted" and doc["next_offsets"]["0"] == summary["records"]


# ---------------------------------------------------------------------------------------------- 9. paths up front
def test_unusable_checkpoint_or_dead_letter_path_is_refused_before_any_work(events, rp_env, tmp_path: Path):
    bootstrap = rp_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    produce_timed(bootstrap, rp_env["DISTILLGUARD_EVENTS_TOPIC"], events[:2000])
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "out.jsonl"
    refused(dg(rp_env, "--output", str(out), "--checkpoint", str(tmp_path / "adir")), "--checkpoint", "directory")
    refused(dg(rp_env, "--output", str(out), "--checkpoint", str(tmp_path / "afile" / "ck.json")), "--checkpoint")
    refused(dg(rp_env, "--output", str(out), "--checkpoint", str(tmp_path / "ck.json"), "--dead-letter",
               str(tmp_path / "adir")), "--dead-letter", "directory")
    assert not out.exists() and not (tmp_path / "ck.json").exists(), "refused before anything was written"
    refused(dg(rp_env, "--run-id", "up", "--checkpoint", str(tmp_path / "adir")), "--checkpoint")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        assert f"{rp_env['DISTILLGUARD_ALERTS_TOPIC']}.replay.up" not in admin.list_topics(), "no output topic made"
    finally:
        admin.close()


# ---------------------------------------------------------------------------------------------- 10. argument errors
def test_bad_arguments_and_inputs_are_one_line_errors(rp_env, tmp_path: Path):
    from detectors.stages import TenantStage
    from schemas import EventCodec
    from streams.replay import write_state_file

    for args, words in (
        (["--checkpoint-events", "0"], ["--checkpoint-events"]),
        (["--checkpoint-events", "-5"], ["--checkpoint-events"]),
        (["--checkpoint-seconds", "-1"], ["--checkpoint-seconds"]),
        (["--checkpoint-seconds", "0"], ["--checkpoint-seconds"]),
    ):
        proc = dg(rp_env, *args, "--dry-run")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr.decode()
        assert all(w in human(proc)[-1] for w in words), human(proc)
    refused(dg(rp_env, "--run-id", "inc 5", "--dry-run"), "--run-id", "'inc 5'")
    refused(dg(rp_env, "--run-id", "inc 5"), "--run-id")
    refused(dg(rp_env, "--output-topic", "a/b", "--dry-run"), "--output-topic", "'a/b'")
    refused(dg(rp_env, "--output", "-"), "--output -")
    binary = tmp_path / "tenants.bin"
    binary.write_bytes(b"\xff\xfe\x00acme\n")
    refused(dg(rp_env, "--tenants-file", str(binary), "--dry-run"), "--tenants-file", "UTF-8")

    codec = EventCodec()
    stage = TenantStage(model_first_seen={})
    for ev in syn.chat("t-1", hours=0.2, seed=4) + syn.chat("t-2", hours=0.2, seed=5):
        stage.process(codec.decode(wire(ev)))
    state = tmp_path / "state.jsonl"
    write_state_file(state, [stage], {})
    lines = state.read_bytes().splitlines()
    doc = orjson.loads(lines[3])
    snap = base64.b64decode(doc["snapshot"])
    doc["snapshot"] = base64.b64encode(snap[: len(snap) // 2]).decode()  # valid base64 and header, cut-off body
    state.write_bytes(b"\n".join([*lines[:3], orjson.dumps(doc)]) + b"\n")
    out = tmp_path / "st.jsonl"
    refused(dg(rp_env, "--state", str(state), "--output", str(out), "--checkpoint", str(tmp_path / "st.json")),
            f"{state}:4:", "snapshot")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- 11. topic name
def test_default_output_topic_follows_the_configured_alerts_topic(rp_env):
    plan = ok(dg(rp_env, "--run-id", "nm-1", "--dry-run"))
    assert plan["output"] == f"{rp_env['DISTILLGUARD_ALERTS_TOPIC']}.replay.nm-1"
    env = {**rp_env, "DISTILLGUARD_ALERTS_TOPIC": f"{rp_env['PREFIX']}.custom-alerts"}
    assert ok(dg(env, "--run-id", "nm-1", "--dry-run"))["output"] == f"{rp_env['PREFIX']}.custom-alerts.replay.nm-1"


def test_checkpoint_path_is_reported_absolute(rp_env, tmp_path: Path):
    """The checkpoint path (summary, resume hint) is absolute: ``--resume --checkpoint`` works from anywhere."""
    plan = ok(dg(rp_env, "--run-id", "abs-1", "--dry-run", cwd=tmp_path))
    assert plan["checkpoint"] == os.path.join(str(tmp_path), ".distillguard-replay", "abs-1.checkpoint.json")
