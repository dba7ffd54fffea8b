"""The engine's hand-tuned hot paths agree with the plain, generic code they replaced.

Each fast path (spelled-out counters, positional arguments, cached state) is checked here against a
reference written the obvious way, so a field added to one side and not the other fails a test instead
of silently changing alerts.
"""

from __future__ import annotations

import math
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
