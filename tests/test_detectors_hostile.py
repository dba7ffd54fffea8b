"""Hostile timestamps, event-id replays and tenant eviction at the detector level (no Kafka).

* One tenant's far-future (or stepped-forward) clock cannot move the partition watermark, so other
  tenants' windows are neither closed early nor turned into late events: their alerts are unchanged.
* Far-past events cannot reopen closed windows or rewrite the shared first-seen times.
* A replayed ``event_id`` is dropped with a reason.
* Evicting least-recently-seen tenants and restoring them on demand gives exactly the alerts of a run
  that never evicts (property test over caps and streams).
"""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import DetectorConfig, Engine
from detectors import synthetic as syn
from detectors.admission import MAX_MODELS, QuorumClock
from detectors.common import iso
from detectors.stages import REPLAY_REASON, TenantStage


def _dump(alerts: list[dict]) -> list[str]:
    return [orjson.dumps(a, option=orjson.OPT_SORT_KEYS).decode() for a in alerts]


def _run(events: list[dict], **engine_kw) -> tuple[list[dict], Engine]:
    eng = Engine(**engine_kw)
    out = eng.process_many(events)
    return out + eng.finish(), eng


def _scenario() -> list[dict]:
    """An attacker among benign tenants (several of each, so the partition clock has a quorum)."""
    return syn.merge(syn.extraction("atk", start=syn.T0 + 3600, hours=3, rate=0.5, seed=11),
                     syn.chat("chat-1", start=syn.T0, hours=6, seed=13),
                     syn.chat("chat-2", start=syn.T0, hours=6, seed=14),
                     syn.batch("batch-1", start=syn.T0, hours=6, rate=0.3, seed=15))


def _hostile(tid: str, i: int, ts: float, **kw) -> dict:
    ev = syn._event(tid, i, ts, **kw)
    ev["timestamp"] = iso(min(max(ts, -62135596800.0), 253402300799.0))
    return ev


def _insert(events: list[dict], at_fraction: float, extra: list[dict]) -> list[dict]:
    i = int(len(events) * at_fraction)
    return events[:i] + extra + events[i:]


def test_quorum_clock_needs_two_tenants_and_never_goes_back():
    c = QuorumClock(2)
    assert not c.observe("a", 100.0) and c.value == -math.inf, "one tenant alone does not start the clock"
    assert c.observe("b", 50.0) and c.value == 50.0
    assert not c.observe("a", 1e12), "a far-future tenant alone cannot move it"
    assert c.observe("b", 60.0) and c.value == 60.0
    assert not c.observe("c", 55.0) and c.value == 60.0
    assert c.observe("c", 70.0) and c.value == 70.0  # c replaced b as the second-latest tenant
    restored = QuorumClock(2)
    restored.load(c.state())
    assert restored.value == c.value and restored.top == c.top
    single = QuorumClock(1)
    assert single.observe("a", 5.0) and single.value == 5.0


HOSTILE_CLOCKS = {
    # year 9999 from the partition's very first event on (a first event cannot set the clock)
    "year-9999": (0.0, [_hostile("evil", i, 253402300000.0 + i) for i in range(4)]),
    # a confirmed jump: two events within future_confirm_seconds move the tenant's own clock 30 days ahead
    "confirmed-jump": (0.2, [_hostile("evil", i, syn.T0 + 30 * 86400 + i) for i in range(5)]),
    # stepping: each event 23 h (less than max_future_seconds) after the previous one
    "stepping": (0.5, [_hostile("evil", i, syn.T0 + 4000 + 23 * 3600 * i) for i in range(40)]),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_CLOCKS))
def test_far_future_timestamps_of_one_tenant_do_not_suppress_other_tenants(kind):
    base = _scenario()
    clean, _ = _run(base)
    assert any(a["tenant_id"] == "atk" and a["status"] == "open" for a in clean)
    at, extra = HOSTILE_CLOCKS[kind]
    noisy, eng = _run(_insert(base, at, extra))
    assert eng.tenant_stage.max_ts < syn.T0 + 7 * 3600, "the partition clock stayed with the honest tenants"
    kept = [a for a in noisy if a.get("tenant_id") != "evil"]
    assert _dump(kept) == _dump(clean)


def test_with_quorum_one_a_single_tenant_could_suppress_everyone():
    """Why the quorum exists: the old maximum-time clock lets one tenant close everyone's windows early."""
    base = _scenario()
    cfg = DetectorConfig(watermark_quorum=1)
    clean, _ = _run(base, config=cfg)
    step = [_hostile("evil-step", i, syn.T0 + 4000 + 23 * 3600 * i) for i in range(40)]
    noisy, eng = _run(_insert(base, 0.3, step), config=cfg)
    assert eng.stats["late_events"] > 100, "other tenants' events became late"
    assert _dump([a for a in noisy if a.get("tenant_id") == "atk"]) != _dump([a for a in clean if a.get("tenant_id") == "atk"])


def test_far_past_events_neither_reopen_windows_nor_rewrite_shared_first_seen_times():
    stage = TenantStage()
    for i in range(200):
        for t in ("a", "b", "c"):
            stage.process(syn._event(t, i, syn.T0 + 60 * i))
    closed = stage.detector.tenant_info("a")["open_windows"]
    wm = stage.watermark
    start = stage.detector.stream_start
    stage.process(_hostile("a", 10_000, 0.0, model="brand-new-model"))  # 1970
    stage.process(_hostile("newcomer", 0, -62135596800.0, model="brand-new-model"))  # year 1, a new tenant
    info = stage.detector.tenant_info("a")
    assert info["late_events"] == 1 and info["open_windows"] == closed, "counted late, in an open window"
    assert stage.detector.model_first_seen["brand-new-model"] >= wm, "a back-dated event cannot age a model"
    assert stage.detector.model_first_seen["model-a"] == syn.T0
    assert stage.detector.stream_start == start
    assert stage.watermark == wm


def test_model_name_flood_keeps_the_first_seen_table_bounded():
    stage = TenantStage()
    for i in range(MAX_MODELS + 500):
        stage.process(syn._event(f"t{i % 3}", i, syn.T0 + i, model=f"junk-{i}"))
    assert len(stage.detector.model_first_seen) <= MAX_MODELS
    assert len(orjson.dumps(stage.meta())) < 1_000_000, "the checkpoint stays below Kafka's message limit"


def test_replayed_event_ids_are_dropped_with_a_reason():
    events = _scenario()
    clean, _ = _run(events)
    stage_events = []
    for i, ev in enumerate(events):
        stage_events.append(ev)
        if i % 7 == 0:
            stage_events.append(dict(ev))  # gateway retry: same id right after
    eng = Engine()
    out, rejected = [], 0
    for ev in stage_events:
        out += eng.process(ev)
        rejected += eng.tenant_stage.rejected == REPLAY_REASON
    out += eng.finish()
    assert rejected == len(stage_events) - len(events) == eng.stats["replays"]
    assert _dump(out) == _dump(clean)


def _flood_stream(seed: int, flood: int) -> list[dict]:
    base = syn.merge(syn.extraction("atk", start=syn.T0 + 1800, hours=3, rate=0.5, seed=seed),
                     syn.chat("chat-1", start=syn.T0, hours=5, seed=seed + 1),
                     syn.batch("batch-1", start=syn.T0, hours=5, rate=0.3, seed=seed + 2))
    noise = [syn._event(f"flood-{i % (flood // 3 + 1)}", i, syn.T0 + i * (5 * 3600 / flood)) for i in range(flood)]
    return syn.merge(base, noise)


@settings(max_examples=10, deadline=None)
@given(cap=st.integers(1, 40), seed=st.integers(0, 1000), flood=st.integers(10, 600))
def test_eviction_and_restore_give_exactly_the_alerts_of_no_eviction(cap, seed, flood):
    events = _flood_stream(seed, flood)
    plain, _ = _run(events)
    capped, eng = _run(events, max_tenants=cap)
    assert _dump(capped) == _dump(plain)
    if len({e["tenant_id"] for e in events}) > cap + 1:
        assert eng.stats["evicted"] > 0 and eng.stats["restored"] > 0


def test_feedback_reaches_an_evicted_tenant():
    events = _flood_stream(3, 400)
    eng_a, eng_b = Engine(), Engine(max_tenants=3)
    out_a, out_b = [], []
    for ev in events:
        for eng, out in ((eng_a, out_a), (eng_b, out_b)):
            alerts = eng.process(ev)
            out += alerts
            for a in alerts:
                if a["status"] == "open" and a["kind"] == "tenant":
                    out += eng.apply_feedback({"alert_id": a["alert_id"], "label": "false_positive",
                                               "tenant_id": a["tenant_id"]})
    assert any(a["reasons"][0]["signal"] == "analyst_feedback" for a in out_a)
    assert _dump(out_a + eng_a.finish()) == _dump(out_b + eng_b.finish())


def test_an_incident_at_the_end_of_year_9999_ends_without_a_crash():
    """Event times up to 9999-12-31 are valid; alert times computed from them (the quiet period after the
    last suspicious window) lie beyond what RFC 3339 can write and are clamped, not an exception in finish."""
    end = 253402300799.0  # 9999-12-31T23:59:59Z
    engine = Engine()
    alerts = engine.process_many(syn.extraction("y9999", start=end - 3 * 3600, hours=2.5)) + engine.finish()
    assert [a["status"] for a in alerts if a["kind"] == "tenant"][0] == "open"
    assert alerts[-1]["status"] == "resolved" and alerts[-1]["detected_at"] == "9999-12-31T23:59:59.999Z"
    assert iso(-1e15) == "0001-01-01T00:00:00.000Z" and iso(math.inf) == "9999-12-31T23:59:59.999Z"


def test_reloading_a_tenant_whose_first_event_was_late_leaves_the_stream_start_alone():
    """A new tenant whose first event is behind the watermark keeps its own first time but must not move the
    stage's stream start (the new-model signal of every tenant depends on it); its eviction and reload did."""
    base = syn.merge(syn.chat("chat-1", hours=9, seed=13, peak_rate=0.3),
                     syn.chat("chat-2", hours=9, seed=14, peak_rate=0.3),
                     syn.migration("mig", "model-old", switch_at=syn.T0, hours=9),
                     syn.extraction("atk", start=syn.T0 + 20500, hours=1.0, rate=0.5, seed=11, model="model-new"))
    i3 = next(i for i, e in enumerate(base) if e["ts"] >= syn.T0 + 3 * 3600)
    i4 = next(i for i, e in enumerate(base) if e["ts"] >= syn.T0 + 4 * 3600)
    events = (base[:i3] + [syn._event("latecomer", 0, syn.T0 - 1800)] + base[i3:i4]
              + [syn._event("latecomer", 1, base[i4]["ts"])] + base[i4:])

    def run(evict: bool) -> tuple[float, list[str]]:
        stage, out = TenantStage(store={}), []
        for ev in events:
            out += stage.process(ev)
            if evict:
                stage.evict(len(stage.detector))
        return stage.detector.stream_start, _dump(out + stage.finish())

    assert run(True) == run(False)
