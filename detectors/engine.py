"""``detectors.Engine``: TenantDetector + ClusterDetector wired in-process (embedded mode, evaluation, replay).

The engine keeps a global event-time watermark (the ``watermark_quorum``-th latest *effective* tenant
clock minus the allowed lateness; one tenant's far-future timestamps do not move it). Every
``window_seconds / 5`` of watermark progress it closes the windows of quiet tenants
(:meth:`TenantDetector.advance`), hands the resulting key summaries to the cluster stage and closes
cluster windows. Output order is deterministic for a given input order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from detectors.common import DetectorConfig
from detectors.stages import ClusterStage, TenantStage

__all__ = ["Engine"]

WindowCallback = Callable[[str, float, float, float, dict[str, float]], None]


class Engine:
    """Both detection stages in one process.

    ``process(event) -> alerts``, ``apply_feedback(record) -> alerts``, ``finish() -> alerts``;
    ``on_window(tenant_id, window_start, window_end, score, signals)`` is called for every closed tenant window.
    The stages and their clocks are the ones the Kafka workers and replay run (``detectors.stages``).
    """

    def __init__(self, config: DetectorConfig | None = None, on_window: WindowCallback | None = None, *,
                 max_tenants: int = 0, store: MutableMapping[str, bytes] | None = None) -> None:
        """``max_tenants`` > 0 keeps at most that many tenants in memory; the least recently seen go to
        ``store`` (default: a dict; pass a disk-backed mapping to bound memory) and return when needed."""
        self.config = config or DetectorConfig()
        if max_tenants > 0 and store is None:
            store = {}
        self.max_tenants = max_tenants
        self.tenant_stage = TenantStage(self.config, on_window=on_window, max_tenants=max_tenants, store=store)
        self.cluster_stage = ClusterStage(self.config)
        self.tenants = self.tenant_stage.detector
        self.clusters = self.cluster_stage.detector

    def process(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Feed one decoded event (``schemas.EventCodec`` output); returns the alerts it triggers."""
        stage = self.tenant_stage
        advanced = stage.advanced_to
        alerts = stage.process(event)
        if self.max_tenants and len(self.tenants) > self.max_tenants:
            stage.evict_over_cap()
        if self.tenants._summaries:
            self._feed()
        if stage.advanced_to != advanced:
            alerts += self.clusters.advance(stage.advanced_to)
        return alerts

    def process_many(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for e in events:
            out += self.process(e)
        return out

    def advance(self, watermark_ts: float) -> list[dict[str, Any]]:
        """Move both stages to ``watermark_ts`` (closes quiet tenants' windows, then cluster windows)."""
        alerts = self.tenant_stage.advance(watermark_ts)
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
        stage, lru = self.tenant_stage, self.tenant_stage.lru
        return {**self.tenants.stats, "replays": stage.replays, "tenants_in_memory": len(self.tenants),
                "evicted": lru.evicted if lru else 0, "restored": lru.restored if lru else 0,
                "cluster": dict(self.clusters.stats)}
