"""Attack scenarios: reasoning sweeps, tool-use extraction, hydra clusters, siphoning, probing, pivots, low-and-slow,
and an evasive swarm (many tenants, cover traffic, jittered timing, varied templates, benign-looking infrastructure).

Each ``build_*`` creates the attacking tenant(s), attaches a generator and
appends the ground truth to ``sim.attacks`` (and ``sim.clusters``). Requests
that carry the extraction are flagged ``attack=True``; cover traffic that an
attacker mixes in (hydra members, low-and-slow, the pivot's warm-up) is not,
so "attack requests served" counts only the harvesting itself.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

from simulator import textgen as T
from simulator.core import DAY, HOUR, NEW_MODEL, AttackSpec, Req, Simulation, Tenant, hexid, iso
from simulator.profiles import CONSUMER, OFFICE, arrivals, chat_session, model_picker, status

ATTACK_ASNS = (14061, 16276, 24940, 9009, 212238, 63949, 20473)
ATTACK_UAS = ("python-httpx/0.27.0", "atlas-python/1.42.0", "python-requests/2.32.3", "aiohttp/3.9.5")


def attack_infra(rng: random.Random) -> dict[str, Any]:
    return {"asn": rng.choice(ATTACK_ASNS), "prefixes": [f"p{hexid(rng, 40)}" for _ in range(rng.randint(1, 3))],
            "user_agent": rng.choice(ATTACK_UAS), "country": rng.choice(("US", "SG", "NL", "DE", "HK")),
            "payment_fingerprint": f"pay_{hexid(rng, 48)}"}


def extraction_req(rng: random.Random, ts: float, account: str, model: str, pr: T.Prompt, max_tokens: int,
                   temperature: float = 0.0, tools: int = 0, hit_max: float = 0.65) -> Req:
    """A single-shot harvesting request: long outputs that often hit ``max_tokens``, lots of reasoning."""
    if rng.random() < hit_max:
        n_out, stop = max_tokens, "max_tokens"
    else:
        n_out, stop = int(max_tokens * rng.uniform(0.35, 0.95)), "end_turn"
    if tools and stop == "end_turn" and rng.random() < 0.8:
        stop = "tool_use"
    extra: dict[str, Any] = {"endpoint": "messages", "max_tokens": max_tokens, "temperature": temperature,
                             "stop_reason": stop, "status_code": status(rng), "latency_ms": int(500 + n_out * 9),
                             "reasoning_tokens": int(n_out * rng.uniform(0.8, 2.5))}
    if tools:
        extra["tools_count"] = tools
    return Req(ts, account, model, pr, T.tokens_for(pr.text, pr.lang) + 40, n_out, extra, True)


def _label(sim: Simulation, aid: str, scenario: str, tenants: list[Tenant], accounts: list[str], start: float,
           end: float, description: str, **more: Any) -> dict[str, Any]:
    for t in tenants:
        t.attack_id = aid
    lab = {"attack_id": aid, "scenario": scenario, "description": description,
           "tenants": [t.tenant_id for t in tenants], "accounts": accounts, "start": iso(start), "end": iso(end),
           "start_ts": start, "end_ts": end, "cluster_id": None, **more}
    sim.attacks.append(lab)
    return lab


def _langs(rng: random.Random) -> str:
    return rng.choices(("en", "es", "fr", "de", "zh", "ja"), (0.5, 0.1, 0.1, 0.1, 0.1, 0.1))[0]


def _window(sim: Simulation, spec: AttackSpec, default: tuple[float, float]) -> tuple[float, float]:
    w0, w1 = spec.options.get("window", default)
    start = sim.at(w0) + 17 * 60  # not on the hour
    return start, max(start + HOUR, sim.at(w1))


def _chunked(sim: Simulation, reqs: list[Req]) -> Iterator[list[Req]]:
    by_day: dict[int, list[Req]] = {}
    for r in reqs:
        by_day.setdefault(int((r.ts - sim.config.start_ts) // DAY), []).append(r)
    for day in range(sim.config.days):
        yield by_day.get(day, [])


# --- scenarios --------------------------------------------------------------------------------------------------------
def reasoning_sweep(sim: Simulation, spec: AttackSpec, aid: str) -> None:
    start, end = _window(sim, spec, (0.3, 1.0))
    mode = spec.options.get("mode", "text")
    rng = random.Random(f"{sim.config.seed}:{aid}")
    t = sim.new_tenant("reasoning_sweep", "attack", start_ts=start, end_ts=end, n_accounts=3, account_prefix="svc",
                       infra=attack_infra(rng), prompt_mode=mode, lang="en", tz=0)
    interval = spec.options.get("interval_s", 5.0) / sim.config.intensity

    def gen(sim: Simulation, t: Tenant) -> Iterator[list[Req]]:
        r = t.rng
        reqs: list[Req] = []
        ts, i = start + r.uniform(0, 5), 0
        while ts < end:
            pr = T.extraction(r, _langs(r), i // 12)  # systematic: 12 questions a topic, then the next topic
            reqs.append(extraction_req(r, ts, t.accounts[i % len(t.accounts)], "atlas-3", pr, 8192))
            ts += interval * r.uniform(0.95, 1.05)
            i += 1
        yield from _chunked(sim, reqs)
    t.gen = gen
    _label(sim, aid, "reasoning_sweep", [t], list(t.accounts), start, end,
           f"CoT-eliciting single-shot sweep over {len(T.V.SWEEP_TOPICS)} topics, temperature 0, outputs at max_tokens, "
           f"machine pacing every {interval:.1f}s; prompt representation: {mode}", prompt_mode=mode)


def tool_use_extraction(sim: Simulation, spec: AttackSpec, aid: str) -> None:
    start, end = _window(sim, spec, (0.55, 1.0))
    rng = random.Random(f"{sim.config.seed}:{aid}")
    mode = spec.options.get("mode", "fingerprint")
    t = sim.new_tenant("tool_use_extraction", "attack", start_ts=start, end_ts=end, n_accounts=4, account_prefix="svc",
                       infra=attack_infra(rng), prompt_mode=mode, lang="en", tz=0)
    interval = spec.options.get("interval_s", 6.0) / sim.config.intensity
    tools = rng.randint(6, 12)

    def gen(sim: Simulation, t: Tenant) -> Iterator[list[Req]]:
        r = t.rng
        reqs: list[Req] = []
        ts, i = start + r.uniform(0, 5), 0
        while ts < end:
            pr = T.tool_extraction(r, "en" if r.random() < 0.85 else "zh")
            reqs.append(extraction_req(r, ts, t.accounts[i % len(t.accounts)], "atlas-3", pr, 8192, tools=tools,
                                       hit_max=0.4))
            ts += interval * r.uniform(0.9, 1.1)
            i += 1
        yield from _chunked(sim, reqs)
    t.gen = gen
    _label(sim, aid, "tool_use_extraction", [t], list(t.accounts), start, end,
           f"single-shot coding tasks with {tools} tools asking for full reasoning and the tool-call trace, temperature 0,"
           f" every {interval:.1f}s; prompt representation: {mode}", prompt_mode=mode)


def hydra_cluster(sim: Simulation, spec: AttackSpec, aid: str) -> None:
    c = sim.config
    start, end = _window(sim, spec, (0.25, 1.0))
    size = int(spec.options.get("size", 60))
    coding = spec.options.get("flavour") == "coding"
    rng = random.Random(f"{c.seed}:{aid}")
    asns = rng.sample(ATTACK_ASNS, 2)
    prefix_pool = [f"p{hexid(rng, 40)}" for _ in range(10)]
    ua = rng.choice(("python-httpx/0.27.0", "atlas-python/1.41.0"))
    cards = [f"pay_{hexid(rng, 48)}" for _ in range(4)]
    templates = tuple(rng.sample(range(2), 1)) if not coding else None
    members: list[Tenant] = []
    accounts: list[str] = []
    shared_cards: list[str] = []
    for k in range(size):
        share_card = rng.random() < 0.3
        card = rng.choice(cards) if share_card else f"pay_{hexid(rng, 48)}"
        infra = {"asns": asns, "asn": asns[0], "prefixes": rng.sample(prefix_pool, rng.randint(2, 3)), "user_agent": ua,
                 "country": rng.choice(("US", "SG", "NL")), "payment_fingerprint": card}
        m_start = start + rng.uniform(0, min(DAY, (end - start) / 3))
        t = sim.new_tenant("hydra_cluster", "attack", start_ts=m_start, end_ts=end, n_accounts=rng.randint(1, 2),
                           infra=infra, prompt_mode=rng.choices(("text", "fingerprint", "metadata"), (0.5, 0.3, 0.2))[0],
                           lang="en", tz=rng.choice((0, 8, -5)))
        t.params.update(per_day=rng.uniform(60, 220) * c.intensity, cover=rng.uniform(0.2, 0.4), k=k,
                        model=rng.choice(("atlas-3", "atlas-3-mini")), max_tokens=1024, temperature=0.7,
                        mean_extra_turns=1.0)
        if share_card:
            shared_cards.append(t.tenant_id)

        def gen(sim: Simulation, t: Tenant) -> Iterator[list[Req]]:
            r, p = t.rng, t.params
            pick = model_picker(sim, t)
            topic_base = p["k"] * 3  # members split the sweep between them
            i = 0
            for day in range(sim.config.days):
                chunk: list[Req] = []
                for ts in arrivals(sim, t, day, p["per_day"], CONSUMER, 1.0):
                    if r.random() < p["cover"]:
                        chunk.extend(chat_session(sim, t, ts, pick))
                        continue
                    acct = r.choice(t.accounts)
                    if coding:
                        pr = T.tool_extraction(r, "en")
                        chunk.append(extraction_req(r, ts, acct, "atlas-3", pr, 4096, tools=8, hit_max=0.5))
                    else:
                        pr = T.extraction(r, "en" if r.random() < 0.8 else "zh", topic_base + (i % 3), templates)
                        chunk.append(extraction_req(r, ts, acct, "atlas-3", pr, 4096))
                    i += 1
                yield chunk
        t.gen = gen
        members.append(t)
        accounts.extend(t.accounts)
    flavour = "coding/tool-use" if coding else "reasoning"
    _label(sim, aid, "hydra_cluster", members, accounts, start, end,
           f"{size} small tenants ({flavour} extraction, 60-80% of each member's traffic, 60-220 requests/day each) "
           f"behind 2 ASNs and 10 shared /24 prefixes, one user agent, 4 shared cards among ~30% of members",
           cluster_id=aid, flavour=flavour)
    sim.clusters.append({"cluster_id": aid, "attack_id": aid, "tenants": [t.tenant_id for t in members],
                         "accounts": accounts, "shared": {"asns": asns, "client_ip_prefixes": prefix_pool,
                                                          "user_agent": ua, "payment_fingerprints": cards,
                                                          "tenants_on_shared_cards": shared_cards}})


def siphon_ramp(sim: Simulation, spec: AttackSpec, aid: str) -> None:
    """A long-standing chat customer starts siphoning mid-week through a new service account, ramping up over 2 days."""
    c = sim.config
    if c.days < 3:
        return
    start = c.start_ts + math.floor(c.days * 0.3) * DAY + 14 * HOUR + 23 * 60  # Wednesday afternoon in a 7-day run
    ramp = spec.options.get("ramp_days", 2.0) * DAY
    peak = spec.options.get("peak_per_day", 8000) * c.intensity
    t = sim.new_tenant("siphon_ramp", "attack", n_accounts=40, prompt_mode="text", lang="en", tz=-5)
    t.params.update(sessions=180, max_tokens=2048, temperature=0.7, mean_extra_turns=2.0, model="atlas-3")
    svc = f"svc-{hexid(t.rng, 32)}"

    def gen(sim: Simulation, t: Tenant) -> Iterator[list[Req]]:
        r, p = t.rng, t.params
        pick = model_picker(sim, t)
        i = 0
        for day in range(sim.config.days):
            chunk: list[Req] = []
            for ts in arrivals(sim, t, day, p["sessions"], OFFICE, 0.6):
                chunk.extend(chat_session(sim, t, ts, pick))
            day_start = sim.config.start_ts + day * DAY
            for h in range(24):
                hs = day_start + h * HOUR
                if hs + HOUR <= start:
                    continue
                rate = peak / 24 * min(1.0, max(0.0, hs + HOUR / 2 - start) / ramp)
                n = int(rate)
                for j in range(n):
                    ts = hs + (j + r.uniform(0.2, 0.8)) * HOUR / n
                    if ts < start:
                        continue
                    pr = T.extraction(r, "en", i // 8)
                    chunk.append(extraction_req(r, ts, svc, "atlas-3", pr, 4096, hit_max=0.5))
                    i += 1
            yield chunk
    t.gen = gen
    t.params["chat_accounts"] = list(t.accounts)
    t.accounts.append(svc)
    _label(sim, aid, "siphon_ramp", [t], [svc], start, c.end_ts,
           f"established chat tenant; from mid-week a new service account ramps CoT extraction linearly to "
           f"{peak:.0f}/day over {ramp / DAY:.0f} days on top of normal traffic", ramp_days=ramp / DAY)


def logprob_probe(sim: Simulation, spec: AttackSpec, aid: str) -> None:
    start, end = _window(sim, spec, (0.6, 0.85))
    rng = random.Random(f"{sim.config.seed}:{aid}")
    t = sim.new_tenant("logprob_probe", "attack", start_ts=start, end_ts=end, n_accounts=2, account_prefix="svc",
                       infra=attack_infra(rng), prompt_mode=spec.options.get("mode", "fingerprint"), lang="en", tz=0)
    interval = spec.options.get("interval_s", 3.0) / sim.config.intensity

    def gen(sim: Simulation, t: Tenant) -> Iterator[list[Req]]:
        r = t.rng
        reqs: list[Req] = []
        ts, item = start + r.uniform(0, 3), r.randrange(1000)
        while ts < end:
            pr = T.probe(r, item)
            for _ in range(r.randint(20, 60)):  # the same prompt, many different biases
                if ts >= end:
                    break
                mt = r.randint(1, 5)
                extra = {"endpoint": "completions", "max_tokens": mt, "temperature": r.choice((0.0, 0.0, 0.0, 1.0)),
                         "logprobs": True, "top_logprobs": 20, "logit_bias_size": r.randint(1, 100),
                         "stop_reason": "max_tokens", "status_code": status(r), "latency_ms": r.randint(90, 200)}
                reqs.append(Req(ts, r.choice(t.accounts), "atlas-3", pr, T.tokens_for(pr.text, "en") + 5, mt, extra, True))
                ts += interval * r.uniform(0.9, 1.1)
            item += 1
        yield from _chunked(sim, reqs)
    t.gen = gen
    _label(sim, aid, "logprob_probe", [t], list(t.accounts), start, end,
           f"logprobs + top_logprobs=20 with 1-100 logit-bias entries, max_tokens 1-5, each prompt repeated 20-60 "
           f"times with different biases, every {interval:.1f}s")


def model_pivot(sim: Simulation, spec: AttackSpec, aid: str) -> None:
    c = sim.config
    rel = c.release_ts
    start = max(c.start_ts + HOUR + 7 * 60, rel - 36 * HOUR)
    rng = random.Random(f"{c.seed}:{aid}")
    pivot_at = rel + rng.uniform(1, 6) * HOUR
    t = sim.new_tenant("model_pivot", "attack", start_ts=start, n_accounts=3, account_prefix="svc",
                       infra=attack_infra(rng), prompt_mode=spec.options.get("mode", "text"), lang="en", tz=8)
    t.params.update(max_tokens=1024, temperature=0.7, mean_extra_turns=1.0, model="atlas-3")

    def gen(sim: Simulation, t: Tenant) -> Iterator[list[Req]]:
        r = t.rng
        reqs: list[Req] = []
        ts, i = start + r.uniform(0, 10), 0
        while ts < c.end_ts:
            after = ts >= pivot_at
            extracting = r.random() < (0.9 if after else 0.5)
            model = NEW_MODEL if after and r.random() < 0.85 else "atlas-3"
            if extracting:
                pr = T.extraction(r, _langs(r), i // 10)
                reqs.append(extraction_req(r, ts, t.accounts[i % 3], model, pr, 8192))
                i += 1
            else:
                reqs.extend(q._replace(model=model) for q in chat_session(sim, t, ts, lambda _ts: "atlas-3"))
            ts += (6.0 if after else 30.0) / c.intensity * r.uniform(0.8, 1.2)
        yield from _chunked(sim, reqs)
    t.gen = gen
    _label(sim, aid, "model_pivot", [t], list(t.accounts), start, c.end_ts,
           f"half extraction at 1 request/30s on atlas-3 before the release, then {NEW_MODEL} gets 85% of traffic, "
           f"90% extraction at 1 request/6s", pivot_at=iso(pivot_at), release_at=iso(rel))


def low_and_slow(sim: Simulation, spec: AttackSpec, aid: str) -> None:
    c = sim.config
    if c.days < 3:
        return
    start, end = _window(sim, spec, (0.05, 1.0))
    rng = random.Random(f"{c.seed}:{aid}")
    t = sim.new_tenant("low_and_slow", "attack", start_ts=start, end_ts=end, n_accounts=6, infra=attack_infra(rng),
                       prompt_mode=spec.options.get("mode", "fingerprint"), lang="en", tz=1)
    t.infra["user_agent"] = "atlas-python/1.42.0"
    per_day = spec.options.get("per_day", 350) * c.intensity
    t.params.update(max_tokens=2048, temperature=0.7, mean_extra_turns=1.5, model="atlas-3")

    def gen(sim: Simulation, t: Tenant) -> Iterator[list[Req]]:
        r = t.rng
        pick = model_picker(sim, t)
        for day in range(sim.config.days):
            chunk: list[Req] = []
            for ts in arrivals(sim, t, day, per_day, OFFICE, 0.3):
                if r.random() < 0.3:
                    chunk.extend(chat_session(sim, t, ts, pick))
                    continue
                pr = T.extraction(r, _langs(r), r.randrange(len(T.V.SWEEP_TOPICS)))
                chunk.append(extraction_req(r, ts, r.choice(t.accounts), "atlas-3", pr, 4096, temperature=0.3,
                                            hit_max=0.4))
            yield chunk
    t.gen = gen
    _label(sim, aid, "low_and_slow", [t], list(t.accounts), start, end,
           f"~{per_day:.0f} requests/day in office hours over {(end - start) / DAY:.1f} days, 70% CoT extraction on "
           f"random topics at temperature 0.3 spread over 6 accounts, 30% cover chat")


# openers an evasive attacker puts in front of its prompts so that template ids (head and tail tokens) vary
_OPENERS = ("Quick question for my {thing} project.", "I'm preparing notes for {person}.",
            "Context: we are reviewing {thing} today.", "Hi! Hope you're well.", "For a study group in {place}:",
            "My colleague {person} asked me this.", "Background: I work on {thing}.", "Not urgent, but curious.",
            "Please help with homework from {place}.", "Following up on yesterday's discussion.",
            "Here is something I could not figure out.", "Asking for a training manual.",
            "Draft for a blog post about {thing}.", "Another one from our reading list.")
BENIGN_LOOKING_ASNS = (7922, 3320, 2856, 16509, 9009, 212238)  # residential ISPs and clouds (proxy exits), two hosters
COMMON_UAS = ("atlas-python/1.42.0", "atlas-typescript/0.31.1", "atlas-python/1.42.0 langchain/0.3.7")


def _paraphrased(rng: random.Random, lang: str, topic_index: int) -> T.Prompt:
    """An extraction prompt behind a random opener (many template ids), now and then a tool-use extraction."""
    pr = T.tool_extraction(rng, "en") if rng.random() < 0.25 else T.extraction(rng, lang, topic_index)
    k = rng.randrange(len(_OPENERS))
    opener = _OPENERS[k].format(thing=rng.choice(T.V.THINGS), person=rng.choice(T.V.PEOPLE), place=rng.choice(T.V.PLACES))
    return pr._replace(text=f"{opener} {pr.text}", key=f"{pr.key}.o{k}")


def evasive_swarm(sim: Simulation, spec: AttackSpec, aid: str) -> None:
    """Issue 7's adversary: extraction spread thinly over many tenants that try not to look coordinated.

    Members sign up over two days (no synchronous start), send 25-200 requests a day each (lognormal, unequal
    load) with Poisson timing in their own time zones, mix 35-60 % cover chat in, vary temperature, ``max_tokens``,
    models, languages and prompt templates (random openers), and use common SDK strings and residential/cloud
    ASNs. What still links them is what is expensive to rotate: a pool of 16 proxy /24 prefixes and 5 payment
    cards shared by ~45 % of the members.
    """
    c = sim.config
    start, end = _window(sim, spec, (0.35, 1.0))
    size = int(spec.options.get("size", 60))
    rng = random.Random(f"{c.seed}:{aid}")
    asns = rng.sample(BENIGN_LOOKING_ASNS, 3)
    prefix_pool = [f"p{hexid(rng, 40)}" for _ in range(16)]
    cards = [f"pay_{hexid(rng, 48)}" for _ in range(5)]
    members: list[Tenant] = []
    accounts: list[str] = []
    shared_cards: list[str] = []
    for k in range(size):
        share_card = rng.random() < 0.45
        card = rng.choice(cards) if share_card else f"pay_{hexid(rng, 48)}"
        infra = {"asns": rng.sample(asns, 2), "prefixes": rng.sample(prefix_pool, rng.randint(1, 2)),
                 "user_agent": rng.choice(COMMON_UAS), "country": rng.choice(("US", "DE", "GB", "BR", "IN")),
                 "payment_fingerprint": card}
        infra["asn"] = infra["asns"][0]
        m_start = start + rng.uniform(0, min(2 * DAY, (end - start) / 2))
        t = sim.new_tenant("evasive_swarm", "attack", start_ts=m_start, end_ts=end, n_accounts=rng.randint(1, 3),
                           infra=infra, prompt_mode=rng.choices(("text", "fingerprint", "metadata"), (0.4, 0.4, 0.2))[0],
                           lang="en", tz=rng.choice((-8, -5, 0, 1, 5, 8)))
        t.params.update(per_day=min(200.0, max(25.0, rng.lognormvariate(math.log(70), 0.6))) * c.intensity,
                        cover=rng.uniform(0.35, 0.6), k=k, shape=rng.choice((CONSUMER, OFFICE)),
                        model=rng.choice(("atlas-3", "atlas-3-mini")), max_tokens=rng.choice((1024, 2048)),
                        temperature=rng.choice((0.5, 0.7, 1.0)), mean_extra_turns=rng.uniform(1.0, 2.5),
                        x_temp=rng.choice((0.0, 0.3, 0.5, 0.7)), x_max=rng.choice((2048, 4096, 8192)),
                        x_hit=rng.uniform(0.35, 0.55))
        if share_card:
            shared_cards.append(t.tenant_id)

        def gen(sim: Simulation, t: Tenant) -> Iterator[list[Req]]:
            r, p = t.rng, t.params
            pick = model_picker(sim, t)
            i = 0
            for day in range(sim.config.days):
                chunk: list[Req] = []
                for ts in arrivals(sim, t, day, p["per_day"], p["shape"], r.uniform(0.4, 1.0)):
                    if r.random() < p["cover"]:
                        chunk.extend(chat_session(sim, t, ts, pick))
                        continue
                    pr = _paraphrased(r, _langs(r), p["k"] * 5 + r.randrange(12) + i % 3)
                    temp = min(1.0, max(0.0, p["x_temp"] + r.uniform(-0.1, 0.1)))
                    chunk.append(extraction_req(r, ts, r.choice(t.accounts), r.choice(("atlas-3", "atlas-3-mini")), pr,
                                                p["x_max"], temperature=round(temp, 2), hit_max=p["x_hit"]))
                    i += 1
                yield chunk
        t.gen = gen
        members.append(t)
        accounts.extend(t.accounts)
    _label(sim, aid, "evasive_swarm", members, accounts, start, end,
           f"{size} tenants signing up over 2 days, 25-200 requests/day each (unequal), 35-60% cover chat, Poisson "
           f"timing in 6 time zones, varied temperature/max_tokens/templates, common SDK strings, residential/cloud "
           f"ASNs; linked only by 16 proxy /24 prefixes and 5 cards shared by ~45% of members", cluster_id=aid,
           flavour="evasive")
    sim.clusters.append({"cluster_id": aid, "attack_id": aid, "tenants": [t.tenant_id for t in members],
                         "accounts": accounts, "shared": {"asns": asns, "client_ip_prefixes": prefix_pool,
                                                          "user_agent": None, "payment_fingerprints": cards,
                                                          "tenants_on_shared_cards": shared_cards}})


BUILDERS = {f.__name__: f for f in (reasoning_sweep, tool_use_extraction, hydra_cluster, siphon_ramp, logprob_probe,
                                     model_pivot, low_and_slow, evasive_swarm)}


def build_attack(sim: Simulation, spec: AttackSpec, aid: str) -> None:
    try:
        builder = BUILDERS[spec.scenario]
    except KeyError:
        raise ValueError(f"unknown attack scenario {spec.scenario!r}; known: {sorted(BUILDERS)}") from None
    builder(sim, spec, aid)
