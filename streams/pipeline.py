"""The streaming topology: a direct handler and Faust agents around the pure detection stages.

Per events-topic partition (key = tenant_id) the owning worker runs one
:class:`detectors.stages.TenantStage`, fed by ``detect``, a handler the consumer calls with each
events message directly (streams/transport.py, ``Transport.direct``: no Faust stream). Tenant
state is checkpointed as the engine's snapshot bytes into the changelog-backed table ``tenant-state`` every
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
the minimum watermark over all events partitions. A partition is left out of the
minimum only while its owner declares it idle (caught up, and no watermark progress
for ``idle_partition_seconds``; renewed while it lasts): see streams/watermarks.py.
The cluster stage is checkpointed the same way into the single-partition table
``cluster-state`` (its snapshot, the covered summary offset, the partitions'
watermarks and idle declarations, and the last summary sequence applied per partition); summaries carry
the offset of the event that produced them, so the ones a tenant stage sends
again after re-processing are dropped instead of counted twice.

Feedback from ``extraction.feedback`` is re-keyed by tenant id onto
``<app_id>-feedback-by-tenant`` (co-partitioned with the events topic), so it
reaches the worker that owns the tenant; verdicts on cluster alerts go to the
cluster stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import orjson
from faust.streams import _current_event as faust_current_event  # see ChangelogSource
from faust.types import TP

from detectors.common import DetectorConfig
from detectors.stages import ClusterStage, TenantStage
from detectors.tenant import KeySummary
from distillguard.logs import get_logger
from distillguard.settings import Settings
from schemas import DecodeError
from schemas.dead_letter import dead_letter_record
from schemas.feedback import feedback_problems
from schemas.formats import ALERT_MAPPERS
from streams import chunked, metrics
from streams.catchup import read_range
from streams.ingest import make_codec
from streams.transport import (Consumer, OrderedAcks, SendFailed, Sent, Transport, collecting, confirm, retry_delay,
                               send, track_changelog)
from streams.watermarks import SourceWatermarks

log = get_logger(__name__)
SUMMARY_BATCH = 100  # summaries a message (~2.5 KB each): well below Kafka's 1 MB message limit
# small RocksDB memtables and block cache per partition: evicted tenants live on disk, not in the caches
ROCKSDB_OPTIONS = {"write_buffer_size": 4 << 20, "max_write_buffer_number": 2, "block_cache_size": 16 << 20,
                   "block_cache_compressed_size": 4 << 20}
CHECKPOINT_KEY = b"__checkpoint__"  # per partition: covered offset and stage metadata
# per partition: what the stage still owes tenants it may not see again (their window closes and open
# incidents, ``TenantStage.pending``), with the offset of the checkpoint it belongs to, in records of at most
# ``state_chunk_bytes`` (it grows with the partition's active tenants). Beside the checkpoint record, not in
# it, so workers of the previous version, which do not know it, keep reading their record as before during a
# rolling upgrade. 0xff occurs in no UTF-8 string, so no tenant id can take this key.
PENDING_KEY = b"\xffpending"
# the cluster stage's checkpoint: u32 length + JSON {offset, source_wm, idle_until, applied} + snapshot, in
# records of at most ``state_chunk_bytes`` (streams/chunked.py: it outgrows one Kafka record)
CLUSTER_KEY = b"cluster"


@dataclass
class PartitionRuntime:
    """The in-memory side of one owned events partition."""

    partition: int
    stage: TenantStage
    checkpointed_offset: int = -1
    processed_offset: int = -1  # the state covers the events up to here (restored checkpoint, then processed)
    last_offset: int = -1  # the highest offset delivered (for the lag metric)
    resuming: bool = True  # until its first event: does it follow the checkpoint?
    pending: list[Any] = field(default_factory=list)  # delivered messages not acked yet (after the last checkpoint)
    last_checkpoint: float = field(default_factory=time.monotonic)
    last_marker: float = -math.inf
    summaries: list[KeySummary] = field(default_factory=list)
    summary_seq: list[list[int]] = field(default_factory=list)  # [offset of the event that produced it, index]
    reported: dict[str, int] = field(default_factory=dict)  # detector counters already added to the metrics
    tenants_at_checkpoint: int = 0  # tenants in memory right after the last checkpoint (and its eviction)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one sender of summary messages at a time
    work_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # an event's processing, or a timer checkpoint
    idle_declared: bool = False  # this runtime declared the partition idle (and the idle timer renews it)
    maybe_idle: bool = True  # the cluster stage may hold it idle (a previous owner's declaration, or ours)
    wm_seen: float = -math.inf  # the watermark the idle timer saw last, and when it last changed
    wm_moved: float = field(default_factory=time.monotonic)
    delivered_seen: int = -1  # the last delivered offset the upkeep timer saw, and when it last changed
    delivered_moved: float = field(default_factory=time.monotonic)
    sent: Sent = field(default_factory=list)  # records sent for the pending events, confirmed at the checkpoint


class ChangelogSource:
    """Stands in for Faust's "current event" while a checkpoint writes the state table.

    Faust sends a table write's changelog record to the partition of the event being processed
    (``current_event().message.partition``); events delivered directly (streams/transport.py) have
    no Faust event, so the partition's last delivered message takes its place.
    """

    __slots__ = ("message", "__weakref__")

    def __init__(self, message: Any) -> None:
        self.message = message


def tenant_key(tenant_id: str) -> bytes:
    """A tenant's key in the ``tenant-state`` table: its id, unless that would name a checkpoint record
    (a tenant called ``__checkpoint__/0`` overwrote partition 0's until the tenth session): such ids get a
    prefix that no UTF-8 string starts with."""
    key = tenant_id.encode()
    return b"\xfftenant/" + key if key.startswith(CHECKPOINT_KEY) else key


class TableTenants:
    """The ``tenant-state`` table as ``tenant_id -> snapshot``: where a stage restores evicted tenants from."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, tenant_id: str, default: bytes | None = None) -> bytes | None:
        value = self.table.get(tenant_key(tenant_id))
        return default if value is None else value

    def __setitem__(self, tenant_id: str, data: bytes) -> None:
        self.table[tenant_key(tenant_id)] = data


@dataclass
class ClusterRuntime:
    """The cluster stage of the worker that owns the summary topic, with its checkpoint bookkeeping."""

    stage: ClusterStage
    sources: SourceWatermarks  # the events partitions' watermarks and idle declarations
    restored: bool = False
    checkpointed_offset: int = -1
    processed_offset: int = -1  # the stage covers the records up to here
    resuming: bool = True  # until the first record after a restore
    applied: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> last summary sequence applied
    duplicates: int = 0
    pending: list[Any] = field(default_factory=list)
    last_checkpoint: float = field(default_factory=time.monotonic)
    sent: Sent = field(default_factory=list)  # records sent for the pending records, confirmed at the checkpoint


@dataclass
class Hold:
    """An events partition restarted after a refused send (``restart_partition``): it waits out a back-off,
    is delivered again from its checkpoint, and counts as failing (/readyz) until a checkpoint passes what
    failed."""

    failures: int = 0  # consecutive send failures (the back-off doubles with each)
    until: float = 0.0  # monotonic time the back-off ends
    redeliver_from: int = -1  # the offset it is delivered again from (also the lag gauge's position meanwhile)
    asked: bool = True  # its redelivery was asked for (False while it waits out the back-off)
    failed_offset: int = -1  # the highest offset that failed: a checkpoint past it ends the hold


# the fields of a feedback record (schemas/feedback.schema.json): the only ones forwarded to internal topics
FEEDBACK_FIELDS = ("alert_id", "label", "tenant_id", "note")


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
    track_changelog(state, "tenant_state")  # its records' futures: confirmed at each checkpoint (``collecting``)
    retry: dict[int, Hold] = {}  # events partition -> its hold after a refused send
    # events partition -> tenant-state keys whose changelog records were refused: written again (from the
    # table) with the next checkpoint, which only rewrites the tenants changed since
    rewrite: dict[int, set[bytes]] = {}

    def checkpoint_key(partition: int) -> bytes:
        return b"%s/%d" % (CHECKPOINT_KEY, partition)

    def pending_key(partition: int) -> bytes:
        return b"%s/%d" % (PENDING_KEY, partition)

    def load_pending(rt: PartitionRuntime, offset: int) -> None:
        """The stage's pending closes and incidents, if written with the checkpoint at ``offset``."""
        try:
            blob = chunked.read(state, pending_key(rt.partition))
        except chunked.ChunkError as exc:  # a changelog cut short: quiet tenants wait for their next event
            log.error("partition_pending_discarded", partition=rt.partition, reason=str(exc))
            return
        if blob is None:
            return  # a checkpoint of the previous version (or a stage with nothing pending)
        doc = orjson.loads(blob)
        if int(doc["offset"]) == offset:  # not one of an older checkpoint, whatever wrote the newer one
            rt.stage.load_pending(doc["pending"])
        else:
            log.warning("partition_pending_discarded", partition=rt.partition, pending_offset=doc["offset"],
                        checkpointed_offset=offset, reason="written with another checkpoint")

    def runtime(partition: int, offset: int = -1) -> PartitionRuntime:
        """The partition's runtime; a new one starts from the checkpoint in the state table.

        ``offset``: of the message that starts it (logged: a resume should follow the checkpoint).
        """
        rt = runtimes.get(partition)
        if rt is None:
            stage = TenantStage(config, model_first_seen=model_first_seen, store=tenants_store)  # type: ignore[arg-type]
            rt = runtimes[partition] = PartitionRuntime(partition, stage)
            marker = state.get(checkpoint_key(partition))
            if marker is not None:
                doc = orjson.loads(marker)
                rt.checkpointed_offset = rt.processed_offset = int(doc["offset"])
                rt.stage.load_meta(doc["meta"])
                load_pending(rt, rt.checkpointed_offset)
                rt.last_marker = rt.stage.watermark
            log.info("partition_started", partition=partition, checkpointed_offset=rt.checkpointed_offset,
                     first_offset=offset)
        return rt

    def load_tenant(rt: PartitionRuntime, tid: str) -> Any:
        """The partition's detector, with ``tid`` restored from its last checkpoint if not in memory yet."""
        det = rt.stage.detector
        det.reload(tid)  # through the stage's store, so a restored tenant joins its eviction order
        return det

    async def publish(alerts: list[dict[str, Any]], source: dict[str, Any] | None = None,
                      sent: Sent | None = None) -> None:
        """Send alerts; ``source`` (topic/partition/offset of the input that triggered them) goes to metadata.

        ``sent``: where the sends are kept, confirmed before the input is acked; an alert is counted in the
        metrics once the broker has written it.
        """
        for alert in alerts:
            if source:
                alert["metadata"] = source
            subject = alert.get("tenant_id") or alert.get("cluster_id") or alert["alert_id"]
            counter = metrics.ALERTS.labels(kind=alert["kind"], severity=alert["severity"], status=alert["status"])
            for i, (mapper, topic) in enumerate(format_topics):  # each enabled format, same key as the contract alert
                await send(topic, sent, "alerts", subject.encode(), orjson.dumps(mapper(alert)),
                           counter.inc if i == 0 else None)

    def buffer_summaries(rt: PartitionRuntime, offset: int) -> None:
        """Move the key summaries the last event produced into the partition's buffer, with their sequence."""
        drained = rt.stage.drain_summaries()
        if drained:
            rt.summaries.extend(drained)
            rt.summary_seq.extend([offset, i] for i in range(len(drained)))

    def tick_due(rt: PartitionRuntime) -> bool:
        """The partition's watermark moved a fifth of a window past the last marker sent (clock started),
        or moved at all while the cluster stage may hold the partition idle (so it waits for it again at
        once; a new runtime assumes a previous owner's declaration)."""
        wm = rt.stage.watermark
        return wm > -math.inf and (wm >= rt.last_marker + config.window_seconds / 5.0
                                   or (rt.maybe_idle and wm > rt.last_marker))

    def summaries_due(rt: PartitionRuntime, offset: int) -> bool:
        """Buffer the last event's summaries; True if a batch or a watermark tick is to be sent.

        The per-event check without a coroutine; :func:`forward_summaries` does the sending.
        """
        buffer_summaries(rt, offset)
        return tick_due(rt) or len(rt.summaries) >= SUMMARY_BATCH

    async def forward_summaries(rt: PartitionRuntime, offset: int, flush: bool = False, idle: bool = False) -> None:
        """Batch key summaries; at each watermark tick send them with the watermark in one message.

        One message per tick (not per summary) keeps the cluster path cheap; summaries travel before
        the watermark that covers them, so the cluster stage never closes a window too early. Each
        summary carries ``[offset, index]`` of the event whose processing produced it: events re-processed
        after a restore produce the same summaries with the same sequence, which the cluster stage drops.
        ``flush`` (at a checkpoint) sends everything buffered, so no summary of a checkpointed event is lost.
        ``idle`` (from the idle timer) sends everything buffered and declares the partition idle (see
        :mod:`streams.watermarks`); a lock keeps the timer's messages and the agent's in order.
        """
        async with rt.send_lock:
            buffer_summaries(rt, offset)
            wm = rt.stage.watermark
            tick = tick_due(rt) or (idle and wm > -math.inf)
            if tick or idle or len(rt.summaries) >= SUMMARY_BATCH or (flush and rt.summaries):
                pending, seqs, rt.summaries, rt.summary_seq = rt.summaries, rt.summary_seq, [], []
                starts = range(0, len(pending), SUMMARY_BATCH)
                chunks = [(pending[i:i + SUMMARY_BATCH], seqs[i:i + SUMMARY_BATCH]) for i in starts] or [([], [])]
                for i, (chunk, seq) in enumerate(chunks):
                    batch: dict[str, Any] = {"type": "batch", "partition": rt.partition, "summaries": chunk, "seq": seq}
                    if i == len(chunks) - 1:  # the marker travels after every summary it covers
                        if tick:
                            rt.last_marker = batch["watermark"] = wm
                        if idle:  # with the owner's wall time: the declaration lapses idle_partition_seconds later
                            batch["idle"], batch["at"] = True, time.time()
                    # kept with the pending events they come from (none pending: the idle timer's marker alone)
                    await send(summaries_topic, rt.sent if rt.pending else None, "cluster_summaries", b"s",
                               orjson.dumps(batch))
                if tick or idle:
                    if rt.idle_declared != idle:
                        log.info("partition_idle" if idle else "partition_active", partition=rt.partition,
                                 watermark=None if wm == -math.inf else wm)
                    rt.idle_declared = rt.maybe_idle = idle

    def checkpoint_age(now: float) -> float:
        """Age of the oldest un-checkpointed work of any partition (0 when none waits)."""
        return max((now - r.last_checkpoint for r in runtimes.values() if r.pending), default=0.0)

    async def checkpoint(rt: PartitionRuntime, offset: int) -> None:
        """Write changed tenants' snapshots and the covered offset, then ack the events they cover.

        Not for a runtime whose partition was revoked meanwhile (an event in flight during a rebalance):
        its events stay un-acked and go to the partition's next owner, which restores the last checkpoint.
        """
        if runtimes.get(rt.partition) is not rt or not rt.pending:
            return
        await forward_summaries(rt, offset, flush=True)
        if runtimes.get(rt.partition) is not rt:
            return
        # every record sent for the pending events (alerts, dead letters, summaries) must be written before the
        # state that covers them is: a refused one raises SendFailed and the partition restarts from the last
        # checkpoint, so the events are processed (and their records sent) again
        await confirm(rt.sent, source_partition=rt.partition, stage="tenant")
        if runtimes.get(rt.partition) is not rt:  # revoked while waiting: the next owner has the events
            return
        source = ChangelogSource(rt.pending[-1])  # the changelog partition = the events partition
        token = faust_current_event.set(weakref.ref(source))  # type: ignore[arg-type]
        written: Sent = []
        try:
            with collecting(written):
                for key in sorted(rewrite.get(rt.partition, ())):  # refused at an earlier checkpoint
                    value = state.get(key)
                    if value is not None:
                        state[key] = value
                det = rt.stage.detector
                for tid in sorted(rt.stage.drain_dirty()):
                    if tid in det:
                        state[tenant_key(tid)] = det.snapshot(tid)
                chunked.write(state, pending_key(rt.partition),
                              orjson.dumps({"offset": offset, "pending": rt.stage.pending()}),
                              settings.state_chunk_bytes)
                state[checkpoint_key(rt.partition)] = orjson.dumps({"offset": offset, "meta": rt.stage.meta()})
        finally:
            faust_current_event.reset(token)
        records = list(written)  # (confirm empties it; the keys are read only if a record was refused)
        try:  # the changelog records too: the events are acked (their offsets committable) only once they are in
            await confirm(written, source_partition=rt.partition, stage="tenant")
        except SendFailed:
            keys = (cast(Any, fut).message.key for fut, _, _ in records)
            rewrite.setdefault(rt.partition, set()).update(k for k in keys if isinstance(k, bytes))
            raise
        if runtimes.get(rt.partition) is not rt:  # revoked while waiting: its events stay un-acked
            return
        rewrite.pop(rt.partition, None)
        hold = retry.get(rt.partition)
        if hold is not None and offset >= hold.failed_offset:  # past what failed: the next failure backs off from 1 s
            del retry[rt.partition]
        rt.checkpointed_offset = offset
        ack = app.consumer.ack
        for message in rt.pending:
            ack(message)
        rt.pending.clear()
        rt.last_checkpoint = time.monotonic()
        # the oldest un-checkpointed work of any partition (0 only if none waits: other partitions may)
        metrics.CHECKPOINT_AGE.set(checkpoint_age(rt.last_checkpoint))
        cap = settings.max_tenants_in_memory
        if cap:  # every tenant in memory is now in the table: the least recently seen may leave
            total = sum(len(r.stage.detector) for r in runtimes.values())
            if total > cap:
                metrics.EVICTIONS.inc(rt.stage.evict(total - (cap - cap // 10), persist=False))
        rt.tenants_at_checkpoint = len(rt.stage.detector)

    async def dead_letter(key: bytes | None, data: bytes, reason: str, label: str, source: tuple[str, int, int],
                          usage_event: bool = True, sent: Sent | None = None) -> None:
        """Send an input (from ``source`` = topic, partition, offset) to the dead-letter topic with its reason.

        ``usage_event``: count it as an invalid event. ``sent``: where the send is kept, confirmed before the
        input is acked (the dead-letter metric counts it once written).
        """
        topic, partition, offset = source
        record = dead_letter_record(data, reason, settings.max_event_bytes, source_topic=topic,
                                    source_partition=partition, source_offset=offset)
        await send(dlq_topic, sent, "dead_letters", key, orjson.dumps(record), metrics.DLQ.labels(reason=label).inc)
        if usage_event:
            invalid.inc()

    miskeyed_seen: dict[int, list[float]] = {}  # partition -> [events since its last warning, time of that warning]

    def miskeyed(partition: int) -> None:
        """Count an event whose key is not its tenant_id; warn at most once a minute per partition.

        Why: the contract keys events by tenant; keyed otherwise (by event id, or not at all), a tenant's
        events spread over partitions and each partition's stage sees a part of it: fragmented incidents,
        missed ones. The event is processed all the same (refusing it would lose it). The key and the tenant
        are not logged: both are input.
        """
        metrics.MISKEYED.inc()
        seen = miskeyed_seen.setdefault(partition, [0, -math.inf])
        seen[0] += 1
        now = time.monotonic()
        if now - seen[1] >= 60.0:
            log.warning("events_miskeyed", partition=partition, events=seen[0],
                        action="key each event by its tenant_id (shared/CONTRACT.md): a tenant whose events reach "
                               "several partitions is split between their states, which changes its alerts")
            seen[0], seen[1] = 0, now

    async def handle(rt: PartitionRuntime, data: bytes, key: bytes | None, source: tuple[str, int, int],
                     appended: float | None) -> None:
        """One event through its partition's tenant stage: alerts, dead letters, key summaries, metrics.

        ``appended``: the record's append time (s), for the latency histogram (``None``: not observed).
        """
        topic, partition, offset = source
        rt.processed_offset = offset
        try:
            ev = codec.decode(data)
        except DecodeError as exc:
            await dead_letter(key, data, exc.reason, metrics.reason_label(exc.field, exc.reason), source, sent=rt.sent)
            return
        if key != ev["tenant_id"].encode():  # (a tenant id is never normalised: one over 128 characters is refused)
            miskeyed(partition)
        try:
            alerts = rt.stage.process(ev)  # restores the tenant from the table if it was evicted
        except Exception as exc:  # noqa: BLE001 - a detector bug must neither stop the partition nor lose the event
            log.exception("event_processing_failed", partition=partition, offset=offset, error=type(exc).__name__)
            await dead_letter(key, data, f"processing failed: {type(exc).__name__}: {str(exc)[:200]}",
                              "processing_failed", source, sent=rt.sent)
            return
        if rt.stage.rejected is not None:  # a replayed event id: dropped, dead-lettered
            await dead_letter(key, data, rt.stage.rejected, "replay", source, sent=rt.sent)
        else:
            valid.inc()
        if alerts:  # (most events raise none: skip building the source and awaiting a no-op)
            await publish(alerts, {"source_topic": topic, "source_partition": partition, "source_offset": offset},
                          rt.sent)
        if summaries_due(rt, offset):
            await forward_summaries(rt, offset)
        if appended:
            metrics.LATENCY.observe(max(0.0, time.time() - appended))

    async def catch_up(stage: str, topic: str, partition: int, start: int, stop: int,
                       apply: Callable[[Any], Awaitable[None]]) -> None:
        """Apply the records ``start <= offset < stop`` of a partition resumed past its restored checkpoint.

        Normally there are none: offsets are committed only after the checkpoint that covers them. A
        rebalance can still resume a partition further on (docs/RELIABILITY.md, "Resuming a partition");
        those records are read with a group-less consumer (streams/catchup.py), so none is missing from
        the state. If they cannot be read, the error names them and the partition goes on.
        """
        count = 0
        try:
            async for records in read_range(settings, topic, partition, start, stop):
                for record in records:
                    await apply(record)
                count += len(records)
        except Exception as exc:  # noqa: BLE001 - the partition must go on; the log says what is missing
            log.error("partition_catch_up_failed", stage=stage, partition=partition, from_offset=start,
                      to_offset=stop - 1, processed=count, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        else:
            if count:  # (none: the log starts at ``stop``, retention deleted the rest)
                log.warning("partition_caught_up", stage=stage, partition=partition, from_offset=start,
                            to_offset=stop - 1, events=count)
        metrics.CATCH_UP.inc(count)

    async def resume(rt: PartitionRuntime | ClusterRuntime, stage: str, msg: Any,
                     apply: Callable[[Any], Awaitable[None]]) -> None:
        """The runtime's first new record should follow its state: if it does not, catch up the gap first."""
        rt.resuming = False
        if msg.offset > rt.processed_offset + 1:
            await catch_up(stage, msg.topic, msg.partition, rt.processed_offset + 1, msg.offset, apply)

    cap_on = settings.max_tenants_in_memory > 0

    async def detect(msg: Any) -> int | None:
        """One events-topic message, delivered directly by the consumer (streams/transport.py, ``direct``):
        Faust's per-message stream machinery cost more than the detection itself.

        Returns None, or (after a failure) the offset the partition must be delivered again from.
        """
        hold = retry.get(msg.partition)
        if hold is not None and not hold.asked:  # restarted: waiting out its back-off
            if time.monotonic() < hold.until:
                return None  # neither processed nor acked: delivered again from hold.redeliver_from
            hold.asked = True
            return hold.redeliver_from
        rt = runtime(msg.partition, msg.offset)
        try:
            await detect_one(rt, msg)
        except Exception as exc:  # noqa: BLE001 - e.g. a send that failed: start the partition again
            restart_partition(rt, msg, exc)
        return None

    def restart_partition(rt: PartitionRuntime, msg: Any, exc: Exception) -> None:
        """Drop a partition's runtime after a failure that left an event half done or un-checkpointed (its
        alerts, dead letters or summaries unsent or refused by the broker), and have the consumer deliver
        the partition again from its last checkpoint: a new runtime restores that checkpoint, so nothing
        un-acked is lost or counted twice (alert ids are deterministic).

        Not at once: the partition waits ``retry_delay`` (1 s, doubling up to 30 s while it keeps failing;
        its messages meanwhile are skipped, un-acked), so a failure that persists (a broker outage, a
        topic that refuses the records) stalls the partition with one error per attempt instead of
        spinning, and the consumer's other partitions go on. A timer asks for the redelivery when the
        back-off is over (or the partition's next message, if it comes first)."""
        if runtimes.get(rt.partition) is not rt:  # revoked (or restarted) meanwhile: nothing to hold back
            log.error("partition_restart_skipped", partition=rt.partition, offset=msg.offset,
                      error=f"{type(exc).__name__}: {str(exc)[:300]}", reason="the partition's runtime is gone")
            return
        hold = retry.setdefault(rt.partition, Hold())
        hold.failures += 1
        hold.failed_offset = max(hold.failed_offset, rt.processed_offset)
        # from its checkpoint, or from its first un-acked event if that is earlier (a runtime restored from a
        # checkpoint whose changelog records were refused: the events it covers were never acked)
        again = min([rt.checkpointed_offset + 1, *(m.offset for m in rt.pending[:1])])
        delay = retry_delay(hold.failures)
        hold.until, hold.redeliver_from, hold.asked = time.monotonic() + delay, again, False
        log.error("partition_restarted", partition=rt.partition, offset=msg.offset,
                  error=f"{type(exc).__name__}: {str(exc)[:300]}", redeliver_from=again,
                  retry_in_seconds=delay, consecutive_failures=hold.failures)
        if runtimes.get(rt.partition) is rt:
            del runtimes[rt.partition]
        tp = TP(events_topic.get_topic_name(), rt.partition)

        def release() -> None:  # the back-off is over: deliver the partition again from its checkpoint
            if (retry.get(rt.partition) is hold and not hold.asked and hold.redeliver_from == again
                    and tp in app.consumer.assignment()):
                hold.asked = True
                cast(Consumer, app.consumer).redeliver(tp, again)
        asyncio.get_running_loop().call_later(delay, release)

    async def detect_one(rt: PartitionRuntime, msg: Any) -> None:
        """The work of :func:`detect` for one message of the partition's runtime."""
        async with rt.work_lock:  # (a quiet partition's timer checkpoint holds it: see checkpoint_quiet)
            rt.pending.append(msg)
            rt.last_offset = max(rt.last_offset, msg.offset)
            if msg.offset <= rt.processed_offset:
                return  # part of the restored state, or processed already (a delivery from before a seek)
            if rt.resuming:
                await resume(rt, "tenant", msg, lambda r, rt=rt, topic=msg.topic: handle(
                    rt, r.value or b"", r.key, (topic, rt.partition, r.offset), None))
            data = msg.value if isinstance(msg.value, bytes) else bytes(msg.value or b"")
            await handle(rt, data, msg.key, (msg.topic, msg.partition, msg.offset), msg.timestamp or None)
            if (len(rt.pending) >= settings.checkpoint_events
                    or time.monotonic() - rt.last_checkpoint >= settings.checkpoint_seconds
                    # tenants only leave memory after a checkpoint: one that a partition's growth (new tenants,
                    # and evicted ones restored to close a window) calls for keeps the cap's overshoot bounded
                    or (cap_on and len(rt.stage.detector) - rt.tenants_at_checkpoint >= settings.checkpoint_events)):
                await checkpoint(rt, msg.offset)

    app.topics.add(events_topic)  # subscribed, but delivered to ``detect`` without a Faust stream
    cast(Transport, app.transport).direct[events_topic.get_topic_name()] = detect

    async def checkpoint_quiet(rt: PartitionRuntime) -> None:
        """Checkpoint a partition with un-checkpointed events whose last checkpoint is ``checkpoint_seconds``
        old: the agent checkpoints only when an event arrives, so without this a quiet partition's last
        events stayed un-acked (their offsets uncommitted, ``checkpoint_age_seconds`` growing) and its
        tenants in memory until its next event.

        Between two events of the partition (``work_lock``), so no event is half processed: the state
        written covers every event up to ``processed_offset``, alerts included.
        """
        if (not rt.pending or rt.work_lock.locked()
                or time.monotonic() - rt.last_checkpoint < settings.checkpoint_seconds):
            return
        async with rt.work_lock:
            if rt.pending and runtimes.get(rt.partition) is rt:
                try:
                    await checkpoint(rt, rt.processed_offset)
                except Exception as exc:  # noqa: BLE001 - e.g. a refused alert: the partition starts again
                    restart_partition(rt, rt.pending[-1], exc)

    rekey_acks = OrderedAcks(app, "feedback-rekey")
    feedback_acks = OrderedAcks(app, "feedback")

    @app.agent(feedback_topic, name="distillguard.feedback-rekey")
    async def rekey_feedback(stream: faust.StreamT) -> None:
        """Verdicts to the tenant's partition of ``feedback-by-tenant`` (cluster verdicts to the summary topic),
        with the schema's fields only; each verdict is acked once what it became is written."""
        manual = stream.noack()
        async for event in manual.events():
            if rekey_acks.skip(event):
                continue  # its partition is delivered again from an earlier verdict (a refused send)
            sent: Sent = []
            try:
                await rekey_one(event, sent)
            except SendFailed as exc:  # (refused at once by the producer, too: streams.transport.send)
                rekey_acks.failed(event, exc)
            except Exception as exc:  # noqa: BLE001 - anything unexpected: deliver it again, do not stop the agent
                rekey_acks.failed(event, SendFailed("feedback_by_tenant", by_tenant.get_topic_name(),
                                                    f"{type(exc).__name__}: {str(exc)[:200]}", 1))
            else:
                rekey_acks.done(event, sent)

    async def rekey_one(event: Any, sent: Sent) -> None:
        msg = event.message
        value = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            found = [f"invalid JSON: {exc}"]
        else:
            found = feedback_problems(record)
        if found:  # the schema's rule, as `distillguard feedback` and `detect --feedback` apply it
            reason = "invalid feedback: " + "; ".join(found)
            log.warning("feedback_rejected", reason=reason[:200], partition=msg.partition, offset=msg.offset)
            await dead_letter(msg.key, value, reason, "feedback", (msg.topic, msg.partition, msg.offset),
                              usage_event=False, sent=sent)
            return
        # only the fields the schema defines: anything else (an ``extra`` with prompt text) stays out of topics
        record = {name: record[name] for name in FEEDBACK_FIELDS if record.get(name) is not None}
        tenant = record["tenant_id"]
        if str(record.get("alert_id", "")).startswith("c-"):
            await send(summaries_topic, sent, "cluster_summaries", b"s",
                       orjson.dumps({"type": "feedback", "record": record}))
        else:
            await send(by_tenant, sent, "feedback_by_tenant", tenant.encode(), orjson.dumps(record))

    @app.agent(by_tenant, name="distillguard.feedback")
    async def apply_feedback(stream: faust.StreamT) -> None:
        """Apply a verdict to its tenant; acked once its alerts and the tenant's new snapshot are written."""
        manual = stream.noack()
        async for event in manual.events():
            if feedback_acks.skip(event):
                continue  # its partition is delivered again from an earlier verdict (a refused send)
            try:
                await apply_one(event)
            except SendFailed as exc:
                feedback_acks.failed(event, exc)

    async def apply_one(event: Any) -> None:
        record = orjson.loads(event.value)
        rt = runtime(event.message.partition)
        tid = record["tenant_id"]
        det = load_tenant(rt, tid)
        alerts = det.apply_feedback(record)
        sent: Sent = []
        if alerts:  # written before the tenant's snapshot (a verdict is rare: waiting here costs nothing)
            try:
                await publish(alerts, sent=sent)
                await confirm(sent, stage="feedback", source_partition=event.message.partition)
            except SendFailed as exc:
                # the tenant in memory has the verdict applied, its snapshot in the table not: restart the
                # events partition (restored from its checkpoint) and apply the verdict again after it
                restart_partition(rt, event.message, exc)
                raise
        if tid in det:
            with collecting(sent):
                state[tenant_key(tid)] = det.snapshot(tid)  # a verdict is checkpointed at once
        feedback_acks.done(event, sent)
        if det.feedback_result == "unmatched":  # a typo or an older incident: it must not silence this one
            log.warning("feedback_unmatched", label=record.get("label"), alert_id=record.get("alert_id"),
                        reason="not an alert of the tenant's open or last resolved incident")
        elif det.feedback_result == "applied":
            log.info("feedback_applied", label=record.get("label"), alert_id=record.get("alert_id"))
        else:  # an unknown label (ignored)
            log.info("feedback_not_applied", result=det.feedback_result, label=record.get("label"),
                     alert_id=record.get("alert_id"))

    cluster_state = app.Table("cluster-state", default=None, partitions=1, key_type=bytes, value_type=bytes)
    track_changelog(cluster_state, "cluster_state")
    # the summary partition's restart after a refused send: [consecutive failures, offset it is delivered
    # again from (skip anything later until it comes), or None]
    cluster_retry: list[Any] = [0, None]
    cast(Transport, app.transport).failing.append(  # what /readyz names as held back by refused sends
        lambda: [*(TP(settings.events_topic, p) for p in retry),
                 *([TP(summaries_topic.get_topic_name(), 0)] if cluster_retry[0] else [])])
    cluster = ClusterRuntime(ClusterStage(config), SourceWatermarks(parts, settings.idle_partition_seconds))

    def cluster_runtime() -> ClusterRuntime:
        """The cluster stage, restored once from its checkpoint when this worker takes the summary topic."""
        if not cluster.restored:
            cluster.restored = True
            try:
                blob = chunked.read(cluster_state, CLUSTER_KEY)
            except chunked.ChunkError as exc:  # a changelog cut short: start empty, say so
                log.error("cluster_state_discarded", reason=str(exc))
                blob = None
            if blob is not None:
                doc_len = int.from_bytes(blob[:4], "big")
                doc = orjson.loads(blob[4:4 + doc_len])
                try:
                    cluster.stage = ClusterStage.restore(blob[4 + doc_len:], config)
                except ValueError as exc:  # another detector version: start empty, say so
                    log.warning("cluster_state_discarded", reason=str(exc))
                else:
                    cluster.checkpointed_offset = cluster.processed_offset = int(doc["offset"])
                    cluster.sources.load_doc(doc)
                    cluster.applied = {int(p): (o, i) for p, (o, i) in doc.get("applied", {}).items()}
            log.info("cluster_stage_started", checkpointed_offset=cluster.checkpointed_offset,
                     watermark=cluster.stage.watermark)
        return cluster

    async def checkpoint_cluster(crt: ClusterRuntime, stream: faust.StreamT, offset: int) -> None:
        """Write the cluster stage and the covered offset, then ack what it covers (as for tenant state).

        The records sent for those records (cluster alerts, dead letters) are confirmed first and the
        state's changelog records after writing it: SendFailed if any was refused (nothing acked).
        """
        await confirm(crt.sent, stage="cluster")
        if not crt.restored:  # the summary partition was revoked while waiting: the next owner has the records
            return
        doc = orjson.dumps({"offset": offset, **crt.sources.to_doc(),
                            "applied": {str(p): list(seq) for p, seq in crt.applied.items()}})
        written: Sent = []
        with collecting(written):
            chunked.write(cluster_state, CLUSTER_KEY, len(doc).to_bytes(4, "big") + doc + crt.stage.snapshot(),
                          settings.state_chunk_bytes)
        await confirm(written, stage="cluster")
        if not crt.restored:
            return
        cluster_retry[0] = 0
        crt.checkpointed_offset = offset
        for ev in crt.pending:
            await stream.ack(ev)
        crt.pending.clear()
        crt.last_checkpoint = time.monotonic()

    @app.agent(summaries_topic, name="distillguard.cluster")
    async def cluster_agent(stream: faust.StreamT) -> None:
        manual = stream.noack()
        async for event in manual.events():
            msg, offset = event.message, event.message.offset
            if cluster_retry[1] is not None:  # restarted after a refused send: waiting for its redelivery
                if offset > cluster_retry[1]:
                    continue
                cluster_retry[1] = None
            crt = cluster_runtime()
            crt.pending.append(event)
            if offset <= crt.processed_offset:
                continue  # part of the restored stage, or applied already (a delivery from before a seek)
            try:
                if crt.resuming:
                    await resume(crt, "cluster", msg, lambda r, crt=crt, topic=msg.topic: cluster_record(
                        crt, r.key, r.value or b"", (topic, r.partition, r.offset), manual))
                await cluster_record(crt, event.key, bytes(event.value or b""), (msg.topic, msg.partition, offset),
                                     manual)
                if (len(crt.pending) >= settings.checkpoint_events
                        or time.monotonic() - crt.last_checkpoint >= settings.checkpoint_seconds):
                    await checkpoint_cluster(crt, manual, offset)
            except SendFailed as exc:
                restart_cluster(crt, msg, exc)

    def restart_cluster(crt: ClusterRuntime, msg: Any, exc: SendFailed) -> None:
        """As :func:`restart_partition` for the cluster stage: drop it (restored from its checkpoint again) and
        have the summary partition delivered again from that checkpoint after a back-off."""
        cluster_retry[0] += 1
        delay, again = retry_delay(cluster_retry[0]), crt.checkpointed_offset + 1
        log.error("partition_restarted", stage="cluster", topic=msg.topic, partition=msg.partition,
                  offset=msg.offset, error=f"SendFailed: {exc}"[:300], redeliver_from=again,
                  retry_in_seconds=delay, consecutive_failures=cluster_retry[0])
        reset_cluster()
        cluster_retry[1] = again
        tp = msg.tp

        def redeliver() -> None:
            if cluster_retry[1] == again and tp in app.consumer.assignment():
                cast(Consumer, app.consumer).redeliver(tp, again)
        asyncio.get_running_loop().call_later(delay, redeliver)

    def reset_cluster() -> None:
        """Forget the cluster stage: the next record restores it from the table (its latest checkpoint)."""
        cluster.stage, cluster.restored, cluster.checkpointed_offset = ClusterStage(config), False, -1
        cluster.processed_offset, cluster.resuming = -1, True
        cluster.sources.clear()
        cluster.applied.clear()
        cluster.pending.clear()
        cluster.sent.clear()

    async def cluster_record(crt: ClusterRuntime, key: bytes | None, data: bytes, source: tuple[str, int, int],
                             stream: faust.StreamT) -> None:
        """Apply one summary-topic record; an unreadable one goes to the dead-letter topic and changes nothing."""
        crt.processed_offset = source[2]
        try:
            await apply_cluster_record(crt, orjson.loads(data), source[2], stream)
        except Exception as exc:  # noqa: BLE001 - one unreadable record must not stop the cluster stage
            if isinstance(exc, SendFailed):
                raise
            log.exception("cluster_record_failed", offset=source[2], error=type(exc).__name__)
            await dead_letter(key, data, f"cluster record failed: {type(exc).__name__}: {str(exc)[:200]}",
                              "cluster_record", source, usage_event=False, sent=crt.sent)

    async def apply_cluster_record(crt: ClusterRuntime, rec: dict[str, Any], offset: int, stream: faust.StreamT) -> None:
        """One summary-topic record: a batch of summaries (maybe with a watermark marker) or a cluster verdict."""
        stage = crt.stage
        if rec["type"] == "feedback":
            det, record = stage.detector, rec["record"]
            label, alert_id = record.get("label"), record.get("alert_id")
            cluster_id = det.incident_for_alert(alert_id)
            alerts = det.apply_feedback(record, cluster_id)
            if alerts:
                log.info("feedback_applied", scope="cluster", label=label, alert_id=alert_id, cluster_id=cluster_id)
            elif label not in ("false_positive", "benign_expected"):
                log.info("feedback_not_applied", scope="cluster", result="ignored", label=label, alert_id=alert_id)
            else:  # (an unknown id, or a verdict on an incident already resolved, e.g. a duplicate verdict)
                log.warning("feedback_unmatched", scope="cluster", label=label, alert_id=alert_id,
                            reason="no open cluster incident issued this alert (unknown id, or the incident is "
                            "already resolved, e.g. by an earlier verdict)")
            await publish(alerts, sent=crt.sent)
            await checkpoint_cluster(crt, stream, offset)  # a verdict is checkpointed at once
            return
        part, dup_before = int(rec["partition"]), crt.duplicates
        last = crt.applied.get(part, (-1, -1))
        batch = [KeySummary.from_dict(summary) for summary in rec["summaries"]]  # all parse, or none is applied
        for summary, seq in zip(batch, rec.get("seq") or [None] * len(batch), strict=True):
            if seq is not None:
                key = (int(seq[0]), int(seq[1]))
                if key <= last:  # re-sent by a tenant stage that re-processed events after a restore
                    crt.duplicates += 1
                    continue
                last = key
            stage.process(summary)
        crt.applied[part] = last
        if crt.duplicates != dup_before:
            log.info("cluster_summaries_deduplicated", partition=part, total=crt.duplicates)
        wm, idle = rec.get("watermark"), rec.get("idle")
        if idle is False:  # its owner gave the partition up: it holds the minimum back again
            crt.sources.withdraw(part)
        elif wm is not None or idle is True:  # a marker: the partition's watermark and/or an idle declaration
            crt.sources.report(part, None if wm is None else float(wm), idle is True, float(rec.get("at") or 0.0))
            combined = crt.sources.combined(time.time())
            if combined is not None:
                await publish(stage.advance(combined), sent=crt.sent)

    @app.timer(interval=5.0)
    async def report_progress() -> None:
        """Consumer lag per owned partition, age of the oldest un-checkpointed work, tenants in memory."""
        now = time.monotonic()
        for tp in app.consumer.assignment():
            if tp.topic != settings.events_topic:
                continue
            rt, hold = runtimes.get(tp.partition), retry.get(tp.partition)
            if rt is not None:
                position = rt.last_offset + 1
            elif hold is not None:  # restarted after a refused send: everything from its redelivery point waits
                position = hold.redeliver_from
            else:
                continue  # assigned, nothing delivered yet
            highwater = app.consumer.highwater(tp)
            if highwater is not None:
                metrics.LAG.labels(partition=str(tp.partition)).set(max(0, highwater - position))
        metrics.CHECKPOINT_AGE.set(checkpoint_age(now))
        metrics.TENANTS.set(sum(len(rt.stage.detector) for rt in runtimes.values()))
        metrics.IDLE_PARTITIONS.set(sum(rt.idle_declared for rt in runtimes.values()))
        for rt in list(runtimes.values()):  # detector counters -> metric increments since the last report
            stats, lru = rt.stage.detector.stats, rt.stage.lru
            counts = {"late": stats["late_events"], "future_clamped": stats["future_clamped"],
                      "restored": lru.restored if lru is not None else 0}
            for kind, value in counts.items():
                delta = value - rt.reported.get(kind, 0)
                if delta > 0:
                    (metrics.RESTORES if kind == "restored" else metrics.EVENT_TIME.labels(kind=kind)).inc(delta)
                rt.reported[kind] = value

    idle_s = settings.idle_partition_seconds

    @app.timer(interval=min(5.0, max(0.5, idle_s / 3)))
    async def partition_upkeep() -> None:
        """Per owned events partition: checkpoint it if it went quiet (:func:`checkpoint_quiet`), and
        declare it idle, renewing the declaration, while it is caught up with no watermark progress for
        ``idle_partition_seconds``. Only the owner can know both; see :mod:`streams.watermarks`.

        A partition without events yet gets its runtime here (from its checkpoint), so an empty
        partition does not hold the cluster stage back for ever. Not during a rebalance: the tables may
        still be recovering then.
        """
        if app.rebalancing or app.should_stop:  # (stopping: no new declarations after the withdrawal below)
            return
        now = time.monotonic()
        for tp in list(app.consumer.assignment()):
            if tp.topic != settings.events_topic:
                continue
            hold = retry.get(tp.partition)
            if hold is not None and not hold.asked:  # restarted, waiting out its back-off (restart_partition)
                continue
            rt = runtime(tp.partition)
            await checkpoint_quiet(rt)
            redeliver_if_stalled(tp, rt, now)
            wm = rt.stage.watermark
            if wm != rt.wm_seen:
                rt.wm_seen, rt.wm_moved = wm, now
                continue
            highwater = app.consumer.highwater(tp)
            caught_up = highwater is not None and max(rt.last_offset, rt.processed_offset) + 1 >= highwater
            if caught_up and now - rt.wm_moved >= idle_s:
                await forward_summaries(rt, rt.processed_offset, idle=True)

    def redeliver_if_stalled(tp: Any, rt: PartitionRuntime, now: float) -> None:
        """Have the consumer deliver a partition again from its next offset if it is behind its log and
        has had no message for ``idle_partition_seconds`` while no partition's event is being handled.

        Why: in one CI-sized run (two test processes) a worker's two slowest-starting partitions
        stopped getting messages right after their catch-up, with 1,551 events left, for minutes and
        with no error logged; the cause was not found. Seeking the partition back to the offset after
        what it processed costs nothing when all is well (deliveries at or below it are skipped).
        """
        if rt.last_offset != rt.delivered_seen:  # (tracked here, at the timer's pace, not per event)
            rt.delivered_seen, rt.delivered_moved = rt.last_offset, now
            # what a Faust stream would record: without it Faust's livelock check reports every events
            # partition with a backlog as "Stream has not started processing" after 5 minutes
            app.monitor.stream_inbound_time[tp] = now
            return
        highwater = app.consumer.highwater(tp)
        behind = highwater is not None and max(rt.last_offset, rt.processed_offset) + 1 < highwater
        busy = any(r.work_lock.locked() for r in runtimes.values())  # (a long catch-up holds every partition up)
        if behind and not busy and now - rt.delivered_moved >= idle_s:
            reactivated = cast(Consumer, app.consumer).redeliver(tp, max(rt.processed_offset + 1, 0))
            log.warning("partition_stalled", partition=rt.partition, next_offset=rt.processed_offset + 1,
                        highwater=highwater, silent_seconds=round(now - rt.delivered_moved, 1),
                        was_inactive=reactivated)
            rt.delivered_moved = now  # (once per silence: the next check waits as long again)

    async def withdraw_idle(rt: PartitionRuntime) -> None:
        """Give up this worker's idle declaration of a partition it hands over, so the cluster stage waits
        for the partition's next owner instead of leaving it out until the declaration lapses."""
        if not rt.idle_declared:
            return
        async with rt.send_lock:
            if rt.idle_declared:
                rt.idle_declared = False
                batch = {"type": "batch", "partition": rt.partition, "summaries": [], "seq": [], "idle": False}
                await summaries_topic.send(key=b"s", value=orjson.dumps(batch))
                log.info("partition_idle_withdrawn", partition=rt.partition)

    @app.on_before_shutdown.connect
    async def withdraw_on_shutdown(sender: Any, **_: Any) -> None:
        for rt in list(runtimes.values()):
            await withdraw_idle(rt)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        rekey_acks.revoked(revoked)
        feedback_acks.revoked(revoked)
        for tp in revoked:
            if tp.topic == settings.events_topic:
                retry.pop(tp.partition, None)  # the next owner starts from the committed offset
                rewrite.pop(tp.partition, None)
                with contextlib.suppress(KeyError):  # no lag sample yet
                    metrics.LAG.remove(str(tp.partition))
            if tp.topic == settings.events_topic and tp.partition in runtimes:
                rt = runtimes.pop(tp.partition)
                await withdraw_idle(rt)
                log.info("partition_revoked", partition=tp.partition, tenants=len(rt.stage.detector),
                         unacked_events=len(rt.pending), checkpointed_offset=rt.checkpointed_offset,
                         last_offset=rt.last_offset)
            elif tp.topic == summaries_topic.get_topic_name() and cluster.restored:
                # the next owner (maybe this worker again) restores from the table, which has the latest checkpoint
                log.info("cluster_stage_revoked", unacked_records=len(cluster.pending))
                reset_cluster()
                cluster_retry[:] = [0, None]


