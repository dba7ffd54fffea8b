"""The streaming topology: Faust agents around the pure detection stages.

Per events-topic partition (key = tenant_id) the owning worker runs one
:class:`detectors.stages.TenantStage`. Tenant state is checkpointed as the
engine's snapshot bytes into the changelog-backed table ``tenant-state`` every
``checkpoint_events`` events or ``checkpoint_seconds`` of wall time, together
with the partition's checkpointed offset; events are acked (so their offsets
become committable) only after the checkpoint that covers them. After a crash
or a rebalance the new owner restores tenants lazily from the table and skips
events the checkpoint already covers, so at most the events since the last
checkpoint are processed again; alert ids are deterministic, so a re-sent alert
carries the same ``alert_id``.

Key summaries of closed tenant windows, and each partition's watermark, go to
the single-partition topic ``<app_id>-cluster-summaries``; the worker owning it
runs the :class:`detectors.stages.ClusterStage` and closes cluster windows at
the minimum watermark over all events partitions (a partition idle for
``idle_partition_seconds`` of wall time is left out of the minimum).

Feedback from ``extraction.feedback`` is re-keyed by tenant id onto
``<app_id>-feedback-by-tenant`` (co-partitioned with the events topic), so it
reaches the worker that owns the tenant; verdicts on cluster alerts go to the
cluster stage.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson

from detectors.common import DetectorConfig
from detectors.stages import ClusterStage, TenantStage
from detectors.tenant import KeySummary
from distillguard.logs import get_logger
from distillguard.settings import Settings
from schemas import DecodeError
from schemas.dead_letter import dead_letter_record
from schemas.formats import ALERT_MAPPERS
from streams import metrics
from streams.ingest import make_codec

log = get_logger(__name__)
SUMMARY_BATCH = 100  # summaries a message (~2.5 KB each): well below Kafka's 1 MB message limit
# small RocksDB memtables and block cache per partition: evicted tenants live on disk, not in the caches
ROCKSDB_OPTIONS = {"write_buffer_size": 4 << 20, "max_write_buffer_number": 2, "block_cache_size": 16 << 20,
                   "block_cache_compressed_size": 4 << 20}
CHECKPOINT_KEY = b"__checkpoint__"  # per partition: covered offset and stage metadata


@dataclass
class PartitionRuntime:
    """The in-memory side of one owned events partition."""

    partition: int
    stage: TenantStage
    checkpointed_offset: int = -1
    last_offset: int = -1
    pending: list[Any] = field(default_factory=list)
    last_checkpoint: float = field(default_factory=time.monotonic)
    last_marker: float = -math.inf
    summaries: list[KeySummary] = field(default_factory=list)
    reported: dict[str, int] = field(default_factory=dict)  # detector counters already added to the metrics


class TableTenants:
    """The ``tenant-state`` table as ``tenant_id -> snapshot``: where a stage restores evicted tenants from."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, tenant_id: str, default: bytes | None = None) -> bytes | None:
        value = self.table.get(tenant_id.encode())
        return default if value is None else value

    def __setitem__(self, tenant_id: str, data: bytes) -> None:
        self.table[tenant_id.encode()] = data


def register_pipeline(app: faust.App, settings: Settings, config: DetectorConfig | None = None) -> None:
    """Attach the detection agents, the state table and the feedback path to ``app``."""
    config = config or DetectorConfig()
    codec = make_codec(settings)
    parts = settings.partitions
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    events_topic = app.topic(settings.events_topic, partitions=parts, **raw)
    dlq_topic = app.topic(settings.dlq_topic, partitions=parts, **raw)
    alerts_topic = app.topic(settings.alerts_topic, partitions=parts, **raw)
    format_topics = [(ALERT_MAPPERS[f], alerts_topic if f == "contract" else app.topic(t, partitions=parts, **raw))
                     for f, t in settings.alert_format_topics().items()]  # alert_formats (docs/SIEM.md)
    feedback_topic = app.topic(settings.feedback_topic, partitions=parts, **raw)
    by_tenant = app.topic(f"{settings.app_id}-feedback-by-tenant", partitions=parts, internal=True, **raw)
    summaries_topic = app.topic(f"{settings.app_id}-cluster-summaries", partitions=1, internal=True, **raw)
    state = app.Table("tenant-state", default=None, partitions=parts, key_type=bytes, value_type=bytes,
                      options=dict(ROCKSDB_OPTIONS))  # used by table_store = rocksdb:// (memory:// ignores them)
    runtimes: dict[int, PartitionRuntime] = {}
    model_first_seen: dict[str, float] = {}
    valid, invalid = metrics.EVENTS.labels(result="valid"), metrics.EVENTS.labels(result="invalid")
    tenants_store = TableTenants(state)

    def checkpoint_key(partition: int) -> bytes:
        return b"%s/%d" % (CHECKPOINT_KEY, partition)

    def runtime(partition: int) -> PartitionRuntime:
        """The partition's runtime; a new one starts from the checkpoint in the state table."""
        rt = runtimes.get(partition)
        if rt is None:
            stage = TenantStage(config, model_first_seen=model_first_seen, store=tenants_store)  # type: ignore[arg-type]
            rt = runtimes[partition] = PartitionRuntime(partition, stage)
            marker = state.get(checkpoint_key(partition))
            if marker is not None:
                doc = orjson.loads(marker)
                rt.checkpointed_offset = int(doc["offset"])
                rt.stage.load_meta(doc["meta"])
                rt.last_marker = rt.stage.watermark
            log.info("partition_started", partition=partition, checkpointed_offset=rt.checkpointed_offset)
        return rt

    def load_tenant(rt: PartitionRuntime, tid: str) -> Any:
        """The partition's detector, with ``tid`` restored from its last checkpoint if not in memory yet."""
        det = rt.stage.detector
        det.reload(tid)  # through the stage's store, so a restored tenant joins its eviction order
        return det

    async def publish(alerts: list[dict[str, Any]], source: dict[str, Any] | None = None) -> None:
        """Send alerts; ``source`` (topic/partition/offset of the input that triggered them) goes to metadata."""
        for alert in alerts:
            if source:
                alert["metadata"] = source
            subject = alert.get("tenant_id") or alert.get("cluster_id") or alert["alert_id"]
            for mapper, topic in format_topics:  # each enabled format, same key as the contract alert
                await topic.send(key=subject.encode(), value=orjson.dumps(mapper(alert)))
            metrics.ALERTS.labels(kind=alert["kind"], severity=alert["severity"], status=alert["status"]).inc()

    async def forward_summaries(rt: PartitionRuntime) -> None:
        """Batch key summaries; at each watermark tick send them with the watermark in one message.

        One message per tick (not per summary) keeps the cluster path cheap; summaries travel before
        the watermark that covers them, so the cluster stage never closes a window too early.
        """
        rt.summaries.extend(rt.stage.drain_summaries())
        wm = rt.stage.watermark
        tick_due = wm > -math.inf and wm >= rt.last_marker + config.window_seconds / 5.0  # (clock started)
        if tick_due or len(rt.summaries) >= SUMMARY_BATCH:
            pending, rt.summaries = rt.summaries, []
            chunks = [pending[i:i + SUMMARY_BATCH] for i in range(0, len(pending), SUMMARY_BATCH)] or [[]]
            for i, chunk in enumerate(chunks):
                batch: dict[str, Any] = {"type": "batch", "partition": rt.partition, "summaries": chunk}
                if tick_due and i == len(chunks) - 1:  # the watermark travels after every summary it covers
                    rt.last_marker = batch["watermark"] = wm
                await summaries_topic.send(key=b"s", value=orjson.dumps(batch))

    async def checkpoint(rt: PartitionRuntime, stream: faust.StreamT, offset: int) -> None:
        """Write changed tenants' snapshots and the covered offset, then ack the events they cover."""
        det = rt.stage.detector
        for tid in sorted(rt.stage.drain_dirty()):
            if tid in det:
                state[tid.encode()] = det.snapshot(tid)
        state[checkpoint_key(rt.partition)] = orjson.dumps({"offset": offset, "meta": rt.stage.meta()})
        rt.checkpointed_offset = offset
        for ev in rt.pending:
            await stream.ack(ev)
        rt.pending.clear()
        rt.last_checkpoint = time.monotonic()
        metrics.CHECKPOINT_AGE.set(0)
        cap = settings.max_tenants_in_memory
        if cap:  # every tenant in memory is now in the table: the least recently seen may leave
            total = sum(len(r.stage.detector) for r in runtimes.values())
            if total > cap:
                metrics.EVICTIONS.inc(rt.stage.evict(total - (cap - cap // 10), persist=False))

    async def dead_letter(event: Any, data: bytes, reason: str, label: str) -> None:
        msg = event.message
        record = dead_letter_record(data, reason, settings.max_event_bytes, source_topic=msg.topic,
                                    source_partition=msg.partition, source_offset=msg.offset)
        await dlq_topic.send(key=event.key, value=orjson.dumps(record))
        invalid.inc()
        metrics.DLQ.labels(reason=label).inc()

    @app.agent(events_topic, name="distillguard.detect")
    async def detect(stream: faust.StreamT) -> None:
        manual = stream.noack()
        async for event in manual.events():
            msg = event.message
            rt = runtime(msg.partition)
            rt.pending.append(event)
            rt.last_offset = msg.offset
            if msg.offset <= rt.checkpointed_offset:
                continue  # already part of the restored state
            data = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            try:
                ev = codec.decode(data)
            except DecodeError as exc:
                await dead_letter(event, data, exc.reason, metrics.reason_label(exc.field, exc.reason))
            else:
                alerts = rt.stage.process(ev)  # restores the tenant from the table if it was evicted
                if rt.stage.rejected is not None:  # a replayed event id: dropped, dead-lettered
                    await dead_letter(event, data, rt.stage.rejected, "replay")
                else:
                    valid.inc()
                await publish(alerts, {"source_topic": msg.topic, "source_partition": msg.partition,
                                       "source_offset": msg.offset})
                await forward_summaries(rt)
                if msg.timestamp:
                    metrics.LATENCY.observe(max(0.0, time.time() - msg.timestamp))
            if (len(rt.pending) >= settings.checkpoint_events
                    or time.monotonic() - rt.last_checkpoint >= settings.checkpoint_seconds):
                await checkpoint(rt, manual, msg.offset)

    @app.agent(feedback_topic, name="distillguard.feedback-rekey")
    async def rekey_feedback(stream: faust.StreamT) -> None:
        async for value in stream:
            try:
                record = orjson.loads(value)
                tenant = record["tenant_id"]
                if not isinstance(tenant, str) or not tenant:
                    raise ValueError("tenant_id missing")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.warning("feedback_rejected", reason=str(exc)[:200])
                continue
            if str(record.get("alert_id", "")).startswith("c-"):
                await summaries_topic.send(key=b"s", value=orjson.dumps({"type": "feedback", "record": record}))
            else:
                await by_tenant.send(key=tenant.encode(), value=orjson.dumps(record))

    @app.agent(by_tenant, name="distillguard.feedback")
    async def apply_feedback(stream: faust.StreamT) -> None:
        async for event in stream.events():
            record = orjson.loads(event.value)
            rt = runtime(event.message.partition)
            tid = record["tenant_id"]
            det = load_tenant(rt, tid)
            alerts = det.apply_feedback(record)
            if tid in det:
                state[tid.encode()] = det.snapshot(tid)  # a verdict is checkpointed at once
            log.info("feedback_applied", label=record.get("label"), alert_id=record.get("alert_id"))
            await publish(alerts)

    cluster_stage = ClusterStage(config)
    source_wm: dict[int, tuple[float, float]] = {}  # partition -> (watermark, wall time of the marker)

    @app.agent(summaries_topic, name="distillguard.cluster")
    async def cluster(stream: faust.StreamT) -> None:
        async for value in stream:
            rec = orjson.loads(value)
            if rec["type"] == "feedback":
                det = cluster_stage.detector
                await publish(det.apply_feedback(rec["record"], det.incident_for_alert(rec["record"]["alert_id"])))
                continue
            for summary in rec["summaries"]:
                cluster_stage.process(KeySummary.from_dict(summary))
            if "watermark" not in rec:
                continue
            now = time.monotonic()
            source_wm[rec["partition"]] = (rec["watermark"], now)
            live = [wm for wm, seen in source_wm.values() if now - seen < settings.idle_partition_seconds]
            if len(source_wm) >= parts or len(live) < len(source_wm):
                await publish(cluster_stage.advance(min(live) if live else -math.inf))

    @app.timer(interval=5.0)
    async def report_progress() -> None:
        """Consumer lag per owned partition, age of the oldest un-checkpointed work, tenants in memory."""
        now = time.monotonic()
        for p, rt in list(runtimes.items()):
            tp = next((t for t in app.consumer.assignment() if t.topic == settings.events_topic and t.partition == p), None)
            if tp is not None:
                metrics.LAG.labels(partition=str(p)).set(max(0, app.consumer.highwater(tp) - rt.last_offset - 1))
        pending = [now - rt.last_checkpoint for rt in runtimes.values() if rt.pending]
        metrics.CHECKPOINT_AGE.set(max(pending) if pending else 0.0)
        metrics.TENANTS.set(sum(len(rt.stage.detector) for rt in runtimes.values()))
        for rt in list(runtimes.values()):  # detector counters -> metric increments since the last report
            stats, lru = rt.stage.detector.stats, rt.stage.lru
            counts = {"late": stats["late_events"], "future_clamped": stats["future_clamped"],
                      "restored": lru.restored if lru is not None else 0}
            for kind, value in counts.items():
                delta = value - rt.reported.get(kind, 0)
                if delta > 0:
                    (metrics.RESTORES if kind == "restored" else metrics.EVENT_TIME.labels(kind=kind)).inc(delta)
                rt.reported[kind] = value

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        for tp in revoked:
            if tp.topic == settings.events_topic and tp.partition in runtimes:
                rt = runtimes.pop(tp.partition)
                with contextlib.suppress(KeyError):  # no lag sample yet
                    metrics.LAG.remove(str(tp.partition))
                log.info("partition_revoked", partition=tp.partition, tenants=len(rt.stage.detector),
                         unacked_events=len(rt.pending))


