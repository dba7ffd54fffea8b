"""The extraction-likeness score of one tenant window: absolute evidence (population prior) + own-baseline shift.

No single signal decides. The window features are grouped into *pillars*
that an extraction campaign shows together:

* ``elicit``  — chain-of-thought elicitation / reasoning-heavy output, or logprob / logit-bias probing;
* ``harvest`` — outputs cut at ``max_tokens``, high output/input ratio, temperature 0, or probing;
* ``systematic`` — template concentration / near-duplicates with *varying* content and a broad topic sweep
  (or coding / tool-use concentration), at volume;
* ``automation`` — regular pacing, no sessions, flat 24-hour profile.

The absolute score is a logistic function of the weighted pillar sum minus
benign evidence (multi-turn conversations, re-sent fixed prompt sets), times a
soft AND-gate that needs *both* elicitation and harvesting: a batch job (one
template, no CoT, short outputs) or an evaluation harness (CoT at temperature
0, but short answers and a fixed question set) stays low. The relative part
adds the tenant's shift from its *own* baseline in the extraction direction
(z-scores of the pillar features) and discounts a long-established, unchanged
pattern a little. New tenants are compared with the population prior.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from detectors.common import sigmoid
from detectors.window import FEATURES, F

# Population prior of the per-tenant baseline: (mean, variance) per feature for an ordinary tenant.
PRIOR: dict[str, tuple[float, float]] = {
    "volume": (2.0, 1.5), "cot": (0.05, 0.02), "reasoning": (0.1, 0.03), "template_top": (0.2, 0.05),
    "near_dup": (0.1, 0.03), "repeat": (0.05, 0.02), "topic_entropy": (0.2, 0.05), "topic_new": (0.05, 0.02),
    "coding": (0.2, 0.1), "cap": (0.05, 0.01), "out_in": (0.3, 0.05), "temp0": (0.2, 0.1),
    "regularity": (0.1, 0.05), "no_session": (0.5, 0.15), "multi_turn": (0.3, 0.1), "tools": (0.2, 0.1),
    "flat_hours": (0.5, 0.1), "logprobs": (0.02, 0.01), "logit_bias": (0.01, 0.005), "tiny_max": (0.05, 0.02),
    "bias_repeat": (0.0, 0.002), "new_model": (0.05, 0.03), "accounts": (0.2, 0.05), "prompt_data": (0.5, 0.2), "topic_data": (0.3, 0.2), "joint": (0.01, 0.005),
}
# Features whose increase moves a tenant toward extraction, with their weight in the relative part.
REL_WEIGHTS: dict[str, float] = {
    "cot": 1.0, "reasoning": 0.5, "cap": 1.0, "template_top": 0.5, "near_dup": 0.5, "topic_entropy": 0.5,
    "regularity": 0.5, "no_session": 0.3, "logprobs": 0.7, "logit_bias": 0.7, "bias_repeat": 1.0,
    "volume": 0.6, "new_model": 0.3, "out_in": 0.3, "joint": 1.0,
}
_REL_IDX = [(F[k], w) for k, w in REL_WEIGHTS.items()]
_REL_GET = itemgetter(*(i for i, _ in _REL_IDX))  # one call picks those features' z-scores, in REL_WEIGHTS order
_REL_W = tuple(w for _, w in _REL_IDX)

# Pillar weights and intercept of the absolute logistic score.
W_ELICIT, W_HARVEST, W_SYSTEMATIC, W_AUTOMATION, W_VOLUME, W_PIVOT = 1.8, 1.8, 1.4, 1.3, 0.6, 0.5
W_MULTI_TURN, W_REPEAT, W_JOINT = 2.5, 2.0, 2.0
INTERCEPT = -4.6

TEXT = {
    "cot": "{v:.0%} of prompts ask for step-by-step / hidden reasoning (tenant baseline {b:.0%})",
    "reasoning": "reasoning tokens are {v:.0%} of output (baseline {b:.0%})",
    "template_top": "prompt template concentration {v:.0%} (3 most used templates, 0 = all distinct; baseline {b:.0%})",
    "near_dup": "{v:.0%} of prompts are near-duplicates of a recent prompt by SimHash (baseline {b:.0%})",
    "topic_entropy": "topic spread {v:.2f} of maximum: a flat sweep over many topics (baseline {b:.2f})",
    "topic_new": "{v:.2f} new-topic coverage growth this window (baseline {b:.2f})",
    "coding": "{v:.0%} of prompts are coding / tool-use topics (baseline {b:.0%})",
    "cap": "{v:.0%} of responses were cut at max_tokens (baseline {b:.0%})",
    "out_in": "output/input token ratio score {v:.2f} (baseline {b:.2f})",
    "temp0": "{v:.0%} of requests at temperature 0 (baseline {b:.0%})",
    "regularity": "machine-regular pacing: 1 - CV of inter-arrival times = {v:.2f} (baseline {b:.2f})",
    "no_session": "{v:.0%} single-shot requests without a session (baseline {b:.0%})",
    "flat_hours": "24-hour activity profile flatness {v:.2f} (baseline {b:.2f})",
    "logprobs": "logprob requests score {v:.2f} (baseline {b:.2f})",
    "logit_bias": "{v:.0%} of requests send logit_bias entries (baseline {b:.0%})",
    "tiny_max": "{v:.0%} of requests with max_tokens <= 16 (baseline {b:.0%})",
    "bias_repeat": "{v:.0%} re-send a recent prompt with a different logit bias (baseline {b:.0%})",
    "new_model": "{v:.0%} of traffic on a model first seen less than a day ago (baseline {b:.0%})",
    "volume": "{v:.0f} requests in the window (tenant baseline {b:.0f})",
    "joint": "{v:.0%} of requests are single-shot, reasoning-eliciting AND cut at max_tokens (baseline {b:.0%})",
    "relative_shift": "shift from the tenant's own baseline toward extraction: {v:.2f} (0 = unchanged)",
}


# feature indices read on every window close (module constants: no dict lookup per use)
_VOLUME, _COT, _REASONING, _TEMPLATE_TOP, _NEAR_DUP, _REPEAT = (F[k] for k in (
    "volume", "cot", "reasoning", "template_top", "near_dup", "repeat"))
_TOPIC_ENTROPY, _TOPIC_NEW, _CODING, _CAP, _OUT_IN, _TEMP0 = (F[k] for k in (
    "topic_entropy", "topic_new", "coding", "cap", "out_in", "temp0"))
_REGULARITY, _NO_SESSION, _MULTI_TURN, _FLAT_HOURS, _LOGPROBS, _LOGIT_BIAS = (F[k] for k in (
    "regularity", "no_session", "multi_turn", "flat_hours", "logprobs", "logit_bias"))
_BIAS_REPEAT, _NEW_MODEL, _PROMPT_DATA, _TOPIC_DATA, _JOINT = (F[k] for k in (
    "bias_repeat", "new_model", "prompt_data", "topic_data", "joint"))
_VOL_LO = math.log1p(10)  # volume term: 0 at 10 events ...
_VOL_SPAN = math.log1p(500) - math.log1p(10)  # ... 1 at 500


# The per-window functions below spell two-value min()/max() out as conditional expressions: in Python 3.11
# the builtins parse their arguments on every call, which cost about as much as the rest of pillars().
# ``min(a, b)`` is written ``b if b < a else a`` and ``max(a, b)`` ``b if b > a else a``: the same value as the
# builtin in every case (it keeps the first argument unless the second is strictly smaller / larger).


def pillars(x: list[float]) -> dict[str, float]:
    """Pillar strengths in [0, 1] from a window feature vector."""
    # probing = the same prompt re-sent with different biases; logprobs or a logit bias alone are ordinary
    # (classifiers constrain labels with a bias and read the label's logprob)
    lp, lb = x[_LOGPROBS], x[_LOGIT_BIAS]
    probe = x[_BIAS_REPEAT] * (0.5 + 0.5 * (lb if lb > lp else lp)) + 0.25 * (lb if lb < lp else lp)
    probe = probe if probe < 1.0 else 1.0
    reasoning = 1.5 * x[_REASONING]
    reasoning = (reasoning if reasoning < 1.0 else 1.0) * 0.6
    cot = x[_COT]
    cot = reasoning if reasoning > cot else cot
    elicit = probe if probe > cot else cot
    cap, temp0 = x[_CAP], x[_TEMP0]
    harvest_out = 0.6 * cap + 0.2 * x[_OUT_IN] + 0.2 * temp0 + 0.4 * cap * temp0
    harvest_out = harvest_out if harvest_out < 1.0 else 1.0
    harvest = probe if probe > harvest_out else harvest_out
    varying = 1.0 - x[_REPEAT]
    tt, nd = x[_TEMPLATE_TOP], x[_NEAR_DUP]
    repetitive = (nd if nd > tt else tt) * varying
    sweep, new, coding = x[_TOPIC_ENTROPY], x[_TOPIC_NEW], 0.7 * x[_CODING]
    sweep = new if new > sweep else sweep
    sweep = coding if coding > sweep else sweep
    # without prompt structure / topic labels a part is unknown: neutral (0.35), not absent
    kp, kt = x[_PROMPT_DATA], x[_TOPIC_DATA]
    systematic = 0.5 * (kp * repetitive + (1.0 - kp) * 0.35) + 0.5 * (kt * sweep + (1.0 - kt) * 0.35)
    automation = 0.4 * x[_REGULARITY] + 0.4 * x[_NO_SESSION] + 0.2 * x[_FLAT_HOURS]
    return {"elicit": elicit, "harvest": harvest, "systematic": systematic, "automation": automation,
            "probe": probe, "cot": cot}


def absolute_score(x: list[float]) -> tuple[float, dict[str, float]]:
    """Extraction likelihood of the window against the population prior alone."""
    p = pillars(x)
    elicit, harvest, probe, joint = p["elicit"], p["harvest"], p["probe"], x[_JOINT]
    volume = (x[_VOLUME] - _VOL_LO) / _VOL_SPAN
    volume = volume if volume > 0.0 else 0.0
    volume = volume if volume < 1.0 else 1.0
    joint2 = 2.0 * joint
    z = (INTERCEPT + W_ELICIT * elicit + W_HARVEST * harvest + W_SYSTEMATIC * p["systematic"]
         + W_AUTOMATION * p["automation"] + W_VOLUME * volume + W_PIVOT * x[_NEW_MODEL]
         + W_JOINT * joint
         - W_MULTI_TURN * x[_MULTI_TURN]
         - W_REPEAT * x[_REPEAT] * (1.0 - probe) * (1.0 - (joint2 if joint2 < 1.0 else 1.0)))
    gate = sigmoid(10.0 * ((harvest if harvest < elicit else elicit) - 0.3))
    p["volume"] = volume
    return sigmoid(z) * gate, p


def relative_shift(z: dict[str, float]) -> float:
    """Weighted mean of the positive z-scores beyond 1 in the extraction direction, in [0, 1]."""
    tot = 0.0
    for name, w in REL_WEIGHTS.items():
        v = z.get(name, 0.0)
        if v > 1.0:
            tot += w * min(v - 1.0, 4.0) / 4.0
    return min(1.0, tot / 3.0)


def relative_shift_vec(z: list[float]) -> float:
    """:func:`relative_shift` over a z-score vector in :data:`FEATURES` order."""
    tot = 0.0
    for v, w in zip(_REL_GET(z), _REL_W):
        if v > 1.0:
            v -= 1.0
            tot += w * (4.0 if 4.0 < v else v) / 4.0
    tot /= 3.0
    return tot if tot < 1.0 else 1.0


def combine(abs_score: float, rel: float, familiarity: float) -> float:
    """Final window score: the absolute score moved up by the relative shift, down by familiarity (both bounded)."""
    if abs_score <= 0.0:
        return 0.0
    rest = 1.0 - abs_score
    logit = math.log((1e-9 if 1e-9 > abs_score else abs_score) / (1e-9 if 1e-9 > rest else rest))
    ramp = abs_score / 0.3
    logit += 1.2 * rel * (ramp if ramp < 1.0 else 1.0) - 0.5 * familiarity * rest
    return sigmoid(logit)


def reasons(x: list[float], base: Sequence[float], p: dict[str, float], rel: float, limit: int = 6) -> list[dict[str, Any]]:
    """The strongest contributing signals as ``{signal, value, baseline, weight, text}``, strongest first."""
    contrib = {
        "cot": W_ELICIT * p["cot"], "logprobs": W_ELICIT * x[F["logprobs"]], "logit_bias": W_ELICIT * x[F["logit_bias"]],
        "bias_repeat": W_ELICIT * x[F["bias_repeat"]], "reasoning": W_ELICIT * 0.9 * x[F["reasoning"]],
        "cap": W_HARVEST * 0.6 * x[F["cap"]], "out_in": W_HARVEST * 0.2 * x[F["out_in"]],
        "temp0": W_HARVEST * 0.2 * x[F["temp0"]], "template_top": W_SYSTEMATIC * 0.5 * x[F["template_top"]],
        "near_dup": W_SYSTEMATIC * 0.5 * x[F["near_dup"]], "topic_entropy": W_SYSTEMATIC * 0.5 * x[F["topic_entropy"]],
        "topic_new": W_SYSTEMATIC * 0.5 * x[F["topic_new"]], "coding": W_SYSTEMATIC * 0.35 * x[F["coding"]],
        "regularity": W_AUTOMATION * 0.4 * x[F["regularity"]], "no_session": W_AUTOMATION * 0.4 * x[F["no_session"]],
        "flat_hours": W_AUTOMATION * 0.2 * x[F["flat_hours"]], "volume": W_VOLUME * p["volume"],
        "new_model": W_PIVOT * x[F["new_model"]], "joint": W_JOINT * x[F["joint"]],
    }
    out = []
    for name, w in sorted(contrib.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]:
        if w < 0.05:
            break
        i = F[name]
        v, b = x[i], base[i]
        if name == "volume":
            v, b = math.expm1(v), math.expm1(b)
        out.append({"signal": name, "value": round(v, 4), "baseline": round(b, 4), "weight": round(w, 4),
                    "text": TEXT[name].format(v=v, b=b)})
    if rel > 0.05:
        out.append({"signal": "relative_shift", "value": round(rel, 4), "baseline": 0.0, "weight": round(1.2 * rel, 4),
                    "text": TEXT["relative_shift"].format(v=rel)})
    return out


__all__ = ["FEATURES", "PRIOR", "absolute_score", "combine", "pillars", "reasons", "relative_shift"]
