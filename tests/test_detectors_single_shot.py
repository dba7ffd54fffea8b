"""Mixed windows: single-shot extraction among conversational cover traffic is scored on its own."""

from __future__ import annotations

import math
import random
import struct
from collections import Counter
from typing import Any

import orjson

from detectors import Engine, TenantDetector
from detectors import synthetic as S
from detectors.common import iso
from detectors.window import (
    SINGLE_SHOT_MIN,
    Window,
    single_shot_features,
    window_features,
)


def _window(n_chat: int, n_single: int) -> Window:
    """A window with ``n_chat`` conversational requests and ``n_single`` single-shot CoT requests cut at the cap."""
    det = TenantDetector()
    events = []
    for i in range(n_chat):
        events.append(S._event("t", i, S.T0 + i, session_id="s1", turn_index=1 + i, temperature=0.7,
                               max_tokens=4096, output_tokens=200))
    for j in range(n_single):
        events.append(S._event("t", 100 + j, S.T0 + 50 + j, temperature=0.0, cot_elicitation=True, max_tokens=2048,
                               output_tokens=2048, stop_reason="max_tokens", reasoning_tokens=3000))
    for e in events:
        det.process(e)
    return det._tenants["t"].cur


def test_single_shot_features_are_shares_of_the_single_shot_requests() -> None:
    w = _window(n_chat=10, n_single=6)
    x = window_features(w, [0.0] * 24, 0.0, 0)
    xs = single_shot_features(w, x)
    assert xs is not None
    assert x[1] == 6 / 16 and xs[1] == 1.0  # cot: diluted by the chat in the whole window, full among single-shot
    assert x[9] == 6 / 16 and xs[9] == 1.0  # cap
    assert xs[11] == 1.0 and x[11] == 6 / 16  # temperature 0
    assert xs[13] == 1.0 and xs[14] == 0.0 and xs[25] == 1.0  # no session, no turns, joint
    assert xs[3:9] == x[3:9]  # prompt structure and topics stay window-wide


def test_single_shot_features_only_for_mixed_windows_with_enough_single_shot_requests() -> None:
    few = _window(n_chat=10, n_single=SINGLE_SHOT_MIN - 1)
    assert single_shot_features(few, window_features(few, [0.0] * 24, 0.0, 0)) is None
    only = _window(n_chat=0, n_single=8)
    assert single_shot_features(only, window_features(only, [0.0] * 24, 0.0, 0)) is None


def _alerts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    eng = Engine()
    return eng.process_many(events) + eng.finish()


def test_half_extraction_behind_conversational_cover_opens_a_tenant_alert() -> None:
    """One tenant, 40 % clean single-shot extraction mixed into multi-turn chat from the same accounts."""
    mixed = S.hydra("mix", n_tenants=1, extraction_share=0.4, rate=0.05)
    background = S.chat("bg", hours=12, peak_rate=0.4, seed=4)
    alerts = _alerts(S.merge(mixed, background))
    opens = [a for a in alerts if a["kind"] == "tenant" and a["status"] == "open"]
    assert [a["tenant_id"] for a in opens] == ["mix-000"]
    signals = [r["signal"] for r in opens[0]["reasons"]]
    assert signals[-1] == "single_shot" and {"cot", "cap"} <= set(signals)
    assert "single-shot requests" in opens[0]["reasons"][-1]["text"]


def test_chat_with_many_single_shot_requests_does_not_alert() -> None:
    """Chat tenants that send a third of their requests outside sessions (8 % reasoning prompts, no
    temperature 0, no cap) stay quiet over two days, although their mixed windows are scored both ways."""
    rng = random.Random(5)
    events = S.merge(*(S.chat(f"c{k}", hours=48, peak_rate=0.6, seed=30 + k) for k in range(4)))
    for e in events:
        if rng.random() < 0.35:
            del e["session_id"], e["turn_index"]
    per_window = Counter((e["tenant_id"], e["ts"] // 300) for e in events if "session_id" not in e)
    assert sum(1 for c in per_window.values() if c >= SINGLE_SHOT_MIN) > 100  # the single-shot path is exercised
    assert not [a for a in _alerts(events) if a["status"] == "open"]


def test_version_1_snapshots_still_load() -> None:
    """Snapshots written before the single-shot counters existed restore with those counters at zero."""
    det = TenantDetector()
    for e in S.hydra("mix", n_tenants=1, hours=1.0):
        det.process(e)
    snap = det.snapshot("mix-000")
    doc = orjson.loads(snap[5:])
    doc["wins"] = [vals[:-Window._ADDED] for vals in doc["wins"]]
    old = snap[:3] + struct.pack("<H", 1) + orjson.dumps(doc)
    again = TenantDetector()
    again.restore("mix-000", old)
    w = next(iter(again._tenants["mix-000"].wins.values()))
    assert w.n > 0 and w.n_ss_cot == 0 and w.s_ss_out == 0


def _cover_run(det: TenantDetector, tid: str, windows: int, n_chat: int, n_single: int, t0: float,
               first: int = 0) -> list[dict[str, Any]]:
    """Windows ``first`` .. ``windows - 1``, each with ``n_chat`` conversational and ``n_single`` single-shot
    CoT requests cut at the cap (fewer single-shot requests than one window needs on its own)."""
    out: list[dict[str, Any]] = []
    for i in range(first, windows):
        base = t0 + 300 * i
        for j in range(n_chat):
            out += det.process(S._event(tid, 100 * i + j, base + 10 + j, session_id=f"s{i}", turn_index=1 + j,
                                        temperature=0.7, max_tokens=4096, output_tokens=200))
        for j in range(n_single):
            out += det.process(S._event(tid, 100 * i + 50 + j, base + 100 + 30 * j, temperature=0.0,
                                        cot_elicitation=True, max_tokens=2048, output_tokens=2048,
                                        stop_reason="max_tokens", reasoning_tokens=3000))
    return out


def test_single_shot_trail_pools_the_recent_windows_single_shot_requests() -> None:
    """Two single-shot requests a window are too few to judge; three windows' worth are judged together,
    with the volume feature per window rather than the run's total."""
    w = _window(n_chat=8, n_single=2)
    x = window_features(w, [0.0] * 24, 0.0, 0)
    assert single_shot_features(w, x) is None
    earlier = (4, 4, 4, 4, 4, 400, 8192, 12000, 4)  # two earlier windows' single-shot counters, summed
    xs = single_shot_features(w, x, earlier, 3.0)
    assert xs is not None
    assert xs[1] == 1.0 and xs[9] == 1.0 and xs[25] == 1.0
    assert abs(xs[0] - math.log1p(6 / 3.0)) < 1e-12


def test_single_shot_trail_needs_single_shot_requests_in_the_window_itself() -> None:
    w = _window(n_chat=8, n_single=0)
    x = window_features(w, [0.0] * 24, 0.0, 0)
    assert single_shot_features(w, x, (10, 10, 10, 10, 10, 400, 20000, 30000, 10), 3.0) is None


def test_sparse_single_shot_extraction_behind_cover_opens_through_the_trail() -> None:
    """Two or three extraction requests a window among eight chat turns: no window has enough single-shot
    requests to be scored on them alone, and the whole windows look like chat, yet the tenant opens an
    incident within the first half hour; its reasons say which requests the shares are of. The same run
    without the extraction stays quiet."""
    det = TenantDetector()
    alerts = _cover_run(det, "cov", windows=12, n_chat=8, n_single=3, t0=S.T0) + det.finish()
    opens = [a for a in alerts if a["status"] == "open"]
    assert len(opens) == 1
    assert opens[0]["window_end"] <= iso(S.T0 + 1800)
    last = opens[0]["reasons"][-1]
    assert last["signal"] == "single_shot" and "from the 2 windows before it" in last["text"]
    quiet = TenantDetector()
    assert not _cover_run(quiet, "cov", windows=12, n_chat=8, n_single=0, t0=S.T0) + quiet.finish()


def test_single_shot_trail_survives_a_snapshot() -> None:
    """The trail is part of the tenant's state: a snapshot and restore between two windows changes no alert."""
    full = TenantDetector()
    want = _cover_run(full, "cov", windows=12, n_chat=8, n_single=3, t0=S.T0) + full.finish()
    split = TenantDetector()
    got = _cover_run(split, "cov", windows=3, n_chat=8, n_single=3, t0=S.T0)
    assert split._tenants["cov"].ss_trail  # the two closed windows' single-shot requests
    again = TenantDetector()
    again.restore("cov", split.snapshot("cov"))
    assert again._tenants["cov"].ss_trail == split._tenants["cov"].ss_trail
    got += _cover_run(again, "cov", windows=12, n_chat=8, n_single=3, t0=S.T0, first=3) + again.finish()
    assert got == want and want
