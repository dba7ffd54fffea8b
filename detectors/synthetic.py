"""Small, deterministic synthetic traffic profiles for the detectors' tests and benchmark.

Not the project simulator (``simulator/``): just enough labelled behaviour to exercise each signal.
Every function returns decoded events (dicts with ``ts`` and an RFC 3339 ``timestamp``) sorted by time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

from detectors.common import iso

T0 = 1_782_000_000.0  # 2026-06-21T00:00:00Z (a Sunday, midnight UTC)
TOPICS = [f"topic-{i:02d}" for i in range(60)]
OFFICIAL_UA = "anthropic-sdk-python/0.40.0"


def _fp(rng: random.Random) -> int:
    return rng.getrandbits(64)


def _near(base: int, rng: random.Random, bits: int = 4) -> int:
    for _ in range(bits):
        base ^= 1 << rng.randrange(64)
    return base


def _event(tenant: str, i: int, ts: float, **kw: Any) -> dict[str, Any]:
    ev = {"event_id": f"{tenant}-{i:07d}", "timestamp": iso(ts), "ts": round(ts, 3), "tenant_id": tenant,
          "account_id": kw.pop("account_id", f"{tenant}-acct-0"), "model": kw.pop("model", "model-a"),
          "input_tokens": kw.pop("input_tokens", 200), "output_tokens": kw.pop("output_tokens", 300)}
    for k, v in kw.items():
        if v is not None:
            ev[k] = f"{v:016x}" if k == "prompt_fingerprint" else v
    return ev


def extraction(tenant: str, start: float = T0, hours: float = 6.0, rate: float = 2.0, seed: int = 1,
               model: str = "model-a", accounts: int = 10, **extra: Any) -> list[dict[str, Any]]:
    """CoT-eliciting template prompts sweeping many topics, outputs at the cap, temperature 0, machine pacing."""
    rng = random.Random(seed)
    bases = [_fp(rng) for _ in range(2)]
    out, ts, i = [], start, 0
    while ts < start + hours * 3600:
        t = i % 2
        mt = 2048
        cap = rng.random() < 0.8
        out.append(_event(tenant, i, ts, account_id=f"{tenant}-acct-{i % accounts}", model=model,
                          input_tokens=rng.randint(60, 120), output_tokens=mt if cap else rng.randint(900, 1800),
                          max_tokens=mt, temperature=0.0, cot_elicitation=True, reasoning_tokens=rng.randint(400, 1500),
                          prompt_fingerprint=_near(bases[t], rng, 6), prompt_template_id=f"tmpl-x{t}-{tenant}",
                          prompt_topic=rng.choice(TOPICS), stop_reason="max_tokens" if cap else "end_turn",
                          user_agent="python-requests/2.31", asn=64500, client_ip_prefix="pfx-x", **extra))
        i += 1
        ts += (1.0 / rate) * rng.uniform(0.9, 1.1)
    return out


def batch(tenant: str, start: float = T0, hours: float = 24.0, rate: float = 1.0, seed: int = 2) -> list[dict[str, Any]]:
    """One template at high volume around the clock: narrow topic, no CoT, short outputs, temperature 0."""
    rng = random.Random(seed)
    base = _fp(rng)
    out, ts, i = [], start, 0
    while ts < start + hours * 3600:
        out.append(_event(tenant, i, ts, input_tokens=rng.randint(300, 600), output_tokens=rng.randint(3, 12),
                          max_tokens=64, temperature=0.0, prompt_fingerprint=_near(base, rng, 3),
                          prompt_template_id=f"tmpl-b-{tenant}", prompt_topic="classification",
                          user_agent=OFFICIAL_UA, asn=16509, client_ip_prefix=f"pfx-{tenant}", stop_reason="end_turn"))
        i += 1
        ts += (1.0 / rate) * rng.uniform(0.95, 1.05)
    return out


def chat(tenant: str, start: float = T0, hours: float = 48.0, peak_rate: float = 0.5, seed: int = 3,
         model: str = "model-a", cot_share: float = 0.08, tools: bool = False) -> list[dict[str, Any]]:
    """A chat product (or a coding assistant with ``tools``): daily cycle, multi-turn sessions, varied prompts."""
    rng = random.Random(seed)
    out, ts, i, sess, turn = [], start, 0, 0, 0
    while ts < start + hours * 3600:
        hour = (ts % 86400) / 3600
        rate = peak_rate * max(0.03, math.sin(math.pi * (hour - 6) / 16)) if 6 <= hour <= 22 else peak_rate * 0.03
        ts += rng.expovariate(max(rate, 1e-4))
        if rng.random() < 0.3:
            sess, turn = sess + 1, 0
        else:
            turn += 1
        mt = rng.choice([1024, 2048, 4096])
        out.append(_event(tenant, i, ts, account_id=f"{tenant}-user-{rng.randrange(50)}", model=model,
                          input_tokens=rng.randint(100, 3000), output_tokens=rng.randint(50, 700), max_tokens=mt,
                          temperature=rng.choice([0.7, 1.0]), session_id=f"{tenant}-s{sess}", turn_index=turn,
                          cot_elicitation=rng.random() < cot_share, prompt_fingerprint=_fp(rng),
                          prompt_template_id=f"t-{rng.getrandbits(32):08x}",
                          prompt_topic=("coding" if tools else rng.choice(TOPICS[:20])),
                          tools_count=5 if tools else None, reasoning_tokens=rng.randint(0, 300) if tools else None,
                          user_agent=OFFICIAL_UA, asn=16509, client_ip_prefix=f"pfx-{tenant}", stop_reason="end_turn"))
        i += 1
    return out


def eval_harness(tenant: str, start: float = T0, questions: int = 600, runs: int = 2, rate: float = 1.0,
                 seed: int = 4, model: str = "model-a") -> list[dict[str, Any]]:
    """Benchmark questions with step-by-step wording at temperature 0, a fixed set re-run, bounded volume."""
    rng = random.Random(seed)
    qs = [(_fp(rng), rng.choice(TOPICS)) for _ in range(questions)]
    out, ts, i = [], start, 0
    for _ in range(runs):
        for fp, topic in qs:
            out.append(_event(tenant, i, ts, model=model, input_tokens=rng.randint(80, 400),
                              output_tokens=rng.randint(150, 600), max_tokens=4096, temperature=0.0,
                              cot_elicitation=True, prompt_fingerprint=fp, prompt_template_id="tmpl-eval",
                              prompt_topic=topic, user_agent=OFFICIAL_UA, asn=16509, client_ip_prefix="pfx-e",
                              stop_reason="end_turn"))
            i += 1
            ts += (1.0 / rate) * rng.uniform(0.5, 1.5)
    return out


def probing(tenant: str, start: float = T0, hours: float = 3.0, rate: float = 2.0, seed: int = 5) -> list[dict[str, Any]]:
    """Logit-bias / logprob probing: tiny max_tokens, top_logprobs 20, one prompt re-sent with different biases."""
    rng = random.Random(seed)
    out, ts, i = [], start, 0
    fp = _fp(rng)
    while ts < start + hours * 3600:
        if i % 20 == 0:
            fp = _fp(rng)
        out.append(_event(tenant, i, ts, input_tokens=rng.randint(40, 90), output_tokens=1, max_tokens=1,
                          temperature=0.0, logprobs=True, top_logprobs=20, logit_bias_size=rng.randint(1, 300),
                          prompt_fingerprint=fp, prompt_template_id=f"tmpl-p-{tenant}"))
        i += 1
        ts += (1.0 / rate) * rng.uniform(0.9, 1.1)
    return out


def hydra(prefix: str, n_tenants: int = 20, start: float = T0 + 6 * 3600, hours: float = 4.0, rate: float = 0.05,
          extraction_share: float = 0.35, seed: int = 6) -> list[dict[str, Any]]:
    """Many fresh tenants started together at near-equal load sharing a template, network and payment
    fingerprint, mixing CoT + cap harvesting with mundane requests; each stays below per-tenant thresholds."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    base = _fp(rng)
    for k in range(n_tenants):
        tenant = f"{prefix}-{k:03d}"
        ts, i = start + rng.uniform(0, 300), 0
        while ts < start + hours * 3600:
            ext = rng.random() < extraction_share
            out.append(_event(tenant, i, ts, account_id=f"{tenant}-a{i % 3}", input_tokens=rng.randint(60, 200),
                              output_tokens=2048 if ext else rng.randint(50, 300), max_tokens=2048,
                              temperature=0.0 if ext else 0.7, cot_elicitation=ext,
                              session_id=None if ext else f"{tenant}-s{i // 4}", turn_index=None if ext else i % 4,
                              prompt_fingerprint=_near(base, rng, 6) if ext else _fp(rng),
                              prompt_template_id="tmpl-hydra" if ext else f"t-{rng.getrandbits(32):08x}",
                              prompt_topic=rng.choice(TOPICS), user_agent="python-httpx/0.27", asn=64501,
                              client_ip_prefix="pfx-hydra", payment_fingerprint="pay-hydra",
                              stop_reason="max_tokens" if ext else "end_turn"))
            i += 1
            ts += rng.expovariate(rate)
    return sorted(out, key=lambda e: (e["ts"], e["event_id"]))


def merge(*streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Interleave several streams by event time (stable on event id)."""
    return sorted((e for s in streams for e in s), key=lambda e: (e["ts"], e["event_id"]))


def metadata_stream(n_tenants: int, events_per_tenant: int, seed: int = 7, start: float = T0) -> Iterator[dict[str, Any]]:
    """Metadata-only benchmark traffic: round-robin over tenants, time advancing steadily."""
    rng = random.Random(seed)
    total = n_tenants * events_per_tenant
    step = 3600.0 * 6 / max(total, 1)
    for j in range(total):
        t = j % n_tenants
        ts = start + j * step
        yield _event(f"bench-{t:06d}", j, ts, account_id=f"a-{t % 997}", input_tokens=rng.randint(10, 2000),
                     output_tokens=rng.randint(1, 2000), max_tokens=2048, temperature=0.7, session_id=f"s-{j % 50}",
                     turn_index=j % 5, user_agent=OFFICIAL_UA, asn=16509, client_ip_prefix=f"p-{t % 100}",
                     stop_reason="end_turn", prompt_fingerprint=rng.getrandbits(64), prompt_template_id=f"tp-{t % 50}",
                     prompt_topic=TOPICS[j % 60], endpoint="messages")


def rag_bot(tenant: str, start: float = T0, hours: float = 48.0, rate: float = 0.3, seed: int = 8) -> list[dict[str, Any]]:
    """A RAG support bot: one prompt template (context + question), sessions, moderate outputs, daily cycle."""
    rng = random.Random(seed)
    base = _fp(rng)
    out, ts, i, sess = [], start, 0, 0
    while ts < start + hours * 3600:
        hour = (ts % 86400) / 3600
        r = rate * (1.0 if 7 <= hour <= 20 else 0.1)
        ts += rng.expovariate(r)
        if rng.random() < 0.5:
            sess += 1
        out.append(_event(tenant, i, ts, account_id=f"{tenant}-bot", input_tokens=rng.randint(1500, 4000),
                          output_tokens=rng.randint(80, 400), max_tokens=1024, temperature=0.2,
                          session_id=f"{tenant}-s{sess}", turn_index=rng.randint(0, 3),
                          prompt_fingerprint=_near(base, rng, 8), prompt_template_id=f"tmpl-rag-{tenant}",
                          prompt_topic="support", cached_input_tokens=1200, user_agent=OFFICIAL_UA, asn=16509,
                          client_ip_prefix=f"pfx-{tenant}", stop_reason="end_turn"))
        i += 1
    return out


def ramp(tenant: str, start: float = T0, hours: float = 48.0, seed: int = 10) -> list[dict[str, Any]]:
    """A new tenant ramping up: a chat product whose traffic grows tenfold over the period."""
    evs = chat(tenant, start=start, hours=hours, peak_rate=1.0, seed=seed)
    rng = random.Random(seed)
    keep = [e for e in evs if rng.random() < 0.1 + 0.9 * (e["ts"] - start) / (hours * 3600)]
    return keep


def migration(tenant: str, new_model: str, switch_at: float, start: float = T0, hours: float = 96.0,
              seed: int = 11) -> list[dict[str, Any]]:
    """A chat tenant moving all traffic to ``new_model`` at ``switch_at`` (right after the model's release)."""
    evs = chat(tenant, start=start, hours=hours, peak_rate=0.5, seed=seed)
    for e in evs:
        if e["ts"] >= switch_at:
            e["model"] = new_model
    return evs
