"""Cross-tenant ("hydra") detection over shared keys, fed by :class:`~detectors.tenant.KeySummary` records.

Each tenant window that closes yields one summary per shared key it carries (prompt template, ASN, client IP
prefix, user agent, payment fingerprint). The cluster stage groups them per key in event-time cluster
windows (default 1 hour). When a cluster window closes, every key shared by at least
``cluster_min_members`` tenants is tested for *coordination*: a shared key alone is not evidence (big
cloud ASNs and the official SDK user agent are shared by thousands of benign tenants). The group score
combines

* synchronous start — members first seen within ``cluster_sync_seconds`` of the group's median start
  (tenants present since the start of observation have unknown age and do not count as synchronous),
* near-equal load — low coefficient of variation of the members' request counts,
* extraction-likeness of the members' traffic — elicitation and harvesting pillars, even when every
  member stays below the per-tenant threshold (mixing extraction with mundane traffic),
* several shared keys — groups linked by more than one key kind; groups linked only by a weak kind
  (user agent, network) need at least one more shared kind.

Overlapping candidate groups are merged; each group becomes a cluster incident with the usual
``open`` / ``update`` / ``resolved`` lifecycle. Memory is bounded: at most ``cluster_max_keys`` keys
and ``cluster_max_members`` members per key and open cluster window; closed windows are dropped.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.common import DetectorConfig, make_alert, severity_of, sigmoid, stable_id
from detectors.tenant import KeySummary

__all__ = ["ClusterDetector"]

_WEAK_KINDS = frozenset({"ua", "asn", "pfx"})
_SEV_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class _Member:
    __slots__ = ("events", "key_events", "windows", "score", "elicit", "harvest", "automation", "cot", "cap",
                 "accounts", "keys", "first_ts", "tenant_first_ts", "evidence")

    def __init__(self, s: KeySummary) -> None:
        self.events = self.key_events = self.windows = 0
        self.score = self.elicit = self.harvest = self.automation = self.cot = self.cap = 0.0
        self.accounts: list[str] = []
        self.keys: set[str] = set()
        self.first_ts = s.first_ts
        self.tenant_first_ts = s.tenant_first_ts
        self.evidence: list[str] = []

    def add(self, s: KeySummary) -> None:
        n = s.events
        tot = self.events + n
        f = n / tot if tot else 0.0
        # event-weighted means of the members' extraction features
        self.elicit += (s.elicit - self.elicit) * f
        self.harvest += (s.harvest - self.harvest) * f
        self.automation += (s.automation - self.automation) * f
        self.cot += (s.cot - self.cot) * f
        self.cap += (s.cap - self.cap) * f
        self.events = tot
        self.key_events += s.key_events
        self.windows += 1
        self.score = max(self.score, s.score)
        for a in s.accounts:
            if len(self.accounts) >= 8:
                break
            if a not in self.accounts:
                self.accounts.append(a)
        if len(self.keys) < 8:
            self.keys.update(s.keys[: 8 - len(self.keys)])
        self.first_ts = min(self.first_ts, s.first_ts)
        self.tenant_first_ts = min(self.tenant_first_ts, s.tenant_first_ts)
        if len(self.evidence) < 3:
            self.evidence.extend(s.evidence[: 3 - len(self.evidence)])


class _Incident:
    __slots__ = ("cluster_id", "start", "seq", "score", "severity", "members", "accounts", "last_end",
                 "reported_members", "first_seen", "keys")


class ClusterDetector:
    """Coordinated groups of tenants sharing keys; ``process(summary)`` / ``advance(watermark)`` -> alerts."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = c = config or DetectorConfig()
        self._CW = float(c.cluster_window_seconds)
        self._buckets: dict[float, dict[str, dict[str, _Member]]] = {}
        self._closed_until = -math.inf
        self._incidents: dict[str, _Incident] = {}
        self._suppressed: dict[str, None] = {}  # suppressed keys (insertion-ordered, capped)
        self.stream_start = math.inf
        self.stats = {"summaries": 0, "late": 0, "dropped_keys": 0, "dropped_members": 0, "windows": 0}
        self.on_group: Any = None  # optional callback(window_start, group dict) for diagnostics

    def process(self, s: KeySummary) -> list[dict[str, Any]]:
        """Add one key summary to its cluster window. Returns [] (alerts come from :meth:`advance`)."""
        self.stats["summaries"] += 1
        if s.tenant_first_ts < self.stream_start:
            self.stream_start = s.tenant_first_ts
        cs = s.window_start - s.window_start % self._CW
        if cs < self._closed_until:
            self.stats["late"] += 1
            cs = self._closed_until
        bucket = self._buckets.get(cs)
        if bucket is None:
            bucket = self._buckets[cs] = {}
        members = bucket.get(s.key)
        if members is None:
            if len(bucket) >= self.config.cluster_max_keys:
                self.stats["dropped_keys"] += 1
                return []
            members = bucket[s.key] = {}
        m = members.get(s.tenant_id)
        if m is None:
            if len(members) >= self.config.cluster_max_members:
                self.stats["dropped_members"] += 1
                return []
            m = members[s.tenant_id] = _Member(s)
        m.add(s)
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

    # ------------------------------------------------------------------ evaluation
    def _group_stats(self, key: str, members: dict[str, _Member]) -> dict[str, Any] | None:
        c = self.config
        ms = [members[t] for t in sorted(members)]
        n = len(ms)
        loads = [m.key_events for m in ms]
        mean = sum(loads) / n
        cv = math.sqrt(sum((v - mean) ** 2 for v in loads) / n) / mean if mean > 0 else 1.0
        equal = max(0.0, 1.0 - cv)
        starts = sorted(m.tenant_first_ts for m in ms)
        med = starts[n // 2]
        fresh_after = self.stream_start + self._CW
        sync = sum(1 for m in ms if m.tenant_first_ts >= fresh_after and abs(m.tenant_first_ts - med)
                   <= c.cluster_sync_seconds) / n
        extraction = sum(min(m.elicit, m.harvest) * (0.6 + 0.4 * m.automation) for m in ms) / n
        kind = key.split(":", 1)[0]
        kind_share: dict[str, float] = {}
        counts: dict[str, int] = {}
        for m in ms:
            for k in m.keys:
                if k != key:
                    counts[k] = counts.get(k, 0) + 1
        for k, cnt in counts.items():
            kd = k.split(":", 1)[0]
            if kd != kind:
                kind_share[kd] = max(kind_share.get(kd, 0.0), cnt / n)
        shared_kinds = 1 + sum(1 for v in kind_share.values() if v >= 0.6)
        if kind in _WEAK_KINDS and shared_kinds < 2:
            return None
        if extraction < 0.1:
            return None
        multi = min(1.0, (shared_kinds - 1) / 2.0)
        # members listed in an alert: those whose own traffic looks like extraction (sharing a common ASN
        # or SDK with the group is not enough to be named)
        named = {t for t in sorted(members) if min(members[t].elicit, members[t].harvest) >= 0.25}
        size = min(1.0, math.log(n / c.cluster_min_members + 1.0) / math.log(5.0))
        z = -5.0 + 2.0 * sync + 1.5 * equal + 4.0 * extraction + 1.5 * multi + 0.8 * size
        if len(named) < c.cluster_min_members:
            return None
        return {"key": key, "members": named, "score": sigmoid(z), "n": n, "sync": sync, "equal": equal,
                "cv": cv, "extraction": extraction, "shared_kinds": shared_kinds, "mean_score": sum(m.score for m in ms) / n,
                "kinds": sorted([kind] + [k for k, v in kind_share.items() if v >= 0.6])}

    def _evaluate(self, cs: float, bucket: dict[str, dict[str, _Member]]) -> list[dict[str, Any]]:
        c = self.config
        self.stats["windows"] += 1
        cands = []
        for key in sorted(bucket):
            members = bucket[key]
            if len(members) < c.cluster_min_members or key in self._suppressed:
                continue
            g = self._group_stats(key, members)
            if g is not None:
                cands.append(g)
        cands.sort(key=lambda g: (-g["score"], g["key"]))
        groups: list[dict[str, Any]] = []
        for g in cands:
            for h in groups:
                inter = len(g["members"] & h["members"])
                if inter / len(g["members"] | h["members"]) >= 0.5 or inter >= 0.8 * len(g["members"]):
                    h["members"] |= g["members"]
                    h["keys"].append(g["key"])
                    break
            else:
                groups.append({**g, "keys": [g["key"]]})
        out: list[dict[str, Any]] = []
        we = cs + self._CW
        touched: dict[str, dict[str, Any]] = {}  # incident -> what this window added (one alert per incident)
        for g in groups:
            if self.on_group is not None:
                self.on_group(cs, g)
            if g["score"] < c.cluster_threshold:
                continue
            self._incident(cs, we, g, bucket, touched)
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

    def _incident(self, cs: float, we: float, g: dict[str, Any], bucket: dict[str, dict[str, _Member]],
                  touched: dict[str, dict[str, Any]]) -> None:
        """Attach group ``g`` to a matching open incident (strong shared key or member overlap) or start one."""
        c = self.config
        members: set[str] = g["members"]
        accounts: set[str] = set()
        evidence: list[str] = []
        first_seen = we
        for key in g["keys"]:
            for tid in sorted(bucket[key]):
                if tid not in members:
                    continue
                m = bucket[key][tid]
                accounts.update(m.accounts)
                first_seen = min(first_seen, m.first_ts)
                for e in m.evidence:
                    if len(evidence) < 20 and e not in evidence:
                        evidence.append(e)
        inc = None
        strong = {k for k in g["keys"] if k.split(":", 1)[0] not in _WEAK_KINDS}
        for cid in sorted(self._incidents):
            cand = self._incidents[cid]
            if strong & cand.keys or len(members & cand.members) >= 0.3 * min(len(members), len(cand.members)):
                inc = cand
                break
        if inc is None:
            inc = _Incident()
            inc.cluster_id = "cluster-" + stable_id(sorted(g["keys"])[0], cs)[:16]
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
        return [
            {"signal": "shared_keys", "value": ", ".join(g["kinds"]), "baseline": None, "weight": 1.5,
             "text": f"{g['n']} tenants share {', '.join(sorted(g['keys'])[:3])} (key kinds shared: {', '.join(g['kinds'])})"},
            {"signal": "synchronous_start", "value": round(g["sync"], 4), "baseline": 0.0, "weight": 2.0,
             "text": f"{g['sync']:.0%} of members were first seen within {self.config.cluster_sync_seconds / 60:.0f} min of each other"},
            {"signal": "equal_load", "value": round(g["equal"], 4), "baseline": 0.0, "weight": 1.5,
             "text": f"near-equal load: coefficient of variation of member request counts {g['cv']:.2f}"},
            {"signal": "extraction_features", "value": round(g["extraction"], 4), "baseline": 0.0, "weight": 4.0,
             "text": f"members' traffic combines reasoning elicitation and output harvesting (strength {g['extraction']:.2f}), "
                     f"mean per-tenant score {g['mean_score']:.2f}"},
        ]

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
        """``false_positive`` / ``benign_expected`` on a cluster alert suppresses the incident's keys."""
        if record.get("label") not in ("false_positive", "benign_expected") or cluster_id not in self._incidents:
            return []
        inc = self._incidents[cluster_id]
        for k in sorted(inc.keys):
            self._suppressed[k] = None
        while len(self._suppressed) > 10000:
            self._suppressed.pop(next(iter(self._suppressed)))
        return [self._resolve(inc, {"signal": "analyst_feedback", "value": record.get("label"), "baseline": None,
                                    "weight": 0.0, "text": f"analyst marked alert {record.get('alert_id')} as {record.get('label')}"})]

    def incident_for_alert(self, alert_id: str) -> str | None:
        """The open cluster incident that issued ``alert_id`` (recomputes the deterministic ids)."""
        for cid, inc in self._incidents.items():
            for seq in range(inc.seq):
                if f"c-{stable_id('cluster', cid, round(inc.start, 3), seq)}" == alert_id:
                    return cid
        return None
