"""``detectors.Engine``: TenantDetector + ClusterDetector wired in-process (embedded mode, evaluation, replay).

The engine keeps a global event-time watermark (maximum *effective* event time seen minus the allowed
lateness; far-future timestamps quarantined by the tenant stage do not move it). Every
``window_seconds / 5`` of watermark progress it closes the windows of quiet tenants
(:meth:`TenantDetector.advance`), hands the resulting key summaries to the cluster stage and closes
cluster windows. Output order is deterministic for a given input order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from detectors.cluster import ClusterDetector
from detectors.common import DetectorConfig
from detectors.tenant import TenantDetector

__all__ = ["Engine"]

WindowCallback = Callable[[str, float, float, float, dict[str, float]], None]


class Engine:
    """Both detection stages in one process.

    ``process(event) -> alerts``, ``apply_feedback(record) -> alerts``, ``finish() -> alerts``;
    ``on_window(tenant_id, window_start, window_end, score, signals)`` is called for every closed tenant window.
    """

    def __init__(self, config: DetectorConfig | None = None, on_window: WindowCallback | None = None) -> None:
        self.config = config or DetectorConfig()
        self.tenants = TenantDetector(self.config, on_window=on_window)
        self.clusters = ClusterDetector(self.config)
        self._max_ts = -math.inf
        self._tick = self.config.window_seconds / 5.0
        self._next_advance = -math.inf

    def process(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Feed one decoded event (``schemas.EventCodec`` output); returns the alerts it triggers."""
        tenants = self.tenants
        alerts = tenants.process(event)
        if tenants._summaries:
            self._feed()
        ts = tenants.last_ts  # effective event time: a quarantined far-future timestamp does not count
        if ts > self._max_ts:
            self._max_ts = ts
            wm = ts - self.config.allowed_lateness
            if wm >= self._next_advance:
                self._next_advance = wm + self._tick
                alerts += self.advance(wm)
        return alerts

    def process_many(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for e in events:
            out += self.process(e)
        return out

    def advance(self, watermark_ts: float) -> list[dict[str, Any]]:
        """Move both stages to ``watermark_ts`` (closes quiet tenants' windows, then cluster windows)."""
        alerts = self.tenants.advance(watermark_ts)
        self._feed()
        alerts += self.clusters.advance(watermark_ts)
        return alerts

    def _feed(self) -> None:
        cp = self.clusters.process
        for s in self.tenants.drain_summaries():
            cp(s)

    def apply_feedback(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Route an analyst verdict: cluster alerts to the cluster stage, tenant alerts to the tenant stage."""
        alert_id = str(record.get("alert_id", ""))
        if alert_id.startswith("c-"):
            cid = self.clusters.incident_for_alert(alert_id)
            return self.clusters.apply_feedback(record, cid)
        return self.tenants.apply_feedback(record)

    def finish(self) -> list[dict[str, Any]]:
        """End of input: close every tenant window and every cluster window."""
        alerts = self.tenants.finish()
        self._feed()
        alerts += self.clusters.finish()
        return alerts

    @property
    def stats(self) -> dict[str, Any]:
        return {**self.tenants.stats, "cluster": dict(self.clusters.stats)}
