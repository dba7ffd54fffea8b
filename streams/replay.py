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
import contextlib
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
from distillguard.settings import Settings, topic_name_problem
from schemas import DecodeError
from schemas.dead_letter import dead_letter_record

CHECKPOINT_VERSION = 1
STATE_FILE_VERSION = 1
Alert = dict[str, Any]


class ReplayError(Exception):
    """A replay cannot be planned or run (bad range, missing topic, refused output ...)."""


class ReplayInterrupted(Exception):
    """SIGINT/SIGTERM arrived while the reader waited for records: stop at the last processed record."""


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
    topic_id: str | None = None  # the broker's id of the topic when planned: a recreated topic has another

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
    topic_id = current_topic_id(consumer, topic)
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
                    notes.append(f"partition {p}: offsets {a}-{starts[p] - 1} are no longer retained (the log "
                                 f"starts at {starts[p]}); reading from {starts[p]}")
                elif a > ends[p]:
                    notes.append(f"partition {p}: start {a} is past the log end {ends[p]}; nothing to read there")
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
    if offsets is None and (time_from is not None or time_to is not None):
        notes += _retention_notes(consumer, tps, begin, time_from - lookback if time_from is not None else None)
    ranges = [PartitionRange(p, starts[p], max(starts[p], ends[p])) for p in chosen]
    if ranges and not any(r.count for r in ranges) and not any(n.startswith("the broker's time index") for n in notes):
        notes.append("nothing to read: every partition's range is empty")
    return ReplayPlan(topic=topic, num_partitions=n, ranges=ranges, time_from=time_from, time_to=time_to,
                      tenants=tenant_list, lookback=lookback if time_from is not None else 0.0,
                      lookahead=lookahead if time_to is not None else 0.0, resolved_by=resolved_by, notes=notes,
                      topic_id=topic_id)


def current_topic_id(consumer: Any, topic: str) -> str | None:
    """The broker's topic id (KIP-516) from the consumer's metadata, or None (older broker or client)."""
    try:
        tid = consumer._client.cluster.topic_id(topic)
    except AttributeError:
        return None
    return str(tid) if tid is not None else None


def _retention_notes(consumer: Any, tps: list[Any], begin: dict[Any, int], scan_from: float | None) -> list[str]:
    """Notes for partitions whose deleted head may have held events of a time range.

    Retention (or delete-records) removed offsets ``0..begin-1``; when the oldest retained record is newer
    than where the range starts to be scanned, some of the range's events may be gone.
    """
    from detectors.common import iso

    gone = [tp for tp in tps if begin[tp] > 0]
    if not gone:
        return []
    first = consumer.offsets_for_times({tp: 0 for tp in gone})
    notes = []
    for tp in gone:
        hit = first.get(tp)
        if hit is None:  # nothing retained at all
            notes.append(f"partition {tp.partition}: offsets 0-{begin[tp] - 1} are no longer retained and nothing "
                         "newer is in the log; events of the range may be missing")
        elif scan_from is None or hit.timestamp > scan_from * 1000:
            notes.append(f"partition {tp.partition}: offsets 0-{begin[tp] - 1} are no longer retained; the oldest "
                         f"retained record is of {iso(hit.timestamp / 1000)}, after the range's start"
                         + (" (minus the lookback)" if scan_from is not None else "")
                         + ": events of the range may be missing")
    return notes


def check_resume(consumer: Any, plan: ReplayPlan, next_offsets: dict[int, int], exhausted: set[int], *,
                 accept_gap: bool = False) -> list[str]:
    """Check that the records a resumed run still has to read are in the log; returns notes.

    The read itself would not notice: a fetch below the log start is an "offset out of range" that a
    consumer resets, and a recreated topic starts again at offset 0, so records would be skipped silently.
    Missing records are an error naming the partition and offsets, unless ``accept_gap`` (then the
    partition continues at its log start and a note says what was skipped).
    """
    from kafka import TopicPartition

    parts = consumer.partitions_for_topic(plan.topic)
    if not parts:
        raise ReplayError(f"topic {plan.topic!r} no longer exists: the run cannot be resumed")
    now_id = current_topic_id(consumer, plan.topic)
    if plan.topic_id and now_id and now_id != plan.topic_id:
        raise ReplayError(f"topic {plan.topic!r} was deleted and recreated since the run was planned (topic id "
                          f"{plan.topic_id}, now {now_id}): its offsets name other records; start a new run")
    todo = [r for r in plan.ranges if r.partition not in exhausted and next_offsets[r.partition] < r.end]
    missing = sorted({r.partition for r in todo} - set(parts))
    if missing:
        raise ReplayError(f"topic {plan.topic!r} has no partition {missing[0]} any more: the run cannot be resumed")
    tps = {r.partition: TopicPartition(plan.topic, r.partition) for r in todo}
    begin = consumer.beginning_offsets(list(tps.values())) if tps else {}
    end = consumer.end_offsets(list(tps.values())) if tps else {}
    notes = []
    for r in todo:
        p, tp, nxt = r.partition, tps[r.partition], next_offsets[r.partition]
        if end[tp] < r.end:
            raise ReplayError(f"partition {p} of {plan.topic!r} now ends at offset {end[tp]}, before the planned "
                              f"range end {r.end}: the topic was deleted and recreated (or truncated); start a new run")
        if begin[tp] > nxt:
            lost_to = min(begin[tp], r.end) - 1
            if not accept_gap:
                raise ReplayError(f"partition {p} of {plan.topic!r}: offsets {nxt}-{lost_to} are no longer retained "
                                  f"(the log now starts at {begin[tp]}); resume with --accept-gap to skip them")
            notes.append(f"partition {p}: skipping offsets {nxt}-{lost_to}, no longer retained (--accept-gap)")
            next_offsets[p] = min(begin[tp], r.end)
    return notes


# ---------------------------------------------------------------------------------------------- state files
def read_state_file(path: str | Path, config: DetectorConfig | None = None) -> tuple[dict[str, bytes], dict[str, float]]:
    """A state file: JSON lines ``{"tenant_id": ..., "snapshot": base64(TenantDetector.snapshot)}``.

    An optional line ``{"model_first_seen": {model: epoch seconds}}`` seeds the models' first-seen times.
    Other lines (e.g. ``{"format": "distillguard-state", "version": 1}``) are ignored. Every snapshot is
    restored once into a scratch detector here, so a corrupt one is reported with its line number before
    the replay reads anything.
    """
    tenants: dict[str, bytes] = {}
    models: dict[str, float] = {}
    scratch: TenantStage | None = None
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
                if "tenant_id" in rec:
                    tid, snap = str(rec["tenant_id"]), base64.b64decode(rec["snapshot"], validate=True)
                elif "model_first_seen" in rec:
                    models.update({str(k): float(v) for k, v in rec["model_first_seen"].items()})
                    continue
                else:
                    continue
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ReplayError(f"{path}:{n}: not a state-file line ({exc})") from exc
            if scratch is None or len(scratch.detector) >= 1000:  # bounds the scratch's memory
                scratch = TenantStage(config or DetectorConfig(), model_first_seen={})
            try:
                scratch.detector.restore(tid, snap)
            except Exception as exc:  # whatever a corrupt snapshot raises, it is this line's problem
                raise ReplayError(f"{path}:{n}: tenant snapshot cannot be restored "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from exc
            tenants[tid] = snap
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
def resume_file_problem(path: str | Path, position: int, what: str) -> str | None:
    """Why an output file cannot be continued at ``position`` (missing, or shorter), else None.

    Truncating a missing or short file "back" to the checkpoint's size would pad it with NUL bytes: the
    file was moved, replaced or damaged since, and its alerts are not the run's any more.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (f"{what} {path} is missing (the checkpoint expects {position} bytes of this run's output): "
                "put it back, or start a new run")
    if not stat.S_ISREG(st.st_mode):
        return None  # a device (/dev/null) or FIFO: nothing to continue
    if st.st_size < position:
        return (f"{what} {path} has {st.st_size} bytes, fewer than the {position} the checkpoint recorded: "
                "it is not this run's output any more; put the original back, or start a new run")
    return None


def reopen_at(path: str | Path, position: int, what: str) -> IO[bytes]:
    """Open an output file of an interrupted run and cut it back to the checkpoint's ``position``."""
    problem = resume_file_problem(path, position, what)
    if problem:
        raise ReplayError(problem)
    f = open(path, "r+b")  # noqa: SIM115 - the caller closes it
    if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.truncate(position)
        f.seek(position)
    return f


class FileSink:
    """Alerts as JSON lines in a file; its position is the file size (truncated back to it on resume)."""

    kind = "file"

    def __init__(self, path: str | Path, position: int | None = None) -> None:
        self.path = Path(path)
        if position is None:
            self.f: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        else:
            self.f = reopen_at(self.path, position, "output file")
        # a device or pipe (/dev/null, a FIFO) takes the alerts but cannot be fsynced or resumed
        self.regular = stat.S_ISREG(os.fstat(self.f.fileno()).st_mode)

    def write(self, key: bytes, value: bytes) -> None:
        self.f.write(value + b"\n")

    def position(self) -> dict[str, Any]:
        self.f.flush()
        if self.regular:
            os.fsync(self.f.fileno())
        return {"kind": "file", "path": str(self.path), "position": self.f.tell()}

    def committed(self) -> None:
        """The checkpoint with :meth:`position` is on disk (nothing to do for a file)."""

    def unsettled(self) -> dict[str, Any] | None:
        """What an abandoned run leaves for the checkpoint: nothing (resume truncates the file back)."""
        return None

    def close(self) -> None:
        self.f.flush()
        self.f.close()


def flush_producer(producer: Any, timeout: float | None = None) -> None:
    """``producer.flush()``, riding out kafka-python's spurious "Future not done" while it splits a batch the
    topic refused as too large; the records' own futures then say which sends failed."""
    from kafka.errors import KafkaError, KafkaTimeoutError

    for _ in range(100):
        try:
            producer.flush(timeout)
            return
        except KafkaTimeoutError:
            raise
        except KafkaError:
            time.sleep(0.1)
    producer.flush(timeout)


class TopicSink:
    """Alerts on a Kafka topic (key = alert subject, the live partitioner).

    Kafka topics cannot be truncated, so on resume the alerts already on the topic after the checkpoint
    are not sent again. The sink numbers the alerts of each partition since the last checkpoint (the
    replay is deterministic: the same numbers are the same alerts). A killed run wrote a prefix of them
    (counted from the topic's end offsets); a run whose sends failed, or that stopped before it could
    checkpoint, records in the checkpoint exactly which numbers reached the topic (``written_after``).
    Every send is checked: a failed one stops the run with an error, never a "complete".
    """

    kind = "topic"

    def __init__(self, settings: Settings, topic: str, resume_from: dict[int, int] | None = None,
                 written_after: dict[int, list[int]] | None = None) -> None:
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        from streams.clients import kafka_python_config

        cfg = kafka_python_config(settings)
        self._settings = settings
        self.topic = topic
        self.error: BaseException | None = None
        self.n: dict[int, int] = {}  # alerts emitted per partition since the checkpoint
        self.skip: dict[int, set[int]] = {}  # their numbers already on the topic (written by an earlier session)
        self.acked: dict[int, set[int]] = {}  # their numbers this session sent and the broker acknowledged
        self._next_base: dict[int, int] = {}
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
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            now = {tp.partition: n for tp, n in probe.end_offsets(tps).items()}
        finally:
            probe.close()
        if resume_from is None:
            self.base = now
            return
        if set(now) != {int(p) for p in resume_from}:  # alerts are numbered per partition by key: a new count
            raise ReplayError(f"output topic {topic!r} has {len(now)} partitions, the interrupted run wrote to "
                              f"{len(resume_from)}: resuming would send alerts again or skip them")
        self.base = {p: int(resume_from.get(p, 0)) for p in now}
        for p, end in now.items():
            written = set(written_after.get(p, ())) if written_after else set()
            extra = end - self.base[p] - len(written)
            if extra < 0:
                raise ReplayError(f"output topic {topic!r} partition {p} holds fewer records ({end}) than the "
                                  "checkpoint recorded: was it deleted or recreated? Start a new run")
            i = 0
            while extra:  # a session killed after this checkpoint sent, in order, the numbers not yet written
                if i not in written:
                    written.add(i)
                    extra -= 1
                i += 1
            if written:
                self.skip[p] = written

    def _acked(self, p: int, i: int, _meta: Any) -> None:
        self.acked.setdefault(p, set()).add(i)

    def _failed(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc

    def _raise(self) -> None:
        exc = self.error
        raise ReplayError(f"cannot write alerts to topic {self.topic!r}: {type(exc).__name__}: {exc}; the run stopped "
                          "at its last checkpoint (resume after fixing the cause: alerts already on the topic are "
                          "not sent twice)")

    def write(self, key: bytes, value: bytes) -> None:
        from kafka.errors import KafkaError

        if self.error is not None:
            self._raise()
        p = partition_for(key, self.partitions)
        i = self.n.get(p, 0)
        self.n[p] = i + 1
        if i in self.skip.get(p, ()):
            return  # already written by an interrupted session
        try:
            fut = self.producer.send(self.topic, key=key, value=value, partition=p)
        except KafkaError as exc:  # e.g. a record over max_request_size, refused before it is sent
            self._failed(exc)
            self._raise()
        fut.add_callback(self._acked, p, i)
        fut.add_errback(self._failed)

    def pending(self) -> bool:
        """Alerts of an earlier session are on the topic ahead of this run: its position is not end offsets yet."""
        return any(s and max(s) >= self.n.get(p, 0) for p, s in self.skip.items())

    def position(self) -> dict[str, Any] | None:
        """The topic's end offsets once every alert emitted so far is on it; None while :meth:`pending`."""
        from kafka import KafkaConsumer, TopicPartition

        from streams.clients import kafka_python_config

        self._flush()
        if self.pending():
            return None
        probe = KafkaConsumer(group_id=None, enable_auto_commit=False, **kafka_python_config(self._settings))
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            ends = probe.end_offsets(tps)
        finally:
            probe.close()
        self._next_base = {tp.partition: ends[tp] for tp in tps}
        return {"kind": "topic", "topic": self.topic,
                "end_offsets": {str(tp.partition): ends[tp] for tp in tps}}

    def committed(self) -> None:
        """The checkpoint with the last :meth:`position` is on disk: number the following alerts from there."""
        self.base, self.n, self.skip, self.acked = self._next_base, {}, {}, {}

    def unsettled(self) -> dict[str, Any]:
        """For an abandoned run: which numbers since the checkpoint are on the topic (after a last flush)."""
        with contextlib.suppress(Exception):  # what did not reach the topic is simply not listed
            flush_producer(self.producer, timeout=30)
        out = {}
        # (copies: the producer's I/O thread may still be adding acknowledgements)
        for p in set(self.skip) | set(self.acked):
            nums = set(self.skip.get(p, ())) | set(self.acked.get(p, ()))
            if nums:
                out[str(p)] = sorted(nums)
        return {"written_after": out}

    def _flush(self) -> None:
        """Wait until every alert sent so far is acknowledged; a failed one (now or earlier) is a ReplayError."""
        from kafka.errors import KafkaError

        try:
            flush_producer(self.producer)
        except KafkaError as exc:
            self._failed(exc)
        if self.error is not None:
            self._raise()

    def close(self) -> None:
        self._flush()
        self.producer.close()

    def abandon(self) -> None:
        """Close without raising (an error is already being reported)."""
        with contextlib.suppress(Exception):
            self.producer.close(timeout=5)


def live_topics(settings: Settings) -> set[str]:
    """Every topic the live pipeline reads or writes (besides ``<app_id>-*`` internal ones)."""
    return {settings.events_topic, settings.alerts_topic, settings.dlq_topic, settings.feedback_topic,
            settings.notifications_topic, settings.ocsf_topic, settings.ecs_topic,
            *settings.alert_format_topics().values()}


def check_output_topic(settings: Settings, topic: str, source_topic: str | None = None) -> None:
    """Refuse the live app's topics (events, alerts in every format, DLQ, feedback, notifications, internal and
    changelog topics) and the replayed topic itself: replay output there would reach consumers as live data."""
    problem = topic_name_problem(topic)
    if problem:
        raise ReplayError(f"output topic {topic!r} {problem}")
    if topic == source_topic:
        raise ReplayError(f"refusing to write replay alerts to {topic!r}: it is the topic being replayed")
    if topic in live_topics(settings) or topic.startswith(f"{settings.app_id}-") or topic.startswith("__"):
        raise ReplayError(f"refusing to write replay alerts to {topic!r}: it belongs to the live pipeline "
                          "(promote reviewed results with `distillguard replay --promote`)")


def topic_records(consumer: Any, topic: str) -> int | None:
    """Records retained on ``topic`` (None when it does not exist)."""
    from kafka import TopicPartition

    parts = consumer.partitions_for_topic(topic)
    if not parts:
        return None
    tps = [TopicPartition(topic, p) for p in parts]
    begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
    return sum(end[tp] - begin[tp] for tp in tps)


# ---------------------------------------------------------------------------------------------- reading
class MergedReader:
    """Records of several partitions in (timestamp, partition, offset) order, fetched with assign + seek.

    Independent of fetch timing: the next record is always the smallest head among the partitions that
    still have records in their range, waiting for a partition's next fetch when its buffer is empty.
    """

    HIGH_WATER = 20000  # buffered records per partition before its fetching is paused

    def __init__(self, consumer: Any, topic: str, ranges: dict[int, tuple[int, int]], stall_seconds: float = 120.0,
                 stop: Callable[[], bool] | None = None):
        from kafka import TopicPartition

        self.stop = stop  # asked before every poll: a stop request must not wait for a stalled partition
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
            if self.stop is not None and self.stop():
                raise ReplayInterrupted
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
        self._resumed = False
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
        if out_pos is None:  # alerts of an earlier session still ahead: keep the checkpoint those are counted from
            if status == "complete":
                raise ReplayError(f"output topic {self.sink.topic!r} holds more alerts after the checkpoint than "
                                  "this run produced: it was written by something else")
            if status != "running":
                self._mark_checkpoint(status)
            return
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
        self._write_checkpoint(doc)
        self.sink.committed()

    def _write_checkpoint(self, doc: dict[str, Any]) -> None:
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_name(self.checkpoint_path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(doc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.checkpoint_path)

    def _mark_checkpoint(self, status: str) -> None:
        """Keep the last checkpoint's state, but record what this session left on the output since it.

        Used when the run stops where no new checkpoint can be written (a failed send, or a stop while
        alerts of an earlier session were still ahead): the resumed run then skips exactly those alerts.
        """
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return
        doc = orjson.loads(self.checkpoint_path.read_bytes())
        if doc.get("status") == "complete":
            return
        doc["status"] = status
        info = self.sink.unsettled()
        if info:
            doc["output"] = {**doc["output"], **info}
        self._write_checkpoint(doc)

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
        self._resumed = True

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
        """Read the plan to its end (``"complete"``) or to a stop signal (``"interrupted"``).

        An error (a failed alert send, records no longer retained ...) propagates after the checkpoint
        file was told what this session left on the output, so the run stays resumable and never
        reports complete.
        """
        self._t0 = time.monotonic()
        try:
            return self._run(consumer)
        except BaseException:
            try:
                self._mark_checkpoint("failed")
            except Exception:  # noqa: BLE001 - the error being raised is the one to report; the last checkpoint stays
                pass
            finally:
                if hasattr(self.sink, "abandon"):
                    self.sink.abandon()
                if self._dl is not None:
                    self._dl.close()
            raise

    def _run(self, consumer: Any) -> str:
        if self.dead_letter_path is not None:
            pos = self._dl_resume_pos
            if pos is None:
                self._dl = open(self.dead_letter_path, "wb")  # noqa: SIM115
            else:
                self._dl = reopen_at(self.dead_letter_path, pos, "dead-letter file")
        if not self._resumed:
            self.checkpoint()  # at once: the run is resumable (and its checkpoint path writable) from the start
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
        reader = MergedReader(consumer, plan.topic, ranges, stop=lambda: self._stop is not None)
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
        for rec, last in _until_stopped(reader):
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
        if self._stop is not None:  # the reader gave up waiting for records
            return "interrupted"
        self.exhausted.update(stages)
        return "complete"


def _until_stopped(reader: MergedReader) -> Any:
    """The reader's records until it is exhausted or a stop request ends its wait for the next fetch."""
    try:
        yield from reader
    except ReplayInterrupted:
        return


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError as exc:
        raise ReplayError(f"no checkpoint file {path}") from exc
    except OSError as exc:
        raise ReplayError(f"cannot read checkpoint file {path}: {exc.strerror or exc}") from None
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
            # "none": a planned offset that retention deleted meanwhile is an error, never a silent jump
            c = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, client_id="distillguard-replay",
                                 auto_offset_reset="none", max_partition_fetch_bytes=8 * 1024 * 1024,
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
        from aiokafka.errors import OffsetOutOfRangeError

        try:
            return self._run(self._c.getmany(timeout_ms=timeout_ms, max_records=max_records))
        except OffsetOutOfRangeError as exc:
            lost = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            where = ", ".join(f"partition {tp.partition} offset {off}" for tp, off in lost.items()) or str(exc)
            raise ReplayError(f"records to replay are no longer retained ({where}: deleted by retention or "
                              "delete-records since the plan); the run stopped at its last checkpoint: resume "
                              "with --accept-gap to skip them") from None

    def close(self) -> None:
        try:
            self._run(self._c.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


# ---------------------------------------------------------------------------------------------- promotion
PROMOTE_PROBLEMS_SHOWN = 20


def read_alert_source(settings: Settings, source: str) -> list[tuple[str, bytes]]:
    """``(where, value)`` of the records of a JSONL file (``line N``) or a topic (``topic:NAME``, read
    group-less from the start; ``partition P offset O``)."""
    if not source.startswith("topic:"):
        return [(f"line {n}", line) for n, line in enumerate(Path(source).read_bytes().splitlines(), 1)
                if line.strip()]
    return [(f"partition {r.partition} offset {r.offset}", r.value or b"")
            for r in _read_topic(settings, source[len("topic:"):])]


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


def replay_alert_problem(value: bytes, validator: Any) -> str | None:
    """Why one record is not a replay alert that may go to the live topic, else None.

    The reason names fields and rules only, never a value: the record can be anything (a usage event with
    its prompt text, say), and the message ends up in terminals and logs.
    """
    try:
        alert = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "not JSON"
    if not isinstance(alert, dict):
        return "not a JSON object"
    errors = sorted(validator.iter_errors(alert), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        field_name = ".".join(str(x) for x in e.absolute_path) or "the record"
        if e.validator == "required":
            missing = [k for k in e.validator_value if k not in (e.instance if isinstance(e.instance, dict) else {})]
            why = f"{field_name}: missing {', '.join(missing[:5])}" if e.absolute_path else \
                f"missing {', '.join(missing[:5])}"
        else:
            why = f"{field_name}: fails the alert schema's {e.validator!r} rule"
        return "not a contract alert (" + why + (f"; {len(errors) - 1} more problems" if len(errors) > 1 else "") + ")"
    meta = alert.get("metadata")
    if not isinstance(meta, dict) or not meta.get("replay_run_id"):
        return "not a replay alert (no metadata.replay_run_id)"
    # the schema allows more fields than an alert has (its top level and ``metadata`` are open): a field the
    # replay does not write could carry anything, prompt text included, to the live topic
    extra = sorted(set(alert) - set(validator.schema["properties"])) + sorted(f"metadata.{k}" for k in set(meta) - _META)
    if extra:
        names = ", ".join(repr(k[:40]) for k in extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        return f"fields a replay alert does not have: {names}"
    if any(not isinstance(v, (str, int)) or isinstance(v, bool) for v in meta.values()):
        return "metadata: values must be strings or integers"
    return None


# what a replay (and a promotion) writes into an alert's ``metadata``
_META = frozenset({"replay_run_id", "source_topic", "source_partition", "source_offset", "promoted_at"})


def promote(settings: Settings, source: str, *, kinds: set[str] | None = None, dry_run: bool = False) -> dict[str, int]:
    """Copy reviewed replay alerts to the live alert topic, skipping alert ids already there.

    Every record is checked against the alert schema (and must carry ``metadata.replay_run_id``) before
    anything is sent: one bad record refuses the whole promotion, since the live topic pages people.
    Alerts keep their ``metadata.replay_run_id`` (so consumers still see they came from a replay) and get
    ``metadata.promoted_at``. Key = alert subject, as the live workers send them. Every send is checked.
    """
    import jsonschema
    from kafka import KafkaProducer

    from schemas.codec import load_schema
    from streams.clients import kafka_python_config

    records = read_alert_source(settings, source)
    validator = jsonschema.Draft202012Validator(load_schema("alert"),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    problems = [f"{where}: {why}" for where, value in records if (why := replay_alert_problem(value, validator))]
    if problems:
        shown = problems[:PROMOTE_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        raise ReplayError(f"--promote {source}: {len(problems)} of {len(records)} records are not replay alerts; "
                          "nothing was promoted\n" + "\n".join(f"  {line}" for line in shown)
                          + (f"\n  ... and {more} more" if more else ""))
    alerts = [orjson.loads(v) for _, v in records]
    live_ids = set()
    for r in _read_topic(settings, settings.alerts_topic):
        try:
            live_ids.add(orjson.loads(r.value).get("alert_id"))
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            continue  # not an alert: it cannot hold an id to skip
    todo, seen = [], set()
    stats = {"read": len(alerts), "already_live": 0, "skipped_kind": 0, "promoted": 0}
    for a in alerts:
        if kinds and a.get("kind") not in kinds:
            stats["skipped_kind"] += 1
        elif a["alert_id"] in live_ids or a["alert_id"] in seen:
            stats["already_live"] += 1
        else:
            seen.add(a["alert_id"])
            todo.append(a)
    if dry_run:
        stats["would_promote"] = len(todo)
        return stats
    producer = KafkaProducer(acks="all", linger_ms=20, max_in_flight_requests_per_connection=1,
                             **kafka_python_config(settings))
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    futures = []
    try:
        for a in todo:
            a["metadata"] = {**(a.get("metadata") or {}), "promoted_at": now}
            subject = a.get("tenant_id") or a.get("cluster_id") or a["alert_id"]
            futures.append(producer.send(settings.alerts_topic, key=subject.encode(), value=orjson.dumps(a)))
        flush_producer(producer)
    except Exception as exc:  # noqa: BLE001 - a send refused before it left (e.g. too large) ends the promotion
        raise ReplayError(f"cannot promote to {settings.alerts_topic!r}: {type(exc).__name__}: {exc}; promote "
                          "again after fixing the cause (alert ids already live are skipped)") from None
    finally:
        producer.close()
    failed = [f.exception for f in futures if f.failed()]
    stats["promoted"] = len(futures) - len(failed)
    if failed:
        raise ReplayError(f"{len(failed)} of {len(futures)} alerts could not be sent to {settings.alerts_topic!r} "
                          f"({type(failed[0]).__name__}: {failed[0]}); promote again after fixing the cause "
                          "(alert ids already live are skipped)")
    return stats
