"""The notification policy (delivery/policy.py): inhibition, group wait, repeats, resolves, bounds, determinism."""

from __future__ import annotations

from datetime import datetime

import pytest

from delivery.policy import NotificationPolicy, PolicyConfig
from detectors import synthetic as syn
from detectors.common import iso
from detectors.engine import Engine


def tenant_alert(tid: str, status: str, aid: str, ts: float = 0.0) -> dict:
    return {"alert_id": aid, "schema_version": 1, "kind": "tenant", "status": status, "tenant_id": tid,
            "severity": "high", "score": 0.9, "detected_at": iso(ts), "first_seen": iso(ts), "window_start": iso(ts),
            "window_end": iso(ts), "reasons": [], "evidence": [], "detector_version": "test"}


def cluster_alert(cid: str, status: str, aid: str, members: list[str], ts: float = 0.0) -> dict:
    return {**tenant_alert("", status, aid, ts), "kind": "cluster", "cluster_id": cid, "tenant_ids": sorted(members),
            "account_ids": [f"{m}-a" for m in members]}


def reasons(notes: list[dict]) -> list[tuple[str, str]]:
    """(subject, reason) of each notification, in order."""
    return [(n.get("tenant_id") or n["cluster_id"], n["notification"]["reason"]) for n in notes]


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def hydra_alerts() -> list[dict]:
    """Real engine alerts: six hydra tenants alert on their own first, then the cluster stage sees them."""
    events = syn.merge(syn.chat("chat-1", start=syn.T0, hours=2.5, seed=13),
                       syn.hydra("hyd", n_tenants=6, start=syn.T0, hours=2, rate=0.1, extraction_share=0.9, seed=15))
    engine = Engine()
    alerts = [a for ev in events for a in engine.process(ev)] + engine.finish()
    kinds = [a["kind"] for a in alerts]
    assert "cluster" in kinds and kinds.index("cluster") > kinds.index("tenant"), "tenant alerts come first"
    return alerts


def test_cluster_folds_member_alerts_from_the_real_engine(hydra_alerts):
    policy = NotificationPolicy(PolicyConfig(repeat_interval=0))
    notes = [n for a in hydra_alerts for n in policy.process(a, epoch(a["detected_at"]))]
    cluster = next(a for a in hydra_alerts if a["kind"] == "cluster")
    members = set(cluster["tenant_ids"])
    opened_at = hydra_alerts.index(cluster)
    after = [a for a in hydra_alerts[opened_at + 1:] if a["kind"] == "tenant" and a["tenant_id"] in members]
    assert after, "members keep alerting while the cluster is open"

    notified_ids = {n["alert_id"] for n in notes}
    for a in after:
        if a["status"] != "resolved":
            assert a["alert_id"] not in notified_ids, f"{a['tenant_id']} {a['status']} paged despite the open cluster"
    new = next(n for n in notes if n["kind"] == "cluster" and n["notification"]["reason"] == "new")
    assert set(new["notification"]["folded_tenant_ids"]) == members, "already-open member incidents are folded"
    last = [n for n in notes if n["kind"] == "cluster"][-1]
    assert last["notification"]["reason"] == "resolved"
    folded = set(last["notification"]["folded_alert_ids"])
    assert folded and last["notification"]["folded_count"] == policy.counts["folded"]
    # nothing is lost: every member alert either paged or is listed on the cluster incident
    for a in hydra_alerts:
        if a["kind"] == "tenant" and a["tenant_id"] in members:
            assert a["alert_id"] in notified_ids or a["alert_id"] in folded
    # members had paged before the cluster opened, so each still gets its own resolve, naming the cluster
    resolves = [n for n in notes if n["kind"] == "tenant" and n["notification"]["reason"] == "resolved"]
    assert {n["tenant_id"] for n in resolves} == members
    assert all(n["notification"]["folded_into"] == cluster["cluster_id"] for n in resolves)
    assert len(notes) < len(hydra_alerts), "fewer pages than alerts"
    assert len(policy) == 0, "everything resolved: no open incident left"


def test_same_input_same_notifications_and_restore_midway_changes_nothing(hydra_alerts):
    config = PolicyConfig(repeat_interval=1800, group_wait=600)

    def run(alerts, policy):
        out = []
        for a in alerts:
            out += policy.process(a, epoch(a["detected_at"]))
        return out + policy.tick(epoch(alerts[-1]["detected_at"]) + 7200)

    straight = run(hydra_alerts, NotificationPolicy(config))
    assert straight == run(hydra_alerts, NotificationPolicy(config))
    assert any(n["notification"]["reason"] == "repeat" for n in straight)
    half = len(hydra_alerts) // 2
    first = NotificationPolicy(config)
    out = [n for a in hydra_alerts[:half] for n in first.process(a, epoch(a["detected_at"]))]
    stored = {k: v for k, v in first.drain_changes().items() if v is not None}
    second = NotificationPolicy(config)
    second.restore(sorted(stored.items(), reverse=True))  # any order
    assert len(second) == len(first)
    out += run(hydra_alerts[half:], second)
    assert out == straight
    assert all(len(n["notification"]["notification_id"]) == 26 for n in straight)
    assert len({n["notification"]["notification_id"] for n in straight}) == len(straight)


def test_tenant_alert_inside_an_open_cluster_never_pages_and_resolves_silently():
    p = NotificationPolicy(PolicyConfig(repeat_interval=0))
    assert reasons(p.process(cluster_alert("c1", "open", "c-1", ["t1", "t2", "t3"]), 0)) == [("c1", "new")]
    assert p.process(tenant_alert("t1", "open", "t-1"), 1) == []
    assert p.process(tenant_alert("t1", "update", "t-2"), 2) == []
    assert p.process(tenant_alert("t1", "resolved", "t-3"), 3) == []
    assert p.process(tenant_alert("t9", "open", "t-9"), 3) != [], "a non-member pages as usual"
    note = p.process(cluster_alert("c1", "update", "c-2", ["t1", "t2", "t3"]), 4)[0]["notification"]
    assert note["reason"] == "update" and note["folded_alert_ids"] == ["t-1", "t-2", "t-3"]
    assert note["folded_tenant_ids"] == ["t1"] and note["folded_count"] == 3 and p.counts["folded"] == 3


def test_cluster_update_with_new_members_folds_their_open_incidents():
    p = NotificationPolicy(PolicyConfig(repeat_interval=0))
    p.process(cluster_alert("c1", "open", "c-1", ["t1", "t2"]), 0)
    assert reasons(p.process(tenant_alert("t5", "open", "t-5"), 1)) == [("t5", "new")]
    note = p.process(cluster_alert("c1", "update", "c-2", ["t1", "t2", "t5"]), 2)[0]["notification"]
    assert note["folded_tenant_ids"] == ["t5"] and note["folded_alert_ids"] == [], "t5 paged before: not absorbed"
    assert p.process(tenant_alert("t5", "update", "t-6"), 3) == []
    resolved = p.process(tenant_alert("t5", "resolved", "t-7"), 4)
    assert reasons(resolved) == [("t5", "resolved")] and resolved[0]["notification"]["folded_into"] == "c1"


def test_group_wait_lets_a_late_cluster_alert_fold_a_new_tenant_incident():
    p = NotificationPolicy(PolicyConfig(group_wait=30, repeat_interval=0))
    assert p.process(tenant_alert("t1", "open", "t-1"), 100) == []
    assert p.process(tenant_alert("t1", "update", "t-2"), 110) == []
    note = p.process(cluster_alert("c1", "open", "c-1", ["t1", "t2"]), 120)[0]["notification"]
    assert note["folded_alert_ids"] == ["t-2"] and note["folded_tenant_ids"] == ["t1"]
    assert p.tick(1000) == [], "the held incident was folded: it never pages"

    q = NotificationPolicy(PolicyConfig(group_wait=30, repeat_interval=0))
    q.process(tenant_alert("t1", "open", "t-1"), 100)
    q.process(tenant_alert("t1", "update", "t-2"), 110)
    assert q.tick(129.9) == []
    released = q.tick(130)
    assert reasons(released) == [("t1", "new")] and released[0]["alert_id"] == "t-2", "the release carries the latest"
    assert released[0]["notification"]["incident_alert_id"] == "t-1"

    r = NotificationPolicy(PolicyConfig(group_wait=30, repeat_interval=0))
    r.process(tenant_alert("t1", "open", "t-1"), 100)
    assert reasons(r.process(tenant_alert("t1", "resolved", "t-3"), 105)) == [("t1", "resolved")]
    assert r.tick(200) == [] and len(r) == 0


def test_cluster_resolve_releases_members_still_open():
    p = NotificationPolicy(PolicyConfig(repeat_interval=100))
    p.process(tenant_alert("t1", "open", "t-1"), 0)  # pages on its own
    p.process(cluster_alert("c1", "open", "c-1", ["t1", "t2"]), 10)
    p.process(tenant_alert("t2", "open", "t-2"), 20)  # folded, never paged
    assert reasons(p.tick(95)) == [], "t1 is folded: no repeat of its own"
    out = p.process(cluster_alert("c1", "resolved", "c-2", ["t1", "t2"]), 100)
    assert reasons(out) == [("c1", "resolved"), ("t2", "new")]
    assert out[1]["notification"]["released_from"] == "c1" and out[1]["alert_id"] == "t-2"
    assert reasons(p.tick(101)) == [("t1", "repeat")], "t1 resumes repeating (last paged at 0)"
    assert reasons(p.tick(200)) == [("t2", "repeat")]


def test_member_of_two_clusters_moves_to_the_other_when_one_resolves():
    p = NotificationPolicy(PolicyConfig(repeat_interval=0))
    p.process(cluster_alert("c1", "open", "c-1", ["t1", "t2"]), 0)
    p.process(cluster_alert("c2", "open", "c-2", ["t1", "t3"]), 1)
    p.process(tenant_alert("t1", "open", "t-1"), 2)
    assert reasons(p.process(cluster_alert("c1", "resolved", "c-3", ["t1", "t2"]), 3)) == [("c1", "resolved")]
    assert p.process(tenant_alert("t1", "update", "t-2"), 4) == []
    note = p.process(cluster_alert("c2", "resolved", "c-4", ["t1", "t3"]), 5)
    assert reasons(note) == [("c2", "resolved"), ("t1", "new")]
    assert note[0]["notification"]["folded_alert_ids"] == ["t-2"]


def test_repeat_cadence_and_stop_on_resolve():
    p = NotificationPolicy(PolicyConfig(repeat_interval=100))
    assert reasons(p.process(tenant_alert("t1", "open", "t-1"), 0)) == [("t1", "new")]
    assert p.tick(99) == []
    first = p.tick(100)
    assert reasons(first) == [("t1", "repeat")] and first[0]["notification"]["repeat"] == 1
    assert p.tick(150) == []
    assert reasons(p.process(tenant_alert("t1", "update", "t-2"), 160)) == [("t1", "update")]
    assert p.tick(259) == [], "an update restarts the interval"
    assert reasons(p.tick(260)) == [("t1", "repeat")]
    late = p.tick(5000)
    assert reasons(late) == [("t1", "repeat")], "a long gap sends one repeat, not a backlog"
    assert late[0]["notification"]["repeat"] == 3 and late[0]["notification"]["notified_at"] == iso(5000)
    assert p.tick(4000) == [], "the clock never runs backwards"
    assert reasons(p.process(tenant_alert("t1", "resolved", "t-3"), 5001)) == [("t1", "resolved")]
    assert p.tick(10**6) == []
    off = NotificationPolicy(PolicyConfig(repeat_interval=0))
    off.process(tenant_alert("t1", "open", "t-1"), 0)
    assert off.tick(10**9) == []


def test_duplicates_invalid_input_and_unknown_incidents():
    p = NotificationPolicy(PolicyConfig(repeat_interval=0))
    a = tenant_alert("t1", "open", "t-1")
    assert len(p.process(a, 0)) == 1
    assert p.process(dict(a), 1) == [] and p.counts["duplicate"] == 1, "a re-sent alert id pages once"
    assert p.process({"alert_id": 3}, 2) == [] and p.process({"kind": "tenant"}, 2) == []
    assert p.process({**cluster_alert("c", "open", "c-9", []), "tenant_ids": [None]}, 2) == []
    assert p.counts["invalid"] == 3
    assert reasons(p.process(tenant_alert("t7", "update", "t-7"), 3)) == [("t7", "new")], "first sight pages as new"
    assert reasons(p.process(tenant_alert("t8", "resolved", "t-8"), 3)) == [("t8", "resolved")]
    assert p.incident("tenant:t8") is None


def test_state_is_bounded():
    p = NotificationPolicy(PolicyConfig(repeat_interval=0, max_incidents=3, seen_capacity=4, seen_retention=50))
    for i in range(5):
        p.process(tenant_alert(f"t{i}", "open", f"t-{i}"), i)
    assert len(p) == 3 and p.counts["evicted"] == 2
    assert p.incident("tenant:t0") is None and p.incident("tenant:t4") is not None, "least recently touched goes"
    stored = p.drain_changes()
    assert sum(k.startswith("s/") and v is not None for k, v in stored.items()) == 4
    assert stored["i/tenant:t0"] is None, "evicted incidents are deleted from the table"
    p.tick(100)
    assert all(v is None for k, v in p.drain_changes().items() if k.startswith("s/")), "old ids age out"
