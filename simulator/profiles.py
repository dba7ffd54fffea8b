"""Benign tenant profiles: chat products, coding agents, batch jobs, evaluation harnesses, RAG bots, ...

Each profile is a generator ``gen(sim, tenant)`` that yields one list of
:class:`~simulator.core.Req` per simulated day (requests of sessions that
started that day; the stream re-orders them by time).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any

from simulator import textgen as T
from simulator.core import DAY, HOUR, NEW_MODEL, Req, Simulation, Tenant, hexid

# relative request intensity by local hour: office-hours products and evening consumer products
OFFICE = (0.06, 0.04, 0.03, 0.03, 0.04, 0.08, 0.2, 0.45, 0.8, 1.0, 1.0, 0.95, 0.8, 0.95, 1.0, 0.95, 0.85, 0.65,
          0.45, 0.35, 0.3, 0.22, 0.15, 0.1)
CONSUMER = (0.25, 0.15, 0.1, 0.07, 0.06, 0.08, 0.15, 0.3, 0.45, 0.55, 0.6, 0.65, 0.7, 0.65, 0.6, 0.6, 0.65, 0.75,
            0.85, 0.95, 1.0, 0.9, 0.7, 0.45)
FLAT = tuple(0.8 + 0.2 * math.sin(h / 24 * 2 * math.pi) for h in range(24))


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam < 30:
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= limit:
                return k
            k += 1
    return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))


def local_hour_weekday(ts: float, tz: int) -> tuple[int, int]:
    lt = ts + tz * HOUR
    return int(lt // HOUR) % 24, (int(lt // DAY) + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)


def arrivals(sim: Simulation, t: Tenant, day: int, per_day: float, shape: tuple[float, ...], weekend: float,
             mult: Callable[[float], float] | None = None) -> list[float]:
    """Poisson arrival times during ``day`` with the given daily mean and local-time shape."""
    rng = t.rng
    norm = sum(shape)
    day_start = sim.config.start_ts + day * DAY
    out: list[float] = []
    for h in range(24):
        hs = day_start + h * HOUR
        lh, wd = local_hour_weekday(hs, t.tz)
        lam = per_day * shape[lh] / norm * (weekend if wd >= 5 else 1.0)
        if mult is not None:
            lam *= mult(hs + HOUR / 2)
        for _ in range(poisson(rng, lam)):
            out.append(hs + rng.random() * HOUR)
    return out


def completion(rng: random.Random, median: float, sigma: float, max_tokens: int) -> tuple[int, str]:
    out = int(rng.lognormvariate(math.log(median), sigma)) + 1
    if out >= max_tokens:
        return max_tokens, "max_tokens"
    return out, "end_turn"


def status(rng: random.Random) -> int:
    r = rng.random()
    return 200 if r > 0.006 else (429 if r > 0.002 else 500)


def model_picker(sim: Simulation, t: Tenant) -> Callable[[float], str]:
    """The tenant's usual model; after the release some tenants try atlas-4, migrating ones move to it."""
    rng = t.rng
    base = t.params.setdefault("model", rng.choices(("atlas-3", "atlas-3-mini"), (0.7, 0.3))[0])
    rel = sim.config.release_ts
    if t.profile == "migrating":
        begin = rel + rng.uniform(1, 36) * HOUR
        span = rng.uniform(1, 3) * DAY
        final = rng.uniform(0.8, 1.0)
        t.params["migration"] = {"begin": begin, "span_days": span / DAY, "final_share": final}

        def pick(ts: float) -> str:
            share = 0.0 if ts < begin else min(final, final * (ts - begin) / span)
            return NEW_MODEL if rng.random() < share else base
        return pick
    trial = 0.05 if rng.random() < 0.25 else 0.0

    def pick_trial(ts: float) -> str:
        return NEW_MODEL if ts >= rel and trial and rng.random() < trial else base
    return pick_trial


# --- sessions -------------------------------------------------------------------------------------------------------
def _conversation(t: Tenant, ts: float, account: str, sid: str, model: str, turns: int, history: int,
                  prompt: Callable[[int], Any], out_median: float, out_spread: float,
                  pause: tuple[float, float]) -> list[Req]:
    """The turns of one human conversation: growing context, cached history, human pauses between turns."""
    rng, p = t.rng, t.params
    out: list[Req] = []
    for k in range(turns):
        pr = prompt(k)
        n_in = history + T.tokens_for(pr.text, pr.lang)
        n_out, stop = completion(rng, out_median, out_spread, p["max_tokens"])
        extra: dict[str, Any] = {"endpoint": "messages", "max_tokens": p["max_tokens"], "temperature": p["temperature"],
                                 "stop_reason": stop, "status_code": status(rng),
                                 "latency_ms": int(300 + n_out * rng.uniform(8, 20)), "session_id": sid, "turn_index": k}
        if k > 0:
            extra["cached_input_tokens"] = int(history * 0.9)
        out.append(Req(ts, account, model, pr, n_in, n_out, extra))
        history = n_in + n_out
        ts += extra["latency_ms"] / 1000 + rng.uniform(*pause)
    return out


def chat_session(sim: Simulation, t: Tenant, ts: float, pick: Callable[[float], str]) -> list[Req]:
    rng, p = t.rng, t.params
    account = rng.choice(p.get("chat_accounts", t.accounts))
    sid = f"s_{hexid(rng, 48)}"
    turns = 1 + min(int(rng.expovariate(1 / p.get("mean_extra_turns", 2.0))), 14)
    model = pick(ts)
    history = rng.randint(150, 600)  # system prompt
    return _conversation(t, ts, account, sid, model, turns, history,
                         lambda k: T.chat(rng, t.lang if rng.random() < 0.9 else "en", k),
                         p.get("out_median", 220), 0.7, (12, 150))


def tutoring_session(sim: Simulation, t: Tenant, ts: float, pick: Callable[[float], str]) -> list[Req]:
    """A student: a step-by-step homework question, then follow-ups, at human pace."""
    rng = t.rng
    account = rng.choice(t.accounts)
    sid = f"s_{hexid(rng, 48)}"
    turns = 1 + min(int(rng.expovariate(1 / 1.5)), 8)
    model = pick(ts)
    history = rng.randint(300, 800)
    return _conversation(t, ts, account, sid, model, turns, history, lambda k: T.homework(rng, t.lang, k),
                         450, 0.5, (30, 240))


def coding_session(sim: Simulation, t: Tenant, ts: float, pick: Callable[[float], str]) -> list[Req]:
    rng, p = t.rng, t.params
    account = rng.choice(t.accounts)
    sid = f"s_{hexid(rng, 48)}"
    turns = rng.randint(3, p.get("max_turns", 25))
    model = pick(ts)
    ctx = rng.randint(2500, 6000)
    out: list[Req] = []
    for k in range(turns):
        pr = T.code(rng, k)
        n_in = ctx + T.tokens_for(pr.text, "en")
        n_out, stop = completion(rng, 380, 0.8, p["max_tokens"])
        if stop == "end_turn" and k < turns - 1:
            stop = "tool_use"
        extra: dict[str, Any] = {"endpoint": "messages", "max_tokens": p["max_tokens"], "temperature": p["temperature"],
                                 "tools_count": p["tools_count"], "stop_reason": stop, "status_code": status(rng),
                                 "latency_ms": int(400 + n_out * rng.uniform(10, 25)), "session_id": sid, "turn_index": k,
                                 "cached_input_tokens": int(ctx * 0.92) if k else 0}
        if p.get("thinking"):
            extra["reasoning_tokens"] = int(rng.lognormvariate(math.log(600), 0.8))
        out.append(Req(ts, account, model, pr, n_in, n_out, extra))
        ctx = n_in + n_out + rng.randint(50, 1500)
        ts += extra["latency_ms"] / 1000 + rng.uniform(1.5, 25)
    return out


def rag_session(sim: Simulation, t: Tenant, ts: float, pick: Callable[[float], str]) -> list[Req]:
    rng = t.rng
    account = rng.choice(t.accounts)
    sid = f"s_{hexid(rng, 48)}"
    model = pick(ts)
    out: list[Req] = []
    for k in range(1 + (rng.random() < 0.45) + (rng.random() < 0.2)):
        pr = T.rag(rng, t.lang)
        ctx = rng.randint(1500, 4000)
        n_out, stop = completion(rng, 150, 0.5, 512)
        extra = {"endpoint": "messages", "max_tokens": 512, "temperature": 0.2, "stop_reason": stop,
                 "status_code": status(rng), "latency_ms": int(250 + n_out * rng.uniform(8, 15)), "session_id": sid,
                 "turn_index": k, "cached_input_tokens": int(ctx * rng.uniform(0.5, 0.8))}
        out.append(Req(ts, account, model, pr, ctx + T.tokens_for(pr.text, pr.lang), n_out, extra))
        ts += rng.uniform(20, 120)
    return out


def _session_gen(session: Callable[..., list[Req]], shape: tuple[float, ...], weekend: float,
                 mult: Callable[[Tenant], Callable[[float], float] | None] = lambda t: None):
    def gen(sim: Simulation, t: Tenant) -> Iterator[list[Req]]:
        pick = model_picker(sim, t)
        m = mult(t)
        for day in range(sim.config.days):
            chunk: list[Req] = []
            for ts in arrivals(sim, t, day, t.params["sessions"] * sim.config.volume, shape, weekend, m):
                chunk.extend(session(sim, t, ts, pick))
            yield chunk
    return gen


def _ramp(t: Tenant) -> Callable[[float], float]:
    start, days = t.start_ts, t.params["ramp_days"]
    return lambda ts: min(1.0, 0.05 + max(0.0, ts - start) / (days * DAY))


def batch_gen(sim: Simulation, t: Tenant) -> Iterator[list[Req]]:
    """One template, high volume, around the clock, machine-paced; some use logprobs + logit bias for labels."""
    rng, p = t.rng, t.params
    model = p.setdefault("model", rng.choice(("atlas-3-mini", "atlas-3-mini", "atlas-3")))
    per_day = p["per_day"] * sim.config.volume
    interval = DAY / per_day
    ts = sim.config.start_ts + rng.uniform(0, interval)
    for day in range(sim.config.days):
        day_end = sim.config.start_ts + (day + 1) * DAY
        chunk: list[Req] = []
        while ts < day_end:
            pr = T.batch(rng, p["template"])
            extra: dict[str, Any] = {"endpoint": "batch", "temperature": 0.0, "status_code": status(rng)}
            if p["logprobs"]:
                extra.update(max_tokens=1, logprobs=True, top_logprobs=5, logit_bias_size=3, stop_reason="max_tokens")
                n_out = 1
            else:
                n_out, stop = completion(rng, 40 if p["template"] != "batch.invoice" else 90, 0.4, 300)
                extra.update(max_tokens=300, stop_reason=stop)
            extra["latency_ms"] = int(150 + n_out * 8)
            chunk.append(Req(ts, t.accounts[0], model, pr, T.tokens_for(pr.text, "en") + 60, n_out, extra))
            ts += interval * rng.uniform(0.9, 1.1)
        yield chunk


def eval_gen(sim: Simulation, t: Tenant) -> Iterator[list[Req]]:
    """Benchmark runs: nightly regression on atlas-3, and big runs on atlas-4 right after its release."""
    rng, p = t.rng, t.params
    c = sim.config
    runs: list[tuple[float, str, int]] = []
    for day in range(c.days):
        if rng.random() < 0.5:
            local_2am = c.start_ts + day * DAY + ((2 - t.tz) % 24) * HOUR
            runs.append((local_2am + rng.uniform(0, 1800), "atlas-3", rng.randint(150, 500)))
    rel = c.release_ts
    if rel < c.end_ts:
        runs.append((rel + rng.uniform(1.5, 10) * HOUR, NEW_MODEL, rng.randint(1500, 3000)))
        runs.append((rel + rng.uniform(20, 30) * HOUR, NEW_MODEL, rng.randint(800, 2000)))
    reqs_by_day: dict[int, list[Req]] = {}
    for start, model, n in sorted(runs):
        ts = start
        gap = rng.uniform(0.4, 1.5)
        first = rng.randrange(p["pool"])
        for i in range(n):
            pr = T.eval_question(rng, p["pool_offset"] + (first + i) % p["pool"])
            n_out, stop = completion(rng, 380, 0.5, p["max_tokens"])
            extra = {"endpoint": "messages", "max_tokens": p["max_tokens"], "temperature": 0.0, "stop_reason": stop,
                     "status_code": status(rng), "latency_ms": int(300 + n_out * 12)}
            if model == NEW_MODEL and rng.random() < 0.7:
                extra["reasoning_tokens"] = int(rng.lognormvariate(math.log(900), 0.6))
            d = int((ts - c.start_ts) // DAY)
            reqs_by_day.setdefault(d, []).append(Req(ts, t.accounts[0], model, pr, T.tokens_for(pr.text, "en") + 30,
                                                     n_out, extra))
            ts += gap * rng.uniform(0.8, 1.2)
    for day in range(c.days):
        yield reqs_by_day.get(day, [])


# --- building the benign population -------------------------------------------------------------------------------
def _lognorm(rng: random.Random, median: float, sigma: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, rng.lognormvariate(math.log(median), sigma)))


def build_benign(sim: Simulation) -> None:
    c = sim.config
    org_groups: list[dict[str, Any]] = []
    for profile, count in c.benign.items():
        for i in range(count):
            if profile == "org_workspace":
                if i % 6 == 0:
                    rng = random.Random(f"{c.seed}:org:{i}")
                    infra = Simulation.benign_infra(rng)
                    infra["prefixes"] = infra["prefixes"][:1]
                    org_groups.append({"infra": infra, "members": []})
                group = org_groups[-1]
                t = sim.new_tenant(profile, "benign", infra=group["infra"], n_accounts=3)
                group["members"].append(t.tenant_id)
            elif profile == "new_tenant":
                t = sim.new_tenant(profile, "benign", n_accounts=2)
                t.start_ts = sim.at(t.rng.uniform(0.1, 0.8)) + t.rng.uniform(0, HOUR)
            elif profile in ("batch", "eval_harness"):
                t = sim.new_tenant(profile, "benign", account_prefix="svc",
                                   prompt_mode="text" if profile == "eval_harness" and i % 3 else None, lang="en")
            else:
                n_acc = {"chat": 60, "coding_agent": 12, "rag_support": 8, "migrating": 20, "hobby": 1,
                         "tutoring": 80}.get(profile, 4)
                t = sim.new_tenant(profile, "benign", n_accounts=n_acc)
            _configure(sim, t)
    sim.benign_orgs = org_groups  # type: ignore[attr-defined]


def _configure(sim: Simulation, t: Tenant) -> None:
    rng, p = t.rng, t.params
    prof = t.profile
    if prof == "migrating" or prof == "new_tenant":
        p["like"] = rng.choice(("chat", "coding_agent"))
    like = p.get("like", prof)
    if like == "chat" or prof in ("org_workspace", "hobby"):
        p.update(sessions=_lognorm(rng, 120, 0.8, 20, 1200), max_tokens=rng.choice((1024, 2048, 4096)),
                 temperature=rng.choice((0.7, 1.0, 1.0, 0.5)), mean_extra_turns=rng.uniform(1.0, 3.0))
        t.gen = _session_gen(chat_session, CONSUMER if rng.random() < 0.5 else OFFICE, rng.uniform(0.5, 1.0))
    if like == "coding_agent":
        p.update(sessions=_lognorm(rng, 35, 0.7, 5, 250), max_tokens=rng.choice((4096, 8192)),
                 temperature=rng.choice((0.0, 0.0, 0.2)), tools_count=rng.randint(4, 20), thinking=rng.random() < 0.4)
        t.gen = _session_gen(coding_session, OFFICE, 0.3)
    if prof == "org_workspace":
        p["sessions"] = _lognorm(rng, 40, 0.6, 5, 150)
    elif prof == "hobby":
        p["sessions"] = rng.uniform(2, 12)
        t.gen = _session_gen(chat_session, CONSUMER, 1.2)
    elif prof == "new_tenant":
        p["ramp_days"] = rng.uniform(1.0, 3.0)
        sess = chat_session if like == "chat" else coding_session
        t.gen = _session_gen(sess, OFFICE, 0.5, _ramp)
    elif prof == "rag_support":
        p["sessions"] = _lognorm(rng, 250, 0.7, 30, 1500)
        t.gen = _session_gen(rag_session, FLAT if rng.random() < 0.3 else OFFICE, 0.7)
    elif prof == "batch":
        p.update(per_day=_lognorm(rng, 2200, 0.5, 1000, 8000), template=rng.choice(
            ("batch.sentiment", "batch.invoice", "batch.tagging")), logprobs=rng.random() < 0.35)
        t.gen = batch_gen
    elif prof == "tutoring":
        p.update(sessions=_lognorm(rng, 120, 0.7, 20, 800), max_tokens=2048, temperature=rng.choice((0.5, 0.7, 1.0)))
        t.gen = _session_gen(tutoring_session, CONSUMER, 0.8)
    elif prof == "eval_harness":
        p.update(pool=rng.randint(400, 1200), pool_offset=rng.randrange(10_000), max_tokens=rng.choice((1024, 2048)))
        t.gen = eval_gen
    assert t.gen is not None, prof
