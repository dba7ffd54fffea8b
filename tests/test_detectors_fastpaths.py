"""The engine's hand-tuned hot paths agree with the plain, generic code they replaced.

Each fast path (spelled-out counters, positional arguments, cached state) is checked here against a
reference written the obvious way, so a field added to one side and not the other fails a test instead
of silently changing alerts.
"""

from __future__ import annotations

import math
import sys
import zlib
import random
from dataclasses import fields
from typing import Any

from detectors import synthetic as S
from detectors.admission import QuorumClock
from detectors.tenant import KeySummary, TenantDetector
from detectors.window import Window


def _merge_reference(a: Window, o: Window) -> None:
    """Window.merge as it was written before it was spelled out (a loop over the counter names)."""
    for s in Window._SUMS:
        setattr(a, s, getattr(a, s) + getattr(o, s))
    a.first_ts = min(a.first_ts, o.first_ts)
    a.last_ts = max(a.last_ts, o.last_ts)
    for name, cap in (("tmpl", 16), ("topics", 24)):
        src = getattr(o, name)
        if src:
            dst = getattr(a, name)
            if dst is None:
                setattr(a, name, dict(src))
                continue
            for k, v in src.items():
                if k in dst:
                    dst[k] += v
                elif len(dst) < cap:
                    dst[k] = v
    for acc in o.accts:
        if len(a.accts) < 8 and acc not in a.accts:
            a.accts.append(acc)
    a.ev = (a.ev + o.ev)[:12]
    a.ev_any = (a.ev_any + o.ev_any)[:4]
    if a.net is None:
        a.net, a.pfx = o.net, o.pfx
    if a.ua is None:
        a.ua = o.ua
    if a.pay is None:
        a.pay = o.pay


def _random_window(rng: random.Random, start: float) -> Window:
    w = Window(start)
    for i, s in enumerate(Window._SUMS):  # distinct values per counter: a counter left out shows
        setattr(w, s, rng.randrange(1, 50) * 1000 + i if not s.startswith("s_dt") else rng.random() * 100 + i)
    if rng.random() < 0.7:
        w.first_ts, w.last_ts = start + rng.random() * 300, start + rng.random() * 300
    if rng.random() < 0.6:
        w.tmpl = {f"t{rng.randrange(30)}": rng.randrange(1, 9) for _ in range(rng.randrange(1, 20))}
    if rng.random() < 0.6:
        w.topics = {f"p{rng.randrange(40)}": rng.randrange(1, 9) for _ in range(rng.randrange(1, 30))}
    w.accts = [f"a{rng.randrange(12)}" for _ in range(rng.randrange(0, 8))]
    w.accts = list(dict.fromkeys(w.accts))
    w.ev = [f"e{rng.randrange(100)}" for _ in range(rng.randrange(0, 12))]
    w.ev_any = [f"f{rng.randrange(100)}" for _ in range(rng.randrange(0, 4))]
    if rng.random() < 0.5:
        w.net, w.pfx = rng.randrange(100), f"pfx{rng.randrange(5)}"
    if rng.random() < 0.5:
        w.ua = f"ua{rng.randrange(3)}"
    if rng.random() < 0.3:
        w.pay = f"pay{rng.randrange(3)}"
    return w


def test_window_merge_adds_every_counter_like_the_generic_loop() -> None:
    assert set(Window._SUMS) <= set(Window.__slots__)
    rng = random.Random(5)
    for _ in range(300):
        seed = rng.random()
        fast, slow = _random_window(random.Random(seed), 0.0), _random_window(random.Random(seed), 0.0)
        for k in range(rng.randrange(1, 5)):
            o_seed = rng.random()
            fast.merge(_random_window(random.Random(o_seed), 300.0 * (k + 1)))
            _merge_reference(slow, _random_window(random.Random(o_seed), 300.0 * (k + 1)))
        assert fast.to_list() == slow.to_list()


def _zvector_reference(values: list[float], state: Any, floor: float = 0.05) -> list[float]:
    k = len(values)
    out = []
    for i in range(k):
        var = state[k + i]
        sd = math.sqrt(var) if var > 0.0 else 0.0
        out.append((values[i] - state[i]) / (sd if sd > floor else floor))
    return out


def test_zvector_of_a_learning_baseline_matches_the_indexed_formula() -> None:
    rng = random.Random(9)
    base = TenantDetector()._prior_base.copy()
    k = base.n_features
    for _ in range(200):
        x = [rng.uniform(-1.0, 3.0) for _ in range(k)]
        assert base.zvector(x) == _zvector_reference(x, base._state)
        base.learn_values([rng.choice((0.0, 0.0, rng.random())) for _ in range(k)])
    base._state[k + 3] = 0.0  # a zero and a negative variance take the floor
    base._state[k + 4] = -1e-12
    x = [0.5] * k
    assert base.zvector(x) == _zvector_reference(x, base._state)


class _ClockReference:
    """QuorumClock.observe before it skipped the recomputation for a tenant above the quorum-th clock."""

    def __init__(self, quorum: int) -> None:
        self.quorum, self.top, self.kth, self.value = quorum, {}, -math.inf, -math.inf

    def observe(self, tid: str, ts: float) -> bool:
        top = self.top
        if tid in top:
            if ts <= top[tid]:
                return False
            top[tid] = ts
        elif len(top) < self.quorum:
            top[tid] = ts
        else:
            if ts <= self.kth:
                return False
            del top[min(top, key=top.__getitem__)]
            top[tid] = ts
        if len(top) < self.quorum:
            return False
        self.kth = min(top.values())
        if self.kth > self.value:
            self.value = self.kth
            return True
        return False


def test_quorum_clock_matches_the_plain_recomputation() -> None:
    rng = random.Random(2)
    for quorum in (1, 2, 3, 5):
        fast, slow = QuorumClock(quorum), _ClockReference(quorum)
        t = 0.0
        for i in range(20000):
            tid = f"t{rng.randrange(8 if i % 2 else 40)}"
            t += rng.choice((0.0, 0.0, 1.0, rng.random() * 5))
            ts = t - rng.choice((0.0, 0.0, rng.random() * 30))  # ties, repeats and stragglers
            assert fast.observe(tid, ts) == slow.observe(tid, ts)
            assert (fast.top, fast.kth, fast.value) == (slow.top, slow.kth, slow.value)
            assert list(fast.top) == list(slow.top)  # insertion order too: it breaks ties and is checkpointed
            if i % 5000 == 4999:  # a checkpoint and restore in between
                fresh = QuorumClock(quorum)
                fresh.load(fast.state())
                fast = fresh
                slow.top = dict(fast.top)


def test_key_summaries_are_built_field_by_field_in_declaration_order() -> None:
    """_emit_summaries passes KeySummary's fields positionally; every value must land in its own field."""
    assert [f.name for f in fields(KeySummary)] == [
        "key", "tenant_id", "window_start", "window_end", "events", "key_events", "accounts", "first_ts",
        "tenant_first_ts", "score", "cot", "cap", "elicit", "harvest", "automation", "keys", "evidence"]
    det = TenantDetector()
    summaries: list[KeySummary] = []
    for e in S.merge(S.extraction("x", hours=1.0, seed=3), S.chat("c", hours=1.0, seed=4)):
        det.process(e)
        summaries += det.drain_summaries()
    det.finish()
    summaries += det.drain_summaries()
    assert summaries
    for s in summaries:
        assert s.key.split(":", 1)[0] in ("tmpl", "asn", "pfx", "ua", "pay") and s.key in s.keys
        assert s.tenant_id in ("x", "c") and s.window_end - s.window_start == det._W
        assert 0 < s.key_events <= s.events and s.first_ts >= s.window_start
        assert s.tenant_first_ts <= s.first_ts and all(0.0 <= v <= 1.0 for v in (s.cot, s.cap, s.elicit, s.harvest))
        assert isinstance(s.accounts, tuple) and isinstance(s.evidence, tuple)


# ---------------------------------------------------------------------------------------------------------
# per-window arithmetic: the builtin min()/max() calls and indexed loops it was written with


def _pillars_reference(x: list[float]) -> dict[str, float]:
    from detectors.window import F

    probe = min(1.0, x[F["bias_repeat"]] * (0.5 + 0.5 * max(x[F["logprobs"]], x[F["logit_bias"]]))
                + 0.25 * min(x[F["logprobs"]], x[F["logit_bias"]]))
    cot = max(x[F["cot"]], min(1.0, 1.5 * x[F["reasoning"]]) * 0.6)
    elicit = max(cot, probe)
    harvest_out = min(1.0, 0.6 * x[F["cap"]] + 0.2 * x[F["out_in"]] + 0.2 * x[F["temp0"]]
                      + 0.4 * x[F["cap"]] * x[F["temp0"]])
    harvest = max(harvest_out, probe)
    varying = 1.0 - x[F["repeat"]]
    repetitive = max(x[F["template_top"]], x[F["near_dup"]]) * varying
    sweep = max(x[F["topic_entropy"]], x[F["topic_new"]], 0.7 * x[F["coding"]])
    kp, kt = x[F["prompt_data"]], x[F["topic_data"]]
    systematic = 0.5 * (kp * repetitive + (1.0 - kp) * 0.35) + 0.5 * (kt * sweep + (1.0 - kt) * 0.35)
    automation = 0.4 * x[F["regularity"]] + 0.4 * x[F["no_session"]] + 0.2 * x[F["flat_hours"]]
    return {"elicit": elicit, "harvest": harvest, "systematic": systematic, "automation": automation,
            "probe": probe, "cot": cot}


def _absolute_reference(x: list[float]) -> tuple[float, dict[str, float]]:
    from detectors import scoring as sc
    from detectors.common import sigmoid
    from detectors.window import F

    p = _pillars_reference(x)
    volume = min(1.0, max(0.0, (x[F["volume"]] - math.log1p(10)) / (math.log1p(500) - math.log1p(10))))
    z = (sc.INTERCEPT + sc.W_ELICIT * p["elicit"] + sc.W_HARVEST * p["harvest"] + sc.W_SYSTEMATIC * p["systematic"]
         + sc.W_AUTOMATION * p["automation"] + sc.W_VOLUME * volume + sc.W_PIVOT * x[F["new_model"]]
         + sc.W_JOINT * x[F["joint"]]
         - sc.W_MULTI_TURN * x[F["multi_turn"]]
         - sc.W_REPEAT * x[F["repeat"]] * (1.0 - p["probe"]) * (1.0 - min(1.0, 2.0 * x[F["joint"]])))
    gate = sigmoid(10.0 * (min(p["elicit"], p["harvest"]) - 0.3))
    p["volume"] = volume
    return sigmoid(z) * gate, p


def _combine_reference(abs_score: float, rel: float, familiarity: float) -> float:
    from detectors.common import sigmoid

    if abs_score <= 0.0:
        return 0.0
    logit = math.log(max(abs_score, 1e-9) / max(1.0 - abs_score, 1e-9))
    logit += 1.2 * rel * min(1.0, abs_score / 0.3) - 0.5 * familiarity * (1.0 - abs_score)
    return sigmoid(logit)


def _relative_reference(z: list[float]) -> float:
    from detectors.scoring import _REL_IDX

    tot = 0.0
    for i, w in _REL_IDX:
        v = z[i]
        if v > 1.0:
            tot += w * min(v - 1.0, 4.0) / 4.0
    return min(1.0, tot / 3.0)


def _value(rng: random.Random) -> float:
    """Feature-like values, with the boundaries of every clamp (0, 1, 4 beyond 1, ...) and exact ties."""
    return rng.choice((0.0, 0.0, 1.0, 0.5, 0.3, 1e-9, 5.0, 2.0 / 3.0, rng.random(), rng.random(), rng.uniform(0, 8),
                       rng.uniform(-3, 3), 2.5))


def test_scoring_matches_the_builtin_min_max_formulas() -> None:
    from detectors.scoring import absolute_score, combine, pillars, relative_shift_vec
    from detectors.window import NF

    rng = random.Random(13)
    for _ in range(20000):
        x = [_value(rng) for _ in range(NF)]
        assert pillars(x) == _pillars_reference(x)
        assert absolute_score(x) == _absolute_reference(x)
        assert relative_shift_vec(x) == _relative_reference(x)
        a, r, f = rng.choice((0.0, 1.0, 1e-12, 0.3, 0.999999999999, rng.random())), _value(rng), _value(rng)
        assert combine(a, r, f) == _combine_reference(a, r, f)


def _window_features_reference(w: Window, hours: Any, age_seconds: float, topic_new: int) -> list[float]:
    from detectors.window import NF, _entropy

    n = max(w.n, 1)
    x = [0.0] * NF
    x[0] = math.log1p(w.n)
    x[1] = w.n_cot / n
    x[2] = w.s_reason / (w.s_out + w.s_reason + 1.0)
    if w.n_tmpl >= 4 and w.tmpl:
        top3 = sum(sorted(w.tmpl.values(), reverse=True)[:3])
        floor = 3.0 / w.n_tmpl
        x[3] = max(0.0, (top3 / w.n_tmpl - floor) / (1.0 - floor))
    if w.n_fp >= 3:
        x[4] = w.n_near / w.n_fp
        x[5] = w.n_rep / w.n_fp
    if w.n_topic >= 3 and w.topics:
        x[6] = _entropy(list(w.topics.values())) * min(1.0, (len(w.topics) - 1) / 5.0)
        x[8] = w.n_coding / w.n_topic
    x[7] = min(1.0, topic_new / 8.0)
    x[9] = w.n_cap / n
    x[10] = min(1.0, max(0.0, math.log2((w.s_out + 1.0) / (w.s_in + 1.0)) / 4.0))
    if w.n_tk:
        x[11] = w.n_t0 / w.n_tk
    if w.n_dt >= 8:
        mean = w.s_dt / w.n_dt
        if mean > 0:
            var = max(0.0, w.s_dt2 / w.n_dt - mean * mean)
            x[12] = max(0.0, 1.0 - math.sqrt(var) / mean)
    x[13] = w.n_nosess / n
    x[14] = w.n_turn / n
    x[15] = w.n_tools / n
    if age_seconds >= 86400.0:
        x[16] = _entropy(list(hours))
    x[17] = min(1.0, w.n_lp / (2.0 * n))
    x[18] = w.n_bias / n
    x[19] = w.n_tiny / n
    x[20] = w.n_biasrep / n
    x[21] = w.n_new / n
    x[22] = min(1.0, math.log2(1 + len(w.accts)) / 3.0)
    x[23] = w.n_pdata / n
    x[24] = w.n_topic / n
    x[25] = w.n_joint / n
    return x


def test_window_features_match_the_slot_by_slot_vector() -> None:
    from array import array

    from detectors.window import window_features

    rng = random.Random(21)
    for _ in range(3000):
        w = _random_window(rng, 0.0)
        w.n = rng.choice((0, 1, 2, 5, 12, 400))
        for name in ("n_cot", "n_cap", "n_lp", "n_t0", "n_tk", "n_near", "n_rep", "n_fp", "n_coding", "n_topic",
                     "n_tmpl", "n_dt", "s_in", "s_out", "s_reason"):
            setattr(w, name, rng.choice((0, 1, 3, 4, 9, 40)))
        w.s_dt, w.s_dt2 = rng.choice((0.0, 10.0, 100.0)), rng.choice((0.0, 50.0, 1000.0, 1e4))
        hours = array("d", [rng.choice((0.0, rng.random() * 9)) for _ in range(24)])
        age, new = rng.choice((0.0, 86400.0, 90000.0)), rng.choice((0, 3, 8, 20))
        fast, slow = window_features(w, hours, age, new), _window_features_reference(w, hours, age, new)
        assert fast == slow and [type(v) for v in fast] == [type(v) for v in slow]


def test_learn_values_and_drift_match_the_indexed_updates() -> None:
    from detectors.baseline import ScoreDrift

    rng = random.Random(4)
    det = TenantDetector()
    fast, slow = det._prior_base.copy(), det._prior_base.copy()
    k = fast.n_features
    for _ in range(400):
        x = [_value(rng) for _ in range(k)]
        weight = rng.choice((1, 1, 1, 10))
        fast.learn_values(x, weight=weight)
        st = slow._state
        for _ in range(weight):  # learn_values as it was: index arithmetic, one feature at a time
            a = slow._alpha(None)
            for i in range(k):
                m = st[i]
                d = x[i] - m
                m += a * d
                st[i] = m
                st[k + i] = (1.0 - a) * (st[k + i] + a * d * d)
        assert fast._state.tobytes() == slow._state.tobytes()
    drift, s = ScoreDrift(max_n=30.0), [0.05, 20.0, 0.0, 0.0]
    for _ in range(500):
        v = _value(rng)
        drift.update(v)
        n = min(s[1] + 1.0, 30.0)
        s[1] = n
        s[0] += (v - s[0]) / n
        s[2] += v - s[0] - 0.05
        s[3] = min(s[3], s[2])
        assert list(drift._s) == s
        if drift.drift_detected:
            s[2] = s[3] = 0.0


def test_the_replay_ring_search_finds_exactly_the_ids_it_holds() -> None:
    """replayed() searches the ring's bytes; a match that straddles two slots must not count."""
    from array import array

    det = TenantDetector()
    det.process({"tenant_id": "t", "ts": 0.0, "event_id": "e0", "model": "m", "account_id": "a",
                 "input_tokens": 1, "output_tokens": 1})
    st = det._tenants["t"]
    rng = random.Random(8)
    for _ in range(3000):
        st.ids = array("Q", [rng.getrandbits(64) | 1 for _ in range(16)])
        st.ids_i = rng.randrange(16)
        eid = f"e{rng.getrandbits(40)}"
        raw = eid.encode()
        h = (zlib.crc32(raw) << 32 | zlib.adler32(raw)) | 1
        held = rng.random() < 0.3
        if held:
            st.ids[rng.randrange(16)] = h
        elif rng.random() < 0.5:  # h's bytes across two neighbouring slots
            k = rng.randrange(15)
            cut = rng.randrange(1, 8)
            both = st.ids[k].to_bytes(8, sys.byteorder)[:cut] + h.to_bytes(8, sys.byteorder) + bytes(8 - cut)
            st.ids[k], st.ids[k + 1] = (int.from_bytes(both[:8], sys.byteorder), int.from_bytes(both[8:], sys.byteorder))
            assert h.to_bytes(8, sys.byteorder) in st.ids.tobytes() and h not in st.ids
        before = st.ids.tolist()
        assert det.replayed({"tenant_id": "t", "event_id": eid}) is held
        if not held:
            assert h in st.ids and st.ids.tolist() != before
