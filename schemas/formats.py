"""The alert formats a worker or ``detect`` can write: name -> pure mapper of a contract alert."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.ecs import to_ecs
from schemas.ocsf import to_ocsf


def contract(alert: dict[str, Any]) -> dict[str, Any]:
    """The contract alert itself (schemas/alert.schema.json)."""
    return alert


ALERT_MAPPERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "contract": contract,
    "ocsf": to_ocsf,  # OCSF Detection Finding, class 2004 (docs/SIEM.md)
    "ecs": to_ecs,  # Elastic Common Schema alert document (docs/SIEM.md)
}
