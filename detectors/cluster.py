"""Cross-tenant ("hydra") detection over shared keys, fed by :class:`~detectors.tenant.KeySummary` records.

Each tenant window that closes yields one summary per shared key it carries (prompt template, ASN, client IP
prefix, user agent, payment fingerprint). Summaries are staged per event-time cluster window (default 1 hour);
when a cluster window closes its summaries are folded, in a fixed order, into a per-tenant *evidence profile*:
exponentially decayed sums (half-life ``cluster_half_life``) of the tenant's events and of its windows'
extraction pillars, plus the keys and accounts it used within ``cluster_horizon_seconds``. A campaign that
sends a handful of requests an hour per tenant (low-and-slow, or spread thin over many tenants) therefore
accumulates evidence across windows instead of being judged on one hour.

Coordination is judged on a graph over the tenants whose profile shows some extraction. Two tenants are
*linked* when the keys they share weigh enough (:data:`KIND_WEIGHT`, link at 100): a shared payment
fingerprint alone, or a shared client /24 prefix together with a shared template or with the same user
agent and ASN. A user agent, an ASN or a prompt template alone never links (the official SDK, big clouds and
common templates are shared by thousands of benign tenants), so two campaigns that merely use the same SDK
stay two components. Every connected component with at least ``cluster_min_members`` extraction-like members
is scored on

* synchronous start — members first seen within ``cluster_sync_seconds`` of the group's median start
  (tenants present since the start of observation have unknown age and do not count as synchronous),
* near-equal load — low coefficient of variation of the members' (decayed) request counts,
* extraction-likeness of the members' traffic — elicitation and harvesting pillars, even when every
  member stays below the per-tenant threshold (mixing extraction with mundane traffic),
* link breadth — how many kinds of keys the members share,

and becomes (or extends) a cluster incident with the usual ``open`` / ``update`` / ``resolved`` lifecycle;
a component whose members do not overlap an open incident opens its own. Memory is bounded: at most
``cluster_max_keys`` keys and ``cluster_max_members`` members per key per staged window, at most
``cluster_max_tenants`` profiles (≤ 16 keys and ≤ 16 accounts each), idle profiles expire after the horizon.
Everything runs on event time in sorted order, so replay and the streaming stage give the same alerts.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.common import DetectorConfig, incident_alert_ids, make_alert, severity_of, sigmoid, stable_id
from detectors.tenant import KeySummary

__all__ = ["KIND_WEIGHT", "ClusterDetector"]

# evidence that two tenants belong to one operator, per kind of shared key; a link needs LINK (= 100)
KIND_WEIGHT = {"pay": 100, "pfx": 60, "tmpl": 40, "ua": 25, "asn": 15}
LINK = 100
_ANCHORS = ("pay", "pfx")  # every link needs one of these (the other kinds sum to 80 at most)
_SEV_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
_MAX_KEYS = 16  # per profile
_MAX_ACCOUNTS = 16  # per profile
_NEIGHBOURS = 8
_STRONG = 0.3  # a tenant window with min(elicit, harvest) at least this carries clear extraction


def _kind(key: str) -> str:
    return key.split(":", 1)[0]


def _extraction(elicit: float, harvest: float, automation: float) -> float:
    return (harvest if harvest < elicit else elicit) * (0.6 + 0.4 * automation)  # min(elicit, harvest)


class _Member:
    """One tenant's summaries within one staged cluster window (window statistics counted once per tenant window)."""

    __slots__ = (
        "accounts",
        "automation",
        "elicit",
        "events",
        "evidence",
        "ext",
        "first_ts",
        "harvest",
        "keys",
        "score",
        "seen",
        "strong",
        "tenant_first_ts",
        "windows",
    )

    def __init__(self, s: KeySummary) -> None:
        self.events = self.windows = self.strong = 0
        self.score = self.elicit = self.harvest = self.automation = self.ext = 0.0
        self.accounts: list[str] = []
        self.keys: dict[str, int] = {}
        self.first_ts = s.first_ts
        self.tenant_first_ts = s.tenant_first_ts
        self.evidence: list[str] = []
        self.seen: set[float] = set()

    def add(self, s: KeySummary, keyed: bool = True) -> None:
        if keyed:
            keys, key = self.keys, s.key
            if key in keys:
                keys[key] += s.key_events
            elif len(keys) < _MAX_KEYS:
                keys[key] = s.key_events
        seen, ws = self.seen, s.window_start
        if ws in seen or len(seen) >= 64:
            return  # another key of a tenant window already counted (or a pathological flood of late windows)
        seen.add(ws)
        n = s.events
        self.events += n
        self.windows += 1
        elicit, harvest, automation = s.elicit, s.harvest, s.automation
        if (harvest if harvest < elicit else elicit) >= _STRONG:  # min(elicit, harvest)
            self.strong += 1
        # event-weighted sums of the window pillars
        self.elicit += elicit * n
        self.harvest += harvest * n
        self.automation += automation * n
        self.ext += _extraction(elicit, harvest, automation) * n
        if s.score > self.score:
            self.score = s.score
        accounts = self.accounts
        for a in s.accounts:
            if len(accounts) >= 8:
                break
            if a not in accounts:
                accounts.append(a)
        if s.first_ts < self.first_ts:
            self.first_ts = s.first_ts
        if s.tenant_first_ts < self.tenant_first_ts:
            self.tenant_first_ts = s.tenant_first_ts
        evidence = self.evidence
        for e in s.evidence:
            if len(evidence) < 3 and e not in evidence:
                evidence.append(e)


class _Profile:
    """A tenant's decayed evidence over the cluster horizon."""

    __slots__ = (
        "accounts",
        "automation",
        "elicit",
        "evidence",
        "ext",
        "first_ts",
        "harvest",
        "keys",
        "last_cs",
        "n",
        "score",
        "strong",
        "tenant_first_ts",
        "windows",
    )

    def __init__(self, m: _Member, cs: float) -> None:
        self.n = self.windows = self.strong = self.elicit = self.harvest = self.automation = self.ext = self.score = 0.0
        self.keys: dict[str, float] = {}  # key -> last cluster window it was seen in
        self.accounts: dict[str, float] = {}
        self.first_ts = m.first_ts  # first event of the current stretch of activity
        self.tenant_first_ts = m.tenant_first_ts
        self.last_cs = cs
        self.evidence: list[str] = []

    def fold(self, m: _Member, cs: float, half_life: float, horizon: float) -> None:
        d = 0.5 ** ((cs - self.last_cs) / half_life) if cs > self.last_cs else 1.0
        if cs - self.last_cs > horizon:
            self.first_ts = m.first_ts
        self.n = self.n * d + m.events
        self.windows = self.windows * d + m.windows
        self.strong = self.strong * d + m.strong
        self.elicit = self.elicit * d + m.elicit
        self.harvest = self.harvest * d + m.harvest
        self.automation = self.automation * d + m.automation
        self.ext = self.ext * d + m.ext
        self.score = max(self.score * d, m.score)
        self.last_cs = cs
        self.tenant_first_ts = min(self.tenant_first_ts, m.tenant_first_ts)
        _remember(self.keys, m.keys, cs, horizon, _MAX_KEYS)
        _remember(self.accounts, m.accounts, cs, horizon, _MAX_ACCOUNTS)
        self.evidence = (m.evidence + [e for e in self.evidence if e not in m.evidence])[:3]

    def mean(self, attr: str) -> float:
        return getattr(self, attr) / self.n if self.n > 0 else 0.0


def _remember(store: dict[str, float], items: Any, cs: float, horizon: float, cap: int) -> None:
    """Mark ``items`` as seen at ``cs``; forget entries older than ``horizon``; keep the ``cap`` most recent."""
    for k in items:
        store[k] = cs
    for k in [k for k, t in store.items() if cs - t > horizon]:
        del store[k]
    if len(store) > cap:
        for k in sorted(store, key=lambda k: (store[k], k))[: len(store) - cap]:
            del store[k]


class _Incident:
    __slots__ = (
        "accounts",
        "cluster_id",
        "first_seen",
        "keys",
        "last_end",
        "members",
        "reported_members",
        "score",
        "seq",
        "severity",
        "start",
    )


class ClusterDetector:
    """Coordinated groups of tenants sharing keys; ``process(summary)`` / ``advance(watermark)`` -> alerts."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = c = config or DetectorConfig()
        self._CW = float(c.cluster_window_seconds)
        # staged summaries per cluster window: {"keys": key -> tenants (for the caps), "tenants": tenant -> _Member}
        self._buckets: dict[float, dict[str, dict[str, Any]]] = {}
        self._closed_until = -math.inf
        self._profiles: dict[str, _Profile] = {}
        self._incidents: dict[str, _Incident] = {}
        self._suppressed: dict[str, None] = {}  # suppressed keys (insertion-ordered, capped)
        self.stream_start = math.inf
        self.stats = {"summaries": 0, "late": 0, "dropped_keys": 0, "dropped_members": 0, "windows": 0,
                      "dropped_tenants": 0, "profiles": 0, "evicted_profiles": 0}
        self.on_group: Any = None  # optional callback(window_start, group dict) for diagnostics

    def process(self, s: KeySummary) -> list[dict[str, Any]]:
        """Stage one key summary in its cluster window. Returns [] (alerts come from :meth:`advance`)."""
        stats = self.stats
        stats["summaries"] += 1
        if s.tenant_first_ts < self.stream_start:
            self.stream_start = s.tenant_first_ts
        ws = s.window_start
        cs = ws - ws % self._CW
        if cs < self._closed_until:
            stats["late"] += 1
            cs = self._closed_until
        bucket = self._buckets.get(cs)
        if bucket is None:
            bucket = self._buckets[cs] = {"keys": {}, "tenants": {}}
        keyed = True  # a key over its caps is dropped, the window's statistics are still kept
        c = self.config
        bkeys, key, tid = bucket["keys"], s.key, s.tenant_id
        holders = bkeys.get(key)
        if holders is None:
            if len(bkeys) >= c.cluster_max_keys:
                stats["dropped_keys"] += 1
                keyed = False
            else:
                holders = bkeys[key] = set()
        if keyed and tid not in holders:
            if len(holders) >= c.cluster_max_members:
                stats["dropped_members"] += 1
                keyed = False
            else:
                holders.add(tid)
        tenants = bucket["tenants"]
        m = tenants.get(tid)
        if m is None:
            if len(tenants) >= c.cluster_max_tenants:
                stats["dropped_tenants"] += 1
                return []
            m = tenants[tid] = _Member(s)
        m.add(s, keyed)
        return []

    def advance(self, watermark_ts: float) -> list[dict[str, Any]]:
        """Close cluster windows ending at or before ``watermark_ts``; evaluate them and resolve quiet incidents."""
        out: list[dict[str, Any]] = []
        for cs in sorted(self._buckets):
            if cs + self._CW > watermark_ts:
                break
            out += self._evaluate(cs, self._buckets.pop(cs))
            self._closed_until = max(self._closed_until, cs + self._CW)
        for cid in sorted(self._incidents):
            inc = self._incidents[cid]
            if watermark_ts >= inc.last_end + self.config.cluster_quiet_period:
                out.append(self._resolve(inc))
        return out

    def finish(self) -> list[dict[str, Any]]:
        """End of input: evaluate every open cluster window, then resolve every incident as of its quiet period end."""
        out = self.advance(max(self._buckets) + self._CW) if self._buckets else []
        for cid in sorted(self._incidents):
            out.append(self._resolve(self._incidents[cid]))
        return out

    # ------------------------------------------------------------------ profiles
    def _fold(self, cs: float, bucket: dict[str, dict[str, Any]]) -> None:
        c = self.config
        hl, hz = c.cluster_half_life, c.cluster_horizon_seconds
        profiles = self._profiles
        for tid in sorted(bucket["tenants"]):
            m = bucket["tenants"][tid]
            p = profiles.get(tid)
            if p is None:
                p = profiles[tid] = _Profile(m, cs)
            p.fold(m, cs, hl, hz)
        for tid in [t for t, p in profiles.items() if cs - p.last_cs > hz]:
            del profiles[tid]
        if len(profiles) > c.cluster_max_tenants:
            drop = sorted(profiles, key=lambda t: (profiles[t].last_cs, t))[: len(profiles) - c.cluster_max_tenants]
            for tid in drop:
                del profiles[tid]
            self.stats["evicted_profiles"] += len(drop)
        self.stats["profiles"] = len(profiles)

    def _components(self, cs: float) -> list[list[str]]:
        """Connected components (≥ 2 tenants) of the link graph over tenants whose profile shows extraction."""
        c = self.config
        nodes = {tid: p for tid, p in self._profiles.items()
                 if p.n >= c.cluster_min_events and p.mean("ext") >= c.cluster_node_extraction}
        by_key: dict[str, list[str]] = {}
        for tid in sorted(nodes):
            for k in nodes[tid].keys:
                if _kind(k) in _ANCHORS and k not in self._suppressed:
                    by_key.setdefault(k, []).append(tid)
        parent = {tid: tid for tid in nodes}

        def find(x: str) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        checked: set[tuple[str, str]] = set()
        for k in sorted(by_key):
            tids = by_key[k]
            if len(tids) < 2:
                continue
            for i, b in enumerate(tids):
                # all pairs of a small holder list; in a large one (a busy NAT, a huge hydra) each tenant is
                # compared with its _NEIGHBOURS predecessors, which keeps a dense group connected at O(n) cost
                for a in tids[max(0, i - _NEIGHBOURS) if len(tids) > 64 else 0:i]:
                    if (a, b) in checked:
                        continue
                    checked.add((a, b))
                    if find(a) != find(b) and self._link_weight(nodes[a], nodes[b]) >= LINK:
                        ra, rb = find(a), find(b)
                        parent[max(ra, rb)] = min(ra, rb)
        comps: dict[str, list[str]] = {}
        for tid in sorted(nodes):
            comps.setdefault(find(tid), []).append(tid)
        return [v for _, v in sorted(comps.items()) if len(v) >= 2]

    def _link_weight(self, a: _Profile, b: _Profile) -> int:
        kinds = {_kind(k) for k in a.keys if k in b.keys and k not in self._suppressed}
        return sum(KIND_WEIGHT.get(k, 0) for k in kinds)

    # ------------------------------------------------------------------ evaluation
    def _extracting(self, p: _Profile) -> bool:
        """Whether a tenant's own traffic shows extraction: on average, or in a clear share of its windows."""
        c = self.config
        if min(p.mean("elicit"), p.mean("harvest")) >= c.cluster_member_extraction:
            return True
        return p.strong >= 2.0 and p.strong >= c.cluster_member_strong_share * p.windows

    def _group_stats(self, tids: list[str]) -> dict[str, Any] | None:
        c = self.config
        prof = self._profiles
        named = {t for t in tids if self._extracting(prof[t])}
        if len(named) < c.cluster_min_members:
            return None
        ms = [prof[t] for t in tids]
        n = len(ms)
        loads = [m.n for m in ms]
        mean = sum(loads) / n
        cv = math.sqrt(sum((v - mean) ** 2 for v in loads) / n) / mean if mean > 0 else 1.0
        equal = max(0.0, 1.0 - cv)
        starts = sorted(m.tenant_first_ts for m in ms)
        med = starts[n // 2]
        fresh_after = self.stream_start + self._CW
        new = [m for m in ms if m.tenant_first_ts >= fresh_after]
        sync = sum(1 for m in new if abs(m.tenant_first_ts - med) <= c.cluster_sync_seconds) / n
        fresh = sum(1 for m in new if abs(m.tenant_first_ts - med) <= c.cluster_fresh_seconds) / n
        ordered = sorted(named)  # float sums must not follow set order (it follows the process's string hash)
        extraction = sum(prof[t].mean("ext") for t in ordered) / len(named)
        strong = sum(prof[t].strong for t in ordered)
        volume = min(1.0, math.log1p(strong) / math.log1p(c.cluster_volume_windows))
        # key kinds shared: a kind counts when most members share one of its keys with another member
        holders: dict[str, int] = {}
        for m in ms:
            for k in m.keys:
                holders[k] = holders.get(k, 0) + 1
        kind_members: dict[str, int] = {}
        for m in ms:
            for kd in {_kind(k) for k in m.keys if holders[k] >= 2}:
                kind_members[kd] = kind_members.get(kd, 0) + 1
        kinds = sorted(k for k, v in kind_members.items() if v >= 0.5 * n)
        multi = min(1.0, max(0, len(kinds) - 1) / 2.0)
        size = min(1.0, math.log(len(named) / c.cluster_min_members + 1.0) / math.log(5.0))
        z = (-5.0 + 1.0 * sync + 1.0 * fresh + 1.5 * equal + 4.0 * extraction + 1.5 * multi + 0.8 * size
             + 1.0 * volume)
        shared = sorted((k for k, v in holders.items() if v >= 2 and _kind(k) in _ANCHORS),
                        key=lambda k: (-holders[k], k))
        return {"members": named, "tenants": tids, "score": sigmoid(z), "n": n, "sync": sync, "fresh": fresh,
                "equal": equal, "cv": cv, "multi": multi, "extraction": extraction, "volume": volume, "strong_windows": strong,
                "kinds": kinds or ["pfx"], "keys": shared[:8], "mean_score": sum(m.score for m in ms) / n}

    def _account_group(self, tid: str) -> dict[str, Any] | None:
        """One sparse tenant whose accounts keep sending clear extraction over the horizon (low-and-slow).

        The tenant stage decides on windows with enough events; a tenant sending a few requests per window over
        several accounts is judged here on its decayed profile instead: the share of its windows with clear
        extraction, how many such windows it has accumulated, and how many accounts carry its traffic.
        """
        c = self.config
        p = self._profiles[tid]
        if (len(p.accounts) < c.cluster_min_accounts or p.strong < c.cluster_account_min_strong
                or p.n >= 2 * c.min_window_events * p.windows or not self._extracting(p)):
            return None
        share = p.strong / p.windows
        volume = min(1.0, math.log1p(p.strong) / math.log1p(c.cluster_volume_windows))
        spread = min(1.0, (len(p.accounts) - 1) / 4.0)
        z = -6.0 + 4.0 * min(1.0, share / 0.3) + 2.0 * volume + 1.5 * spread
        dens = p.n / p.windows
        reasons = [
            {"signal": "account_spread", "value": len(p.accounts), "baseline": None, "weight": 1.5,
             "text": f"{len(p.accounts)} accounts of one tenant carry the traffic within "
                     f"{c.cluster_horizon_seconds / 3600:.0f} h"},
            {"signal": "sustained_extraction", "value": round(share, 4), "baseline": 0.0, "weight": 4.0,
             "text": f"{share:.0%} of its windows ({p.strong:.0f}, decayed) combine reasoning elicitation and output "
                     f"harvesting"},
            {"signal": "sparse_windows", "value": round(dens, 2), "baseline": float(c.min_window_events), "weight": 2.0,
             "text": f"{dens:.1f} events per window: too few for a window-level decision, pooled over hours here"},
            {"signal": "extraction_features", "value": round(p.mean("ext"), 4), "baseline": 0.0, "weight": 4.0,
             "text": f"elicitation {p.mean('elicit'):.2f}, harvesting {p.mean('harvest'):.2f} on average"},
        ]
        return {"members": {tid}, "tenants": [tid], "score": sigmoid(z), "n": 1, "kinds": ["accounts"], "keys": [],
                "reasons": reasons, "extraction": p.mean("ext"), "strong_windows": p.strong}

    def _evaluate(self, cs: float, bucket: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        c = self.config
        self.stats["windows"] += 1
        self._fold(cs, bucket)
        groups = []
        for comp in self._components(cs):
            g = self._group_stats(comp)
            if g is not None:
                groups.append(g)
        groups.sort(key=lambda g: (-g["score"], min(g["members"])))
        grouped = {t for g in groups if g["score"] >= c.cluster_threshold for t in g["members"]}
        for tid in sorted(self._profiles):
            if tid not in grouped:
                g = self._account_group(tid)
                if g is not None:
                    groups.append(g)
        out: list[dict[str, Any]] = []
        we = cs + self._CW
        touched: dict[str, dict[str, Any]] = {}  # incident -> what this window added (one alert per incident)
        for g in groups:
            if self.on_group is not None:
                self.on_group(cs, g)
            if g["score"] < c.cluster_threshold:
                continue
            self._incident(cs, we, g, touched)
        for cid in sorted(touched):
            t = touched[cid]
            inc = self._incidents[cid]
            if t["new"]:
                inc.reported_members = len(inc.members)
                out.append(self._alert(inc, "open", cs, we, t["g"], t["evidence"]))
                continue
            sev = severity_of(t["g"]["score"], c.severity_cuts)
            grew = len(inc.members) >= 1.25 * inc.reported_members
            if _SEV_RANK[sev] > _SEV_RANK[inc.severity] or grew:
                inc.score = max(inc.score, t["g"]["score"])
                inc.severity = severity_of(inc.score, c.severity_cuts)
                inc.reported_members = len(inc.members)
                out.append(self._alert(inc, "update", cs, we, t["g"], t["evidence"]))
        return out

    def _incident(self, cs: float, we: float, g: dict[str, Any], touched: dict[str, dict[str, Any]]) -> None:
        """Attach group ``g`` to the open incident its members overlap, or start a new incident."""
        c = self.config
        members: set[str] = g["members"]
        accounts: set[str] = set()
        evidence: list[str] = []
        first_seen = we
        for tid in sorted(members):
            p = self._profiles[tid]
            accounts.update(p.accounts)
            first_seen = min(first_seen, p.first_ts)
            for e in p.evidence:
                if len(evidence) < 20 and e not in evidence:
                    evidence.append(e)
        inc = None
        for cid in sorted(self._incidents):
            cand = self._incidents[cid]
            if len(members & cand.members) >= 0.3 * min(len(members), len(cand.members)):
                inc = cand
                break
        if inc is None:
            inc = _Incident()
            inc.cluster_id = "cluster-" + stable_id(min(members), cs, g["kinds"] == ["accounts"])[:16]
            inc.start, inc.seq, inc.score = cs, 0, g["score"]
            inc.severity = severity_of(g["score"], c.severity_cuts)
            inc.members, inc.accounts, inc.last_end = set(members), set(accounts), we
            inc.reported_members, inc.first_seen, inc.keys = len(members), first_seen, set(g["keys"])
            self._incidents[inc.cluster_id] = inc
            touched[inc.cluster_id] = {"new": True, "g": g, "evidence": evidence}
            return
        inc.members |= members
        inc.accounts |= accounts
        inc.keys |= set(g["keys"])
        inc.last_end = we
        inc.first_seen = min(inc.first_seen, first_seen)
        t = touched.get(inc.cluster_id)
        if t is None:
            touched[inc.cluster_id] = {"new": False, "g": g, "evidence": evidence}
        else:
            if g["score"] > t["g"]["score"]:
                t["g"] = g
            t["evidence"] = (t["evidence"] + [e for e in evidence if e not in t["evidence"]])[:20]
            if t["new"]:
                inc.score = max(inc.score, g["score"])
                inc.severity = severity_of(inc.score, c.severity_cuts)

    def _reasons(self, g: dict[str, Any]) -> list[dict[str, Any]]:
        """The keys that link the group, then the score's terms by contribution; ``weight`` is each term's
        contribution to the score (as for tenant alerts), so a term that did not count -- unequal loads, say --
        shows weight 0 and a text that says so, not a full weight beside a value that contradicts it."""
        if "reasons" in g:
            return g["reasons"]
        cv = g["cv"]
        load = ("near-equal" if cv <= 0.3 else "uneven" if cv >= 1.0 else "moderately uneven")
        rs = [
            {"signal": "shared_keys", "value": ", ".join(g["kinds"]), "baseline": None,
             "weight": round(1.5 * g["multi"], 4),
             "text": f"{g['n']} linked tenants share {', '.join(g['keys'][:3])} (key kinds shared: {', '.join(g['kinds'])})"},
            {"signal": "synchronous_start", "value": round(g["sync"], 4), "baseline": 0.0,
             "weight": round(g["sync"] + g["fresh"], 4),
             "text": f"{g['sync']:.0%} of members were first seen within {self.config.cluster_sync_seconds / 3600:.0f} h "
                     f"of the group's median start, {g['fresh']:.0%} within {self.config.cluster_fresh_seconds / 86400:.0f} days"},
            {"signal": "equal_load", "value": round(g["equal"], 4), "baseline": 0.0, "weight": round(1.5 * g["equal"], 4),
             "text": f"{load} load: member request counts vary by a coefficient of variation of {cv:.2f} "
                     f"(0 = equal; this term is 1 - CV, floored at 0)"},
            {"signal": "extraction_features", "value": round(g["extraction"], 4), "baseline": 0.0,
             "weight": round(4.0 * g["extraction"], 4),
             "text": f"members' traffic combines reasoning elicitation and output harvesting (strength {g['extraction']:.2f}), "
                     f"mean per-tenant score {g['mean_score']:.2f}"},
        ]
        return rs[:1] + sorted(rs[1:], key=lambda r: -r["weight"])  # what links them first, then by contribution

    def _alert(self, inc: _Incident, status: str, ws: float, we: float, g: dict[str, Any] | None,
               evidence: list[str], reasons: list[dict[str, Any]] | None = None,
               detected_at: float | None = None) -> dict[str, Any]:
        a = make_alert(kind="cluster", status=status, subject=inc.cluster_id, incident_start=inc.start, seq=inc.seq,
                       score=inc.score, severity=inc.severity, detected_at=we if detected_at is None else detected_at, first_seen=inc.first_seen,
                       window_start=ws, window_end=we, reasons=reasons or self._reasons(g), evidence=evidence,
                       tenant_ids=sorted(inc.members)[:1000], account_ids=sorted(inc.accounts)[:1000],
                       cluster_id=inc.cluster_id)
        inc.seq += 1
        return a

    def _resolve(self, inc: _Incident, reason: dict[str, Any] | None = None) -> dict[str, Any]:
        q = self.config.cluster_quiet_period
        del self._incidents[inc.cluster_id]
        r = reason or {"signal": "quiet_period", "value": q, "baseline": None, "weight": 0.0,
                       "text": f"no coordinated window for {q / 3600:.1f} h of event time"}
        return self._alert(inc, "resolved", inc.last_end - self._CW, inc.last_end, None, [], [r],
                           detected_at=inc.last_end + q if reason is None else inc.last_end)

    def apply_feedback(self, record: dict[str, Any], cluster_id: str | None = None) -> list[dict[str, Any]]:
        """``false_positive`` / ``benign_expected`` on a cluster alert suppresses the incident's linking keys."""
        if record.get("label") not in ("false_positive", "benign_expected") or cluster_id not in self._incidents:
            return []
        inc = self._incidents[cluster_id]
        for k in sorted(inc.keys):
            self._suppressed[k] = None
        while len(self._suppressed) > 10000:
            self._suppressed.pop(next(iter(self._suppressed)))
        return [self._resolve(inc, {"signal": "analyst_feedback", "value": record.get("label"), "baseline": None,
                                    "weight": 0.0, "text": f"analyst marked alert {record.get('alert_id')} as {record.get('label')}"})]

    def incident_for_alert(self, named: str) -> str | None:
        """The open cluster incident that issued the alert ``named`` (recomputes the deterministic ids)."""
        for cid, inc in self._incidents.items():
            if named in incident_alert_ids("cluster", cid, inc.start, inc.seq, False):
                return cid
        return None
