"""The two detection stages with their event-time clocks, as the Kafka workers and replay run them.

:class:`detectors.Engine` runs both stages in one process; the streaming
workers run one :class:`TenantStage` per partition of the events topic and a
:class:`ClusterStage` on the cluster-summary topic. Both stages here keep the
same watermark rule as the engine (the partition clock -- the
``watermark_quorum``-th latest effective tenant clock, :class:`detectors.admission.QuorumClock`
-- minus the allowed lateness, advanced in ticks of a fifth of a window), so a
tenant's alerts do not depend on where it runs.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import zlib
from collections.abc import MutableMapping
from typing import Any

from detectors.admission import MAX_MODELS, LruTenants, QuorumClock
from detectors.cluster import ClusterDetector
from detectors.common import DetectorConfig
from detectors.tenant import KeySummary, TenantDetector
from distillguard import DETECTOR_VERSION

Alert = dict[str, Any]
REPLAY_REASON = "event_id: replay of one of the tenant's last 16 events"
_CLUSTER_MAGIC = b"DGC"
_CLUSTER_VERSION = 1
# what a cluster snapshot may contain: the detector's own classes and plain containers (no code, no I/O)
_SAFE_GLOBALS = {("builtins", n) for n in ("set", "frozenset", "dict", "list", "tuple", "float", "int", "str", "bool",
                                           "bytearray", "complex", "getattr")} | {
    ("collections", "OrderedDict"), ("collections", "defaultdict"), ("collections", "deque"), ("collections", "Counter"),
    ("array", "array"), ("array", "_array_reconstructor"), ("copyreg", "_reconstructor"), ("copyreg", "__newobj__"),
}


class _StateUnpickler(pickle.Unpickler):
    """Loads only :mod:`detectors` classes and plain containers, so a tampered state topic cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("detectors.") or (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"cluster snapshot refers to {module}.{name}, which a snapshot may not contain")


class TenantStage:
    """A :class:`TenantDetector` driven by the watermark of the events it is fed."""

    def __init__(self, config: DetectorConfig | None = None, on_window: Any = None,
                 model_first_seen: dict[str, float] | None = None, *, max_tenants: int = 0,
                 store: MutableMapping[str, bytes] | None = None) -> None:
        """``max_tenants`` > 0 caps the tenants in memory; evicted ones go to ``store`` and come back on demand."""
        self.config = config or DetectorConfig()
        self.detector = TenantDetector(self.config, on_window=on_window, model_first_seen=model_first_seen)
        self.max_ts = -math.inf  # the partition clock (QuorumClock value)
        self.clock = QuorumClock(self.config.watermark_quorum)
        self.advanced_to = -math.inf  # the last watermark this stage advanced its tenants to
        self._tick = self.config.window_seconds / 5.0
        self._late = self.config.allowed_lateness  # read on every event
        self._next_advance = -math.inf
        self.rejected: str | None = None  # why the last event given to process() was dropped (None: processed)
        self.replays = 0
        self.lru = LruTenants(max_tenants, store) if max_tenants > 0 or store is not None else None
        if self.lru is not None:
            self.detector.loader = self.lru.load

    def drain_dirty(self) -> set[str]:
        """Tenants changed since the last call (what a checkpoint must write)."""
        return self.detector.drain_changed()

    def meta(self) -> dict[str, Any]:
        """Stage-level state that is not any one tenant's (checkpointed beside the tenant snapshots)."""
        det = self.detector
        return {"max_ts": self.max_ts if self.max_ts > -math.inf else None,
                "stream_start": det.stream_start if det.stream_start < math.inf else None,
                "model_first_seen": dict(det.model_first_seen), "clock": self.clock.state(),
                # when the next advance is due, and the watermark the tenants were last advanced to: without
                # them a restored stage closed windows at other points than the run it replaces (a window
                # could take one event more or less), and a re-sent alert differed from the first
                "next_advance": self._next_advance if self._next_advance > -math.inf else None,
                "tenant_clock": det._clock if det._clock > -math.inf else None}

    def pending(self) -> dict[str, Any]:
        """What a stage restored lazily (a restarted worker) must know of tenants it may never see again: the
        first window close each tenant still has due, and the tenants with an open incident. Not part of
        :meth:`meta`, which a worker writes in one record: this grows with the partition's active tenants."""
        closes, incidents = self.detector.pending()
        return {"closes": closes, "incidents": incidents}

    def load_pending(self, pending: dict[str, Any]) -> None:
        """Take back :meth:`pending` after :meth:`load_meta`, before any event."""
        self.detector.resume(pending["closes"], pending["incidents"])

    def load_meta(self, meta: dict[str, Any]) -> None:
        """Restore :meth:`meta` (merging first-seen times, which may be shared with other stages)."""
        det = self.detector
        if "clock" in meta:
            self.clock.load(meta["clock"])
        if meta.get("max_ts") is not None:
            self.max_ts = max(self.max_ts, meta["max_ts"])
            due = meta.get("next_advance")  # absent in checkpoints written before it was kept
            self._next_advance = due if due is not None and meta["max_ts"] >= self.max_ts else self.watermark + self._tick
        if meta.get("tenant_clock") is not None:
            det._clock = max(det._clock, meta["tenant_clock"])
        if meta.get("stream_start") is not None:
            det.stream_start = min(det.stream_start, meta["stream_start"])
        for model, ts in meta.get("model_first_seen", {}).items():
            if ts < det.model_first_seen.get(model, math.inf):
                det.model_first_seen[model] = ts

    @property
    def watermark(self) -> float:
        return self.max_ts - self.config.allowed_lateness

    def process(self, event: dict[str, Any]) -> list[Alert]:
        """Feed one decoded event; returns tenant alerts (key summaries wait in :meth:`drain_summaries`).

        A replayed ``event_id`` (one of the tenant's last 16) is dropped and :attr:`rejected` says why, so a
        worker can dead-letter it. An event behind the partition watermark is processed (as a late event of
        its tenant) but cannot move the shared first-seen times of models or of the stream.
        """
        det = self.detector
        tid = event["tenant_id"]
        self.rejected = None
        if self.lru is not None:
            self.lru.touch(tid)
        known = det.reload(tid)
        if known and det.replayed(event):
            self.rejected = REPLAY_REASON
            self.replays += 1
            return []
        mfs = det.model_first_seen
        guard = event["ts"] < self.max_ts - self._late or len(mfs) >= MAX_MODELS
        if guard:
            model, mf_before, start_before = event["model"], mfs.get(event["model"]), det.stream_start
        alerts = det.process(event, lookup=False)  # reload() above already asked the store about an unknown tenant
        if not known:
            det.replayed(event)  # remember the new tenant's first id
        if guard:
            self._guard_shared(event, model, mf_before, start_before)
        ts = det.last_ts  # effective event time: a quarantined far-future timestamp does not count
        clock = self.clock
        if ts > clock.kth and clock.observe(tid, ts):
            self.max_ts = clock.value
            wm = self.max_ts - self._late
            if wm >= self._next_advance:
                self._next_advance = wm + self._tick
                self.advanced_to = wm
                alerts += det.advance(wm)
        return alerts

    def _guard_shared(self, event: dict[str, Any], model: str, mf_before: float | None, start_before: float) -> None:
        """Undo what a late event or a flood of model names did to state shared by all tenants."""
        det = self.detector
        mfs = det.model_first_seen
        floor = self.max_ts - self.config.allowed_lateness
        if mf_before is None and len(mfs) > MAX_MODELS:
            mfs.pop(model, None)  # the table is full: an unseen model stays unknown (no first-seen time kept)
        elif event["ts"] < floor and mfs.get(model, math.inf) < floor:
            mfs[model] = floor if mf_before is None else min(mf_before, floor)
        if det.stream_start < start_before and det.stream_start < floor:
            det.stream_start = min(start_before, floor)

    def evict(self, count: int, persist: bool = True) -> int:
        """Move up to ``count`` least recently seen tenants out of memory; returns how many left.

        ``persist``: write each snapshot to the store first (embedded mode). A worker passes False and
        evicts right after a checkpoint: the changelog-backed table already holds every unchanged tenant.
        """
        lru = self.lru
        if lru is None or count <= 0:
            return 0
        det = self.detector
        victims = lru.victims(det, count, clean_only=not persist)
        for tid in victims:
            if persist and lru.store is not None:
                lru.store[tid] = det.snapshot(tid)
            det.forget(tid)
            det.changed.discard(tid)
            lru.drop(tid)
        lru.evicted += len(victims)
        return len(victims)

    def evict_over_cap(self, persist: bool = True) -> int:
        """Enforce ``max_tenants`` (with 10 % headroom, so eviction runs in batches, not on every new tenant)."""
        lru = self.lru
        if lru is None or not lru.max_tenants:
            return 0
        n = len(self.detector)
        if n <= lru.max_tenants:
            return 0
        return self.evict(n - (lru.max_tenants - lru.max_tenants // 10), persist)

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

    def snapshot(self) -> bytes:
        """Versioned bytes of the whole stage: ``b"DGC" + u16 version + zlib(pickle)``.

        The cluster state is a graph of the detector's own objects (bounded by
        its caps), so it is pickled rather than mapped field by field; loading
        goes through an allow-list unpickler and checks the detector version.
        """
        body = pickle.dumps((DETECTOR_VERSION, self.watermark, self.detector), protocol=pickle.HIGHEST_PROTOCOL)
        return _CLUSTER_MAGIC + struct.pack("<H", _CLUSTER_VERSION) + zlib.compress(body, 1)

    @classmethod
    def restore(cls, data: bytes, config: DetectorConfig | None = None) -> ClusterStage:
        """A stage from :meth:`snapshot`; raises ``ValueError`` for another format or detector version."""
        if data[:3] != _CLUSTER_MAGIC:
            raise ValueError("not a distillguard cluster snapshot")
        (version,) = struct.unpack_from("<H", data, 3)
        if version != _CLUSTER_VERSION:
            raise ValueError(f"unsupported cluster snapshot version {version} (this build reads {_CLUSTER_VERSION})")
        try:
            detector_version, watermark, detector = _StateUnpickler(io.BytesIO(zlib.decompress(data[5:]))).load()
        except (pickle.UnpicklingError, zlib.error, EOFError, AttributeError, TypeError) as exc:
            raise ValueError(f"unreadable cluster snapshot: {exc}") from None
        if detector_version != DETECTOR_VERSION:
            raise ValueError(f"cluster snapshot of detector {detector_version}, this build is {DETECTOR_VERSION}")
        stage = cls(config or detector.config)
        detector.config = stage.config
        stage.detector, stage.watermark = detector, watermark
        return stage
