"""Operator replay of the events topic: the live detection stages over a historical range, isolated.

A replay reads a range of the events topic without a consumer group (``assign`` + ``seek``; it never
commits offsets), runs one :class:`detectors.stages.TenantStage` per events partition and one
:class:`detectors.stages.ClusterStage` closed at the minimum watermark over the partitions -- exactly
the live worker's topology, in one process -- and writes alerts to a separate topic or to a file.
It never writes to the live app's topics, its DLQ or its state (changelog) topics.

Determinism: records of the partitions are merged by (record timestamp, partition, offset), so the
processing order depends only on the log content and the plan, never on fetch timing. That is what
makes a resumed replay (``--resume``) produce exactly the output of an uninterrupted one.

See docs/REPLAY.md for the operator's view (range rules, checkpoints, state files, promotion).
"""

from __future__ import annotations

import base64
import heapq
import math
import os
import pickle
import signal
import stat
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from kafka.partitioner import murmur2

from detectors.common import DetectorConfig
from detectors.stages import ClusterStage, TenantStage
from distillguard.settings import Settings
from schemas import DecodeError
from schemas.dead_letter import dead_letter_record

CHECKPOINT_VERSION = 1
STATE_FILE_VERSION = 1
Alert = dict[str, Any]


class ReplayError(Exception):
    """A replay cannot be planned or run (bad range, missing topic, refused output ...)."""


# ---------------------------------------------------------------------------------------------- parsing
def parse_time(text: str) -> float:
    """RFC 3339 / ISO 8601 time (``2026-06-24T00:00Z``, ``2026-06-24``, with an offset) -> epoch seconds.

    A time without a zone is UTC.
    """
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError as exc:
        raise ReplayError(f"not a time: {text!r} (use e.g. 2026-06-24T00:00Z)") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_offsets(spec: str) -> dict[int, tuple[int | None, int | None]]:
    """``"0:100-5000,1:0-,2:-300"`` -> ``{0: (100, 5000), 1: (0, None), 2: (None, 300)}``.

    ``START-END`` is half-open: START is the first offset read, END the first offset *not* read (Kafka's
    "end offset"). A missing START is the partition's oldest retained offset, a missing END its end
    offset when the replay is planned. ``P:N`` alone reads the single record at offset N.
    """
    out: dict[int, tuple[int | None, int | None]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        try:
            p_s, rng = part.split(":", 1)
            p = int(p_s)
            if "-" in rng:
                a, b = rng.split("-", 1)
                start = int(a) if a.strip() else None
                end = int(b) if b.strip() else None
            else:
                start = int(rng)
                end = start + 1
        except ValueError as exc:
            raise ReplayError(f"bad --offsets item {part!r} (use PARTITION:START-END, e.g. 0:100-5000,1:0-)") from exc
        if p < 0 or (start is not None and start < 0) or (end is not None and end < 0):
            raise ReplayError(f"bad --offsets item {part!r}: negative number")
        if start is not None and end is not None and end < start:
            raise ReplayError(f"bad --offsets item {part!r}: END before START")
        if p in out:
            raise ReplayError(f"partition {p} named twice in --offsets")
        out[p] = (start, end)
    if not out:
        raise ReplayError("--offsets names no partition")
    return out


def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2; Java, kafka-python, aiokafka) picks for ``key``."""
    k = key.encode() if isinstance(key, str) else key
    return (murmur2(k) & 0x7FFFFFFF) % partitions


def default_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + os.urandom(3).hex()


def _unnum(v: float | None, default: float = -math.inf) -> float:
    return default if v is None else float(v)


# ---------------------------------------------------------------------------------------------- plan
@dataclass
class PartitionRange:
    partition: int
    start: int  # first offset read
    end: int  # first offset not read

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)


@dataclass
class ReplayPlan:
    """What a replay reads: the resolved per-partition offset ranges and the event-time/tenant filters."""

    topic: str
    num_partitions: int  # of the events topic (tenant -> partition for --state seeding)
    ranges: list[PartitionRange]
    time_from: float | None = None  # keep events with time_from <= timestamp < time_to
    time_to: float | None = None
    tenants: list[str] | None = None
    lookback: float = 0.0
    lookahead: float = 0.0
    resolved_by: str = "offsets"  # "offsets" | "time-index" | "scan" | "all"
    notes: list[str] = field(default_factory=list)

    @property
    def estimated_records(self) -> int:
        return sum(r.count for r in self.ranges)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReplayPlan:
        d = dict(d)
        d["ranges"] = [PartitionRange(**r) for r in d["ranges"]]
        return cls(**d)

    def describe(self) -> str:
        from detectors.common import iso

        lines = [f"topic {self.topic} ({self.num_partitions} partitions), ranges resolved by {self.resolved_by}"]
        if self.time_from is not None or self.time_to is not None:
            lo = iso(self.time_from) if self.time_from is not None else "-inf"
            hi = iso(self.time_to) if self.time_to is not None else "+inf"
            lines.append(f"event time [{lo}, {hi}); scanned from {self.lookback:g}s before / "
                         f"to {self.lookahead:g}s after by record timestamp")
        if self.tenants is not None:
            shown = ", ".join(self.tenants[:10]) + (f" (+{len(self.tenants) - 10} more)" if len(self.tenants) > 10 else "")
            lines.append(f"tenants ({len(self.tenants)}): {shown}")
        for r in self.ranges:
            lines.append(f"  partition {r.partition}: offsets {r.start}-{r.end}  ({r.count} records)")
        lines.append(f"estimated records to read: {self.estimated_records}"
                     + (" (upper bound: events are trimmed by timestamp/tenant while reading)"
                        if self.time_from is not None or self.time_to is not None or self.tenants else ""))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def build_plan(consumer: Any, topic: str, *, time_from: float | None = None, time_to: float | None = None,
               offsets: dict[int, tuple[int | None, int | None]] | None = None, tenants: Iterable[str] | None = None,
               lookback: float = 420.0, lookahead: float = 420.0, scan: bool = False) -> ReplayPlan:
    """Resolve the range per partition: explicit offsets, or the broker's time index, or the whole log."""
    from kafka import TopicPartition

    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise ReplayError(f"topic {topic!r} does not exist")
    n = len(parts)
    tenant_list = sorted(set(tenants)) if tenants is not None else None
    if time_from is not None and time_to is not None and time_to <= time_from:
        raise ReplayError("--to must be after --from")
    if offsets is not None:
        unknown = sorted(set(offsets) - set(parts))
        if unknown:
            raise ReplayError(f"topic {topic!r} has no partition {unknown[0]}")
        chosen = sorted(offsets)
    else:
        chosen = sorted(parts)
    if tenant_list is not None:  # key = tenant_id (contract): only the tenants' partitions hold their events
        wanted = {partition_for(t, n) for t in tenant_list}
        chosen = [p for p in chosen if p in wanted]
    tps = [TopicPartition(topic, p) for p in chosen]
    begin = consumer.beginning_offsets(tps) if tps else {}
    endo = consumer.end_offsets(tps) if tps else {}
    notes: list[str] = []
    starts = {tp.partition: begin[tp] for tp in tps}
    ends = {tp.partition: endo[tp] for tp in tps}
    resolved_by = "all"
    if offsets is not None:
        resolved_by = "offsets"
        for p in chosen:
            a, b = offsets[p]
            if a is not None:
                if a < starts[p]:
                    notes.append(f"partition {p}: offsets before {starts[p]} are no longer retained")
                starts[p] = max(a, starts[p])
            if b is not None:
                if b > ends[p]:
                    notes.append(f"partition {p}: end {b} is past the log end {ends[p]}; reading to {ends[p]}")
                ends[p] = min(b, ends[p])
    elif (time_from is not None or time_to is not None) and not scan and tps:
        resolved_by = "time-index"
        if time_from is not None:
            found = consumer.offsets_for_times({tp: max(0, int((time_from - lookback) * 1000)) for tp in tps})
            for tp in tps:
                hit = found.get(tp)
                starts[tp.partition] = hit.offset if hit is not None else ends[tp.partition]
        if time_to is not None:
            found = consumer.offsets_for_times({tp: max(0, int((time_to + lookahead) * 1000)) for tp in tps})
            for tp in tps:
                hit = found.get(tp)
                if hit is not None:
                    ends[tp.partition] = hit.offset
        if all(starts[p] >= ends[p] for p in chosen) and any(endo[tp] > begin[tp] for tp in tps):
            notes.append("the broker's time index puts no record in this range: if the records' timestamps are "
                         "not close to the events' own times (e.g. a producer that leaves them to wall clock at a "
                         "bulk load), use --scan")
    elif scan:
        resolved_by = "scan"
    ranges = [PartitionRange(p, starts[p], max(starts[p], ends[p])) for p in chosen]
    return ReplayPlan(topic=topic, num_partitions=n, ranges=ranges, time_from=time_from, time_to=time_to,
                      tenants=tenant_list, lookback=lookback if time_from is not None else 0.0,
                      lookahead=lookahead if time_to is not None else 0.0, resolved_by=resolved_by, notes=notes)


# ---------------------------------------------------------------------------------------------- state files
def read_state_file(path: str | Path) -> tuple[dict[str, bytes], dict[str, float]]:
    """A state file: JSON lines ``{"tenant_id": ..., "snapshot": base64(TenantDetector.snapshot)}``.

    An optional line ``{"model_first_seen": {model: epoch seconds}}`` seeds the models' first-seen times.
    Other lines (e.g. ``{"format": "distillguard-state", "version": 1}``) are ignored.
    """
    tenants: dict[str, bytes] = {}
    models: dict[str, float] = {}
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
                if "tenant_id" in rec:
                    tenants[str(rec["tenant_id"])] = base64.b64decode(rec["snapshot"], validate=True)
                elif "model_first_seen" in rec:
                    models.update({str(k): float(v) for k, v in rec["model_first_seen"].items()})
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ReplayError(f"{path}:{n}: not a state-file line ({exc})") from exc
    return tenants, models


def write_state_file(path: str | Path, stages: Iterable[TenantStage], model_first_seen: dict[str, float]) -> int:
    """Write every tenant of ``stages`` as a state file (atomically); returns the number of tenants."""
    tmp = Path(f"{path}.tmp")
    n = 0
    with open(tmp, "wb") as f:
        f.write(orjson.dumps({"format": "distillguard-state", "version": STATE_FILE_VERSION}) + b"\n")
        f.write(orjson.dumps({"model_first_seen": dict(sorted(model_first_seen.items()))}) + b"\n")
        for stage in stages:
            det = stage.detector
            for tid in sorted(det.tenant_ids):
                f.write(orjson.dumps({"tenant_id": tid, "snapshot": base64.b64encode(det.snapshot(tid)).decode()})
                        + b"\n")
                n += 1
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return n


# ---------------------------------------------------------------------------------------------- outputs
class FileSink:
    """Alerts as JSON lines in a file; its position is the file size (truncated back to it on resume)."""

    kind = "file"

    def __init__(self, path: str | Path, position: int | None = None) -> None:
        self.path = Path(path)
        if position is None:
            self.f: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        else:
            self.f = open(self.path, "r+b") if self.path.exists() else open(self.path, "w+b")  # noqa: SIM115
            self.f.truncate(position)
            self.f.seek(position)
        # a device or pipe (/dev/null, a FIFO) takes the alerts but cannot be fsynced or resumed
        self.regular = stat.S_ISREG(os.fstat(self.f.fileno()).st_mode)

    def write(self, key: bytes, value: bytes) -> None:
        self.f.write(value + b"\n")

    def position(self) -> dict[str, Any]:
        self.f.flush()
        if self.regular:
            os.fsync(self.f.fileno())
        return {"kind": "file", "path": str(self.path), "position": self.f.tell()}

    def close(self) -> None:
        self.f.flush()
        self.f.close()


class TopicSink:
    """Alerts on a Kafka topic (key = alert subject, the live partitioner).

    Kafka topics cannot be truncated, so on resume the alerts a killed run already wrote after its last
    checkpoint are counted per partition and the same number of regenerated alerts (the replay is
    deterministic, so they are the same alerts in the same order) is not sent again.
    """

    kind = "topic"

    def __init__(self, settings: Settings, topic: str, resume_from: dict[int, int] | None = None) -> None:
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        from streams.clients import kafka_python_config

        cfg = kafka_python_config(settings)
        self._settings = settings
        self.topic = topic
        self.producer = KafkaProducer(acks="all", linger_ms=20, batch_size=256 * 1024, retries=5,
                                      max_in_flight_requests_per_connection=1, **cfg)
        probe = KafkaConsumer(group_id=None, enable_auto_commit=False, **cfg)
        try:
            parts = probe.partitions_for_topic(topic)
            deadline = time.time() + 30
            while not parts and time.time() < deadline:
                time.sleep(0.2)
                probe.topics()  # refresh metadata after creation
                parts = probe.partitions_for_topic(topic)
            if not parts:
                raise ReplayError(f"output topic {topic!r} does not exist")
            self.partitions = len(parts)
            self.skip: dict[int, int] = {}
            if resume_from is not None:
                tps = [TopicPartition(topic, p) for p in sorted(parts)]
                now = probe.end_offsets(tps)
                self.skip = {tp.partition: max(0, now[tp] - int(resume_from.get(tp.partition, 0))) for tp in tps}
        finally:
            probe.close()

    def write(self, key: bytes, value: bytes) -> None:
        p = partition_for(key, self.partitions)
        if self.skip.get(p):
            self.skip[p] -= 1  # already written by the interrupted run
            return
        self.producer.send(self.topic, key=key, value=value, partition=p)

    def position(self) -> dict[str, Any]:
        from kafka import KafkaConsumer, TopicPartition

        from streams.clients import kafka_python_config

        self.producer.flush()
        probe = KafkaConsumer(group_id=None, enable_auto_commit=False, **kafka_python_config(self._settings))
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            ends = probe.end_offsets(tps)
        finally:
            probe.close()
        # alerts still to be skipped were written before the checkpoint from the resumed run's point of view
        return {"kind": "topic", "topic": self.topic,
                "end_offsets": {str(tp.partition): ends[tp] - self.skip.get(tp.partition, 0) for tp in tps}}

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


def check_output_topic(settings: Settings, topic: str) -> None:
    """Refuse the live app's topics (events, alerts, DLQ, feedback, internal and changelog topics)."""
    live = {settings.events_topic, settings.alerts_topic, settings.dlq_topic, settings.feedback_topic}
    if topic in live or topic.startswith(f"{settings.app_id}-") or topic.startswith("__"):
        raise ReplayError(f"refusing to write replay alerts to {topic!r}: it belongs to the live pipeline "
                          "(promote reviewed results with `distillguard replay --promote`)")


# ---------------------------------------------------------------------------------------------- reading
class MergedReader:
    """Records of several partitions in (timestamp, partition, offset) order, fetched with assign + seek.

    Independent of fetch timing: the next record is always the smallest head among the partitions that
    still have records in their range, waiting for a partition's next fetch when its buffer is empty.
    """

    HIGH_WATER = 20000  # buffered records per partition before its fetching is paused

    def __init__(self, consumer: Any, topic: str, ranges: dict[int, tuple[int, int]], stall_seconds: float = 120.0):
        from kafka import TopicPartition

        self.c = consumer
        self.tps = {p: TopicPartition(topic, p) for p, (a, b) in ranges.items() if a < b}
        self.ends = {p: b for p, (_, b) in ranges.items()}
        self.bufs: dict[int, deque] = {p: deque() for p in self.tps}
        self.fetch_done: set[int] = set()
        self.paused: set[int] = set()
        self.stall = stall_seconds
        if self.tps:
            consumer.assign(list(self.tps.values()))
            for p, tp in self.tps.items():
                consumer.seek(tp, ranges[p][0])

    def _fill(self, need: int) -> None:
        """Fetch until partition ``need`` has a buffered record or has no more in its range."""
        c, bufs = self.c, self.bufs
        last = time.monotonic()
        while not bufs[need] and need not in self.fetch_done:
            want_pause = {p for p, b in bufs.items() if len(b) >= self.HIGH_WATER or p in self.fetch_done}
            if want_pause != self.paused:
                if want_pause - self.paused:
                    c.pause(*(self.tps[p] for p in want_pause - self.paused))
                if self.paused - want_pause:
                    c.resume(*(self.tps[p] for p in self.paused - want_pause))
                self.paused = want_pause
            got = c.poll(timeout_ms=500, max_records=20000)
            if got:
                last = time.monotonic()
            for tp, recs in got.items():
                p = tp.partition
                if p in self.fetch_done:
                    continue
                b, end = bufs[p], self.ends[p]
                for r in recs:
                    if r.offset >= end:
                        self.fetch_done.add(p)
                        break
                    b.append(r)
                if b and b[-1].offset + 1 >= end:
                    self.fetch_done.add(p)  # the range's last record is buffered
            # gaps (compaction, transaction markers) can jump the position past the end; judged only after a
            # poll that returned nothing, when the consumer holds no fetched-but-unreturned records
            # (under load its position can run ahead of what a poll has handed over)
            for p, tp in self.tps.items() if not got else ():
                if p not in self.fetch_done and not bufs[p] and c.position(tp) >= self.ends[p]:
                    self.fetch_done.add(p)
            if time.monotonic() - last > self.stall:
                raise ReplayError(f"no records from partition {need} for {self.stall:g}s "
                                  f"(position {c.position(self.tps[need])}, range end {self.ends[need]})")

    def __iter__(self) -> Any:
        heap: list[tuple[int, int, int]] = []
        for p in sorted(self.tps):
            self._fill(p)
            if self.bufs[p]:
                r = self.bufs[p][0]
                heap.append((r.timestamp, p, r.offset))
        heapq.heapify(heap)
        bufs = self.bufs
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            _, p, _ = pop(heap)
            b = bufs[p]
            rec = b.popleft()
            if not b:
                self._fill(p)
            if b:
                nxt = b[0]
                push(heap, (nxt.timestamp, p, nxt.offset))
            else:
                yield rec, True  # the partition's last record
                continue
            yield rec, False


# ---------------------------------------------------------------------------------------------- the run
@dataclass
class ReplayCounts:
    records: int = 0
    events: int = 0
    dead_letter: int = 0
    outside_range: int = 0
    other_tenants: int = 0
    alerts: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_severity: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("by_kind", "by_severity", "by_status"):
            d[k] = dict(sorted(getattr(self, k).items()))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReplayCounts:
        d = dict(d)
        for k in ("by_kind", "by_severity", "by_status"):
            d[k] = Counter(d.get(k, {}))
        return cls(**d)


class Replay:
    """One replay run: plan + isolated stages + output + checkpoint file.

    ``run()`` returns ``"complete"`` or ``"interrupted"`` (SIGINT/SIGTERM: a checkpoint is written at the
    last fully processed record and the run can be resumed).
    """

    def __init__(self, settings: Settings, plan: ReplayPlan, run_id: str, sink: Any, *,
                 config: DetectorConfig | None = None, checkpoint_path: str | Path | None = None,
                 checkpoint_events: int = 200_000, checkpoint_seconds: float = 30.0,
                 dead_letter: str | Path | None = None, finish: bool = True,
                 state: tuple[dict[str, bytes], dict[str, float]] | None = None,
                 save_state: str | Path | None = None, progress: Callable[[int], None] | None = None,
                 crash_after: int | None = None, crash_signal: int = signal.SIGKILL) -> None:
        from streams.ingest import make_codec

        self.settings = settings
        self.plan = plan
        self.run_id = run_id
        self.sink = sink
        self.config = config or DetectorConfig()
        self.codec = make_codec(settings)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.checkpoint_events = checkpoint_events
        self.checkpoint_seconds = checkpoint_seconds
        self.dead_letter_path = Path(dead_letter) if dead_letter else None
        self.finish = finish
        self.save_state = save_state
        self.progress = progress
        self.crash_after = crash_after
        self.crash_signal = crash_signal
        self.model_first_seen: dict[str, float] = {}
        self.stages = {r.partition: TenantStage(self.config, model_first_seen=self.model_first_seen)
                       for r in plan.ranges}
        self.cluster = ClusterStage(self.config)
        self.next = {r.partition: r.start for r in plan.ranges}
        self.had_events: set[int] = set()
        self.exhausted: set[int] = {r.partition for r in plan.ranges if r.start >= r.end}
        self.counts = ReplayCounts()
        self.elapsed_before = 0.0
        self.seeded_tenants = 0
        self._stop: str | None = None
        self._snap_cache: dict[int, dict[str, str]] = {p: {} for p in self.stages}
        self._dl: IO[bytes] | None = None
        self._dl_resume_pos: int | None = None
        self.options: dict[str, Any] = {}
        self.duration = 0.0
        if state is not None:
            self._seed(*state)

    # -- state
    def _seed(self, tenants: dict[str, bytes], models: dict[str, float]) -> None:
        self.model_first_seen.update(models)
        wanted = set(self.plan.tenants) if self.plan.tenants is not None else None
        for tid in sorted(tenants):
            if wanted is not None and tid not in wanted:
                continue
            p = partition_for(tid, self.plan.num_partitions)
            if p in self.stages:
                det = self.stages[p].detector
                det.restore(tid, tenants[tid])
                self.seeded_tenants += 1
                # no stage meta comes with a seed: the stream started no later than its tenants' first events
                det.stream_start = min(det.stream_start, det.tenant_first_ts(tid))

    def _stage_doc(self, p: int) -> dict[str, Any]:
        stage = self.stages[p]
        det = stage.detector
        cache = self._snap_cache[p]
        for tid in stage.drain_dirty():
            if tid in det:
                cache[tid] = base64.b64encode(det.snapshot(tid)).decode()
            else:
                cache.pop(tid, None)
        return {"meta": stage.meta(), "n_events": det._n_events, "n_late": det._n_late,
                "stats": dict(det._stats), "tenants": cache}

    def _load_stage(self, p: int, doc: dict[str, Any]) -> None:
        stage = self.stages[p]
        det = stage.detector
        for tid, b64 in doc["tenants"].items():
            det.restore(tid, base64.b64decode(b64))
        self._snap_cache[p] = dict(doc["tenants"])
        stage.load_meta(doc["meta"])  # the stage's clocks, and when its tenants are next advanced
        if "next_advance" in doc:  # a checkpoint of before the stage meta held these
            stage.max_ts = _unnum(doc["max_ts"])
            stage._next_advance = _unnum(doc["next_advance"])
            det._clock = _unnum(doc["clock"])
        det._n_events, det._n_late = doc["n_events"], doc["n_late"]
        det._stats.update(doc["stats"])
        stage.drain_dirty()

    # -- checkpoints
    def checkpoint(self, status: str = "running") -> None:
        if self.checkpoint_path is None:
            return
        out_pos = self.sink.position()
        dl_pos = None
        if self._dl is not None:
            self._dl.flush()
            os.fsync(self._dl.fileno())
            dl_pos = self._dl.tell()
        doc: dict[str, Any] = {
            "version": CHECKPOINT_VERSION, "run_id": self.run_id, "status": status,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "plan": self.plan.to_dict(), "options": self.options,
            "next_offsets": {str(p): o for p, o in self.next.items()},
            "exhausted": sorted(self.exhausted), "had_events": sorted(self.had_events),
            "counts": self.counts.to_dict(), "elapsed": self.elapsed_before + (time.monotonic() - self._t0),
            "output": out_pos, "dead_letter_position": dl_pos,
        }
        if status != "complete":
            doc["stages"] = {str(p): self._stage_doc(p) for p in sorted(self.stages)}
            doc["model_first_seen"] = self.model_first_seen
            doc["cluster"] = base64.b64encode(pickle.dumps(self.cluster, protocol=5)).decode()
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_name(self.checkpoint_path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(doc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.checkpoint_path)

    def load_checkpoint(self, doc: dict[str, Any]) -> None:
        """Continue from a checkpoint written by :meth:`checkpoint` (same plan)."""
        for p_s, sdoc in doc["stages"].items():
            self._load_stage(int(p_s), sdoc)
        self.model_first_seen.update(doc.get("model_first_seen", {}))
        self.cluster = pickle.loads(base64.b64decode(doc["cluster"]))  # noqa: S301 - our own checkpoint file
        self.next = {int(p): o for p, o in doc["next_offsets"].items()}
        self.exhausted = set(doc["exhausted"])
        self.had_events = set(doc["had_events"])
        self.counts = ReplayCounts.from_dict(doc["counts"])
        self.elapsed_before = float(doc.get("elapsed", 0.0))
        self._dl_resume_pos = doc.get("dead_letter_position") or 0

    # -- output
    def _emit(self, alerts: list[Alert], source: dict[str, Any] | None = None) -> None:
        counts = self.counts
        for alert in alerts:
            meta = {"replay_run_id": self.run_id}
            if source:
                meta.update(source)
            alert["metadata"] = meta
            subject = alert.get("tenant_id") or alert.get("cluster_id") or alert["alert_id"]
            self.sink.write(subject.encode(), orjson.dumps(alert))
            counts.alerts += 1
            counts.by_kind[alert["kind"]] += 1
            counts.by_severity[alert["severity"]] += 1
            counts.by_status[alert["status"]] += 1

    def _advance_cluster(self) -> None:
        """Close cluster windows at the minimum watermark over the partitions that can still send summaries."""
        wms = [s.watermark for p, s in self.stages.items() if p not in self.exhausted or p in self.had_events]
        if wms:
            self._emit(self.cluster.advance(min(wms)))

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop = signal.Signals(signum).name

    # -- main loop
    def run(self, consumer: Any) -> str:
        self._t0 = time.monotonic()
        if self.dead_letter_path is not None:
            pos = self._dl_resume_pos
            if pos is None:
                self._dl = open(self.dead_letter_path, "wb")  # noqa: SIM115
            else:
                self._dl = open(self.dead_letter_path, "r+b") if self.dead_letter_path.exists() \
                    else open(self.dead_letter_path, "w+b")  # noqa: SIM115
                self._dl.truncate(pos)
                self._dl.seek(pos)
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            result = self._loop(consumer)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if result == "complete":
            if self.save_state:
                write_state_file(self.save_state, [self.stages[p] for p in sorted(self.stages)],
                                 self.model_first_seen)
            if self.finish:
                for p in sorted(self.stages):
                    stage = self.stages[p]
                    self._emit(stage.finish())
                    for s in stage.drain_summaries():
                        self._emit(self.cluster.process(s))
                self._emit(self.cluster.finish())
            self.checkpoint("complete")
        else:
            self.checkpoint("interrupted")
        self.sink.close()
        if self._dl is not None:
            self._dl.close()
        self.duration = self.elapsed_before + (time.monotonic() - self._t0)
        return result

    def _loop(self, consumer: Any) -> str:
        plan = self.plan
        ranges = {r.partition: (self.next[r.partition], r.end) for r in plan.ranges if r.partition not in self.exhausted}
        reader = MergedReader(consumer, plan.topic, ranges)
        decode = self.codec.decode
        lo = plan.time_from if plan.time_from is not None else -math.inf
        hi = plan.time_to if plan.time_to is not None else math.inf
        lo_ms, hi_ms = lo * 1000, hi * 1000
        tenants = set(plan.tenants) if plan.tenants is not None else None
        tenant_keys = {t.encode() for t in tenants} if tenants is not None else None
        counts = self.counts
        stages = self.stages
        emit = self._emit
        cluster = self.cluster
        topic = plan.topic
        max_bytes = self.settings.max_event_bytes
        since_ckpt = 0
        last_ckpt = time.monotonic()
        progress = self.progress
        tick = 0
        crash_after = self.crash_after
        for rec, last in reader:
            p = rec.partition
            self.next[p] = rec.offset + 1
            counts.records += 1
            since_ckpt += 1
            key = rec.key
            if tenant_keys is not None and key is not None and key not in tenant_keys:
                counts.other_tenants += 1
            else:
                data = rec.value if rec.value is not None else b""
                try:
                    ev = decode(data)
                except DecodeError as exc:
                    # an invalid event has no trusted event time or tenant: it belongs to the range when its
                    # record timestamp does (and, with --tenant, its key names a selected tenant)
                    if lo_ms <= rec.timestamp < hi_ms and (tenant_keys is None or key is not None):
                        counts.dead_letter += 1
                        if self._dl is not None:
                            self._dl.write(orjson.dumps(dead_letter_record(
                                data, exc.reason, max_bytes, source_topic=topic, source_partition=p,
                                source_offset=rec.offset)) + b"\n")
                    else:
                        counts.outside_range += 1
                else:
                    ts = ev["ts"]
                    if ts < lo or ts >= hi:
                        counts.outside_range += 1
                    elif tenants is not None and ev["tenant_id"] not in tenants:
                        counts.other_tenants += 1
                    else:
                        counts.events += 1
                        stage = stages[p]
                        before = stage._next_advance
                        self.had_events.add(p)
                        alerts = stage.process(ev)
                        if alerts:
                            emit(alerts, {"source_topic": topic, "source_partition": p, "source_offset": rec.offset})
                        if stage.detector._summaries:
                            for s in stage.drain_summaries():
                                out = cluster.process(s)
                                if out:
                                    emit(out)
                        if stage._next_advance != before:
                            self._advance_cluster()
            if last:
                self.exhausted.add(p)
                self._advance_cluster()
            if progress is not None:
                tick += 1
                if tick >= 1000:
                    progress(tick)
                    tick = 0
            if crash_after is not None and counts.records >= crash_after:
                crash_after = None
                os.kill(os.getpid(), self.crash_signal)  # test hook: a crash (SIGKILL) or a stop (SIGTERM) mid-run
            if self._stop is not None:
                if progress is not None:
                    progress(tick)
                return "interrupted"
            if since_ckpt >= self.checkpoint_events or (
                    since_ckpt and time.monotonic() - last_ckpt >= self.checkpoint_seconds):
                self.checkpoint()
                since_ckpt = 0
                last_ckpt = time.monotonic()
        if progress is not None and tick:
            progress(tick)
        self.exhausted.update(stages)
        return "complete"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError as exc:
        raise ReplayError(f"no checkpoint file {path}") from exc
    except orjson.JSONDecodeError as exc:
        raise ReplayError(f"checkpoint file {path} is not valid JSON ({exc})") from exc
    if doc.get("version") != CHECKPOINT_VERSION:
        raise ReplayError(f"checkpoint file {path} has version {doc.get('version')}, this build reads "
                          f"{CHECKPOINT_VERSION}")
    return doc


def make_consumer(settings: Settings) -> Any:
    """A group-less kafka-python consumer for planning (time index, offsets); nothing is ever committed."""
    from kafka import KafkaConsumer

    from streams.clients import kafka_python_config

    return KafkaConsumer(group_id=None, enable_auto_commit=False, client_id="distillguard-replay",
                         **kafka_python_config(settings))


class FetchConsumer:
    """The bulk reader: a group-less aiokafka consumer behind kafka-python's synchronous method names.

    kafka-python decodes record batches in pure Python (about 15,000 records/s here with CRC checks,
    60,000 without); aiokafka's C record parser reads several hundred thousand records/s. The client
    gets the same connection and security settings (``kafka_python_config``; aiokafka takes the same
    keyword names). No group id: ``assign`` + ``seek``, offsets are never committed.
    """

    def __init__(self, settings: Settings) -> None:
        import asyncio

        from aiokafka import AIOKafkaConsumer

        from streams.clients import kafka_python_config

        import threading

        self._loop = asyncio.new_event_loop()
        # the loop runs in a thread of its own, so aiokafka keeps fetching while the stages work
        self._thread = threading.Thread(target=self._loop.run_forever, name="replay-fetch", daemon=True)
        self._thread.start()
        cfg = kafka_python_config(settings)

        async def start() -> Any:
            c = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, client_id="distillguard-replay",
                                 auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024,
                                 fetch_max_bytes=64 * 1024 * 1024, **cfg)
            await c.start()
            return c

        self._c = self._run(start())

    def _run(self, coro: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _sync(self, fn: Any, *args: Any) -> Any:
        """Call a synchronous aiokafka method inside the loop (some create futures)."""

        async def call() -> Any:
            return fn(*args)

        return self._run(call())

    def assign(self, tps: list[Any]) -> None:
        self._sync(self._c.assign, [self._tp(tp) for tp in tps])

    @staticmethod
    def _tp(tp: Any) -> Any:
        from aiokafka import TopicPartition

        return TopicPartition(tp.topic, tp.partition)

    def seek(self, tp: Any, offset: int) -> None:
        self._sync(self._c.seek, self._tp(tp), offset)

    def pause(self, *tps: Any) -> None:
        self._sync(self._c.pause, *(self._tp(t) for t in tps))

    def resume(self, *tps: Any) -> None:
        self._sync(self._c.resume, *(self._tp(t) for t in tps))

    def position(self, tp: Any) -> int:
        return int(self._run(self._c.position(self._tp(tp))))

    def poll(self, timeout_ms: int = 500, max_records: int | None = None) -> dict[Any, list[Any]]:
        return self._run(self._c.getmany(timeout_ms=timeout_ms, max_records=max_records))

    def close(self) -> None:
        try:
            self._run(self._c.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


# ---------------------------------------------------------------------------------------------- promotion
def read_alert_source(settings: Settings, source: str) -> list[bytes]:
    """Alert values from a JSONL file, or from a topic (``topic:NAME``, read group-less from the start)."""
    if not source.startswith("topic:"):
        return [line for line in Path(source).read_bytes().splitlines() if line.strip()]
    return [r.value for r in _read_topic(settings, source[len("topic:"):])]


def _read_topic(settings: Settings, topic: str) -> list[Any]:
    from kafka import TopicPartition

    c = make_consumer(settings)
    try:
        parts = c.partitions_for_topic(topic)
        if not parts:
            raise ReplayError(f"topic {topic!r} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        begin, end = c.beginning_offsets(tps), c.end_offsets(tps)
        ranges = {tp.partition: (begin[tp], end[tp]) for tp in tps}
    finally:
        c.close()
    f = FetchConsumer(settings)
    try:
        return [r for r, _ in MergedReader(f, topic, ranges)]
    finally:
        f.close()


def promote(settings: Settings, source: str, *, kinds: set[str] | None = None, dry_run: bool = False) -> dict[str, int]:
    """Copy reviewed replay alerts to the live alert topic, skipping alert ids already there.

    Alerts keep their ``metadata.replay_run_id`` (so consumers still see they came from a replay) and get
    ``metadata.promoted_at``. Key = alert subject, as the live workers send them.
    """
    from kafka import KafkaProducer

    from streams.clients import kafka_python_config

    alerts = [orjson.loads(v) for v in read_alert_source(settings, source)]
    live_ids = {orjson.loads(r.value).get("alert_id") for r in _read_topic(settings, settings.alerts_topic)
                if r.value}
    todo, seen = [], set()
    stats = {"read": len(alerts), "already_live": 0, "skipped_kind": 0, "promoted": 0}
    for a in alerts:
        if kinds and a.get("kind") not in kinds:
            stats["skipped_kind"] += 1
        elif a.get("alert_id") in live_ids or a.get("alert_id") in seen:
            stats["already_live"] += 1
        else:
            seen.add(a.get("alert_id"))
            todo.append(a)
    if dry_run:
        stats["would_promote"] = len(todo)
        return stats
    producer = KafkaProducer(acks="all", linger_ms=20, max_in_flight_requests_per_connection=1,
                             **kafka_python_config(settings))
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    try:
        for a in todo:
            a["metadata"] = {**(a.get("metadata") or {}), "promoted_at": now}
            subject = a.get("tenant_id") or a.get("cluster_id") or a["alert_id"]
            producer.send(settings.alerts_topic, key=subject.encode(), value=orjson.dumps(a))
            stats["promoted"] += 1
        producer.flush()
    finally:
        producer.close()
    return stats
