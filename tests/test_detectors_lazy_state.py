"""Lazy per-tenant state: a new tenant shares the population prior (baseline, drift test) and has no Bloom
filter until it needs one; snapshots leave those out (version 3), and every other field that still holds a new
tenant's value (version 4); older snapshots still restore."""

from __future__ import annotations

import math
import struct
from array import array
from typing import Any

import orjson

from detectors import BaselineDetector, Engine, TenantDetector
from detectors import synthetic as S
from detectors.window import Window

FLOOD = [S._event(f"fl-{i:04d}", 0, S.T0 + 30.0 * i) for i in range(200)]


def _mixed() -> list[dict[str, Any]]:
    return S.merge(S.extraction("x", hours=1.5, seed=3), S.chat("c", hours=2.0, seed=4),
                   S.hydra("h", n_tenants=4, hours=2.0), FLOOD)


def _alerts(events: list[dict[str, Any]], det: TenantDetector) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in events:
        out += det.process(e)
    return out + det.finish()


def test_new_tenants_share_the_prior_and_their_snapshot_leaves_it_out() -> None:
    det = TenantDetector()
    for e in FLOOD[:20]:
        det.process(e)
    det.advance(S.T0 + 3600)
    st = det._tenants["fl-0000"]
    assert st.base is det._prior_base and st.drift is det._prior_drift and st.bloom is None and st.ring is None
    det.process(S._event("open", 0, S.T0 + 3600))
    assert det._tenants["open"].hours is None and st.hours is not None  # allocated by the first window close
    assert st.suppressed == () and st.inc_evidence == ()
    assert st.carry is not None and st.carry.n == 1  # the pooled window
    snap = det.snapshot("fl-0000")
    doc = orjson.loads(snap[5:])
    assert struct.unpack_from("<H", snap, 3)[0] == 4
    assert not {"base", "drift", "bloom", "ring", "suppressed", "inc_evidence", "ids", "wins"} & set(doc)
    other = TenantDetector()
    other.restore("fl-0000", snap)
    again = other._tenants["fl-0000"]
    assert again.base is other._prior_base and again.drift is other._prior_drift and again.bloom is None
    assert other.snapshot("fl-0000") == snap


def test_first_write_takes_a_copy_and_the_shared_prior_never_changes() -> None:
    det = TenantDetector()
    fresh = BaselineDetector(**det._base_kw)
    drift0 = det._prior_drift.to_list()
    alerts = _alerts(_mixed(), det)
    assert any(a["status"] == "open" and a["tenant_id"] == "x" for a in alerts)
    assert det._prior_base._state.tolist()[:-1] == fresh._state.tolist()[:-1] and math.isnan(det._prior_base._state[-1])
    assert det._prior_drift.to_list() == drift0
    x, c = det._tenants["x"], det._tenants["c"]
    assert x.base is det._prior_base  # an attacker's windows never train its baseline: it keeps sharing the prior
    assert c.base is not det._prior_base and x.drift is not det._prior_drift and c.drift is not det._prior_drift
    assert x.bloom is not None and c.bloom is not None
    assert {"drift", "bloom"} <= set(orjson.loads(det.snapshot("x")[5:])) and "base" not in orjson.loads(det.snapshot("x")[5:])
    assert {"base", "drift", "bloom"} <= set(orjson.loads(det.snapshot("c")[5:]))


def test_lazy_state_gives_the_alerts_of_eager_state() -> None:
    """Each tenant owning a copy of the prior from the start (the old behaviour) changes no alert."""
    lazy = _alerts(_mixed(), TenantDetector())
    eager = TenantDetector()
    new_tenant = eager._new_tenant

    def owning(tid: str, ts: float):  # type: ignore[no-untyped-def]
        st = new_tenant(tid, ts)
        st.base, st.drift, st.bloom = eager._prior_base.copy(), eager._prior_drift.copy(), bytearray(1024)
        st.ring, st.suppressed, st.inc_evidence = array("Q", bytes(32)), [], []
        st.hours = array("d", bytes(8 * 24))
        return st

    eager._new_tenant = owning  # type: ignore[method-assign]
    assert _alerts(_mixed(), eager) == lazy and lazy


def _as_version_2(det: TenantDetector, snap: bytes) -> bytes:
    """What the third session's build wrote for the same state: every field present, version 2."""
    doc = orjson.loads(_as_version_3(det, snap)[5:])
    prior = {"base": orjson.loads(orjson.dumps(det._prior_base._state.tolist())), "drift": det._prior_drift.to_list(),
             "bloom": "00" * 1024}
    full: dict[str, Any] = {}
    for k, v in doc.items():
        if k == "hours":
            full["base"], full["drift"] = doc.get("base", prior["base"]), doc.get("drift", prior["drift"])
        elif k == "bloom_n":
            full["bloom"] = doc.get("bloom", prior["bloom"])
        if k not in prior:
            full[k] = v
    return snap[:3] + struct.pack("<H", 2) + orjson.dumps(full)


def _as_version_3(det: TenantDetector, snap: bytes) -> bytes:
    """What the fourth to eleventh sessions' builds wrote for the same state: every field but base, drift and
    bloom present (those three only when the tenant had its own), version 3."""
    st = det._tenants[orjson.loads(snap[5:])["tid"]]
    doc = orjson.loads(snap[5:])
    full: dict[str, Any] = {"tid": st.tid, "first_ts": st.first_ts, "max_ts": st.max_ts,
                            "closed_until": doc.get("closed_until", "-inf"), "pending_future": st.pending_future,
                            "wins": doc.get("wins", [])}
    full.update({k: doc[k] for k in ("base", "drift") if k in doc})
    full.update({"hours": doc.get("hours", [0.0] * 24), "hours_day": st.hours_day, "topics_mask": st.topics_mask,
                 "ring": doc.get("ring", [0, 0, 0, 0]), "ring_i": st.ring_i})
    full.update({k: doc[k] for k in ("bloom",) if k in doc})
    for k in ("bloom_n", "recent", "n_active", "drift_at", "run_start", "low_run"):
        full[k] = getattr(st, k)
    full["last_x"] = doc.get("last_x")
    for k in ("inc_start", "inc_seq", "inc_sev", "inc_score", "inc_events", "inc_reported", "inc_first_seen",
              "inc_last_susp", "inc_evidence", "inc_pattern", "last_pattern"):
        full[k] = getattr(st, k)
    full["cooldown_until"] = doc.get("cooldown_until", "-inf")
    for k in ("suppressed", "flagged", "n_late", "n_future", "n_suppressed"):
        full[k] = getattr(st, k)
    full.update({"carry": doc.get("carry"), "ids": st.ids.tolist(), "ids_i": st.ids_i})
    full.update({k: doc[k] for k in ("ss_trail", "last_inc") if k in doc})
    return snap[:3] + struct.pack("<H", 3) + orjson.dumps(full)


def test_a_new_tenants_values_are_the_ones_a_snapshot_leaves_out() -> None:
    """``_PLAIN`` (the fields a version 4 snapshot omits while they hold a new tenant's value) is what
    ``_new_tenant`` sets, value and type: a field restored from its absence is the field never written."""
    from detectors.tenant import _PLAIN

    st = TenantDetector()._new_tenant("t", S.T0)
    for k, new in _PLAIN:
        assert getattr(st, k) == new and type(getattr(st, k)) is type(new), k
    det = TenantDetector()
    det._new_tenant("t", S.T0)  # a tenant with no event at all: the three fields that identify it
    assert set(orjson.loads(det.snapshot("t")[5:])) == {"tid", "first_ts", "max_ts"}


def test_a_one_event_tenants_snapshot_is_its_window_and_its_id() -> None:
    from detectors.stages import TenantStage

    stage = TenantStage()
    stage.process(S._event("fl-1", 0, S.T0 + 5))
    snap = stage.detector.snapshot("fl-1")
    assert set(orjson.loads(snap[5:])) == {"tid", "first_ts", "max_ts", "wins", "ids", "ids_i"}
    assert len(snap) < 400  # version 3 wrote about 950 bytes for it
    other = TenantStage()
    other.detector.restore("fl-1", snap)
    assert other.detector.snapshot("fl-1") == snap
    assert other.process(S._event("fl-1", 0, S.T0 + 6)) == [] and other.rejected  # its event id came back too


def _half_run() -> tuple[list[dict[str, Any]], int, list[dict[str, Any]], TenantDetector, TenantDetector,
                         list[dict[str, Any]]]:
    """The first half of a mixed stream through a detector, and an empty one (sharing its first-seen times) that
    a test restores the first one's snapshots into: (events, cut, all alerts of one run, det, new, alerts so far)."""
    events = _mixed()
    cut = len(events) // 2
    want = _alerts(events, TenantDetector())
    shared: dict[str, float] = {}
    det = TenantDetector(model_first_seen=shared)
    out: list[dict[str, Any]] = []
    for e in events[:cut]:
        out += det.process(e)
    new = TenantDetector(model_first_seen=shared)
    new.stream_start = det.stream_start
    return events, cut, want, det, new, out


def test_version_3_snapshots_restore_to_identical_behaviour() -> None:
    events, cut, want, det, new, out = _half_run()
    for tid in det.tenant_ids:
        snap = det.snapshot(tid)
        old = _as_version_3(det, snap)
        new.restore(tid, old)
        again = orjson.loads(new.snapshot(tid)[5:])
        for k in ("suppressed", "inc_evidence"):  # restored from JSON as an empty list, not the shared ()
            if again.get(k) == []:
                del again[k]
        assert again == orjson.loads(snap[5:])  # the state of restoring the version 4 snapshot
    assert any(det._tenants[t].inc_start is not None for t in det.tenant_ids)  # an open incident went across
    for e in events[cut:]:
        out += new.process(e)
    assert out + new.finish() == want


def test_version_2_snapshots_restore_to_identical_behaviour() -> None:
    events, cut, want, det, new, out = _half_run()
    kinds = set()
    for tid in det.tenant_ids:
        old = _as_version_2(det, det.snapshot(tid))
        doc = orjson.loads(old[5:])
        assert list(doc)[:9] == ["tid", "first_ts", "max_ts", "closed_until", "pending_future", "wins", "base",
                                 "drift", "hours"]
        new.restore(tid, old)
        st = new._tenants[tid]
        kinds.add(st.base is new._prior_base)
        assert (st.bloom is None) == (doc["bloom_n"] == 0)
    assert kinds == {True, False}  # both prior-valued (shared again) and own baselines were restored
    for e in events[cut:]:
        out += new.process(e)
    assert out + new.finish() == want


def test_a_pool_of_one_window_is_that_window() -> None:
    """The sparse pool takes a tenant's first small window as it is: the same as merging it into an empty one."""
    det = TenantDetector()
    windows = []
    for e in _mixed():
        det.process(e)
        st = det._tenants[e["tenant_id"]]
        if st.cur is not None:
            windows.append(st.cur)
    assert len({id(w) for w in windows}) > 100
    for w in {id(w): w for w in windows}.values():
        empty = Window(w.start)
        empty.merge(w)
        assert empty.to_list() == w.to_list()


def test_engine_with_a_tenant_cap_matches_engine_without() -> None:
    def run(**kw: Any) -> list[dict[str, Any]]:
        eng = Engine(**kw)
        return eng.process_many(_mixed()) + eng.finish()

    assert run(max_tenants=20) == run()


def test_a_frozen_baseline_scores_like_its_copy_and_does_not_learn() -> None:
    import random

    import pytest

    rng = random.Random(3)
    det = TenantDetector()
    frozen, live = det._prior_base, det._prior_base.copy()
    for _ in range(200):
        x = [rng.uniform(-1.0, 3.0) for _ in range(frozen.n_features)]
        assert frozen.zvector(x) == live.zvector(x) and frozen.deviation(frozen.zvector(x)) == live.deviation(live.zvector(x))
    assert frozen.zvector([1.0]) == live.zvector([1.0])  # another length: the general path
    with pytest.raises(RuntimeError):
        frozen.learn_values([0.0] * frozen.n_features)
    with pytest.raises(RuntimeError):
        frozen.load_bytes(live.to_bytes())
    live.learn_values([0.5] * live.n_features)  # a copy learns; the frozen prior is unchanged
    assert live._state.tolist()[:-1] != frozen._state.tolist()[:-1]
    assert BaselineDetector(**det._base_kw)._state.tolist()[:-1] == frozen._state.tolist()[:-1]


def test_a_user_agent_named_inf_survives_a_snapshot() -> None:
    """Only numeric window slots hold infinities: the string "inf" as a user agent, IP prefix or payment
    fingerprint comes back as that string (it used to come back as a float and crash the window close)."""
    events = [S._event("t", i, S.T0 + i, user_agent="inf", client_ip_prefix="-inf", asn=1, payment_fingerprint="inf")
              for i in range(3)]
    det = TenantDetector()
    for e in events:
        det.process(e)
    snap = det.snapshot("t")
    other = TenantDetector()
    other.restore("t", snap)
    w = next(iter(other._tenants["t"].wins.values()))
    assert (w.ua, w.pfx, w.pay) == ("inf", "-inf", "inf") and other.snapshot("t") == snap
    assert other.finish() == det.finish()
    assert [s.key for s in other.drain_summaries()] == [s.key for s in det.drain_summaries()]


def test_a_window_of_late_events_only_keeps_its_infinite_first_and_last_times() -> None:
    """A window that only late events reached has no in-order event (first_ts inf, last_ts -inf): a snapshot
    writes those as strings (JSON has no infinity) and restores them as floats."""
    det = TenantDetector()
    det.process(S._event("t", 0, S.T0))
    w = Window(S.T0 + 9000.0)  # such a window, built directly
    w.n = w.n_late = 1
    det._tenants["t"].wins[w.start] = w
    snap = det.snapshot("t")
    assert b'"inf"' in snap and b'"-inf"' in snap
    other = TenantDetector()
    other.restore("t", snap)
    back = other._tenants["t"].wins[w.start]
    assert (back.first_ts, back.last_ts) == (math.inf, -math.inf) and other.snapshot("t") == snap
