"""ClusterDetector: hydra clusters found, common keys among benign tenants ignored, bounded memory."""

from __future__ import annotations

from typing import Any

import jsonschema

from detectors import ClusterDetector, DetectorConfig, Engine, KeySummary
from detectors import synthetic as S
from schemas import load_schema


def run(events: list[dict[str, Any]], config: DetectorConfig | None = None) -> list[dict[str, Any]]:
    eng = Engine(config)
    out = eng.process_many(events) + eng.finish()
    for a in out:
        jsonschema.validate(a, load_schema("alert"))
    return out


def background(n: int = 12) -> list[dict[str, Any]]:
    """Benign tenants from the start of the stream, all on the official SDK and a big cloud ASN."""
    evs: list[dict[str, Any]] = []
    for k in range(n):
        evs += S.chat(f"bg-{k:02d}", hours=12, peak_rate=0.4, seed=100 + k)
        if k % 3 == 0:
            evs += S.batch(f"bb-{k:02d}", hours=12, rate=0.3, seed=200 + k)
    return evs


def test_hydra_cluster_detected_while_each_member_stays_below_tenant_threshold() -> None:
    hydra = S.hydra("hyd", n_tenants=20)
    alerts = run(S.merge(background(), hydra))
    assert not [a for a in alerts if a["kind"] == "tenant"]
    cl = [a for a in alerts if a["kind"] == "cluster"]
    opens = [a for a in cl if a["status"] == "open"]
    assert len(opens) == 1
    a = opens[0]
    assert set(a["tenant_ids"]) == {f"hyd-{k:03d}" for k in range(20)}
    assert a["account_ids"] and all(x.startswith("hyd-") for x in a["account_ids"])
    assert a["cluster_id"] and a["first_seen"] >= "2026-06-21T06:00:00.000Z"
    assert {r["signal"] for r in a["reasons"]} >= {"shared_keys", "synchronous_start", "equal_load"}
    assert len(a["evidence"]) <= 20
    assert [x["status"] for x in cl].count("open") == 1


def test_common_sdk_and_cloud_asn_do_not_link_benign_tenants() -> None:
    alerts = run(background(20))
    assert [a for a in alerts if a["kind"] == "cluster"] == []


def test_new_benign_tenants_starting_together_without_extraction_do_not_cluster() -> None:
    evs = background(6)
    for k in range(15):  # a customer's 15 sub-accounts onboarded together, ordinary chat traffic
        evs += S.chat(f"new-{k:02d}", start=S.T0 + 6 * 3600 + k * 20, hours=4, peak_rate=0.5, seed=300 + k)
    alerts = run(S.merge(evs))
    assert [a for a in alerts if a["kind"] == "cluster"] == []


def _summary(i: int, key: str, **kw: Any) -> KeySummary:
    d = dict(key=key, tenant_id=f"t{i}", window_start=S.T0, window_end=S.T0 + 300, events=10, key_events=10,
             accounts=(f"a{i}",), first_ts=S.T0, tenant_first_ts=S.T0 + 7200, score=0.3, cot=0.5, cap=0.5,
             elicit=0.6, harvest=0.6, automation=0.8, keys=(key, "pay:p"))
    d.update(kw)
    return KeySummary(**d)


def test_memory_caps_keys_and_members() -> None:
    cfg = DetectorConfig(cluster_max_keys=10, cluster_max_members=5)
    cd = ClusterDetector(cfg)
    for i in range(50):
        cd.process(_summary(i, f"tmpl:k{i % 20}"))
    assert sum(len(m) for b in cd._buckets.values() for m in b.values()) <= 10 * 5
    assert cd.stats["dropped_keys"] > 0
    cd2 = ClusterDetector(cfg)
    for i in range(50):
        cd2.process(_summary(i, "tmpl:one"))
    assert cd2.stats["dropped_members"] == 45
    cd.advance(S.T0 + 3600)
    assert cd._buckets == {}


def test_summary_roundtrip_dict() -> None:
    s = _summary(1, "ua:x")
    assert KeySummary.from_dict(s.to_dict()) == s


def test_feedback_on_cluster_alert_suppresses_its_keys() -> None:
    cfg = DetectorConfig()
    eng = Engine(cfg)
    out: list[dict[str, Any]] = []
    for e in S.merge(background(4), S.hydra("hyd", n_tenants=12, hours=6)):
        new = eng.process(e)
        out += new
        for a in new:
            if a["kind"] == "cluster" and a["status"] == "open":
                out += eng.apply_feedback({"alert_id": a["alert_id"], "label": "benign_expected",
                                           "tenant_id": a["tenant_ids"][0]})
    out += eng.finish()
    cl = [a for a in out if a["kind"] == "cluster"]
    assert [a["status"] for a in cl] == ["open", "resolved"]
    assert cl[1]["reasons"][0]["signal"] == "analyst_feedback"
