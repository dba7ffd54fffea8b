"""Contract alert -> OCSF Detection Finding (class 2004), for SIEMs that ingest OCSF.

Pure and deterministic (no I/O, no clock): the same alert always gives the same document, so a
re-sent alert (same ``alert_id``) is the same finding. The mapping is documented field by field in
docs/SIEM.md and validated against the shipped OCSF definitions (schemas/siem/) by
``schemas.siem_validate``. Alerts never carry prompt text, and nothing here adds any.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import distillguard

OCSF_VERSION = "1.5.0"
CLASS_UID, CATEGORY_UID = 2004, 2
ACTIVITY = {"open": (1, "Create"), "update": (2, "Update"), "resolved": (3, "Close")}
SEVERITY = {"low": (2, "Low"), "medium": (3, "Medium"), "high": (4, "High"), "critical": (5, "Critical")}
STATUS = {"open": (1, "New"), "update": (1, "New"), "resolved": (4, "Resolved")}
ANALYTIC_BEHAVIORAL = 2  # drift of a tenant (or a group) from its own learned baseline toward extraction
FINDING_TYPE = "LLM Model Extraction / Distillation"


def epoch_ms(rfc3339: str) -> int:
    """RFC 3339 (the contract's time format) -> OCSF ``timestamp_t`` (milliseconds since the epoch)."""
    return round(datetime.fromisoformat(rfc3339).timestamp() * 1000)


def confidence_id(score: float) -> tuple[int, str]:
    """OCSF confidence bucket of the calibrated score."""
    if score >= 0.8:
        return 3, "High"
    if score >= 0.5:
        return 2, "Medium"
    return 1, "Low"


def subject(alert: dict[str, Any]) -> str:
    """The alert subject (also the Kafka key of every format): tenant id or cluster id."""
    return alert.get("tenant_id") or alert.get("cluster_id") or alert["alert_id"]


def title(alert: dict[str, Any]) -> str:
    if alert["kind"] == "tenant":
        return f"Extraction-style querying by tenant {alert['tenant_id']}"
    return (f"Coordinated extraction by a cluster of {len(alert.get('tenant_ids', []))} tenants "
            f"({alert.get('cluster_id', alert['alert_id'])})")


def summary(alert: dict[str, Any]) -> str:
    """One line an analyst can read in a SIEM list: what, how sure, why."""
    why = "; ".join(r["text"] for r in alert.get("reasons", [])[:3])
    return (f"{alert['severity']} {alert['kind']} alert ({alert['status']}): {title(alert)}, "
            f"score {alert['score']:.2f}" + (f". {why}" if why else ""))


def _resources(alert: dict[str, Any]) -> list[dict[str, Any]]:
    if alert["kind"] == "tenant":
        return [{"uid": alert["tenant_id"], "name": alert["tenant_id"], "type": "tenant"}]
    out = [{"uid": t, "name": t, "type": "tenant"} for t in alert.get("tenant_ids", [])]
    out += [{"uid": a, "name": a, "type": "account"} for a in alert.get("account_ids", [])]
    return out


def to_ocsf(alert: dict[str, Any]) -> dict[str, Any]:
    """The OCSF 1.5 Detection Finding for one contract alert (see docs/SIEM.md for every field)."""
    activity_id, activity = ACTIVITY[alert["status"]]
    severity_id, severity = SEVERITY[alert["severity"]]
    status_id, status = STATUS[alert["status"]]
    conf_id, conf = confidence_id(alert["score"])
    first, last = epoch_ms(alert["first_seen"]), epoch_ms(alert["window_end"])
    reasons = alert.get("reasons", [])
    finding_info: dict[str, Any] = {
        "uid": alert["alert_id"],
        "title": title(alert),
        "desc": "\n".join(r["text"] for r in reasons) or title(alert),
        "types": [FINDING_TYPE, f"distillguard:{alert['kind']}"],
        "created_time": epoch_ms(alert["detected_at"]),
        "first_seen_time": first,
        "last_seen_time": last,
        "data_sources": ["llm.usage.events"],
        "analytic": {
            "uid": f"distillguard.{alert['kind']}",
            "name": f"distillguard {alert['kind']} extraction detector",
            "type_id": ANALYTIC_BEHAVIORAL,
            "type": "Behavioral",
            "version": alert["detector_version"],
        },
    }
    unmapped: dict[str, Any] = {
        "schema_version": alert["schema_version"],
        "kind": alert["kind"],
        "status": alert["status"],
        "score": alert["score"],
        "window_start": alert["window_start"],
        "window_end": alert["window_end"],
        "reasons": reasons,
    }
    if alert.get("cluster_id"):
        unmapped["cluster_id"] = alert["cluster_id"]
    if alert.get("metadata"):
        unmapped["producer_metadata"] = alert["metadata"]
    doc: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": f"Detection Finding: {activity}",
        "time": epoch_ms(alert["detected_at"]),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "confidence_score": round(alert["score"] * 100),
        "confidence_id": conf_id,
        "confidence": conf,
        "message": summary(alert),
        "start_time": first,
        "end_time": last,
        "finding_info": finding_info,
        "resources": _resources(alert),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": alert["alert_id"],
            "correlation_uid": subject(alert),
            "product": {"name": "distillguard", "vendor_name": "distillguard", "uid": "distillguard",
                        "version": distillguard.__version__},
            "labels": [f"kind:{alert['kind']}", f"status:{alert['status']}"],
        },
        "unmapped": unmapped,
    }
    if alert.get("evidence"):
        doc["evidences"] = [{"uid": eid, "name": "llm_usage_event", "data": {"event_id": eid}}
                            for eid in alert["evidence"]]
    return doc
