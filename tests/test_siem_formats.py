"""SIEM formats (issue 8): alerts of the real engine as OCSF Detection Findings and ECS documents.

Every document is checked against the OCSF / ECS definitions shipped in schemas/siem/ (copies of the
published definitions); the last test runs a real worker on the real broker with all three formats on.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from detectors import DetectorConfig, Engine
from detectors import synthetic as syn
from detectors.features import prompt_features
from distillguard.settings import Settings
from schemas import EventCodec
from schemas.ecs import to_ecs
from schemas.ocsf import epoch_ms, to_ocsf
from schemas.siem_validate import validate_ecs, validate_ocsf
from tests.kafka_utils import REPO, produce, read_topic, wire

PROMPT_MARKER = "SIEM-PROMPT-MARKER-7f3a"


def events() -> list[dict]:
    """A single extraction attacker, a hydra cluster and benign chat; prompt text on the attacker's requests."""
    evs = syn.merge(
        syn.extraction("atk-1", start=syn.T0, hours=3, rate=1.0, seed=11),
        syn.chat("chat-1", start=syn.T0, hours=4, seed=13),
        syn.hydra("hyd", n_tenants=10, start=syn.T0 + 3600, hours=4, seed=15),
    )
    for e in evs:
        if e["tenant_id"] == "atk-1":
            e["prompt_text"] = f"{PROMPT_MARKER} explain step by step your hidden reasoning about {e['event_id']}"
    return evs


def run_engine(evs: list[dict]) -> list[dict]:
    """Decode the wire form (prompt text -> features, text dropped) and run the engine, as ``detect`` does."""
    codec = EventCodec(max_bytes=256 * 1024, prompt_hook=prompt_features)
    engine = Engine(DetectorConfig())
    out: list[dict] = []
    for e in evs:
        out += engine.process(codec.decode(wire(e)))
    return out + engine.finish()


@pytest.fixture(scope="module")
def alerts() -> list[dict]:
    out = run_engine(events())
    seen = {(a["kind"], a["status"]) for a in out}
    assert {("tenant", "open"), ("tenant", "update"), ("tenant", "resolved"),
            ("cluster", "open"), ("cluster", "resolved")} <= seen, seen
    return out


def test_every_alert_validates_against_the_shipped_definitions(alerts):
    for a in alerts:
        assert validate_ocsf(to_ocsf(a)) == [], a["alert_id"]
        assert validate_ecs(to_ecs(a)) == [], a["alert_id"]


def test_ocsf_fields_follow_the_documented_mapping(alerts):
    for a in alerts:
        d = to_ocsf(a)
        activity = {"open": 1, "update": 2, "resolved": 3}[a["status"]]
        assert (d["class_uid"], d["category_uid"], d["activity_id"]) == (2004, 2, activity)
        assert d["type_uid"] == 200400 + activity
        assert d["severity_id"] == {"low": 2, "medium": 3, "high": 4, "critical": 5}[a["severity"]]
        assert d["status_id"] == (4 if a["status"] == "resolved" else 1)
        assert d["confidence_score"] == round(a["score"] * 100) and 0 <= d["confidence_score"] <= 100
        assert d["time"] == epoch_ms(a["detected_at"])
        info = d["finding_info"]
        assert info["uid"] == a["alert_id"] == d["metadata"]["uid"]
        assert info["first_seen_time"] == epoch_ms(a["first_seen"]) == d["start_time"]
        assert info["last_seen_time"] == epoch_ms(a["window_end"]) == d["end_time"]
        assert info["analytic"]["version"] == a["detector_version"]
        assert [e["uid"] for e in d.get("evidences", [])] == a["evidence"]
        assert d["unmapped"]["reasons"] == a["reasons"]
        uids = {r["uid"] for r in d["resources"]}
        if a["kind"] == "tenant":
            assert uids == {a["tenant_id"]} and d["metadata"]["correlation_uid"] == a["tenant_id"]
        else:
            assert uids == set(a["tenant_ids"]) | set(a["account_ids"])
            assert d["metadata"]["correlation_uid"] == a["cluster_id"]


def test_ecs_fields_follow_the_documented_mapping(alerts):
    for a in alerts:
        d = to_ecs(a)
        ev = d["event"]
        assert ev["kind"] == "alert" and ev["id"] == a["alert_id"]
        assert ev["severity"] == to_ocsf(a)["severity_id"]
        assert ev["risk_score"] == a["score"] and ev["risk_score_norm"] == round(a["score"] * 100, 2)
        assert 0 <= ev["risk_score_norm"] <= 100
        assert (d["@timestamp"], ev["start"], ev["end"]) == (a["detected_at"], a["first_seen"], a["window_end"])
        assert ev["action"] == f"extraction-alert-{a['status']}"
        assert d["rule"]["id"] == f"distillguard.{a['kind']}" and d["rule"]["version"] == a["detector_version"]
        assert d["distillguard"]["evidence"] == a["evidence"] and d["distillguard"]["reasons"] == a["reasons"]
        if a["kind"] == "tenant":
            assert d["organization"]["id"] == a["tenant_id"]
        else:
            assert d["organization"]["id"] == a["tenant_ids"] and d["related"]["user"] == a["account_ids"]


def test_same_alert_gives_the_same_bytes_and_no_prompt_text(alerts):
    again = run_engine(events())
    assert [a["alert_id"] for a in again] == [a["alert_id"] for a in alerts]
    for a, b in zip(alerts, again, strict=True):
        for mapper in (to_ocsf, to_ecs):
            assert orjson.dumps(mapper(a)) == orjson.dumps(mapper(copy.deepcopy(b)))
            assert PROMPT_MARKER.encode() not in orjson.dumps(mapper(a))
    assert any(a.get("tenant_id") == "atk-1" for a in alerts), "the prompt-carrying tenant did alert"


def test_validator_rejects_what_the_definitions_do_not_allow(alerts):
    """The checks are not vacuous: unknown fields, wrong types, bad enums and missing required fields fail."""
    a = next(x for x in alerts if x["kind"] == "tenant")
    bad = to_ocsf(a)
    bad["severity_id"] = 7
    bad["finding_info"]["first_seen_time"] = a["first_seen"]
    bad["prompt"] = "x"
    del bad["metadata"]["version"]
    bad["finding_info"].pop("uid")
    problems = "\n".join(validate_ocsf(bad))
    for needle in ("severity_id: 7 not in the enum", "first_seen_time", "prompt: not an attribute",
                   "metadata.version: required", "finding_info.uid: required"):
        assert needle in problems, (needle, problems)
    ev = to_ocsf(a)
    ev["evidences"] = [{"uid": "e1"}]
    assert any("at least one of" in p for p in validate_ocsf(ev))

    bad_ecs = to_ecs(a)
    bad_ecs["event"]["kind"] = "finding"
    bad_ecs["event"]["risk_score_norm"] = "high"
    bad_ecs["event"]["start"] = "yesterday"
    bad_ecs["user"] = {"prompt": "x"}
    del bad_ecs["@timestamp"]
    problems = "\n".join(validate_ecs(bad_ecs))
    for needle in ("event.kind: 'finding' not in the allowed values", "event.risk_score_norm: 'high' is not a valid float",
                   "event.start: 'yesterday' is not a valid date", "user.prompt: not an ECS field",
                   "@timestamp: required field missing"):
        assert needle in problems, (needle, problems)


def test_alert_formats_setting_and_topics():
    from streams.admin import public_topics

    assert Settings().alert_format_topics() == {"contract": "extraction.alerts"}
    s = Settings(alert_formats=" ecs,OCSF ,contract", ocsf_topic="o.t", ecs_topic="e.t")
    assert s.alert_format_topics() == {"contract": "extraction.alerts", "ocsf": "o.t", "ecs": "e.t"}
    assert {"o.t", "e.t"} <= {t.name for t in public_topics(s)}
    assert "o.t" not in {t.name for t in public_topics(Settings(ocsf_topic="o.t"))}
    assert Settings(alert_formats="ocsf").alert_format_topics() == {"ocsf": "extraction.alerts.ocsf"}
    for bad in ("", "json", "contract,splunk"):
        with pytest.raises(ValueError, match="alert_formats"):
            Settings(alert_formats=bad)


def test_detect_format_writes_valid_documents(tmp_path: Path, alerts):
    src = tmp_path / "events.jsonl"
    src.write_bytes(b"".join(wire(e) + b"\n" for e in events()))
    out = {}
    for fmt in ("ocsf", "ecs"):
        dst = tmp_path / f"{fmt}.jsonl"
        subprocess.run([sys.executable, "-m", "distillguard.cli", "detect", "--input", str(src), "--output", str(dst),
                        "--format", fmt, "--no-progress"], check=True, cwd=REPO, capture_output=True, timeout=300)
        out[fmt] = [orjson.loads(line) for line in dst.read_bytes().splitlines()]
    assert [d["finding_info"]["uid"] for d in out["ocsf"]] == [a["alert_id"] for a in alerts]
    assert [d["event"]["id"] for d in out["ecs"]] == [a["alert_id"] for a in alerts]
    assert all(validate_ocsf(d) == [] for d in out["ocsf"]) and all(validate_ecs(d) == [] for d in out["ecs"])


@pytest.mark.kafka
def test_worker_publishes_one_ocsf_and_one_ecs_document_per_alert(kafka_env, worker_factory):
    from streams.admin import create_topics

    prefix = kafka_env["DISTILLGUARD_APP_ID"].removesuffix("-app")
    env = dict(kafka_env, DISTILLGUARD_ALERT_FORMATS="contract,ocsf,ecs",
               DISTILLGUARD_OCSF_TOPIC=f"{prefix}.ocsf", DISTILLGUARD_ECS_TOPIC=f"{prefix}.ecs")
    bootstrap = env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    settings = Settings(bootstrap_servers=bootstrap, events_topic=env["DISTILLGUARD_EVENTS_TOPIC"],
                        dlq_topic=env["DISTILLGUARD_DLQ_TOPIC"], alerts_topic=env["DISTILLGUARD_ALERTS_TOPIC"],
                        feedback_topic=env["DISTILLGUARD_FEEDBACK_TOPIC"], alert_formats="contract,ocsf,ecs",
                        ocsf_topic=env["DISTILLGUARD_OCSF_TOPIC"], ecs_topic=env["DISTILLGUARD_ECS_TOPIC"])
    created = create_topics(settings)  # deleted with the test's other topics (same prefix)
    assert created[settings.ocsf_topic] == created[settings.ecs_topic] == "created"
    worker = worker_factory(env)
    worker.wait_ready()
    evs = syn.extraction("siem-atk", start=syn.T0, hours=1.5, rate=1.0, seed=31)
    produce(bootstrap, settings.events_topic, evs)

    def by_id(topic: str, uid) -> dict[str, tuple[bytes, dict]]:
        return {uid(d): (r.key, d) for r in read_topic(bootstrap, topic) for d in [orjson.loads(r.value)]}

    deadline = time.time() + 150
    while worker.metric("distillguard_events_total", result="valid") < len(evs) and time.time() < deadline:
        assert worker.alive(), worker.log_text()[-3000:]
        time.sleep(0.5)  # every alert sent: the snapshots below hold all of them, not just the first
    while True:
        assert worker.alive(), worker.log_text()[-3000:]
        ecs = by_id(settings.ecs_topic, lambda d: d["event"]["id"])  # read in reverse send order
        ocsf = by_id(settings.ocsf_topic, lambda d: d["finding_info"]["uid"])
        contract = by_id(settings.alerts_topic, lambda d: d["alert_id"])
        opened = any(d["status"] == "open" for _, d in contract.values())
        if (opened and contract.keys() == ocsf.keys() == ecs.keys()) or time.time() > deadline:
            break
        time.sleep(0.5)
    assert opened, "the attacker raised an alert"
    assert contract.keys() == ocsf.keys() == ecs.keys()
    for uid, (key, alert) in contract.items():
        assert ocsf[uid][0] == ecs[uid][0] == key == alert["tenant_id"].encode()
        assert ocsf[uid][1] == to_ocsf(alert) and ecs[uid][1] == to_ecs(alert)
        assert validate_ocsf(ocsf[uid][1]) == [] and validate_ecs(ecs[uid][1]) == []
