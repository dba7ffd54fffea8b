"""Readable one-line rendering of alerts for terminals (``run``, ``alerts tail``)."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal
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


def score_text(score: Any) -> str:
    """A score with 3 decimals, cut rather than rounded (0.7999 -> "0.799", not "0.800"): the printed number
    never crosses a severity cut (by default medium 0.7, high 0.8, critical 0.9) the score itself did not reach."""
    try:
        value = Decimal(repr(float(score if score is not None else 0)))  # repr: 0.29 is 0.29, not 0.28999...
    except (TypeError, ValueError):
        return safe(score)
    if not value.is_finite():
        return safe(score)
    return str(value.quantize(Decimal("0.001"), rounding=ROUND_DOWN))


def _reason(r: dict[str, Any]) -> str:
    text = f"{safe(r.get('signal'))}={_fmt_value(r.get('value'))}"
    if r.get("baseline") is not None:  # resolved alerts (and new tenants) may have no baseline: say nothing
        text += f" (base {_fmt_value(r.get('baseline'))})"
    return text


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
    why = "; ".join(_reason(r) for r in reasons)
    return (f"{when}  {str(alert.get('severity', '')).upper():8s} {alert.get('kind', ''):7s} {alert.get('status', ''):8s}"
            f" score={score_text(alert.get('score', 0))}  {who}  | {why}")
