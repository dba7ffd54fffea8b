"""Contract alert -> Elastic Common Schema alert document, for Elastic and other ECS-based SIEMs.

Pure and deterministic (no I/O, no clock): the same alert always gives the same document. The
mapping is documented field by field in docs/SIEM.md and validated against the shipped ECS field
definitions (schemas/siem/ecs_fields.yml) by ``schemas.siem_validate``. What ECS has no field for
(reasons, evidence event ids, cluster members) goes to the custom ``distillguard.*`` field set.
"""

from __future__ import annotations

from typing import Any

from schemas.ocsf import SEVERITY, subject, summary

ECS_VERSION = "8.11.0"


def to_ecs(alert: dict[str, Any]) -> dict[str, Any]:
    """The ECS document for one contract alert (see docs/SIEM.md for every field)."""
    kind = alert["kind"]
    custom: dict[str, Any] = {
        "kind": kind,
        "status": alert["status"],
        "severity": alert["severity"],
        "window_start": alert["window_start"],
        "window_end": alert["window_end"],
        "evidence": list(alert.get("evidence", [])),
        "reasons": alert.get("reasons", []),
    }
    doc: dict[str, Any] = {
        "@timestamp": alert["detected_at"],
        "ecs": {"version": ECS_VERSION},
        "message": summary(alert),
        "tags": ["distillguard", "model-extraction", f"kind:{kind}"],
        "labels": {"distillguard_kind": kind, "distillguard_status": alert["status"],
                   "distillguard_subject": subject(alert)},
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": ["info"],
            "action": f"extraction-alert-{alert['status']}",
            "id": alert["alert_id"],
            "module": "distillguard",
            "dataset": "distillguard.alerts",
            "provider": "distillguard",
            "severity": SEVERITY[alert["severity"]][0],
            "risk_score": alert["score"],
            "risk_score_norm": round(alert["score"] * 100, 2),
            "start": alert["first_seen"],
            "end": alert["window_end"],
        },
        "rule": {
            "id": f"distillguard.{kind}",
            "name": f"distillguard {kind} extraction detector",
            "version": alert["detector_version"],
            "description": ("A tenant's traffic drifted toward extraction-style querying (distillation)"
                            if kind == "tenant" else
                            "A coordinated group of tenants/accounts queries in an extraction pattern"),
            "category": "model-extraction",
            "ruleset": "distillguard",
        },
        "distillguard": custom,
    }
    if kind == "tenant":
        doc["organization"] = {"id": alert["tenant_id"]}
    else:
        doc["organization"] = {"id": list(alert.get("tenant_ids", []))}
        doc["related"] = {"user": list(alert.get("account_ids", []))}
        custom["tenant_ids"] = list(alert.get("tenant_ids", []))
        custom["account_ids"] = list(alert.get("account_ids", []))
        if alert.get("cluster_id"):
            custom["cluster_id"] = alert["cluster_id"]
    return doc
