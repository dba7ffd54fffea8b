"""Simulation configuration, presets, tenants and the deterministic, time-ordered event stream.

Everything here is pure: no I/O, no wall clock, no global random state. Each
tenant draws from its own ``random.Random`` seeded with ``"{seed}:{tenant
index}:{purpose}"`` (string seeds are hashed with SHA-512 by ``random``, so
they are stable across processes), which makes the output byte-identical for
a given seed and configuration whatever order the tenants are consumed in.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson

from simulator.fingerprint import PromptDeriver
from simulator.textgen import Prompt

DAY = 86400.0
HOUR = 3600.0
MODELS = ("atlas-3", "atlas-3-mini")
NEW_MODEL = "atlas-4"

BENIGN_PROFILES = ("chat", "coding_agent", "batch", "eval_harness", "rag_support", "new_tenant", "migrating",
                   "org_workspace", "hobby", "tutoring")
HARD_NEGATIVE_PROFILES = frozenset({"coding_agent", "batch", "eval_harness", "new_tenant", "migrating", "org_workspace",
                                    "tutoring"})
SCENARIOS = ("reasoning_sweep", "tool_use_extraction", "hydra_cluster", "siphon_ramp", "logprob_probe",
             "model_pivot", "low_and_slow", "evasive_swarm")


@dataclass
class AttackSpec:
    """One attack of the run: ``scenario`` plus options (window as fractions of the run, size, ...)."""

    scenario: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimConfig:
    seed: int = 7
    start: str = "2026-06-01T00:00:00Z"  # a Monday
    days: int = 7
    benign: dict[str, int] = field(default_factory=dict)  # profile -> number of tenants
    attacks: list[AttackSpec] = field(default_factory=list)
    volume: float = 1.0  # multiplies benign request rates
    intensity: float = 1.0  # multiplies attack request rates
    malformed_share: float = 0.001
    preset: str = "custom"

    @property
    def start_ts(self) -> float:
        return _parse_start(self.start)

    @property
    def end_ts(self) -> float:
        return self.start_ts + self.days * DAY

    @property
    def release_ts(self) -> float:
        """When ``atlas-4`` first becomes available (mid-run, 15:00 UTC)."""
        return self.start_ts + math.floor(self.days * 0.45) * DAY + 15 * HOUR


@lru_cache(maxsize=64)
def _parse_start(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def preset(name: str, seed: int = 7, days: int | None = None, tenants: int | None = None,
           intensity: float = 1.0) -> SimConfig:
    """``demo`` (one day, ~45 tenants, five attacks, ~60k events) or ``suite`` (the evaluation suite)."""
    if name == "demo":
        cfg = SimConfig(seed=seed, days=1, preset="demo", malformed_share=0.002, benign={
            "chat": 8, "coding_agent": 4, "batch": 2, "eval_harness": 1, "rag_support": 3, "new_tenant": 2,
            "migrating": 2, "org_workspace": 3, "hobby": 3, "tutoring": 2},
            attacks=[AttackSpec("reasoning_sweep", {"mode": "text"}), AttackSpec("logprob_probe"),
                     AttackSpec("hydra_cluster", {"size": 12}), AttackSpec("tool_use_extraction"),
                     AttackSpec("model_pivot")])
    elif name == "suite":
        cfg = SimConfig(seed=seed, days=7, preset="suite", malformed_share=0.0005, volume=0.55, benign={
            "chat": 60, "coding_agent": 30, "batch": 10, "eval_harness": 8, "rag_support": 25, "new_tenant": 15,
            "migrating": 15, "org_workspace": 12, "hobby": 20, "tutoring": 15},
            attacks=[AttackSpec("reasoning_sweep", {"mode": "text", "window": (0.15, 0.6), "interval_s": 8.0}),
                     AttackSpec("reasoning_sweep", {"mode": "metadata", "window": (0.65, 1.0), "interval_s": 8.0}),
                     AttackSpec("tool_use_extraction", {"window": (0.3, 0.6)}),
                     AttackSpec("hydra_cluster", {"size": 100, "window": (0.18, 1.0)}),
                     AttackSpec("hydra_cluster", {"size": 40, "flavour": "coding", "window": (0.4, 1.0)}),
                     AttackSpec("siphon_ramp"), AttackSpec("logprob_probe", {"window": (0.7, 0.92), "interval_s": 5.0}),
                     AttackSpec("model_pivot"), AttackSpec("low_and_slow"), AttackSpec("evasive_swarm")])
    else:
        raise ValueError(f"unknown preset {name!r} (demo, suite)")
    if days is not None:
        cfg.days = days
    if tenants is not None:  # scale the benign profile counts to about `tenants` benign tenants
        total = sum(cfg.benign.values())
        cfg.benign = {p: max(1, round(n * tenants / total)) for p, n in cfg.benign.items()}
    cfg.intensity = intensity
    return cfg


# ---------------------------------------------------------------------------------------------------------
class Req(NamedTuple):
    """One request as a profile describes it, before it becomes a contract event."""

    ts: float
    account: str
    model: str
    prompt: Prompt | None
    input_tokens: int
    output_tokens: int
    extra: dict[str, Any]
    attack: bool = False


@dataclass
class Tenant:
    tenant_id: str
    index: int
    profile: str  # benign profile or attack scenario
    role: str  # "benign" | "attack"
    rng: random.Random
    tz: int  # UTC offset in hours (daily cycles follow local time)
    accounts: list[str]
    infra: dict[str, Any]
    prompt_mode: str  # "text" | "fingerprint" | "metadata"
    lang: str
    start_ts: float
    end_ts: float
    params: dict[str, Any] = field(default_factory=dict)
    attack_id: str | None = None
    hard_negative: bool = False
    gen: Callable[..., Iterator[list[Req]]] | None = None

    def key_of(self, account: str) -> str:
        return "key-" + account.split("-", 1)[-1]


class Record(NamedTuple):
    """One output line of the stream (``valid`` False for a deliberately malformed one)."""

    ts_ms: int
    line: bytes
    tenant_id: str
    attack_id: str | None
    valid: bool
    malformed_reason: str | None = None


def hexid(rng: random.Random, bits: int = 48) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


_SEC_CACHE: dict[int, str] = {}


def rfc3339_ms(ts_ms: int) -> str:
    sec, ms = divmod(ts_ms, 1000)
    s = _SEC_CACHE.get(sec)
    if s is None:
        if len(_SEC_CACHE) > 200_000:
            _SEC_CACHE.clear()
        s = _SEC_CACHE[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{s}.{ms:03d}Z"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------------------
class Simulation:
    """A configured run: tenants and labels are built eagerly, events are streamed by :meth:`records`."""

    def __init__(self, config: SimConfig, use_engine_features: bool = True) -> None:
        from simulator import attacks, profiles  # late: they import this module

        self.config = config
        self.derive = PromptDeriver(use_engine=use_engine_features)
        self.batch_fp = None
        if use_engine_features and self.derive.source.startswith("detectors.features (simhash"):
            from simulator.fingerprint import BatchFingerprinter

            self.batch_fp = BatchFingerprinter()
        self.tenants: list[Tenant] = []
        self.attacks: list[dict[str, Any]] = []
        self.clusters: list[dict[str, Any]] = []
        self._rng = random.Random(f"{config.seed}:world")
        self._used_ids: set[str] = set()
        profiles.build_benign(self)
        for i, spec in enumerate(config.attacks):
            attacks.build_attack(self, spec, f"A{i + 1:02d}")
        self._consumed = False
        self.stats: dict[str, Any] = {}

    # -- helpers used by profile / attack builders -----------------------------------------------------------
    def new_tenant(self, profile: str, role: str, *, start_ts: float | None = None, end_ts: float | None = None,
                   n_accounts: int = 1, account_prefix: str = "user", infra: dict[str, Any] | None = None,
                   prompt_mode: str | None = None, lang: str | None = None, tz: int | None = None) -> Tenant:
        idx = len(self.tenants)
        rng = random.Random(f"{self.config.seed}:tenant:{idx}")
        while True:
            tid = f"org_{hexid(rng, 40)}"
            if tid not in self._used_ids:
                break
        self._used_ids.add(tid)
        accounts = [f"{account_prefix}-{hexid(rng, 32)}" for _ in range(n_accounts)]
        t = Tenant(tenant_id=tid, index=idx, profile=profile, role=role, rng=rng,
                   tz=tz if tz is not None else rng.choice((-8, -7, -5, -3, 0, 1, 2, 3, 5, 8, 9)),
                   accounts=accounts, infra=infra if infra is not None else self.benign_infra(rng),
                   prompt_mode=prompt_mode or rng.choices(("text", "fingerprint", "metadata"), (0.5, 0.25, 0.25))[0],
                   lang=lang or rng.choices(("en", "es", "fr", "de", "zh", "ja"), (0.5, 0.12, 0.1, 0.1, 0.1, 0.08))[0],
                   start_ts=start_ts if start_ts is not None else self.config.start_ts,
                   end_ts=end_ts if end_ts is not None else self.config.end_ts,
                   hard_negative=profile in HARD_NEGATIVE_PROFILES)
        self.tenants.append(t)
        return t

    @staticmethod
    def benign_infra(rng: random.Random) -> dict[str, Any]:
        """Ordinary customers: big clouds and ISPs, common SDK strings, their own payment instrument."""
        asn = rng.choice((16509, 16509, 15169, 8075, 14618, 3320, 7922, 2856, 4766, 9808, 13335))
        return {"asn": asn, "prefixes": [f"p{hexid(rng, 40)}" for _ in range(rng.randint(1, 4))],
                "user_agent": rng.choice(("atlas-python/1.42.0", "atlas-python/1.40.2", "atlas-typescript/0.31.1",
                                          "atlas-python/1.42.0 langchain/0.3.7", "atlas-go/0.9.0", "curl/8.5.0")),
                "country": rng.choice(("US", "US", "DE", "FR", "JP", "GB", "ES", "BR", "IN", "CA", "SG", "MX")),
                "payment_fingerprint": f"pay_{hexid(rng, 48)}"}

    def at(self, frac: float) -> float:
        """Point at ``frac`` of the run, rounded to the hour."""
        c = self.config
        return c.start_ts + round(frac * c.days * 24) * HOUR

    # -- labels ---------------------------------------------------------------------------------------------------
    def labels(self) -> dict[str, Any]:
        """The ground truth; the ``counts`` part is complete only after :meth:`records` has been consumed."""
        c = self.config
        tenants = {}
        for t in self.tenants:
            tenants[t.tenant_id] = {
                "role": t.role, "profile": t.profile, "hard_negative": t.hard_negative, "attack_id": t.attack_id,
                "accounts": t.accounts, "prompt_mode": t.prompt_mode, "language": t.lang, "tz_offset_h": t.tz,
                "active_from": iso(t.start_ts), "active_to": iso(t.end_ts),
                "active_days": round(max(0.0, t.end_ts - t.start_ts) / DAY, 4),
            }
        benign_days: dict[str, float] = defaultdict(float)
        for t in self.tenants:
            if t.role == "benign":
                benign_days[t.profile] += max(0.0, t.end_ts - t.start_ts) / DAY
        return {
            "schema": "distillguard.labels/1", "seed": c.seed, "preset": c.preset, "start": iso(c.start_ts),
            "end": iso(c.end_ts), "days": c.days, "intensity": c.intensity, "volume": c.volume,
            "models": {"atlas-3": {"released_at": None}, "atlas-3-mini": {"released_at": None},
                       NEW_MODEL: {"released_at": iso(c.release_ts)}},
            "prompt_features": self.derive.source,
            "benign_tenant_days": {p: round(v, 3) for p, v in sorted(benign_days.items())},
            "tenants": tenants, "attacks": self.attacks, "clusters": self.clusters,
            "counts": self.stats,
        }

    # -- the stream -------------------------------------------------------------------------------------------------
    def _tenant_stream(self, t: Tenant) -> Iterator[tuple[int, int, int, dict[str, Any], bool]]:
        """Per-tenant events in time order, as (ts_ms, tenant index, seq, event dict, attack flag)."""
        assert t.gen is not None
        c = self.config
        id_rng = random.Random(f"{c.seed}:ids:{t.index}")
        pending: list[tuple[int, int, Req, dict[str, Any] | None]] = []
        seq = 0
        day0 = c.start_ts
        end_ms = int(min(t.end_ts, c.end_ts) * 1000)
        for day, chunk in enumerate(t.gen(self, t)):
            start_ms = int(t.start_ts * 1000)
            kept = [(int(r.ts * 1000), r) for r in chunk]
            kept = [(ms, r) for ms, r in kept if start_ms <= ms < end_ms]
            derived = self._derive_batch(t, [r for _, r in kept])
            for (ms, r), d in zip(kept, derived):
                heapq.heappush(pending, (ms, seq, r, d))
                seq += 1
            horizon = int((day0 + (day + 1) * DAY) * 1000)
            while pending and pending[0][0] < horizon:
                ms, s, r, d = heapq.heappop(pending)
                yield ms, t.index, s, self._event(t, id_rng, ms, r, d), r.attack
        while pending:
            ms, s, r, d = heapq.heappop(pending)
            yield ms, t.index, s, self._event(t, id_rng, ms, r, d), r.attack

    def _derive_batch(self, t: Tenant, reqs: list[Req]) -> list[dict[str, Any] | None]:
        """Gateway-side prompt fields for the fingerprint-mode requests of one chunk, computed in one batch."""
        out: list[dict[str, Any] | None] = [None] * len(reqs)
        idx = [i for i, r in enumerate(reqs) if r.prompt is not None and r.extra.get("_mode", t.prompt_mode) == "fingerprint"]
        if not idx:
            return out
        if self.batch_fp is not None:
            res = self.batch_fp([reqs[i].prompt.text for i in idx])  # type: ignore[union-attr]
            for i, (fp, tid) in zip(idx, res):
                p = reqs[i].prompt
                assert p is not None
                out[i] = {"prompt_fingerprint": fp, "prompt_template_id": tid, "cot_elicitation": p.cot,
                          "prompt_chars": len(p.text)}
        else:
            for i in idx:
                p = reqs[i].prompt
                assert p is not None
                out[i] = self.derive(p.text, p.key, p.cot)
        return out

    def _event(self, t: Tenant, id_rng: random.Random, ms: int, r: Req, derived: dict[str, Any] | None) -> dict[str, Any]:
        inf = t.infra
        ev: dict[str, Any] = {
            "event_id": f"req_{id_rng.getrandbits(64):016x}",
            "timestamp": rfc3339_ms(ms),
            "tenant_id": t.tenant_id,
            "account_id": r.account,
            "api_key_id": t.key_of(r.account),
            "model": r.model,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
        }
        ev.update(r.extra)
        p = r.prompt
        if p is not None:
            mode = r.extra.get("_mode", t.prompt_mode)
            if mode == "text":
                ev["prompt_text"] = p.text
            elif mode == "fingerprint":
                ev.update(derived if derived is not None else self.derive(p.text, p.key, p.cot))
                ev["prompt_language"] = p.lang
                ev["prompt_topic"] = p.topic
            else:
                ev["prompt_chars"] = len(p.text)
                ev["prompt_language"] = p.lang
                ev["prompt_topic"] = p.topic
        ev.pop("_mode", None)
        prefixes = inf["prefixes"]
        ev["client_ip_prefix"] = prefixes[id_rng.randrange(len(prefixes))] if len(prefixes) > 1 else prefixes[0]
        ev["asn"] = inf["asn"] if "asns" not in inf else inf["asns"][id_rng.randrange(len(inf["asns"]))]
        ev["country"] = inf["country"]
        ev["user_agent"] = inf["user_agent"]
        if inf.get("payment_fingerprint"):
            ev["payment_fingerprint"] = inf["payment_fingerprint"]
        return ev

    def records(self) -> Iterator[Record]:
        """The whole run in event-time order (ties: tenant index, then per-tenant order), malformed lines mixed in."""
        if self._consumed:
            raise RuntimeError("a Simulation can be streamed once; build a new one for another pass")
        self._consumed = True
        c = self.config
        mal_rng = random.Random(f"{c.seed}:malformed")
        streams = [self._tenant_stream(t) for t in self.tenants]
        per_tenant: Counter[str] = Counter()
        attack_events: Counter[str] = Counter()
        attack_by_tenant: dict[str, Counter[str]] = defaultdict(Counter)
        observed: dict[str, list[int]] = {}
        timeline: dict[str, Counter[int]] = defaultdict(Counter)
        malformed: Counter[str] = Counter()
        mal_lines: list[dict[str, Any]] = []
        attack_of = {t.tenant_id: t.attack_id for t in self.tenants}
        line_no = 0
        dumps = orjson.dumps
        for ms, _ti, _s, ev, is_attack in heapq.merge(*streams):  # (ms, tenant index, seq) is unique: dicts never compared
            tid = ev["tenant_id"]
            aid = attack_of[tid] if is_attack else None
            per_tenant[tid] += 1
            if aid is not None:
                attack_events[aid] += 1
                attack_by_tenant[aid][tid] += 1
                o = observed.setdefault(aid, [ms, ms])
                o[1] = ms
                timeline[aid][(ms // 1000 - int(c.start_ts)) // 60] += 1
            yield Record(ms, dumps(ev), tid, aid, True)
            line_no += 1
            if c.malformed_share > 0 and mal_rng.random() < c.malformed_share:
                reason, raw = _malform(mal_rng, ev)
                malformed[reason] += 1
                mal_lines.append({"line": line_no + 1, "reason": reason, "tenant_id": tid})
                yield Record(ms, raw, tid, None, False, reason)
                line_no += 1
        for a in self.attacks:
            aid = a["attack_id"]
            o = observed.get(aid)
            a["observed_start"] = iso(o[0] / 1000) if o else None
            a["observed_end"] = iso(o[1] / 1000) if o else None
            a["attack_events"] = attack_events.get(aid, 0)
            a["attack_events_by_tenant"] = dict(sorted(attack_by_tenant[aid].items()))
            a["timeline_minutes"] = sorted(timeline[aid].items())
        self.stats = {
            "lines": line_no, "valid_events": sum(per_tenant.values()), "malformed": sum(malformed.values()),
            "malformed_by_reason": dict(sorted(malformed.items())), "malformed_lines": mal_lines,
            "events_by_tenant": dict(sorted(per_tenant.items())),
        }

    def write(self, out: Any, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Write every line to the binary file ``out``; return the labels."""
        buf: list[bytes] = []
        n = 0
        for rec in self.records():
            buf.append(rec.line)
            n += 1
            if len(buf) >= 4096:
                out.write(b"\n".join(buf) + b"\n")
                buf.clear()
                if progress:
                    progress(4096)
        if buf:
            out.write(b"\n".join(buf) + b"\n")
            if progress:
                progress(len(buf))
        return self.labels()


def _malform(rng: random.Random, ev: dict[str, Any]) -> tuple[str, bytes]:
    """A deliberately invalid variant of ``ev`` (new event id): not JSON, missing field, wrong type, bad time."""
    bad = dict(ev)
    bad["event_id"] = f"req_{rng.getrandbits(64):016x}"
    kind = rng.choice(("not_json", "missing_field", "wrong_type", "bad_timestamp"))
    if kind == "not_json":
        raw = orjson.dumps(bad)
        return kind, raw[: max(1, len(raw) // 2)]
    if kind == "missing_field":
        del bad[rng.choice(("event_id", "timestamp", "tenant_id", "account_id", "model", "input_tokens", "output_tokens"))]
    elif kind == "wrong_type":
        f = rng.choice(("input_tokens", "output_tokens", "tenant_id", "temperature"))
        bad[f] = {"input_tokens": str(bad["input_tokens"]), "output_tokens": 12.5, "tenant_id": 12345,
                  "temperature": "hot"}[f]
    else:
        bad["timestamp"] = bad["timestamp"].replace("T", " ").rstrip("Z")
    return kind, orjson.dumps(bad)


def generate(config: SimConfig, use_engine_features: bool = True) -> Simulation:
    """Build a :class:`Simulation`; stream it with ``.records()`` or ``.write(file)``, then read ``.labels()``."""
    return Simulation(config, use_engine_features=use_engine_features)
