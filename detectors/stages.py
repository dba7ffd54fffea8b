"""The two detection stages with their event-time clocks, as the Kafka workers and replay run them.

:class:`detectors.Engine` runs both stages in one process; the streaming
workers run one :class:`TenantStage` per partition of the events topic and a
:class:`ClusterStage` on the cluster-summary topic. Both stages here keep the
same watermark rule as the engine (maximum effective event time seen minus
the allowed lateness, advanced in ticks of a fifth of a window), so a tenant's
alerts do not depend on where it runs.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.cluster import ClusterDetector
from detectors.common import DetectorConfig
from detectors.tenant import KeySummary, TenantDetector

Alert = dict[str, Any]


class TenantStage:
    """A :class:`TenantDetector` driven by the watermark of the events it is fed."""

    def __init__(self, config: DetectorConfig | None = None, on_window: Any = None,
                 model_first_seen: dict[str, float] | None = None) -> None:
        self.config = config or DetectorConfig()
        self.detector = TenantDetector(self.config, on_window=on_window, model_first_seen=model_first_seen)
        self.max_ts = -math.inf
        self.advanced_to = -math.inf  # the last watermark this stage advanced its tenants to
        self._tick = self.config.window_seconds / 5.0
        self._next_advance = -math.inf

    def drain_dirty(self) -> set[str]:
        """Tenants changed since the last call (what a checkpoint must write)."""
        return self.detector.drain_changed()

    def meta(self) -> dict[str, Any]:
        """Stage-level state that is not any one tenant's (checkpointed beside the tenant snapshots)."""
        det = self.detector
        return {"max_ts": self.max_ts if self.max_ts > -math.inf else None,
                "stream_start": det.stream_start if det.stream_start < math.inf else None,
                "model_first_seen": dict(det.model_first_seen)}

    def load_meta(self, meta: dict[str, Any]) -> None:
        """Restore :meth:`meta` (merging first-seen times, which may be shared with other stages)."""
        det = self.detector
        if meta.get("max_ts") is not None:
            self.max_ts = max(self.max_ts, meta["max_ts"])
            self._next_advance = self.watermark + self._tick
        if meta.get("stream_start") is not None:
            det.stream_start = min(det.stream_start, meta["stream_start"])
        for model, ts in meta.get("model_first_seen", {}).items():
            if ts < det.model_first_seen.get(model, math.inf):
                det.model_first_seen[model] = ts

    @property
    def watermark(self) -> float:
        return self.max_ts - self.config.allowed_lateness

    def process(self, event: dict[str, Any]) -> list[Alert]:
        """Feed one decoded event; returns tenant alerts (key summaries wait in :meth:`drain_summaries`)."""
        det = self.detector
        alerts = det.process(event)
        ts = det.last_ts  # effective event time: a quarantined far-future timestamp does not count
        if ts > self.max_ts:
            self.max_ts = ts
            wm = ts - self.config.allowed_lateness
            if wm >= self._next_advance:
                self._next_advance = wm + self._tick
                self.advanced_to = wm
                alerts += det.advance(wm)
        return alerts

    def advance(self, watermark_ts: float) -> list[Alert]:
        self.advanced_to = max(self.advanced_to, watermark_ts)
        return self.detector.advance(watermark_ts)

    def drain_summaries(self) -> list[KeySummary]:
        return self.detector.drain_summaries()

    def finish(self) -> list[Alert]:
        return self.detector.finish()


class ClusterStage:
    """A :class:`ClusterDetector` fed with key summaries and closed by an upstream watermark."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.detector = ClusterDetector(self.config)
        self.watermark = -math.inf

    def process(self, summary: KeySummary) -> list[Alert]:
        return self.detector.process(summary)

    def advance(self, watermark_ts: float) -> list[Alert]:
        """Close cluster windows up to ``watermark_ts`` (ignored when it does not move forward)."""
        if watermark_ts <= self.watermark:
            return []
        self.watermark = watermark_ts
        return self.detector.advance(watermark_ts)

    def finish(self) -> list[Alert]:
        return self.detector.finish()
