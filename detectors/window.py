"""Per-tenant event-time window aggregates and the feature vector computed when a window closes.

A :class:`Window` holds only counters and a few capped dicts, updated per
event by :meth:`detectors.tenant.TenantDetector.process`; the feature vector
(:data:`FEATURES`, every value in [0, 1] except ``volume``) is computed once
per closed window by :func:`window_features`.
"""

from __future__ import annotations

import math
from operator import attrgetter
from typing import Any

# Feature order is fixed (baselines store one float per feature in this order).
FEATURES: tuple[str, ...] = (
    "volume",  # log1p(events in window)
    "cot",  # share of prompts eliciting step-by-step / hidden reasoning
    "reasoning",  # reasoning tokens / (output + reasoning tokens)
    "template_top",  # share of the 3 most frequent templates, corrected for window size (0 = all distinct)
    "near_dup",  # share of prompts within a small SimHash Hamming distance of a recent prompt
    "repeat",  # share of prompts whose exact fingerprint the tenant sent before (fixed set re-sent)
    "topic_entropy",  # normalised entropy of prompt topics (flat = systematic sweep)
    "topic_new",  # new topics covered this window (coverage growth), /8 capped at 1
    "coding",  # share of coding / tool-use topics
    "cap",  # share of responses cut at max_tokens (output >= 90% of cap or stop_reason=max_tokens)
    "out_in",  # output/input token ratio, log2 scaled to [0, 1] (16x -> 1)
    "temp0",  # share of requests at temperature 0 (among those that state it)
    "regularity",  # 1 - CV of inter-arrival times (machine pacing), 0 when too few
    "no_session",  # share of single-shot requests without a session id
    "multi_turn",  # share of requests continuing a conversation (turn_index > 0)
    "tools",  # share of requests offering tools
    "flat_hours",  # normalised entropy of the tenant's 24-hour activity profile (needs a day of history)
    "logprobs",  # logprobs requested (half weight) and top_logprobs >= 5 (full weight), as a share
    "logit_bias",  # share sending logit_bias entries
    "tiny_max",  # share with max_tokens <= 16
    "bias_repeat",  # share re-sending a recent prompt with a logit bias (probing)
    "new_model",  # share on a model first seen (globally) less than a day ago
    "accounts",  # distinct accounts in the window, log scaled (8 -> 1)
    "prompt_data",  # share of events carrying prompt structure (fingerprint or template id)
    "topic_data",  # share of events carrying a prompt topic label
    "joint",  # share of single-shot requests that elicit reasoning AND are harvested at the cap (both at once)
)
F = {name: i for i, name in enumerate(FEATURES)}
NF = len(FEATURES)


class Window:
    """Aggregates of one tenant's events in one event-time window (``__slots__``: no per-instance dict)."""

    __slots__ = (
        "start", "n", "n_cot", "n_cap", "n_t0", "n_tk", "n_nosess", "n_turn", "n_tools", "n_lp", "n_bias",
        "n_tiny", "n_biasrep", "n_near", "n_fp", "n_pdata", "n_joint", "n_rep", "n_new", "n_late", "n_topic", "n_coding",
        "s_in", "s_out", "s_reason", "s_dt", "s_dt2", "n_dt", "first_ts", "last_ts",
        "tmpl", "n_tmpl", "topics", "accts", "ev", "ev_any", "net", "pfx", "n_net", "ua", "n_ua", "pay", "n_pay",
        # the single-shot requests (no session) on their own: extraction hidden among conversational cover traffic
        "n_ss_cot", "n_ss_cap", "n_ss_t0", "n_ss_tk", "s_ss_in", "s_ss_out", "s_ss_reason",
    )
    _ADDED = 7  # trailing slots missing from windows saved by tenant snapshot version 1 (start at 0)

    def __init__(self, start: float) -> None:
        self.start = start
        self.n = self.n_cot = self.n_cap = self.n_t0 = self.n_tk = self.n_nosess = self.n_turn = 0
        self.n_tools = self.n_lp = self.n_bias = self.n_tiny = self.n_biasrep = self.n_near = self.n_fp = 0
        self.n_joint = self.n_pdata = self.n_rep = self.n_new = self.n_late = self.n_topic = self.n_coding = self.n_tmpl = self.n_dt = 0
        self.n_net = self.n_ua = self.n_pay = 0
        self.n_ss_cot = self.n_ss_cap = self.n_ss_t0 = self.n_ss_tk = self.s_ss_in = self.s_ss_out = self.s_ss_reason = 0
        self.s_in = self.s_out = self.s_reason = 0
        self.s_dt = self.s_dt2 = 0.0
        self.first_ts = math.inf
        self.last_ts = -math.inf
        self.tmpl: dict[str, int] | None = None
        self.topics: dict[str, int] | None = None
        self.accts: list[str] = []
        self.ev: list[str] = []
        self.ev_any: list[str] = []
        self.net: int | None = None  # ASN (with client_ip_prefix ``pfx``) of the window's first networked event
        self.pfx: str | None = None
        self.ua: str | None = None
        self.pay: str | None = None

    def to_list(self) -> list[Any]:
        return list(_ALL_SLOTS(self))

    @classmethod
    def from_list(cls, values: list[Any]) -> Window:
        w = cls.__new__(cls)
        if len(values) == len(cls.__slots__) - cls._ADDED:
            values = [*values, *([0] * cls._ADDED)]
        for s, v in zip(cls.__slots__, values, strict=True):
            setattr(w, s, v)
        if isinstance(w.first_ts, str) or w.first_ts is None:
            w.first_ts = math.inf
        if isinstance(w.last_ts, str) or w.last_ts is None:
            w.last_ts = -math.inf
        return w

    _SUMS = ("n", "n_cot", "n_cap", "n_t0", "n_tk", "n_nosess", "n_turn", "n_tools", "n_lp", "n_bias", "n_tiny",
             "n_biasrep", "n_near", "n_fp", "n_pdata", "n_joint", "n_rep", "n_new", "n_late", "n_topic", "n_coding",
             "s_in", "s_out", "s_reason", "s_dt", "s_dt2", "n_dt", "n_tmpl", "n_net", "n_ua", "n_pay",
             "n_ss_cot", "n_ss_cap", "n_ss_t0", "n_ss_tk", "s_ss_in", "s_ss_out", "s_ss_reason")

    def merge(self, o: Window) -> None:
        """Add another window's aggregates (used to pool a sparse tenant's consecutive small windows).

        The counters of :attr:`_SUMS` are added one by one, spelled out: a loop of ``getattr`` / ``setattr``
        over the names cost about three times as much, once per pooled window (a test checks the two agree).
        """
        self.n += o.n
        self.n_cot += o.n_cot
        self.n_cap += o.n_cap
        self.n_t0 += o.n_t0
        self.n_tk += o.n_tk
        self.n_nosess += o.n_nosess
        self.n_turn += o.n_turn
        self.n_tools += o.n_tools
        self.n_lp += o.n_lp
        self.n_bias += o.n_bias
        self.n_tiny += o.n_tiny
        self.n_biasrep += o.n_biasrep
        self.n_near += o.n_near
        self.n_fp += o.n_fp
        self.n_pdata += o.n_pdata
        self.n_joint += o.n_joint
        self.n_rep += o.n_rep
        self.n_new += o.n_new
        self.n_late += o.n_late
        self.n_topic += o.n_topic
        self.n_coding += o.n_coding
        self.s_in += o.s_in
        self.s_out += o.s_out
        self.s_reason += o.s_reason
        self.s_dt += o.s_dt
        self.s_dt2 += o.s_dt2
        self.n_dt += o.n_dt
        self.n_tmpl += o.n_tmpl
        self.n_net += o.n_net
        self.n_ua += o.n_ua
        self.n_pay += o.n_pay
        self.n_ss_cot += o.n_ss_cot
        self.n_ss_cap += o.n_ss_cap
        self.n_ss_t0 += o.n_ss_t0
        self.n_ss_tk += o.n_ss_tk
        self.s_ss_in += o.s_ss_in
        self.s_ss_out += o.s_ss_out
        self.s_ss_reason += o.s_ss_reason
        if o.first_ts < self.first_ts:
            self.first_ts = o.first_ts
        if o.last_ts > self.last_ts:
            self.last_ts = o.last_ts
        if o.tmpl:
            self.tmpl = _merge_counts(self.tmpl, o.tmpl, 16)
        if o.topics:
            self.topics = _merge_counts(self.topics, o.topics, 24)
        accts = self.accts
        for a in o.accts:
            if len(accts) < 8 and a not in accts:
                accts.append(a)
        if o.ev:
            self.ev = (self.ev + o.ev)[:12]
        if o.ev_any:
            self.ev_any = (self.ev_any + o.ev_any)[:4]
        if self.net is None:
            self.net, self.pfx = o.net, o.pfx
        if self.ua is None:
            self.ua = o.ua
        if self.pay is None:
            self.pay = o.pay

    def top_templates(self, k: int = 2) -> list[tuple[str, int]]:
        if not self.tmpl:
            return []
        return sorted(self.tmpl.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def _merge_counts(dst: dict[str, int] | None, src: dict[str, int], cap: int) -> dict[str, int]:
    """``dst`` with ``src``'s counts added (a new key only while ``dst`` holds fewer than ``cap``)."""
    if dst is None:
        return dict(src)
    for k, v in src.items():
        if k in dst:
            dst[k] += v
        elif len(dst) < cap:
            dst[k] = v
    return dst


_ALL_SLOTS = attrgetter(*Window.__slots__)  # one call returns every slot value, in __slots__ order


def _entropy(counts: list[float]) -> float:
    tot = sum(counts)
    if tot <= 0 or len(counts) < 2:
        return 0.0
    h = -sum(c / tot * math.log(c / tot) for c in counts if c > 0)
    return h / math.log(len(counts))


def window_features(w: Window, hours: Any, age_seconds: float, topic_new: int) -> list[float]:
    """The feature vector (:data:`FEATURES` order) of a closed window.

    ``hours`` is the tenant's 24-bucket activity profile (already including
    this window), ``age_seconds`` the tenant's observed age, ``topic_new`` the
    number of topics first covered in this window.

    Computed once per window close: the conditional features first, then the vector as one list display
    (no zero-filled list written slot by slot).
    """
    n = w.n if w.n > 1 else 1  # max(w.n, 1); two-value min/max are spelled out here as in detectors.scoring
    template_top = near_dup = repeat = topic_entropy = coding = temp0 = regularity = flat_hours = 0.0
    n_tmpl = w.n_tmpl
    if n_tmpl >= 4 and w.tmpl:
        # "one or a few templates": top-3 share, rescaled so that all-distinct prompts give 0 at any window size
        top3 = sum(sorted(w.tmpl.values(), reverse=True)[:3])
        floor = 3.0 / n_tmpl
        template_top = (top3 / n_tmpl - floor) / (1.0 - floor)
        template_top = template_top if template_top > 0.0 else 0.0
    n_fp = w.n_fp
    if n_fp >= 3:
        near_dup = w.n_near / n_fp
        repeat = w.n_rep / n_fp
    n_topic = w.n_topic
    if n_topic >= 3 and w.topics:
        # flat over the topics seen, and broad: few distinct topics cannot be a sweep
        breadth = (len(w.topics) - 1) / 5.0
        topic_entropy = _entropy(list(w.topics.values())) * (breadth if breadth < 1.0 else 1.0)
        coding = w.n_coding / n_topic
    if w.n_tk:
        temp0 = w.n_t0 / w.n_tk
    n_dt = w.n_dt
    if n_dt >= 8:
        mean = w.s_dt / n_dt
        if mean > 0:
            var = w.s_dt2 / n_dt - mean * mean
            regularity = 1.0 - math.sqrt(var if var > 0.0 else 0.0) / mean
            regularity = regularity if regularity > 0.0 else 0.0
    if age_seconds >= 86400.0:
        flat_hours = _entropy(list(hours))
    s_out = w.s_out
    out_in = math.log2((s_out + 1.0) / (w.s_in + 1.0)) / 4.0
    out_in = out_in if out_in > 0.0 else 0.0
    topic_new_share = topic_new / 8.0
    logprobs = w.n_lp / (2.0 * n)
    accounts = math.log2(1 + len(w.accts)) / 3.0
    return [
        math.log1p(w.n),  # volume
        w.n_cot / n,  # cot
        w.s_reason / (s_out + w.s_reason + 1.0),  # reasoning
        template_top,
        near_dup,
        repeat,
        topic_entropy,
        topic_new_share if topic_new_share < 1.0 else 1.0,  # topic_new
        coding,
        w.n_cap / n,  # cap
        out_in if out_in < 1.0 else 1.0,  # out_in
        temp0,
        regularity,
        w.n_nosess / n,  # no_session
        w.n_turn / n,  # multi_turn
        w.n_tools / n,  # tools
        flat_hours,
        logprobs if logprobs < 1.0 else 1.0,  # logprobs
        w.n_bias / n,  # logit_bias
        w.n_tiny / n,  # tiny_max
        w.n_biasrep / n,  # bias_repeat
        w.n_new / n,  # new_model
        accounts if accounts < 1.0 else 1.0,  # accounts
        w.n_pdata / n,  # prompt_data
        n_topic / n,  # topic_data
        w.n_joint / n,  # joint
    ]


SINGLE_SHOT_MIN = 5  # single-shot requests a mixed window needs before they are scored on their own
# a window's single-shot counters, in this order, as the trail of recent windows keeps them
SS_COUNTERS = ("n_nosess", "n_ss_cot", "n_ss_cap", "n_ss_t0", "n_ss_tk", "s_ss_in", "s_ss_out", "s_ss_reason",
               "n_joint")


_SS_GET = attrgetter(*SS_COUNTERS)


def ss_counters(w: Window) -> tuple[float, ...]:
    """The window's single-shot counters, in :data:`SS_COUNTERS` order."""
    return _SS_GET(w)


def single_shot_features(w: Window, x: list[float], trail: tuple[float, ...] | None = None,
                         windows: float = 1.0) -> list[float] | None:
    """The window's feature vector restricted to its single-shot requests, or None when that adds nothing.

    Scripted extraction is single-shot; cover traffic mixed in by the same accounts is conversational
    (sessions, turns). Window-wide shares average the two, so a half-extraction tenant looks half as
    suspicious. Here the per-request shares (reasoning elicitation, cap, temperature 0, output/input,
    the joint signal) are taken over the single-shot requests only; prompt-structure, topic, pacing and
    probing features stay window-wide. Only for mixed windows with at least :data:`SINGLE_SHOT_MIN`
    single-shot requests (an all-single-shot window is already scored as it is).

    ``trail`` adds the single-shot counters of the tenant's previous windows (summed, :data:`SS_COUNTERS`
    order) spanning ``windows`` windows of event time with this one: cover traffic leaves a few
    single-shot requests in each window, too few to judge one window on, while a short run of windows
    holds enough. The window must still hold single-shot requests of its own, and the volume feature
    is their count per window, not the run's total.
    """
    m = w.n_nosess
    if m == 0 or m >= w.n:
        return None
    c = ss_counters(w) if trail is None else tuple([a + b for a, b in zip(ss_counters(w), trail, strict=True)])
    m_all = c[0]
    if m_all < SINGLE_SHOT_MIN:
        return None
    xs = list(x)
    xs[0] = math.log1p(m_all / windows)
    xs[1] = c[1] / m_all
    xs[2] = c[7] / (c[6] + c[7] + 1.0)
    xs[9] = c[2] / m_all
    out_in = math.log2((c[6] + 1.0) / (c[5] + 1.0)) / 4.0
    out_in = out_in if out_in > 0.0 else 0.0
    xs[10] = out_in if out_in < 1.0 else 1.0
    xs[11] = c[3] / c[4] if c[4] else 0.0
    xs[13] = 1.0
    xs[14] = 0.0
    xs[25] = c[8] / m_all
    return xs
