"""Readable one-line rendering of alerts for terminals (``run``, ``alerts tail``)."""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def safe(text: Any) -> str:
    """Attacker-controlled strings (tenant ids, ...) with control characters escaped: no terminal tricks."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    s = safe(v)
    return s if len(s) <= 24 else s[:21] + "..."


def alert_line(alert: dict[str, Any], max_reasons: int = 3) -> str:
    """One readable line: event time, severity, kind/status, tenant(s), top reasons (signal names and numbers only)."""
    when = str(alert.get("detected_at", ""))[:19].replace("T", " ")
    if alert.get("kind") == "cluster":
        members = [safe(m) for m in alert.get("tenant_ids") or []]
        who = f"cluster {safe(alert.get('cluster_id', ''))} {len(members)} tenants: " + ",".join(members[:4]) + (
            ",…" if len(members) > 4 else "")
    else:
        who = f"tenant {safe(alert.get('tenant_id'))}"
    reasons = sorted(alert.get("reasons") or [], key=lambda r: -float(r.get("weight") or 0))[:max_reasons]
    why = "; ".join(f"{safe(r.get('signal'))}={_fmt_value(r.get('value'))} (base {_fmt_value(r.get('baseline'))})"
                    for r in reasons)
    return (f"{when}  {str(alert.get('severity', '')).upper():8s} {alert.get('kind', ''):7s} {alert.get('status', ''):8s}"
            f" score={float(alert.get('score', 0)):.2f}  {who}  | {why}")
