"""The stages' change tracking: what a streaming checkpoint must write."""

from __future__ import annotations

from detectors import synthetic as syn
from detectors.stages import TenantStage


def test_a_quiet_tenant_whose_window_another_tenant_closes_counts_as_changed():
    stage = TenantStage()
    stage.process(syn._event("quiet", 0, syn.T0))
    assert stage.drain_dirty() == {"quiet"}
    assert stage.drain_dirty() == set(), "draining resets"
    for i in range(60):  # an hour of two other tenants' traffic moves the watermark past quiet's window
        stage.process(syn._event("busy", i, syn.T0 + 60 * (i + 1)))  # (the clock needs watermark_quorum = 2 tenants)
        stage.process(syn._event("busy2", i, syn.T0 + 60 * (i + 1)))
    assert stage.drain_dirty() == {"busy", "busy2", "quiet"}
    assert not stage.detector.tenant_info("quiet")["open_windows"]


def test_restored_and_feedback_tenants_count_as_changed():
    stage = TenantStage()
    opened = [a for e in syn.extraction("t1", hours=1) for a in stage.process(e) if a["status"] == "open"]
    snap = stage.detector.snapshot("t1")
    fresh = TenantStage()
    fresh.detector.restore("t1", snap)
    assert fresh.drain_dirty() == {"t1"}
    fresh.detector.apply_feedback({"alert_id": "t-not-one-of-its-alerts", "label": "true_positive", "tenant_id": "t1"})
    assert fresh.detector.feedback_result == "unmatched" and fresh.drain_dirty() == set()
    fresh.detector.apply_feedback({"alert_id": opened[0]["alert_id"], "label": "true_positive", "tenant_id": "t1"})
    assert fresh.detector.feedback_result == "applied" and fresh.drain_dirty() == {"t1"}


def _cluster_run(summaries_and_marks, restore_at: set[int]) -> list[str]:
    """Feed a ClusterStage; at the given steps replace it by a restore of its own snapshot."""
    import orjson

    from detectors.stages import ClusterStage

    stage, out = ClusterStage(), []
    for i, (kind, item) in enumerate(summaries_and_marks):
        if i in restore_at:
            stage = ClusterStage.restore(stage.snapshot())
        out += stage.process(item) if kind == "s" else stage.advance(item)
    out += stage.finish()
    return [orjson.dumps(a, option=orjson.OPT_SORT_KEYS).decode() for a in out]


def test_cluster_stage_snapshot_restores_to_identical_behaviour():
    events = syn.merge(syn.hydra("hyd", n_tenants=10, start=syn.T0 + 3600, hours=4, seed=15),
                       syn.chat("chat-1", start=syn.T0, hours=6, seed=13),
                       syn.extraction("atk-1", start=syn.T0, hours=3, rate=1.0, seed=11))
    tenants, feed = TenantStage(), []
    for ev in events:
        tenants.process(ev)
        feed += [("s", s) for s in tenants.drain_summaries()]
        feed.append(("w", tenants.watermark))
    tenants.finish()
    feed += [("s", s) for s in tenants.drain_summaries()]
    straight = _cluster_run(feed, set())
    assert any('"kind":"cluster"' in a for a in straight), "the scenario opens a cluster incident"
    steps = set(range(0, len(feed), max(1, len(feed) // 7)))
    assert _cluster_run(feed, steps) == straight


def test_cluster_snapshot_refuses_foreign_code_and_other_versions():
    import pickle
    import struct
    import zlib

    import pytest

    from detectors.stages import ClusterStage

    evil = b"DGC" + struct.pack("<H", 1) + zlib.compress(pickle.dumps(("v", 0.0, print)))
    with pytest.raises(ValueError, match="may not contain"):
        ClusterStage.restore(evil)
    good = ClusterStage().snapshot()
    with pytest.raises(ValueError, match="version"):
        ClusterStage.restore(good[:3] + struct.pack("<H", 99) + good[5:])
    with pytest.raises(ValueError, match="not a distillguard cluster snapshot"):
        ClusterStage.restore(b"junk")


def _tenant_run(events, restore_at: set[int]) -> list[str]:
    """Feed a TenantStage; at the given steps replace it by a new one restored the way a worker restores a
    partition: the tenants' snapshots and the stage's ``meta()`` (through JSON, as in the state table)."""
    import orjson

    stage, table, out = TenantStage(), {}, []
    for i, ev in enumerate(events):
        if i in restore_at:
            for tid in stage.drain_dirty():
                table[tid] = stage.detector.snapshot(tid)
            meta = orjson.loads(orjson.dumps(stage.meta()))
            stage = TenantStage()
            for tid, snap in table.items():
                stage.detector.restore(tid, snap)
            stage.load_meta(meta)
            stage.drain_dirty()
        out += stage.process(ev)
    out += stage.finish()
    return [orjson.dumps(a, option=orjson.OPT_SORT_KEYS).decode() for a in out]


def test_tenant_stage_restored_from_a_checkpoint_closes_windows_where_the_run_it_replaces_did():
    """A worker that restarts from a checkpoint re-sends the alerts after it; they must be byte-identical to
    the first ones, so the restored stage must advance its tenants at the same watermarks (not one tick
    later, which let a window take a late event the first run had counted after the window closed)."""
    events = syn.merge(syn.hydra("hyd", n_tenants=8, start=syn.T0 + 1800, hours=3, seed=15),
                       syn.chat("chat-1", start=syn.T0, hours=4, seed=13),
                       syn.extraction("atk-1", start=syn.T0, hours=3, rate=1.0, seed=11))
    straight = _tenant_run(events, set())
    assert len(straight) >= 5
    for first in (101, 333, 777, 1499, 2003):
        cuts = set(range(first, len(events), 1009))
        assert _tenant_run(events, cuts) == straight, f"restored at {sorted(cuts)[:3]}..."


def test_a_restored_tenant_stage_closes_windows_in_the_same_order_with_late_and_future_events():
    """Late and far-future events make tenants close their own windows between watermark ticks; the stale
    heap entries that leaves behind must not decide when a tenant's later window closes, or a stage restored
    from a checkpoint (entries for open windows only) sends the same alerts in another order (this stream
    did before the fix)."""
    import random

    chats = [syn.chat(f"chat-{k}", start=syn.T0, hours=4, seed=100 + k, peak_rate=0.5) for k in range(30)]
    base = syn.merge(syn.hydra("hyd", n_tenants=8, start=syn.T0 + 1800, hours=3, seed=15),
                     syn.extraction("atk-1", start=syn.T0, hours=3, rate=1.0, seed=11), *chats)
    rng, events = random.Random(6), []
    for ev in base:
        events.append(ev)
        r = rng.random()
        if r < 0.01:  # a late copy
            events.append(dict(ev, event_id=ev["event_id"] + "-late", ts=round(ev["ts"] - rng.uniform(400, 1500), 3)))
        elif r < 0.0145:  # one far-future timestamp (quarantined)
            events.append(dict(ev, event_id=ev["event_id"] + "-fut", ts=round(ev["ts"] + 3 * 86400 + rng.uniform(0, 99), 3)))
        elif r < 0.015:  # a confirmed clock jump of that tenant
            f = round(ev["ts"] + 2 * 86400, 3)
            events += [dict(ev, event_id=ev["event_id"] + "-fa", ts=f), dict(ev, event_id=ev["event_id"] + "-fb", ts=f + 10)]
    straight = _tenant_run(events, set())
    assert len(straight) >= 5
    for first in (101, 777):
        assert _tenant_run(events, set(range(first, len(events), 1009))) == straight


def _lazy_run(events, restart_at: set[int]) -> list[str]:
    """As a worker restarts a partition (streams/pipeline.py ``runtime()``): changed tenants to the state table,
    then a new stage over that table with ``meta()`` and ``pending()`` loaded; tenants come back when something
    needs them."""
    import orjson

    table: dict[str, bytes] = {}
    stage, out = TenantStage(store=table), []
    for i, ev in enumerate(events):
        if i in restart_at:
            for tid in sorted(stage.drain_dirty()):
                if tid in stage.detector:
                    table[tid] = stage.detector.snapshot(tid)
            meta = orjson.loads(orjson.dumps(stage.meta()))
            pending = orjson.loads(orjson.dumps(stage.pending()))
            stage = TenantStage(store=table)
            stage.load_meta(meta)
            stage.load_pending(pending)
        out += stage.process(ev)
    out += stage.finish()
    return [orjson.dumps(a, option=orjson.OPT_SORT_KEYS).decode() for a in out]


def test_a_lazily_restored_stage_still_closes_and_resolves_tenants_that_went_quiet():
    """An attacker stops right before a checkpoint: its last window is open and its incident will resolve two
    hours later on the watermark. A restarted worker restores tenants only when an event names them, so the
    checkpoint carries the stage's pending window closes and open incidents (without them: no resolution)."""
    events = syn.merge(syn.extraction("atk", start=syn.T0, hours=1.0, rate=1.0, seed=11),
                       syn.hydra("hyd", n_tenants=6, start=syn.T0 + 1800, hours=2, seed=15),
                       syn.chat("chat-1", start=syn.T0, hours=6, seed=13, peak_rate=0.3),
                       syn.chat("chat-2", start=syn.T0, hours=6, seed=14, peak_rate=0.3))
    straight = _lazy_run(events, set())
    assert any('"status":"resolved"' in a and '"tenant_id":"atk"' in a for a in straight)
    cut = next(i for i, e in enumerate(events) if e["ts"] >= syn.T0 + 3605)  # atk's last window still open
    assert _lazy_run(events, {cut}) == straight
    assert _lazy_run(events, set(range(cut % 997, len(events), 997))) == straight


def test_a_tenant_restored_only_to_close_its_window_leaves_memory_first():
    """Restored by the watermark (not by an event of its own), a tenant is the next to be evicted; one restored
    for its own event rejoins the least-recently-seen order at the recent end."""
    store: dict[str, bytes] = {}
    stage = TenantStage(max_tenants=4, store=store)
    t = syn.T0
    for i in range(4):
        stage.process(syn._event(f"t{i}", 0, t + i))
    assert stage.evict(2) == 2 and set(store) == {"t0", "t1"}  # both evicted with their window open
    stage.process(syn._event("t1", 1, t + 10))  # its own event: restored into the recent end of the order
    assert list(stage.lru.order) == ["t2", "t3", "t1"] and not stage.lru.cold
    stage.advance(t + 900)  # closes t0's window: restored to close it
    assert "t0" in stage.detector and list(stage.lru.cold) == ["t0"]
    assert stage.evict(1) == 1 and "t0" not in stage.detector and not stage.lru.cold
    assert list(stage.lru.order) == ["t2", "t3", "t1"]
    stage.process(syn._event("t0", 1, t + 1000))  # an event: from the store into the order, not the cold set
    assert list(stage.lru.order)[-1] == "t0" and not stage.lru.cold
