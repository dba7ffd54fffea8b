"""Streaming benchmarks on the local broker (``make bench-streaming`` starts and stops it).

1. Throughput: one ``distillguard worker`` over a filled 6-partition events topic, beside a bare
   aiokafka consumer that only decodes (``orjson.loads``) the same topic, in the same run; prints
   both rates and their ratio. Then the same worker with its tenant stage doing no detection over the
   same topic: the transport's ceiling, which bounds any detection core under this worker.
2. Latency at a steady load: events produced at a fixed rate by attack and benign tenants; for
   each alert, the time from the append of the event whose processing emitted it to the alert's
   own append (both topics use LogAppendTime); p50/p99.
3. State restore: a worker builds state for N tenants and checkpoints it; a second worker's start
   is timed until its changelog recovery completes, beside the start of a worker with no state;
   and the in-process restore rate of N tenant snapshots.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from detectors import synthetic as syn  # noqa: E402
from tests.conftest import dg_env, free_port  # noqa: E402

BOOTSTRAP = f"127.0.0.1:{os.environ.get('DG_KAFKA_PORT', '19092')}"
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


def create(prefix: str, partitions: int = 6) -> dict[str, str]:
    env = dg_env(prefix, BOOTSTRAP, DISTILLGUARD_DATA_DIR=tempfile.mkdtemp(prefix="dg-bench-"),
                 DISTILLGUARD_LOG_LEVEL="WARNING")
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(env[k], partitions, 1, topic_configs=APPEND_TIME)
                         for k in ("DISTILLGUARD_EVENTS_TOPIC", "DISTILLGUARD_DLQ_TOPIC",
                                   "DISTILLGUARD_ALERTS_TOPIC", "DISTILLGUARD_FEEDBACK_TOPIC")])
    admin.close()
    return env


def cleanup(prefix: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(prefix)])
    finally:
        admin.close()


def produce(topic: str, events, rate: float | None = None) -> int:
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, batch_size=512 * 1024)
    t0, n = time.perf_counter(), 0
    for ev in events:
        producer.send(topic, key=ev["tenant_id"].encode(), value=orjson.dumps({k: v for k, v in ev.items() if k != "ts"}))
        n += 1
        if rate and n % 100 == 0:
            ahead = n / rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush()
    producer.close()
    return n


# The transport ceiling: a worker whose tenant stage does no detection (every event is still fetched, decoded,
# validated, counted, checkpointed and acked). What it reaches bounds any detection core under this worker.
NO_DETECTION = """
import sys
import detectors.stages as stages

def process(self, event):
    self.rejected = None
    return []

stages.TenantStage.process = process
from distillguard.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Worker:
    def __init__(self, env: dict[str, str], log: Path, *, detection: bool = True) -> None:
        self.port = free_port()
        self.log = log
        self.started = time.perf_counter()
        entry = ["-m", "distillguard.cli"] if detection else ["-c", NO_DETECTION]
        self.proc = subprocess.Popen([sys.executable, *entry, "worker", "--web-port", str(self.port)],
                                     env=env, cwd=REPO, stdout=open(log, "wb"), stderr=subprocess.STDOUT)

    def metric(self, name: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                body = r.read().decode()
        except OSError:
            return 0.0
        return sum(float(m.group(1)) for m in re.finditer(rf'^{name}(?:{{[^}}]*result="valid"[^}}]*}})? (\S+)$', body, re.M))

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker process so far (Linux /proc; NaN elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_count(self, n: int, timeout: float = 600) -> tuple[float, float]:
        """(time of the first processed event, time all n were processed), perf_counter clock.

        Also keeps the worker's CPU time and event count at both points (``self.cpu_span``): on a shared
        machine CPU time per event varies less than wall time.
        """
        first = None
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            c = self.metric("distillguard_events_total")
            now = time.perf_counter()
            if c > 0 and first is None:
                first, first_cpu, first_count = now, self.cpu_seconds(), c
            if c >= n:
                if first is not None:
                    self.cpu_span = (c - first_count, self.cpu_seconds() - first_cpu)
                return first or now, now
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text()[-2000:])
            time.sleep(0.05)
        raise TimeoutError(f"worker processed {self.metric('distillguard_events_total')} of {n}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def bare_consumer(topic: str, n: int) -> float:
    """Seconds for a bare aiokafka consumer to fetch and ``orjson.loads`` n messages."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        seen, t0 = 0, None
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                if t0 is None:
                    t0 = time.perf_counter()
                for r in records:
                    orjson.loads(r.value)
                seen += len(records)
        return time.perf_counter() - t0
    finally:
        await consumer.stop()


def _worker_run(env: dict[str, str], n: int, log: Path, detection: bool) -> tuple[float, float]:
    """(events/s, CPU µs per event) of one worker over the whole topic, from its first processed event."""
    w = Worker(env, log, detection=detection)
    try:
        first, done = w.wait_count(n)
    finally:
        w.stop()
    counted, cpu_s = getattr(w, "cpu_span", (0, float("nan")))
    return n / (done - first), 1e6 * cpu_s / counted if counted else float("nan")


def throughput(n_events: int, tmp: Path, ceiling: bool = True) -> dict:
    """Bare consumer, worker and (``ceiling``) a worker without detection, each over the same topic; every
    worker run has its own consumer group (a new group id), so each reads the topic from its start."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = create(prefix)
    try:
        events = list(syn.metadata_stream(200, n_events // 200, seed=3))  # ~14 events per tenant window
        produce(env["DISTILLGUARD_EVENTS_TOPIC"], events)
        bare_s = asyncio.run(bare_consumer(env["DISTILLGUARD_EVENTS_TOPIC"], len(events)))
        rate, cpu = _worker_run(env, len(events), tmp / "throughput.log", detection=True)
        out = {"events": len(events), "bare_rate": len(events) / bare_s, "worker_rate": rate,
               "worker_cpu_us_per_event": cpu}
        if ceiling:
            env = {**env, "DISTILLGUARD_APP_ID": env["DISTILLGUARD_APP_ID"] + "-nodetect",
                   "DISTILLGUARD_DATA_DIR": tempfile.mkdtemp(prefix="dg-bench-")}
            out["ceiling_rate"], out["ceiling_cpu_us_per_event"] = _worker_run(
                env, len(events), tmp / "throughput-nodetect.log", detection=False)
        return out
    finally:
        cleanup(prefix)


def latency(rate: float, seconds: float, tmp: Path) -> dict:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = create(prefix)
    try:
        # 12 events per second of event time: at `rate` events/s of wall time, event time runs rate/12 times
        # faster than the clock, so windows close and alerts fire during the run
        events = syn.merge(*[syn.extraction(f"atk-{i}", hours=1, rate=2.0, seed=i) for i in range(4)],
                           *[syn.batch(f"batch-{i}", hours=1, rate=1.0, seed=10 + i) for i in range(4)])
        events = events[: int(rate * seconds)]
        w = Worker(env, tmp / "latency.log")
        try:
            time.sleep(8)
            produce(env["DISTILLGUARD_EVENTS_TOPIC"], events, rate=rate)
            w.wait_count(len(events))
            time.sleep(2)
        finally:
            w.stop()
        alerts = _read(env["DISTILLGUARD_ALERTS_TOPIC"])
        sources = {(p, o): ts for p, o, ts in _positions(env["DISTILLGUARD_EVENTS_TOPIC"])}
        lags = [rec.timestamp - sources[(a["metadata"]["source_partition"], a["metadata"]["source_offset"])]
                for rec, a in alerts if "metadata" in a and (a["metadata"]["source_partition"], a["metadata"]["source_offset"]) in sources]
        lags.sort()
        return {"alerts": len(lags), "p50_ms": statistics.median(lags) if lags else None,
                "p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else None, "rate": rate}
    finally:
        cleanup(prefix)


def _read(topic: str) -> list:
    c = KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest", consumer_timeout_ms=3000)
    out = [(r, orjson.loads(r.value)) for r in c]
    c.close()
    return out


def _positions(topic: str) -> list[tuple[int, int, int]]:
    c = KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest", consumer_timeout_ms=3000)
    out = [(r.partition, r.offset, r.timestamp) for r in c]
    c.close()
    return out


def restore(n_tenants: int, tmp: Path) -> dict:
    from detectors import TenantDetector

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = create(prefix)
    try:
        events = list(syn.metadata_stream(n_tenants, 3, seed=5))
        produce(env["DISTILLGUARD_EVENTS_TOPIC"], events)
        builder = Worker(env, tmp / "restore-build.log")
        try:
            builder.wait_count(len(events))
            time.sleep(8)  # past checkpoint_seconds: every partition checkpointed
        finally:
            builder.stop()
        recovering = Worker(env, tmp / "restore-recover.log")
        try:
            t_state = _ready_after(recovering, tmp / "restore-recover.log")
        finally:
            recovering.stop()
        empty_env = create(prefix + "e")
        empty = Worker(empty_env, tmp / "restore-empty.log")
        try:
            t_empty = _ready_after(empty, tmp / "restore-empty.log")
        finally:
            empty.stop()
            cleanup(prefix + "e")
        det = TenantDetector()
        for ev in events:
            det.process(ev)
        snaps = {t: det.snapshot(t) for t in det.tenant_ids}
        t0 = time.perf_counter()
        fresh = TenantDetector()
        for t, b in snaps.items():
            fresh.restore(t, b)
        in_process = time.perf_counter() - t0
        return {"tenants": n_tenants, "start_with_state_s": t_state, "start_empty_s": t_empty,
                "changelog_recovery_s": t_state - t_empty, "in_process_restore_s": in_process,
                "snapshot_bytes_avg": sum(map(len, snaps.values())) / len(snaps)}
    finally:
        cleanup(prefix)


def _ready_after(worker: Worker, log: Path, timeout: float = 600) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - worker.started
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(log.read_text()[-2000:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--tenants", type=int, default=100_000)
    ap.add_argument("--only", choices=["throughput", "latency", "restore"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dg-bench-"))
    if args.only in (None, "throughput"):
        r = throughput(args.events, tmp)
        print(f"streaming throughput: {r['events']} events on 6 partitions")
        print(f"  bare aiokafka consumer + orjson.loads : {r['bare_rate']:>10,.0f} events/s")
        print(f"  distillguard worker (1 process)       : {r['worker_rate']:>10,.0f} events/s")
        print(f"  ratio worker/bare                     : {r['worker_rate'] / r['bare_rate']:.3f}")
        print(f"  worker CPU per event                  : {r['worker_cpu_us_per_event']:>10,.0f} us")
        if "ceiling_rate" in r:
            print(f"  worker without detection (ceiling)    : {r['ceiling_rate']:>10,.0f} events/s, "
                  f"{r['ceiling_cpu_us_per_event']:,.0f} us CPU per event")
            print(f"  ratio ceiling/bare                    : {r['ceiling_rate'] / r['bare_rate']:.3f}")
    if args.only in (None, "latency"):
        r = latency(args.rate, args.seconds, tmp)
        print(f"latency at {r['rate']:.0f} events/s: {r['alerts']} alerts, event append -> alert append "
              f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
    if args.only in (None, "restore"):
        r = restore(args.tenants, tmp)
        print(f"state restore, {r['tenants']} tenants (avg snapshot {r['snapshot_bytes_avg']:.0f} bytes):")
        print(f"  worker start with state {r['start_with_state_s']:.1f} s, without {r['start_empty_s']:.1f} s "
              f"-> changelog recovery {r['changelog_recovery_s']:.1f} s")
        print(f"  in-process restore of all snapshots: {r['in_process_restore_s']:.2f} s")


if __name__ == "__main__":
    main()
