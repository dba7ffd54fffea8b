"""The events partitions' watermarks as the cluster stage sees them, and which of them hold it back.

The cluster stage closes windows at the minimum watermark over all events partitions. A partition
stops holding that minimum back only when **its owner declares it idle**: caught up with its log and
no watermark progress for ``idle_partition_seconds``. The declaration is renewed while it holds and
lapses ``idle_seconds`` after the last renewal was made, so a partition whose owner stopped, crashed
or is handing it over holds the minimum back again until the next owner speaks for it. An owner that gives
a partition up in an orderly way (a rebalance, a shutdown) withdraws its declaration at once.

The polarity matters. Silence is not idleness: a partition that merely stops reporting (its worker
is gone or recovering) may still have events waiting, and leaving it out of the minimum would close
cluster windows before its summaries arrive (they would be dropped as late, and a hydra cluster
spread over its tenants missed). A lapsed or missing declaration therefore costs delay, never alerts.
Declarations are timed by the owner's wall clock when it made them (``time.time()``), not by when
the cluster stage reads them: a cluster stage restored elsewhere, re-reading the summary records
after its checkpoint, must not take old renewals for fresh ones. Worker hosts' clocks must agree to
well within ``idle_partition_seconds`` (NTP does). Pure bookkeeping on caller-supplied times.
"""

from __future__ import annotations

import math
from typing import Any


class SourceWatermarks:
    """Last watermark and idle declaration per events partition."""

    def __init__(self, partitions: int, idle_seconds: float) -> None:
        self.partitions = partitions
        self.idle_seconds = idle_seconds
        self.watermark: dict[int, float] = {}  # partition -> last reported watermark (-inf: clock not started)
        self.idle_until: dict[int, float] = {}  # partition -> when its idle declaration lapses (epoch s)

    def report(self, partition: int, watermark: float | None, idle: bool, at: float) -> None:
        """A marker from ``partition``'s owner: its watermark (``None``: unchanged), whether it declares the
        partition idle, and when the owner made it (epoch s).

        A marker with a watermark and no idle flag withdraws a declaration (the partition moved again).
        """
        if watermark is not None:
            self.watermark[partition] = watermark
        else:
            self.watermark.setdefault(partition, -math.inf)
        if idle:
            self.idle_until[partition] = max(self.idle_until.get(partition, -math.inf), at + self.idle_seconds)
        elif watermark is not None:
            self.idle_until.pop(partition, None)

    def withdraw(self, partition: int) -> None:
        """The owner gives the partition up (it stops or hands it over): it holds the minimum back again."""
        self.idle_until.pop(partition, None)

    def idle(self, now: float) -> set[int]:
        """Partitions whose idle declaration holds at ``now``."""
        return {p for p, until in self.idle_until.items() if until > now}

    def combined(self, now: float) -> float | None:
        """The watermark to close cluster windows at, or ``None`` while it cannot be known.

        ``None`` until every partition has reported once. Otherwise the minimum over the partitions that
        are not declared idle; while every partition is idle (every owner is caught up: no summary is on
        its way), the minimum over the partitions whose clock started. (It was ``None`` then, which
        closed nothing: when a fast worker finished its partitions before the empty ones were first
        declared idle, every partition was idle by the time all had reported, and the cluster windows
        never closed; a CI run of the empty-partitions test failed on that.)
        """
        if len(self.watermark) < self.partitions:
            return None
        idle = self.idle(now)
        active = [wm for p, wm in self.watermark.items() if p not in idle]
        if active:
            return min(active)
        started = [wm for wm in self.watermark.values() if wm > -math.inf]
        return min(started) if started else None

    def to_doc(self) -> dict[str, Any]:
        """For the cluster checkpoint (JSON: ``-inf`` is written as ``null``)."""
        return {"source_wm": {str(p): (None if wm == -math.inf else wm) for p, wm in self.watermark.items()},
                "idle_until": {str(p): until for p, until in self.idle_until.items()}}

    def load_doc(self, doc: dict[str, Any]) -> None:
        """Restore from :meth:`to_doc` (or a checkpoint from before idle declarations: none is idle)."""
        self.watermark = {int(p): (-math.inf if wm is None else float(wm)) for p, wm in doc["source_wm"].items()}
        self.idle_until = {int(p): float(until) for p, until in doc.get("idle_until", {}).items()}

    def clear(self) -> None:
        self.watermark.clear()
        self.idle_until.clear()
