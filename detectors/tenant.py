"""Per-tenant detection: event-time windows -> features -> own baseline + population prior -> score -> drift
-> alert lifecycle, plus the :class:`KeySummary` records handed to the cluster stage.

Time and ordering rules (see docs/DETECTION.md):

* Windows are tumbling, ``window_seconds`` long, aligned to the epoch, in event time.
* A tenant's watermark is its own maximum event time minus ``allowed_lateness``; a window closes when the
  watermark passes its end. :meth:`TenantDetector.advance` closes windows of quiet tenants when the
  partition watermark moves.
* Late events (older than the end of the tenant's last closed window) are counted (``late_events``)
  and folded into the tenant's earliest open window, so back-dating requests cannot hide them; they do
  not feed the inter-arrival statistics.
* Far-future events (more than ``max_future_seconds`` ahead of the tenant's clock) are quarantined: the
  event is counted at the tenant's current time and does not move the watermark, unless a second such
  event within ``future_confirm_seconds`` of the first confirms that the tenant's clock really jumped
  (e.g. a tenant returning after a long pause).
"""

from __future__ import annotations

import heapq
import math
import struct
import zlib
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass
from hashlib import blake2b
from operator import attrgetter
from typing import Any

import orjson

from detectors.baseline import BaselineDetector, ScoreDrift
from detectors.common import DetectorConfig, incident_alert_ids, make_alert, rnd, severity_of
from detectors.scoring import PRIOR, absolute_score, combine, reasons, relative_shift_vec
from detectors.window import FEATURES, F, Window, single_shot_features, ss_counters, window_features

__all__ = ["KeySummary", "TenantDetector"]

_SNAP_MAGIC = b"DGT"
_SNAP_VERSION = 4  # 2: windows carry the single-shot counters; version 1 snapshots still load (counters 0)
# 3: "base", "drift" and "bloom" are left out while they hold the population prior / no bit (a tenant with a
#    few events); a missing one restores as that prior. Versions 1 and 2 (always all three) still load.
# 4: every field that still holds a new tenant's value is left out (restores as that value): a one-event
#    tenant's snapshot is a third of the size, and cheaper to write and to read. Versions 1-3 still load.
_SNAP_READS = (1, 2, 3, 4)
# the fields a snapshot holds as they are, each with a new tenant's value (what _new_tenant sets; a test checks)
_PLAIN = (("pending_future", 0.0), ("hours_day", 0), ("topics_mask", 0), ("ring_i", 0), ("bloom_n", 0),
          ("recent", 0), ("n_active", 0), ("drift_at", -(10**9)), ("run_start", None), ("low_run", 0),
          ("inc_start", None), ("inc_seq", 0), ("inc_sev", "low"), ("inc_score", 0.0), ("inc_events", 0),
          ("inc_reported", 0), ("inc_first_seen", 0.0), ("inc_last_susp", 0.0), ("inc_evidence", ()),
          ("inc_pattern", 0), ("last_pattern", 0), ("suppressed", ()), ("flagged", False), ("n_late", 0),
          ("n_future", 0), ("n_suppressed", 0), ("ids_i", 0))
_PLAIN_NAMES = frozenset(k for k, _ in _PLAIN)
_PLAIN_GET = attrgetter(*(k for k, _ in _PLAIN))  # one call returns every plain field, in _PLAIN order
_BLOOM_BYTES = 1024  # 8192-bit Bloom filter (k=2) of the tenant's prompt fingerprints
_BLOOM_RESET = 2400  # bits set -> reset (false-positive rate stays below ~9%)
_NEAR_DUP_BITS = 10  # SimHash Hamming distance that counts as a near-duplicate
_ZERO_RING = (0, 0, 0, 0)  # how a snapshot writes a ring not allocated yet
_ZERO_HOURS = (0.0,) * 24  # ... and an hour profile not allocated yet
_ID_RING = 16  # a tenant's last event ids (hashed) kept to drop replays and gateway retries
_PACK_ID = struct.Struct("@Q").pack  # one id as the ring (array "Q") stores it
_ID_SIZE = array("Q").itemsize
_SEV_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
_CODING_WORDS = ("code", "coding", "program", "software", "debug", "sql", "python", "javascript", "tool", "agent",
                 "api", "devops", "algorithm")
_F_COT, _F_CAP = F["cot"], F["cap"]
_NEG_INF = -math.inf
_topic_info: dict[str, tuple[int, bool]] = {}  # topic label -> (coverage bit, is coding); bounded cache


def _topic(label: str) -> tuple[int, bool]:
    info = _topic_info.get(label)
    if info is None:
        if len(_topic_info) > 100_000:
            _topic_info.clear()
        low = label.lower()
        bit = 1 << (int.from_bytes(blake2b(low.encode(), digest_size=2).digest(), "little") & 63)
        info = _topic_info[label] = (bit, any(w in low for w in _CODING_WORDS))
    return info


@dataclass(slots=True)
class KeySummary:
    """One tenant window's traffic under one shared key, for the cluster stage.

    ``key`` is ``"<kind>:<value>"`` with kind ``tmpl`` (prompt template), ``asn``, ``pfx`` (client IP prefix),
    ``ua`` (user agent) or ``pay`` (payment fingerprint). ``keys`` lists all keys of the same tenant window,
    so the cluster stage can see how many keys a group shares.
    """

    key: str
    tenant_id: str
    window_start: float
    window_end: float
    events: int
    key_events: int
    accounts: tuple[str, ...]
    first_ts: float  # first event of the window
    tenant_first_ts: float  # first event ever seen of the tenant (for synchronous starts)
    score: float
    cot: float
    cap: float
    elicit: float
    harvest: float
    automation: float
    keys: tuple[str, ...]
    evidence: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["accounts"], d["keys"], d["evidence"] = list(self.accounts), list(self.keys), list(self.evidence)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeySummary:
        d = dict(d)
        for k in ("accounts", "keys", "evidence"):
            d[k] = tuple(d.get(k, ()))
        return cls(**d)


class _Tenant:
    """Compact per-tenant state (``__slots__``; floats and small arrays, no River objects per feature)."""

    __slots__ = (
        "tid", "first_ts", "max_ts", "closed_until", "pending_future", "wins", "next_close", "cur",
        "base", "drift", "hours", "hours_day", "topics_mask", "ring", "ring_i", "bloom", "bloom_n",
        "recent", "n_active", "drift_at", "run_start", "low_run", "last_x",
        "inc_start", "inc_seq", "inc_sev", "inc_score", "inc_events", "inc_reported", "inc_first_seen",
        "inc_last_susp", "inc_evidence", "inc_pattern", "last_pattern", "cooldown_until", "suppressed",
        "flagged", "n_late", "n_future", "n_suppressed", "carry", "ids", "ids_i", "ss_trail", "last_inc",
    )


class TenantDetector:
    """Per-tenant extraction detection over event-time windows.

    Usage::

        det = TenantDetector(DetectorConfig())
        for event in events:            # decoded events (schemas.EventCodec), with ``ts``
            alerts += det.process(event)
            summaries = det.drain_summaries()   # -> ClusterDetector.process
        alerts += det.advance(watermark_ts)    # close quiet tenants' windows
        alerts += det.finish()                 # end of input: close every window

    ``on_window(tenant_id, window_start, window_end, score, signals)`` is called for each closed window.
    ``model_first_seen`` may be shared between detectors (global first-seen event time of each model).
    """

    def __init__(self, config: DetectorConfig | None = None, on_window: Any = None,
                 model_first_seen: dict[str, float] | None = None) -> None:
        self.config = c = config or DetectorConfig()
        self.on_window = on_window
        self._W = float(c.window_seconds)
        self._late = float(c.allowed_lateness)
        self._max_future = float(c.max_future_seconds)
        self._tenants: dict[str, _Tenant] = {}
        self._heap: list[tuple[float, str]] = []  # (window end, tenant) of open windows, may hold stale entries
        self._summaries: list[KeySummary] = []
        self._incidents: set[str] = set()  # tenants with an open incident (for quiet-period resolution)
        self.feedback_result = ""  # what the last apply_feedback did (see there)
        self.changed: set[str] = set()  # tenants whose state changed since drain_changed(): what a checkpoint writes
        self.model_first_seen = model_first_seen if model_first_seen is not None else {}
        self.stream_start = math.inf  # earliest event time seen (models present from the start are not "new")
        self._clock = -math.inf  # latest watermark passed to advance() (reference for a brand-new tenant)
        self.last_ts = -math.inf
        self.loader: Callable[[str], bytes | None] | None = None  # where evicted tenants are restored from
        self._n_events = self._n_late = 0
        self._horizon = float(c.new_model_horizon)
        self._warmup = float(c.new_model_warmup)
        self._stats = {"future_clamped": 0, "windows": 0, "suppressed": 0}
        self._base_kw = {"features": FEATURES, "half_life": c.baseline_half_life, "prior": PRIOR,
                         "prior_weight": c.baseline_prior_weight, "directions": None, "min_std": 0.05}
        # Every new tenant starts from these two (the population prior) and shares them, read-only, until
        # its first write takes a copy (_own_base / _own_drift): a tenant with a few events -- e.g. each
        # tenant of a flood of new ids -- builds no baseline or drift state of its own.
        self._prior_base = BaselineDetector(**self._base_kw).freeze()
        self._prior_drift = ScoreDrift(threshold=c.drift_threshold, delta=c.drift_delta, prior_mean=c.prior_score)
        # the two as a version 1/2 snapshot holds them (JSON: NaN is null), to share them again on restore
        self._prior_base_list = orjson.loads(orjson.dumps(self._prior_base._state.tolist()))
        self._prior_drift_list = orjson.loads(orjson.dumps(self._prior_drift.to_list()))

    # ------------------------------------------------------------------ state
    def _new_tenant(self, tid: str, ts: float) -> _Tenant:
        st = _Tenant()
        st.tid = tid
        st.first_ts = st.max_ts = ts
        st.closed_until = -math.inf
        st.pending_future = 0.0
        st.wins = {}
        st.next_close = math.inf
        st.cur = None
        st.base = self._prior_base  # shared until the first write (_own_base)
        st.drift = self._prior_drift  # shared until the first update (_own_drift)
        st.hours = None  # allocated at the first window close (None: 24 zeros)
        st.hours_day = 0
        st.topics_mask = 0
        st.ring = None  # allocated with the first fingerprint (None: all four slots 0)
        st.ring_i = 0
        st.bloom = None  # allocated with the first fingerprint (None: no bit set)
        st.bloom_n = 0
        st.recent = st.n_active = 0
        st.drift_at = -(10**9)
        st.run_start = None
        st.low_run = 0
        st.last_x = None
        st.inc_start = None
        st.inc_seq = 0
        st.inc_sev = "low"
        st.inc_score = st.inc_first_seen = st.inc_last_susp = 0.0
        st.inc_events = st.inc_reported = 0
        st.inc_evidence = ()  # a list from the first incident on (empty ones shared: fewer objects per tenant)
        st.inc_pattern = st.last_pattern = 0
        st.cooldown_until = -math.inf
        st.suppressed = ()
        st.flagged = False
        st.n_late = st.n_future = st.n_suppressed = 0
        st.carry = None
        st.ss_trail = None  # (window start, *single-shot counters) of recent windows with single-shot requests
        st.last_inc = None  # (start, alerts sent) of the last resolved incident: what a late verdict can name
        st.ids = array("Q", bytes(8 * _ID_RING))
        st.ids_i = 0
        self._tenants[tid] = st
        return st

    def _own_base(self, st: _Tenant) -> BaselineDetector:
        """The tenant's own baseline, copied from the shared prior on its first write."""
        base = st.base
        if base is self._prior_base:
            base = st.base = base.copy()
        return base

    def _own_drift(self, st: _Tenant) -> ScoreDrift:
        """The tenant's own drift test, copied from the shared prior on its first update."""
        drift = st.drift
        if drift is self._prior_drift:
            drift = st.drift = drift.copy()
        return drift

    @property
    def stats(self) -> dict[str, int]:
        """Counters: events, late events (folded into the next open window), far-future events clamped, ..."""
        return {"events": self._n_events, "late_events": self._n_late, **self._stats}

    def __len__(self) -> int:
        return len(self._tenants)

    def __contains__(self, tenant_id: object) -> bool:
        return tenant_id in self._tenants

    @property
    def tenant_ids(self) -> list[str]:
        return list(self._tenants)

    # ------------------------------------------------------------------ per event (hot path)
    def process(self, ev: dict[str, Any], lookup: bool = True) -> list[dict[str, Any]]:
        """Aggregate one decoded event into its tenant's window; returns alerts of windows this closes.

        ``lookup=False``: the caller has just asked :meth:`reload` about this tenant, so an unknown one is
        not looked up through :attr:`loader` a second time.
        """
        tid = ev["tenant_id"]
        self.changed.add(tid)
        ts = ev["ts"]
        st = self._tenants.get(tid)
        if st is None and lookup and self.loader is not None:
            st = self._reload(tid)
        if st is None:
            if ts > self._clock + self._max_future > -math.inf:  # brand-new tenant, far ahead of everyone
                self._stats["future_clamped"] += 1
                ts = self._clock
            st = self._new_tenant(tid, ts)
            if ts < self.stream_start:
                self.stream_start = ts
        elif ts > st.max_ts + self._max_future:
            ts = self._future(st, ts)
        else:
            st.pending_future = 0.0
        self._n_events += 1
        W = self._W
        late = ts < st.closed_until
        if late:
            st.n_late += 1
            self._n_late += 1
            ws = min(st.wins) if st.wins else st.closed_until - st.closed_until % W
        else:
            ws = ts - ts % W
        w = st.cur
        if w is None or w.start != ws:
            w = st.wins.get(ws)
            if w is None:
                w = st.wins[ws] = Window(ws)
                end = ws + W
                if end < st.next_close:
                    st.next_close = end
                heapq.heappush(self._heap, (end, tid))
            st.cur = w
        # --- counters
        w.n += 1
        if late:
            w.n_late += 1
        else:
            last = w.last_ts
            if ts >= last:
                if last > _NEG_INF:
                    dt = ts - last
                    w.s_dt += dt
                    w.s_dt2 += dt * dt
                    w.n_dt += 1
                w.last_ts = ts
            if ts < w.first_ts:
                w.first_ts = ts
        inp = ev["input_tokens"]
        out = ev["output_tokens"]
        w.s_in += inp
        w.s_out += out
        get = ev.get
        sus = capped = False
        cot = elicited = get("cot_elicitation")
        if cot:
            w.n_cot += 1
            sus = True
        r = get("reasoning_tokens")
        if r:
            w.s_reason += r
            if r > out:  # reasoning-heavy response: counts as elicited for the joint signal
                cot = True
        mt = get("max_tokens")
        if mt is not None:
            if mt <= 16:  # tiny caps (classification, probing) are not output harvesting
                w.n_tiny += 1
            elif out >= 0.9 * mt or get("stop_reason") == "max_tokens":
                w.n_cap += 1
                sus = capped = True
        elif get("stop_reason") == "max_tokens":
            w.n_cap += 1
            sus = capped = True
        t = get("temperature")
        if t is not None:
            w.n_tk += 1
            if t == 0:
                w.n_t0 += 1
        if get("session_id") is None:
            w.n_nosess += 1
            if cot and capped:
                w.n_joint += 1
            if elicited:
                w.n_ss_cot += 1
            if capped:
                w.n_ss_cap += 1
            if t is not None:
                w.n_ss_tk += 1
                if t == 0:
                    w.n_ss_t0 += 1
            w.s_ss_in += inp
            w.s_ss_out += out
            if r:
                w.s_ss_reason += r
        else:
            ti = get("turn_index")
            if ti:
                w.n_turn += 1
        if get("tools_count"):
            w.n_tools += 1
        if get("logprobs"):
            w.n_lp += 1
            sus = True
            tl = get("top_logprobs")
            if tl is not None and tl >= 10:
                w.n_lp += 1
        bias = get("logit_bias_size")
        if bias:
            w.n_bias += 1
            sus = True
        fp = get("prompt_fingerprint")
        tp = get("prompt_template_id")
        topic = get("prompt_topic")
        if fp is not None or tp is not None:
            w.n_pdata += 1
        if fp is not None:
            x = int(fp, 16)
            w.n_fp += 1
            ring = st.ring
            if ring is None:
                ring = st.ring = array("Q", bytes(8 * 4))
            a, b, c, d = ring
            if x == a or x == b or x == c or x == d:
                w.n_near += 1
                if bias:
                    w.n_biasrep += 1
            elif ((x ^ a).bit_count() <= _NEAR_DUP_BITS or (x ^ b).bit_count() <= _NEAR_DUP_BITS
                  or (x ^ c).bit_count() <= _NEAR_DUP_BITS or (x ^ d).bit_count() <= _NEAR_DUP_BITS):
                w.n_near += 1
            i = st.ring_i
            ring[i] = x
            st.ring_i = (i + 1) & 3
            bloom = st.bloom
            if bloom is None:
                bloom = st.bloom = bytearray(_BLOOM_BYTES)
            h = (x * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF  # mix: near-duplicates must not collide
            h1 = h >> 51
            h2 = (h >> 38) & 8191
            m1 = 1 << (h1 & 7)
            m2 = 1 << (h2 & 7)
            b1 = bloom[h1 >> 3]
            b2 = bloom[h2 >> 3]
            if b1 & m1 and b2 & m2:
                w.n_rep += 1
            else:
                if not b1 & m1:
                    bloom[h1 >> 3] = b1 | m1
                    st.bloom_n += 1
                b2 = bloom[h2 >> 3]
                if not b2 & m2:
                    bloom[h2 >> 3] = b2 | m2
                    st.bloom_n += 1
                if st.bloom_n > _BLOOM_RESET:
                    st.bloom = None
                    st.bloom_n = 0
        if tp is not None:
            w.n_tmpl += 1
            d_ = w.tmpl
            if d_ is None:
                w.tmpl = {tp: 1}
            elif tp in d_:
                d_[tp] += 1
            elif len(d_) < 16:
                d_[tp] = 1
        if topic is not None:
            w.n_topic += 1
            d_ = w.topics
            if d_ is None:
                w.topics = {topic: 1}
            elif topic in d_:
                d_[topic] += 1
            elif len(d_) < 24:
                d_[topic] = 1
            info = _topic_info.get(topic)  # the cache _topic() fills, read here without a call per event
            if (info if info is not None else _topic(topic))[1]:
                w.n_coding += 1
        model = ev["model"]
        mfs = self.model_first_seen
        mf = mfs.get(model)
        if mf is None or ts < mf:
            mfs[model] = mf = ts
        if ts - mf < self._horizon and mf - self.stream_start > self._warmup:
            w.n_new += 1
        acc = ev["account_id"]
        accts = w.accts
        if len(accts) < 8 and acc not in accts:
            accts.append(acc)
        if sus:
            if len(w.ev) < 12:
                w.ev.append(ev["event_id"])
        elif len(w.ev_any) < 4:
            w.ev_any.append(ev["event_id"])
        v = get("asn")
        if v is not None:
            pfx = get("client_ip_prefix")
            if v == w.net and pfx == w.pfx:
                w.n_net += 1
            elif w.net is None:
                w.net, w.pfx, w.n_net = v, pfx, 1
        v = get("user_agent")
        if v is not None:
            if v == w.ua:
                w.n_ua += 1
            elif w.ua is None:
                w.ua, w.n_ua = v, 1
        v = get("payment_fingerprint")
        if v is not None:
            if v == w.pay:
                w.n_pay += 1
            elif w.pay is None:
                w.pay, w.n_pay = v, 1
        # --- watermark
        self.last_ts = ts  # effective event time (after quarantine), for the caller's global watermark
        if ts > st.max_ts:
            st.max_ts = ts
            if ts - self._late >= st.next_close:
                return self._close_until(st, ts - self._late)
        return []

    def _future(self, st: _Tenant, ts: float) -> float:
        """Quarantine a far-future timestamp unless a second one confirms the jump."""
        pf = st.pending_future
        if pf and abs(ts - pf) <= self.config.future_confirm_seconds:
            st.pending_future = 0.0
            return ts
        st.pending_future = ts
        st.n_future += 1
        self._stats["future_clamped"] += 1
        return st.max_ts

    # ------------------------------------------------------------------ window close
    def _close_until(self, st: _Tenant, wm: float) -> list[dict[str, Any]]:
        self.changed.add(st.tid)
        out: list[dict[str, Any]] = []
        W = self._W
        for ws in sorted(st.wins):
            if ws + W > wm:
                break
            w = st.wins.pop(ws)
            if st.cur is w:
                st.cur = None
            if ws + W > st.closed_until:
                st.closed_until = ws + W
            out += self._close_window(st, w)
        st.next_close = min(st.wins) + W if st.wins else math.inf
        if st.inc_start is not None and not st.flagged:
            out += self._maybe_resolve(st, wm)
        return out

    def _close_window(self, st: _Tenant, w: Window) -> list[dict[str, Any]]:
        c = self.config
        W = self._W
        we = w.start + W
        self._stats["windows"] += 1
        out: list[dict[str, Any]] = []
        # a long gap may have ended the incident before this window
        if st.inc_start is not None and not st.flagged and w.start >= st.inc_last_susp + c.quiet_period:
            out += self._resolve(st)
        # tenant-level context
        hours = st.hours
        if hours is None:
            hours = st.hours = array("d", bytes(8 * 24))
        day = int(w.start // 86400.0)
        if day != st.hours_day:  # the 24-hour profile decays once per day of event time
            for i in range(24):
                hours[i] *= 0.7
            st.hours_day = day
        hours[int((w.start % 86400.0) // 3600.0)] += w.n
        new_topics = 0
        if w.topics:
            mask = 0
            for t in w.topics:
                mask |= _topic(t)[0]
            new_topics = (mask & ~st.topics_mask).bit_count()
            st.topics_mask |= mask
        x = window_features(w, hours, we - st.first_ts, new_topics)
        score, abs_score, pill, rel, familiarity = self._score(st, x)
        # summaries for the cluster stage: the window as a whole
        self._emit_summaries(st, w, score, x, pill)
        trail, spanned = self._ss_trail(st, w)
        xs, score, abs_score, pill = self._single_shot(w, x, score, abs_score, pill, familiarity, trail, spanned)
        trail_m = int(trail[0]) if trail is not None and xs is not None else 0  # earlier windows' single-shot requests used
        if self.on_window is not None:
            signals = {"score": score, "absolute": abs_score, "relative": rel, "familiarity": familiarity,
                       "events": w.n, "single_shot": float(xs is not None), **pill,
                       **{k: x[i] for i, k in enumerate(FEATURES)}}
            self.on_window(st.tid, w.start, we, score, signals)
        carry = st.carry
        if w.n < c.min_window_events or (carry is not None and w.n < c.sparse_events
                                         and w.start - carry.start <= c.sparse_max_seconds):
            # sparse tenant: pool consecutive small windows and score the pool once it has enough events. A
            # window of 5-19 events joins a pool that is open, so a tenant hovering around 5 requests a window
            # is judged on pools of 20, not on single noisy windows that each started the pool over
            if carry is None or w.start - carry.start > c.sparse_max_seconds:
                # a new pool holding one window is that window (merging it into an empty Window(w.start)
                # gives the same aggregates); w has left st.wins and nothing else refers to it
                st.carry = carry = w
            else:
                carry.merge(w)
            if carry.n < c.sparse_events:
                return out
            st.carry = None
            w = carry
            # the pool counts as events // min_window_events active windows, but never as more windows than it
            # spans in event time (a pool of small windows only spans at least that many: each held fewer than
            # min_window_events events; one that absorbed bigger windows may span fewer)
            reps = min(c.persistence_k, w.n // c.min_window_events, int((we - w.start) // W))
            x = window_features(w, hours, we - st.first_ts, 0)
            score, abs_score, pill, rel, familiarity = self._score(st, x)
            xs, score, abs_score, pill = self._single_shot(w, x, score, abs_score, pill, familiarity)
            trail_m = 0
        else:
            st.carry = None
            reps = 1
        # drift + persistence
        susp = score >= c.open_threshold
        drift = self._own_drift(st)
        for _ in range(reps):
            st.n_active += 1
            drift.update(score)
            if drift.drift_detected:
                st.drift_at = st.n_active
            st.recent = ((st.recent << 1) | int(susp)) & ((1 << c.persistence_n) - 1)
        if score >= c.watch_threshold:
            st.low_run = 0
            if st.run_start is None:
                st.run_start = w.start
        else:
            st.low_run += 1
            if st.low_run >= 3 and st.inc_start is None:
                st.run_start = None
        st.last_x = array("d", x)
        base = st.base
        if not susp:
            # the baseline learns only from windows without real extraction evidence (an attacker cannot teach it)
            if score < c.watch_threshold and abs_score < 0.25:
                self._own_base(st).learn_values(x)
            return out
        if xs is None:
            rs = reasons(x, base._state, pill, rel)
        else:
            share = w.n_nosess / w.n
            rs = reasons(xs, base._state, pill, 0.0)
            text = (f"shares above are of the window's {w.n_nosess} single-shot requests ({share:.0%})"
                    if not trail_m else
                    f"shares above are of {w.n_nosess + trail_m} single-shot requests: the window's {w.n_nosess} "
                    f"({share:.0%}) and {trail_m} from the "
                    f"{'window' if spanned < 2.5 else f'{spanned - 1:.0f} windows'} before it")
            rs.append({"signal": "single_shot", "value": round(share, 4),
                       "baseline": round(base._state[F["no_session"]], 4), "weight": 0.0,
                       "text": f"{text}; its {w.n - w.n_nosess} conversational requests are set aside"})
        pattern = 0
        for r in rs[:3]:
            if r["signal"] in F:
                pattern |= 1 << F[r["signal"]]
        # lifecycle
        if st.inc_start is None:
            persistent = (st.recent.bit_count() >= c.persistence_k
                          and st.n_active - st.drift_at < c.drift_memory_windows) or (st.flagged and susp)
            if susp and persistent and we >= st.cooldown_until:
                if any((pattern & s).bit_count() >= 2 for s in st.suppressed):
                    st.n_suppressed += 1
                    self._stats["suppressed"] += 1
                    return out
                st.inc_start = w.start
                st.inc_seq = 0
                st.inc_first_seen = st.run_start if st.run_start is not None else w.start
                st.inc_score = score
                st.inc_sev = severity_of(score, c.severity_cuts)
                st.inc_events = st.inc_reported = w.n
                st.inc_last_susp = we
                st.inc_evidence = (w.ev + w.ev_any)[:20]
                st.inc_pattern = st.last_pattern = pattern
                self._incidents.add(st.tid)
                out.append(self._alert(st, "open", score, we, w.start, we, rs))
        elif susp:
            st.inc_last_susp = we
            st.inc_events += w.n
            if len(st.inc_evidence) < 20:
                st.inc_evidence += [e for e in w.ev if e not in st.inc_evidence][: 20 - len(st.inc_evidence)]
            sev = severity_of(max(score, st.inc_score), c.severity_cuts)
            grew = st.inc_events >= c.update_evidence_factor * st.inc_reported
            if _SEV_RANK[sev] > _SEV_RANK[st.inc_sev] or grew:
                st.inc_score = max(score, st.inc_score)
                st.inc_sev = sev
                st.inc_reported = st.inc_events
                st.inc_pattern = st.last_pattern = pattern | st.inc_pattern
                out.append(self._alert(st, "update", st.inc_score, we, w.start, we, rs))
        return out

    def _score(self, st: _Tenant, x: list[float]) -> tuple[float, float, dict[str, float], float, float]:
        """(score, absolute, pillars, relative shift, familiarity) of a feature vector for this tenant."""
        base = st.base
        z = base.zvector(x)
        rel = relative_shift_vec(z)
        abs_score, pill = absolute_score(x)
        hist = base.weight - self.config.baseline_prior_weight
        familiarity = 0.0
        if hist > 20:
            familiarity = min(1.0, (hist - 20) / 200.0) * (1.0 - base.deviation(z))
        return combine(abs_score, rel, familiarity), abs_score, pill, rel, familiarity

    def _ss_trail(self, st: _Tenant, w: Window) -> tuple[tuple[float, ...] | None, float]:
        """The summed single-shot counters of the tenant's windows in the ``single_shot_span`` before ``w``
        (and how many windows of event time they span with it); records ``w``'s for the windows after it."""
        if st.ss_trail is None and not w.n_nosess:
            return None, 1.0  # nothing to carry (most windows of conversational tenants)
        W = self._W
        lo = w.start + W - self.config.single_shot_span  # earliest window start still in the span
        kept = [t for t in st.ss_trail if t[0] >= lo] if st.ss_trail is not None else []
        trail: tuple[float, ...] | None = None
        spanned = 1.0
        if kept:
            trail = tuple(map(sum, zip(*(t[1:] for t in kept), strict=True)))
            spanned = (w.start - kept[0][0]) / W + 1.0
        if w.n_nosess:
            kept.append((w.start, *ss_counters(w)))
        st.ss_trail = tuple(kept) or None
        return trail, spanned

    @staticmethod
    def _single_shot(w: Window, x: list[float], score: float, abs_score: float, pill: dict[str, float],
                     familiarity: float, trail: tuple[float, ...] | None = None,
                     spanned: float = 1.0) -> tuple[list[float] | None, float, float, dict[str, float]]:
        """The window's score, or its single-shot requests' score when that is higher (mixed windows only).

        The single-shot part (with the ``trail`` of the tenant's recent windows, :func:`single_shot_features`)
        is judged on the population prior alone (no relative shift: the tenant's baseline describes whole
        windows), damped by the same familiarity as the whole window.
        """
        xs = single_shot_features(w, x, trail, spanned)
        if xs is None:
            return None, score, abs_score, pill
        a_ss, p_ss = absolute_score(xs)
        s_ss = combine(a_ss, 0.0, familiarity)
        if s_ss <= score:
            return None, score, abs_score, pill
        return xs, s_ss, a_ss, p_ss

    def _alert(self, st: _Tenant, status: str, score: float, detected_at: float, ws: float, we: float,
               rs: list[dict[str, Any]]) -> dict[str, Any]:
        alert = make_alert(
            kind="tenant", status=status, subject=st.tid, incident_start=st.inc_start, seq=st.inc_seq,
            score=score, severity=severity_of(score, self.config.severity_cuts), detected_at=detected_at,
            first_seen=st.inc_first_seen, window_start=ws, window_end=we, reasons=rs, evidence=st.inc_evidence,
            tenant_id=st.tid)
        st.inc_seq += 1
        return alert

    def _maybe_resolve(self, st: _Tenant, now: float) -> list[dict[str, Any]]:
        if st.inc_start is not None and not st.flagged and now >= st.inc_last_susp + self.config.quiet_period:
            return self._resolve(st)
        return []

    def _resolve(self, st: _Tenant, reason: dict[str, Any] | None = None,
                 at: float | None = None) -> list[dict[str, Any]]:
        self.changed.add(st.tid)
        c = self.config
        t = st.inc_last_susp + c.quiet_period if at is None else at
        rs = [reason or {"signal": "quiet_period", "value": c.quiet_period, "baseline": None, "weight": 0.0,
                         "text": f"no suspicious window for {c.quiet_period / 3600:.1f} h of event time"}]
        alert = self._alert(st, "resolved", st.inc_score, t, st.inc_last_susp - self._W, st.inc_last_susp, rs)
        st.last_inc = (st.inc_start, st.inc_seq)
        st.inc_start = None
        st.cooldown_until = t + c.cooldown
        st.run_start = None
        self._incidents.discard(st.tid)
        return [alert]

    def _emit_summaries(self, st: _Tenant, w: Window, score: float, x: list[float], pill: dict[str, float]) -> None:
        keys: list[tuple[str, int]] = []
        if w.tmpl:
            for tp, cnt in w.top_templates(2):
                if cnt >= 0.3 * w.n_tmpl:
                    keys.append(("tmpl:" + tp, cnt))
        if w.net is not None:
            keys.append((f"asn:{w.net}", w.n_net))
            if w.pfx is not None:
                keys.append((f"pfx:{w.pfx}", w.n_net))
        if w.ua is not None:
            keys.append(("ua:" + w.ua, w.n_ua))
        if w.pay is not None:
            keys.append(("pay:" + w.pay, w.n_pay))
        if not keys:
            return
        names = tuple(k for k, _ in keys)
        accts = tuple(w.accts[: self.config.max_accounts_per_summary])
        ev = tuple((w.ev + w.ev_any)[:5])
        ws = w.start
        first = w.first_ts if w.first_ts < math.inf else ws
        # the fields every key's summary shares, in KeySummary field order (positional: cheaper than keywords)
        tid, we, n, tfirst = st.tid, ws + self._W, w.n, st.first_ts
        cot, cap, elicit, harvest, automation = x[_F_COT], x[_F_CAP], pill["elicit"], pill["harvest"], pill["automation"]
        append = self._summaries.append
        for k, cnt in keys:
            append(KeySummary(k, tid, ws, we, n, cnt, accts, first, tfirst, score, cot, cap, elicit, harvest,
                              automation, names, ev))

    # ------------------------------------------------------------------ time
    def advance(self, watermark_ts: float) -> list[dict[str, Any]]:
        """Close every window whose end is at or before ``watermark_ts``; resolve incidents quiet since long enough."""
        if watermark_ts > self._clock:
            self._clock = watermark_ts
        out: list[dict[str, Any]] = []
        heap = self._heap
        while heap and heap[0][0] <= watermark_ts:
            end, tid = heapq.heappop(heap)
            st = self._tenants.get(tid)
            if st is None and self.loader is not None:  # evicted with an open window: it closes on time
                st = self._reload(tid)
            # only the entry of the tenant's first open window counts: one left behind by a window its own events
            # closed would close its later window at another point of the (end, tenant) order than a restored
            # stage, which holds entries for its open windows only, and the two runs' outputs would differ in order
            if st is not None and st.next_close == end:
                out += self._close_until(st, watermark_ts)
        for tid in sorted(self._incidents):
            st = self._tenants[tid]
            if st.inc_start is not None and not st.flagged:
                out += self._maybe_resolve(st, watermark_ts)
        return out

    def pending(self) -> tuple[dict[str, float], list[str]]:
        """What a stage restored lazily (tenants come back on demand) would otherwise forget: for each tenant with
        a window still to close, in memory or evicted, the end of its first one; and the tenants with an open
        incident. One entry a tenant is enough: closing a window restores the tenant, whose restore queues
        the ends of all its open windows. One pass over the close queue, for the checkpoint's sake.

        A restarted worker restores a tenant when an event or a verdict names it; without these, a tenant that
        went quiet before the checkpoint never had its last window closed nor its incident resolved.
        """
        closes: dict[str, float] = {}
        tenants = self._tenants
        for end, tid in self._heap:
            st = tenants.get(tid)
            if st is not None:
                end = st.next_close  # the tenant's first open window (a stale entry is none)
                if end == math.inf:
                    continue
            if end < closes.get(tid, math.inf):
                closes[tid] = end
        return closes, sorted(self._incidents)

    def resume(self, closes: dict[str, float], incidents: list[str]) -> None:
        """Take back :meth:`pending` after a restart: queue the first close of each tenant not in memory
        (restored ones queued their own) and restore the tenants with an open incident, whose resolution
        runs on watermark ticks."""
        for tid, end in closes.items():
            if tid not in self._tenants:
                heapq.heappush(self._heap, (float(end), tid))
        for tid in incidents:
            if tid not in self._tenants:
                self._reload(tid)

    def finish(self) -> list[dict[str, Any]]:
        """End of input: close every open window, then resolve every incident of a non-flagged tenant.

        Nothing more will arrive, so each open incident is resolved as of the end of its quiet period
        (``detected_at = last suspicious window end + quiet_period``) -- exactly the alert the watermark
        would produce later in a longer stream. This keeps a tenant's alerts independent of how long
        *other* tenants' traffic continues (interleaving invariance).
        """
        out: list[dict[str, Any]] = []
        if self.loader is not None:  # evicted tenants with open windows close like the others
            for tid in sorted({t for _, t in self._heap if t not in self._tenants}):
                self._reload(tid)
        for tid in sorted(self._tenants):
            st = self._tenants[tid]
            if st.wins:
                out += self._close_until(st, max(st.wins) + self._W)
        self._heap.clear()
        for tid in sorted(self._incidents):
            st = self._tenants[tid]
            if st.inc_start is not None and not st.flagged:
                out += self._resolve(st)
        return out

    def drain_changed(self) -> set[str]:
        """Tenants whose state changed since the last call (events, window closes, resolutions, verdicts, restores)."""
        changed, self.changed = self.changed, set()
        return changed

    def drain_summaries(self) -> list[KeySummary]:
        """Hand over the :class:`KeySummary` records produced since the last call."""
        s, self._summaries = self._summaries, []
        return s

    # ------------------------------------------------------------------ feedback
    def apply_feedback(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Apply an analyst verdict (``schemas/feedback.schema.json``).

        ``false_positive`` / ``benign_expected``: if ``alert_id`` is an alert of the tenant's open incident or
        of its last resolved one, that incident's pattern (its dominant signals) is suppressed for this tenant,
        the last window is folded into its baseline with extra weight, and an open incident is resolved. A
        verdict naming any other alert (a typo, an older incident) changes nothing: silencing an incident must
        never follow from a verdict on a different one. ``true_positive`` on an alert of either incident: the
        tenant stays flagged (its incident is not auto-resolved and any suspicious window re-opens one without
        the persistence rule). One rule for every label, so the workers (verdicts applied when they arrive) and
        ``detect --feedback`` (applied when the named alert is emitted) agree. :attr:`feedback_result` says what happened:
        ``applied``, ``unmatched`` (also for a tenant the stage has never seen: no alert of it can be named)
        or ``ignored`` (unknown label). Until the tenth session a verdict on an unseen tenant was kept for its
        arrival, where a true positive flagged it; under the alert-id rule it could never match, so it is not.
        """
        tid = record.get("tenant_id")
        self.feedback_result = "ignored"
        if not isinstance(tid, str):
            return []
        st = self._tenants.get(tid)
        if st is None and self.loader is not None:
            st = self._reload(tid)
        if st is None:
            self.feedback_result = "unmatched"
            return []
        return self._feedback_state(st, record)

    @staticmethod
    def _incident_of(st: _Tenant, named: Any) -> str | None:
        """``current`` or ``last`` if ``named`` is the id of one of the alerts of that incident of the tenant."""
        for which, inc in (("current", (st.inc_start, st.inc_seq) if st.inc_start is not None else None),
                           ("last", st.last_inc)):
            if inc is not None and named in incident_alert_ids("tenant", st.tid, inc[0], inc[1], which == "last"):
                return which
        return None

    def _feedback_state(self, st: _Tenant, record: dict[str, Any]) -> list[dict[str, Any]]:
        label = record.get("label")
        self.feedback_result = "ignored"
        if label not in ("true_positive", "false_positive", "benign_expected"):
            return []
        which = self._incident_of(st, record.get("alert_id"))
        if which is None:
            self.feedback_result = "unmatched"
            return []
        self.changed.add(st.tid)
        self.feedback_result = "applied"
        if label == "true_positive":
            st.flagged = True
            return []
        st.flagged = False
        pattern = st.inc_pattern if which == "current" else st.last_pattern
        if pattern and pattern not in st.suppressed:
            st.suppressed = [*st.suppressed, pattern][-4:]
        if st.last_x is not None:
            self._own_base(st).learn_values(st.last_x, weight=10)
        if which == "current":
            return self._resolve(st, {"signal": "analyst_feedback", "value": label, "baseline": None, "weight": 0.0,
                                      "text": f"analyst marked alert {record.get('alert_id')} as {label}"},
                                 at=max(st.max_ts, st.inc_last_susp))
        return []

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, tenant_id: str) -> bytes:
        """Versioned bytes of one tenant's state: ``b"DGT" + u16 version + orjson`` (no pickle).

        A field that still holds a new tenant's value is left out (``base`` and ``drift`` while the tenant
        shares the population prior, ``bloom`` with no bit set, ...): a tenant with one or two events -- each
        tenant of a flood of new ids -- is written, evicted and restored often, and is mostly such fields.
        """
        st = self._tenants[tenant_id]
        doc: dict[str, Any] = {"tid": st.tid, "first_ts": st.first_ts, "max_ts": st.max_ts}
        if st.wins:
            doc["wins"] = [_win_list(w) for _, w in sorted(st.wins.items())]
        if st.closed_until != _NEG_INF:
            doc["closed_until"] = _f(st.closed_until)
        if st.cooldown_until != _NEG_INF:
            doc["cooldown_until"] = _f(st.cooldown_until)
        for (k, new), v in zip(_PLAIN, _PLAIN_GET(st)):
            if v is not new and (v != new or type(v) is not type(new)):
                doc[k] = v
        if st.base is not self._prior_base:
            doc["base"] = st.base._state.tolist()
        if st.drift is not self._prior_drift:
            doc["drift"] = st.drift.to_list()
        if st.hours is not None:
            doc["hours"] = st.hours.tolist()
        if st.ring is not None:
            doc["ring"] = st.ring.tolist()
        if st.bloom is not None:
            doc["bloom"] = st.bloom.hex()
        if st.last_x is not None:
            doc["last_x"] = st.last_x.tolist()
        if st.carry:
            doc["carry"] = _win_list(st.carry)
        if any(st.ids):
            doc["ids"] = st.ids.tolist()
        if st.ss_trail is not None:
            doc["ss_trail"] = st.ss_trail
        if st.last_inc is not None:
            doc["last_inc"] = st.last_inc
        return _SNAP_MAGIC + struct.pack("<H", _SNAP_VERSION) + orjson.dumps(doc)

    def restore(self, tenant_id: str, data: bytes) -> None:
        """Load a :meth:`snapshot` (replacing any state of that tenant); rejects unknown format versions.

        A field the snapshot leaves out keeps a new tenant's value (versions 1-3 hold most of them anyway).
        """
        if data[:3] != _SNAP_MAGIC:
            raise ValueError("not a distillguard tenant snapshot")
        (version,) = struct.unpack_from("<H", data, 3)
        if version not in _SNAP_READS:
            raise ValueError(f"unsupported tenant snapshot version {version} (this build reads {_SNAP_READS})")
        d = orjson.loads(data[5:])
        infinite = b'inf"' in data  # some value may be an infinity written as a string (else none is)
        st = self._new_tenant(tenant_id, d["first_ts"])
        self.changed.add(tenant_id)
        st.max_ts = d["max_ts"]
        for k, v in d.items():
            if k in _PLAIN_NAMES:
                setattr(st, k, v)
        v = d.get("closed_until")
        if v is not None:
            st.closed_until = _unf(v)
        v = d.get("cooldown_until")
        if v is not None:
            st.cooldown_until = _unf(v)
        # versions 1 and 2 always hold base, drift and bloom; a prior-valued one is shared again like a new tenant's
        # (versions 3 and 4 hold them only when the tenant had its own, so they are restored as its own)
        base = d.get("base")
        if base is not None and (version >= 3 or base != self._prior_base_list):
            st.base = self._prior_base.copy()
            st.base._state = array("d", [math.nan if v is None else v for v in base])  # JSON null = NaN
        drift = d.get("drift")
        if drift is not None and (version >= 3 or drift != self._prior_drift_list):
            st.drift = self._prior_drift.copy()
            st.drift.load_list(drift)
        v = d.get("hours")
        if v is not None and any(v):
            st.hours = array("d", v)
        v = d.get("ring")
        if v is not None and any(v):
            st.ring = array("Q", v)
        bloom = d.get("bloom")
        if bloom is not None and bloom.count("0") < len(bloom):  # all zero: no bit set, same as None
            st.bloom = bytearray.fromhex(bloom)
        v = d.get("last_x")
        if v is not None:
            st.last_x = array("d", v)
        v = d.get("carry")
        if v is not None:
            st.carry = _win_from_list(v, infinite)
        last_inc = d.get("last_inc")  # absent before the first resolution, and in snapshots written before it was kept
        if last_inc is not None:
            st.last_inc = (last_inc[0], int(last_inc[1]))
        trail = d.get("ss_trail")  # absent when empty, and in snapshots written before the single-shot trail
        if trail:
            st.ss_trail = tuple(tuple(t) for t in trail)
        v = d.get("ids")  # absent while no id is kept, and in snapshots written before replay filtering
        if v is not None:
            st.ids = array("Q", v)
        wins = d.get("wins")
        if wins:
            W, heap, push = self._W, self._heap, heapq.heappush
            for vals in wins:
                w = _win_from_list(vals, infinite)
                st.wins[w.start] = w
                push(heap, (w.start + W, tenant_id))
            st.next_close = min(st.wins) + W
        if st.inc_start is not None:
            self._incidents.add(tenant_id)
        # ``stream_start`` is left alone: a tenant's first_ts may predate it (a first event behind the watermark
        # is kept from moving shared times, DETECTION.md), so lowering it here made an evicted and reloaded
        # tenant change every tenant's new-model signal; stages carry it in their meta, seeds set it themselves

    # ------------------------------------------------------------------ eviction and replays
    def _reload(self, tenant_id: str) -> _Tenant | None:
        """Restore an evicted tenant through :attr:`loader` (None when the loader does not know it)."""
        data = self.loader(tenant_id) if self.loader is not None else None
        if data is None:
            return None
        self.restore(tenant_id, data)
        return self._tenants[tenant_id]

    def reload(self, tenant_id: str) -> bool:
        """Whether ``tenant_id`` is in memory, restoring it through :attr:`loader` first if it was evicted."""
        return tenant_id in self._tenants or self._reload(tenant_id) is not None

    def has_open_incident(self, tenant_id: str) -> bool:
        return tenant_id in self._incidents

    def forget(self, tenant_id: str) -> None:
        """Drop one tenant from memory (the caller has stored its :meth:`snapshot`; :attr:`loader` brings it back).

        Its pending window-close entries stay in the heap, so an evicted tenant's windows still close at the
        same watermark as if it had stayed in memory.
        """
        del self._tenants[tenant_id]
        self._incidents.discard(tenant_id)

    def replayed(self, ev: dict[str, Any]) -> bool:
        """True if ``ev``'s ``event_id`` is among its tenant's last 16 ids (a replay or retry); else remember it.

        An unknown tenant has seen nothing, so this is False (call it again after :meth:`process` to record).
        """
        st = self._tenants.get(ev["tenant_id"])
        if st is None:
            return False
        raw = ev["event_id"].encode("utf-8", "surrogatepass")
        h = (zlib.crc32(raw) << 32 | zlib.adler32(raw)) | 1  # deterministic across processes; 0 marks a free slot
        ids = st.ids
        # ``h in ids`` built an int of every slot; one byte search of the ring finds the same, once a match has
        # to start on a slot boundary (a misaligned one is searched past)
        packed, ring = _PACK_ID(h), ids.tobytes()
        pos = ring.find(packed)
        while pos > 0 and pos % _ID_SIZE:
            pos = ring.find(packed, pos + 1)
        if pos >= 0:
            return True
        ids[st.ids_i] = h
        st.ids_i = (st.ids_i + 1) % _ID_RING
        return False

    def evict_idle(self, before_ts: float) -> dict[str, bytes]:
        """Remove tenants with no event since ``before_ts``, no open window and no open incident (its quiet-period
        resolution runs on watermark ticks, which only reach tenants in memory); returns their snapshots."""
        out: dict[str, bytes] = {}
        for tid in sorted(self._tenants):
            st = self._tenants[tid]
            if st.max_ts < before_ts and not st.wins and st.inc_start is None:
                out[tid] = self.snapshot(tid)
                del self._tenants[tid]
        return out

    def tenant_first_ts(self, tenant_id: str) -> float:
        """Event time of the tenant's first event (of a tenant in memory)."""
        return self._tenants[tenant_id].first_ts

    def tenant_info(self, tenant_id: str) -> dict[str, Any]:
        """Readable summary of one tenant's state (for debugging and tests)."""
        st = self._tenants[tenant_id]
        return {"max_ts": st.max_ts, "open_windows": sorted(st.wins), "incident_open": st.inc_start is not None,
                "flagged": st.flagged, "suppressed_patterns": len(st.suppressed), "late_events": st.n_late,
                "future_clamped": st.n_future, "active_windows": st.n_active, "baseline_weight": st.base.weight,
                "drift_statistic": st.drift.statistic,
                "baseline": {k: rnd(st.base._state[i]) for i, k in enumerate(FEATURES)}}


def _win_list(w: Window) -> list[Any]:
    """A window's slot values for JSON (infinite floats as ``"inf"`` / ``"-inf"``)."""
    vals = w.to_list()
    # the numeric slots' sum is finite unless one is infinite (or NaN, or the sum overflows: then the
    # conversion below looks and changes nothing); cheaper than searching the list for either infinity
    if not math.isfinite(sum(_WIN_NUMBERS(w))):  # rare (a window without an in-order event): convert
        return [_f(v) if isinstance(v, float) else v for v in vals]
    return vals


_WIN_TEXT = frozenset(i for i, name in enumerate(Window.__slots__) if name in ("net", "pfx", "ua", "pay"))
_WIN_NUMBERS = attrgetter(*(name for name in Window.__slots__
                            if name not in ("net", "pfx", "ua", "pay", "tmpl", "topics", "accts", "ev", "ev_any")))


def _win_from_list(vals: list[Any], infinite: bool = True) -> Window:
    """``infinite=False``: the snapshot holds no ``"inf"`` string (no slot to convert, nothing to search)."""
    if infinite and ("inf" in vals or "-inf" in vals):  # infinities of numeric slots; a user agent "inf" stays a string
        vals = [_unf(v) if isinstance(v, str) and v in ("inf", "-inf") and i not in _WIN_TEXT else v
                for i, v in enumerate(vals)]
    return Window.from_list(vals)


def _f(v: float) -> float | str:
    return "inf" if v == math.inf else "-inf" if v == -math.inf else v


def _unf(v: Any) -> Any:
    return math.inf if v == "inf" else -math.inf if v == "-inf" else v
