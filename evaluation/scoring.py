"""Score alerts against simulator labels: a pure function of (alerts, labels), testable on hand-built lists.

Definitions (also in docs/EVALUATION.md):

* An alert *names* the tenants in ``tenant_id`` (kind tenant) or ``tenant_ids``
  (kind cluster) and the accounts in ``account_ids``.
* Only ``status == "open"`` alerts count as detections and as false alarms;
  ``update`` alerts add named members (cluster coverage) but are not new
  incidents. Alerts are de-duplicated on ``alert_id``.
* An attack is **detected** by the first open alert that names one of its
  tenants with ``detected_at >= start`` of the attack. Time to detect (TTD) is
  ``detected_at - start`` in event time. A detection later than
  ``late_after_s`` (default 6 h) is a **late** hit; none at all is a **miss**.
* **Served before detection**: extraction requests of the attack with event
  time before the detection (all of them for a miss), from the labels'
  per-minute timeline.
* **First named**: the first ``open`` *or* ``update`` alert naming one of the
  attack's tenants (an existing cluster incident may absorb new members through
  updates; this is reported, but it is not counted as detection).
* **Named share**: the attack's tenants (and accounts) named by any open or
  update alert from ``start`` on, over all of its tenants (accounts).
* An open alert is **true** if it names at least one attack tenant at or after
  that attack's start; otherwise **false**. Precision = true / all open alerts.
* **False namings**: every benign tenant named by an incident counts once per
  incident (a tenant alert's ``open``; a cluster incident's ``open`` and the
  ``update`` alerts of the same ``cluster_id``, which may add members),
  attributed to its benign profile; the rate is per 1,000 benign tenant-days
  of that profile (tenants count from their first active day). An
  open alert on an attack tenant *before* its attack began (the siphoning
  tenant's honest past) is reported as ``pre_attack``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

DEFAULT_LATE_AFTER_S = 6 * 3600.0


def ts_of(value: str | float | int | None) -> float | None:
    """RFC 3339 string or epoch seconds -> epoch seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def named_tenants(alert: Mapping[str, Any]) -> list[str]:
    if alert.get("kind") == "cluster" or "tenant_ids" in alert:
        out = list(alert.get("tenant_ids") or [])
        if alert.get("tenant_id") and alert["tenant_id"] not in out:
            out.append(alert["tenant_id"])
        return out
    return [alert["tenant_id"]] if alert.get("tenant_id") else []


def dedupe(alerts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    seen: set[str] = set()
    out = []
    for a in alerts:
        aid = a.get("alert_id")
        if aid is not None:
            if aid in seen:
                continue
            seen.add(aid)
        out.append(a)
    out.sort(key=lambda a: (ts_of(a.get("detected_at")) or 0.0, str(a.get("alert_id"))))
    return out


def served_before(timeline: Sequence[Sequence[int]], run_start: float, t: float | None) -> int:
    """Extraction requests in the per-minute ``timeline`` ([[minute, count], ...]) strictly before minute of ``t``."""
    if t is None:
        return sum(c for _, c in timeline)
    minute = int((t - run_start) // 60)
    minutes = [m for m, _ in timeline]
    k = bisect.bisect_left(minutes, minute)
    return sum(c for _, c in timeline[:k])


def score_alerts(alerts: Iterable[Mapping[str, Any]], labels: Mapping[str, Any],
                 late_after_s: float = DEFAULT_LATE_AFTER_S) -> dict[str, Any]:
    """Per-attack outcomes, false alarms by benign profile, precision. Pure: no I/O."""
    alerts = dedupe(alerts)
    run_start = ts_of(labels["start"]) or 0.0
    tenants = labels["tenants"]
    attacks = labels["attacks"]
    attack_start: dict[str, float] = {}
    attack_of_tenant: dict[str, str] = {}
    for a in attacks:
        for tid in a["tenants"]:
            attack_of_tenant[tid] = a["attack_id"]
        attack_start[a["attack_id"]] = ts_of(a["start"]) or 0.0

    opens = [a for a in alerts if a.get("status", "open") == "open"]
    true_open = 0
    false_alerts: list[dict[str, Any]] = []
    pre_attack: list[dict[str, Any]] = []
    for al in opens:
        at = ts_of(al.get("detected_at")) or 0.0
        names = named_tenants(al)
        hit = False
        for tid in names:
            aid = attack_of_tenant.get(tid)
            if aid is not None and at >= attack_start[aid]:
                hit = True
            elif aid is not None:
                pre_attack.append({"alert_id": al.get("alert_id"), "tenant_id": tid, "detected_at": al.get("detected_at")})
        if hit:
            true_open += 1
        else:
            false_alerts.append({"alert_id": al.get("alert_id"), "kind": al.get("kind"), "tenants": names,
                                 "profiles": sorted({tenants.get(t, {}).get("profile", "unknown") for t in names}),
                                 "detected_at": al.get("detected_at"), "score": al.get("score"),
                                 "signals": [r.get("signal") for r in al.get("reasons", [])][:5]})

    # false namings: a benign tenant named by an incident, once per incident. A tenant incident is its open
    # alert; a cluster incident (same cluster_id) also names whoever its updates add later.
    incident_names: dict[tuple[str, str], set[str]] = defaultdict(set)
    cluster_purity: dict[str, dict[str, int]] = {}
    for al in alerts:
        status = al.get("status", "open")
        if al.get("kind") == "cluster" and status in ("open", "update"):
            key = ("cluster", str(al.get("cluster_id") or al.get("alert_id")))
        elif status == "open":
            key = ("tenant", str(al.get("alert_id")))
        else:
            continue
        incident_names[key] |= set(named_tenants(al))
    false_by_profile: dict[str, int] = defaultdict(int)
    for (kind, key), names in incident_names.items():
        benign = [t for t in names if t not in attack_of_tenant]
        for tid in benign:
            false_by_profile[tenants.get(tid, {}).get("profile", "unknown")] += 1
        if kind == "cluster":
            cluster_purity[key] = {"named": len(names), "attackers": len(names) - len(benign), "benign": len(benign)}

    per_attack = []
    for a in attacks:
        aid, start = a["attack_id"], attack_start[a["attack_id"]]
        members = set(a["tenants"])
        accounts = set(a.get("accounts") or [])
        first: Mapping[str, Any] | None = None
        first_named: Mapping[str, Any] | None = None
        named: set[str] = set()
        named_accounts: set[str] = set()
        kinds: set[str] = set()
        for al in alerts:
            at = ts_of(al.get("detected_at")) or 0.0
            if at < start:
                continue
            hit_names = members.intersection(named_tenants(al))
            if not hit_names:
                continue
            named |= hit_names
            if first_named is None and al.get("status", "open") in ("open", "update"):
                first_named = al
            named_accounts |= accounts.intersection(al.get("account_ids") or [])
            if al.get("kind") == "tenant":  # a tenant alert implicates the tenant's attacking accounts
                named_accounts |= {acc for acc in accounts if any(acc in tenants.get(t, {}).get("accounts", ())
                                                                  for t in hit_names)}
            if al.get("status", "open") == "open":
                kinds.add(str(al.get("kind")))
                if first is None:
                    first = al
        t_det = ts_of(first["detected_at"]) if first else None
        ttd = None if t_det is None else t_det - start
        outcome = "miss" if first is None else ("late" if ttd is not None and ttd > late_after_s else "hit")
        total = int(a.get("attack_events", 0))
        served = served_before(a.get("timeline_minutes", []), run_start, t_det) if a.get("timeline_minutes") else (
            0 if t_det is not None else total)
        per_attack.append({
            "attack_id": aid, "scenario": a["scenario"], "outcome": outcome, "detected": first is not None,
            "detected_at": first.get("detected_at") if first else None, "ttd_s": ttd,
            "first_alert_kind": first.get("kind") if first else None, "alert_kinds": sorted(kinds),
            "first_named_at": first_named.get("detected_at") if first_named else None,
            "first_named_status": first_named.get("status") if first_named else None,
            "served_before_detection": served, "attack_events": total,
            "members": len(members), "members_named": len(named), "named_share": len(named) / len(members) if members else 0.0,
            "accounts": len(accounts), "accounts_named": len(named_accounts),
            "prompt_mode": a.get("prompt_mode"), "description": a.get("description", ""),
        })

    days = labels.get("benign_tenant_days", {})
    total_days = sum(days.values())
    by_profile = {p: {"false_namings": false_by_profile.get(p, 0), "tenant_days": d,
                      "per_1000_tenant_days": (1000.0 * false_by_profile.get(p, 0) / d) if d else 0.0}
                  for p, d in sorted(days.items())}
    n_false_namings = sum(false_by_profile.values())
    detected = sum(1 for r in per_attack if r["detected"])
    return {
        "attacks": per_attack,
        "recall": detected / len(per_attack) if per_attack else 0.0,
        "open_alerts": len(opens), "true_open_alerts": true_open, "false_open_alerts": len(false_alerts),
        "precision": true_open / len(opens) if opens else None,
        "false_namings": n_false_namings, "benign_tenant_days": total_days,
        "false_per_1000_tenant_days": 1000.0 * n_false_namings / total_days if total_days else 0.0,
        "false_by_profile": by_profile, "false_alerts": false_alerts, "pre_attack_alerts": pre_attack,
        "cluster_incidents": cluster_purity,
        "late_after_s": late_after_s,
    }


def sweep_thresholds(windows: Sequence[tuple[str, float, float, float]], labels: Mapping[str, Any],
                     thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """Recall and false positives if an alert fired whenever a tenant window scored >= threshold.

    ``windows`` are (tenant_id, window_start, window_end, score) from the engine's
    ``on_window`` callback. An attack counts as caught at a threshold if any of its
    tenants has a window ending at or after the attack start scoring at or above it;
    a false positive is a distinct (benign tenant, UTC day) with such a window,
    reported per 1,000 benign tenant-days.
    """
    tenants = labels["tenants"]
    run_start = ts_of(labels["start"]) or 0.0
    attack_start = {a["attack_id"]: ts_of(a["start"]) or 0.0 for a in labels["attacks"]}
    attack_of = {tid: a["attack_id"] for a in labels["attacks"] for tid in a["tenants"]}
    # best score per attack (after start) and per benign (tenant, day)
    best_attack: dict[str, float] = defaultdict(float)
    benign_day: dict[tuple[str, int], float] = defaultdict(float)
    for tid, _ws, we, sc in windows:
        aid = attack_of.get(tid)
        if aid is not None:
            if we >= attack_start[aid] and sc > best_attack[aid]:
                best_attack[aid] = sc
        elif tenants.get(tid, {}).get("role") == "benign":
            key = (tid, int((we - run_start) // 86400))
            if sc > benign_day[key]:
                benign_day[key] = sc
    total_days = sum(labels.get("benign_tenant_days", {}).values()) or 1.0
    n_attacks = len(labels["attacks"]) or 1
    out = []
    for th in thresholds:
        caught = sum(1 for aid in attack_start if best_attack.get(aid, 0.0) >= th)
        fp = sum(1 for v in benign_day.values() if v >= th)
        out.append({"threshold": th, "recall": caught / n_attacks, "caught": caught,
                    "false_tenant_days": fp, "false_per_1000_tenant_days": 1000.0 * fp / total_days})
    return out


def attack_window_stats(windows: Sequence[tuple[str, float, float, float]], labels: Mapping[str, Any],
                        threshold: float) -> dict[str, dict[str, Any]]:
    """Per attack, from the tenant window scores after its start: best score, windows at/above ``threshold``, mean.

    Explains a miss: a best score under the threshold means the scoring never saw
    the attack; many windows above it with no alert point at the alert lifecycle
    (persistence) instead.
    """
    attack_of = {tid: a["attack_id"] for a in labels["attacks"] for tid in a["tenants"]}
    start = {a["attack_id"]: ts_of(a["start"]) or 0.0 for a in labels["attacks"]}
    acc: dict[str, list[float]] = defaultdict(list)
    for tid, _ws, we, sc in windows:
        aid = attack_of.get(tid)
        if aid is not None and we >= start[aid]:
            acc[aid].append(sc)
    out = {}
    for a in labels["attacks"]:
        s = acc.get(a["attack_id"], [])
        out[a["attack_id"]] = {"windows": len(s), "best_score": max(s) if s else None,
                               "mean_score": sum(s) / len(s) if s else None,
                               "windows_at_threshold": sum(1 for x in s if x >= threshold)}
    return out
