"""Replay without a broker: range parsing, plan serialisation, state files, output-topic guard."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import pytest

from detectors import synthetic as syn
from detectors.stages import TenantStage
from distillguard.settings import Settings
from streams.replay import (
    PartitionRange,
    ReplayError,
    ReplayPlan,
    check_output_topic,
    parse_offsets,
    parse_time,
    read_state_file,
    write_state_file,
)


def test_parse_time_forms() -> None:
    assert parse_time("2026-06-21T00:00Z") == syn.T0
    assert parse_time("2026-06-21") == syn.T0
    assert parse_time("2026-06-21T02:00:00+02:00") == syn.T0
    assert parse_time("2026-06-21T00:00:00.500Z") == syn.T0 + 0.5
    with pytest.raises(ReplayError):
        parse_time("yesterday")


def test_parse_offsets_spec() -> None:
    assert parse_offsets("0:100-5000,1:0-,2:-300,3:7") == {0: (100, 5000), 1: (0, None), 2: (None, 300), 3: (7, 8)}
    for bad in ("", "x:1-2", "0:5-1", "0:1-2,0:3-4", "0:-1-2", "1"):
        with pytest.raises(ReplayError):
            parse_offsets(bad)


def test_plan_round_trip_and_description() -> None:
    plan = ReplayPlan("ev", 6, [PartitionRange(0, 10, 20), PartitionRange(3, 5, 5)], time_from=syn.T0,
                      time_to=syn.T0 + 3600, tenants=["a", "b"], lookback=420, lookahead=420, resolved_by="time-index")
    again = ReplayPlan.from_dict(plan.to_dict())
    assert again == plan
    assert plan.estimated_records == 10
    text = plan.describe()
    assert "partition 0: offsets 10-20  (10 records)" in text and "2026-06-21T00:00:00.000Z" in text


def test_state_file_round_trip(tmp_path: Path) -> None:
    from schemas import EventCodec

    codec = EventCodec()
    stage = TenantStage(model_first_seen={})
    for ev in syn.extraction("t-1", hours=0.5, seed=3) + syn.chat("t-2", hours=0.5, seed=4):
        stage.process(codec.decode(syn_wire(ev)))
    path = tmp_path / "state.jsonl"
    assert write_state_file(path, [stage], stage.detector.model_first_seen) == 2
    tenants, models = read_state_file(path)
    assert set(tenants) == {"t-1", "t-2"} and models == stage.detector.model_first_seen
    assert tenants["t-1"] == stage.detector.snapshot("t-1")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tenant_id": "x", "snapshot": "%%%"}\n')
    with pytest.raises(ReplayError):
        read_state_file(bad)
    assert base64.b64decode(base64.b64encode(tenants["t-2"])) == tenants["t-2"]


def syn_wire(ev: dict) -> bytes:
    import orjson

    return orjson.dumps({k: v for k, v in ev.items() if k != "ts"})


def test_output_topic_guard() -> None:
    s = Settings(app_id="dg")
    for topic in (s.events_topic, s.alerts_topic, s.dlq_topic, s.feedback_topic, "dg-tenant-state-changelog",
                  "dg-cluster-summaries", "__consumer_offsets"):
        with pytest.raises(ReplayError):
            check_output_topic(s, topic)
    check_output_topic(s, "extraction.alerts.replay.run-1")


def test_cli_parses_replay_arguments() -> None:
    from distillguard.cli import build_parser

    args = build_parser().parse_args(["replay", "--from", "2026-06-24T00:00Z", "--to", "2026-06-25T12:00Z",
                                      "--tenant", "a", "--tenant", "b", "--dry-run"])
    assert isinstance(args, argparse.Namespace)
    assert args.time_from == "2026-06-24T00:00Z" and args.tenant == ["a", "b"] and args.dry_run


def test_file_sink_accepts_a_device(tmp_path: Path) -> None:
    """``replay --output /dev/null`` (a dry run) works: devices take alerts without fsync."""
    from streams.replay import FileSink

    sink = FileSink("/dev/null")
    sink.write(b"k", b'{"alert_id": "a"}')
    assert sink.position()["kind"] == "file"
    sink.close()
    regular = FileSink(tmp_path / "alerts.jsonl")
    regular.write(b"k", b"{}")
    assert regular.position()["position"] == 3
    regular.close()


def test_promotion_refuses_fields_a_replay_alert_does_not_have() -> None:
    """The alert schema is open (extra top-level and metadata fields validate): a promotion must not carry one
    to the live topic, since it could hold anything, prompt text included; its value is never echoed."""
    import jsonschema

    from schemas.codec import load_schema
    from streams.replay import replay_alert_problem

    validator = jsonschema.Draft202012Validator(load_schema("alert"),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    from detectors import Engine

    alert = next(a for a in Engine().process_many(syn.extraction("x", hours=2)) if a["status"] == "open")
    alert["metadata"] = {"replay_run_id": "r1", "source_topic": "t", "source_partition": 0, "source_offset": 7}
    import orjson

    assert replay_alert_problem(orjson.dumps(alert), validator) is None
    for bad in ({**alert, "prompt_text": "SECRET PROMPT"},
                {**alert, "metadata": {**alert["metadata"], "prompt_text": "SECRET PROMPT"}},
                {**alert, "metadata": {**alert["metadata"], "source_offset": {"x": "SECRET PROMPT"}}}):
        why = replay_alert_problem(orjson.dumps(bad), validator)
        assert why is not None and "SECRET" not in why, why


def test_output_check_leaves_a_fifo_to_its_reader(tmp_path: Path) -> None:
    """Probing a FIFO by opening it ended its reader before the run, which then hung waiting for a new one."""
    import os
    import threading

    from distillguard.commands.replay import _check_writable

    fifo = tmp_path / "alerts.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    _check_writable(str(fifo), "--output", keep=True)
    reader.join(0.5)
    assert reader.is_alive() and not got, "the reader saw an end of file before any alert"
    with open(fifo, "wb") as w:
        w.write(b"alert\n")
    reader.join(5)
    assert got == [b"alert\n"]
