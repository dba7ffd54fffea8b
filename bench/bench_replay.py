"""Replay benchmark (needs the local broker): ``distillguard replay`` beside the embedded engine, same events.

Run: ``python bench/bench_replay.py [EVENTS] [TENANTS]``. In one run on this machine it

1. generates gateway-shaped events (bench/bench_engine.make_events, metadata mode) into a JSONL file,
2. times the embedded engine over the file: ``EventCodec.decode`` + ``detectors.Engine.process`` + ``finish``
   in this process (what ``distillguard detect`` runs, without process start-up),
3. produces the same events to a private 6-partition topic (record timestamp = event time),
4. runs ``distillguard replay`` over the whole topic to a file as a real subprocess and takes its own
   measured duration (reading, decoding, per-partition stages, cluster stage, alert output, checkpoints;
   process start-up and planning excluded) from its JSON summary,

and prints both rates and their ratio (goal >= 0.5). Topics it creates are deleted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from kafka import KafkaProducer

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from bench_engine import make_events  # noqa: E402

from detectors import Engine  # noqa: E402
from distillguard.settings import Settings  # noqa: E402
from schemas import EventCodec  # noqa: E402
from streams.admin import create_topics, delete_topics  # noqa: E402
from streams.replay import parse_time  # noqa: E402
from tests.conftest import dg_env  # noqa: E402

BOOTSTRAP = f"127.0.0.1:{os.environ.get('DG_KAFKA_PORT', '19092')}"


def embedded(lines: list[bytes]) -> tuple[float, int]:
    from detectors.features import prompt_features

    codec = EventCodec(prompt_hook=prompt_features)
    engine = Engine()
    decode, process = codec.decode, engine.process
    t = time.perf_counter()
    alerts = 0
    for raw in lines:
        alerts += len(process(decode(raw)))
    alerts += len(engine.finish())
    return time.perf_counter() - t, alerts


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    tenants = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
    lines = make_events(n, tenants, "metadata", span_hours=2.0)
    tmp = Path(tempfile.mkdtemp(prefix="dg-bench-replay-"))
    (tmp / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    t_emb, n_alerts = min(embedded(lines) for _ in range(2))
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = dg_env(prefix, BOOTSTRAP, DISTILLGUARD_LOG_LEVEL="WARNING")
    settings = Settings(bootstrap_servers=BOOTSTRAP, events_topic=env["DISTILLGUARD_EVENTS_TOPIC"],
                        dlq_topic=env["DISTILLGUARD_DLQ_TOPIC"], alerts_topic=env["DISTILLGUARD_ALERTS_TOPIC"],
                        feedback_topic=env["DISTILLGUARD_FEEDBACK_TOPIC"], app_id=env["DISTILLGUARD_APP_ID"])
    create_topics(settings)
    try:
        producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=50, batch_size=512 * 1024, acks=1)
        for raw in lines:
            ev = orjson.loads(raw)
            ms = int(round(parse_time(ev["timestamp"]) * 1000))
            producer.send(settings.events_topic, key=ev["tenant_id"].encode(), value=raw, timestamp_ms=ms)
        producer.flush()
        producer.close()
        cmd = [sys.executable, "-m", "distillguard.cli", "replay", "--no-progress", "--json", "--output",
               str(tmp / "alerts.jsonl"), "--checkpoint", str(tmp / "ck.json")]
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, timeout=1800)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(f"replay failed: {proc.stderr.decode()[-2000:]}")
        summary = orjson.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        delete_topics(settings, [settings.events_topic, settings.dlq_topic, settings.alerts_topic,
                                 settings.feedback_topic])
    r_emb = n / t_emb
    r_rep = summary["events"] / summary["duration_seconds"]
    print(f"events: {n:,} over {tenants:,} tenants, 6 partitions")
    print(f"embedded engine (decode + Engine.process + finish): {r_emb:,.0f} events/s  ({t_emb:.2f}s)")
    print(f"distillguard replay (broker -> stages -> file):     {r_rep:,.0f} events/s  "
          f"({summary['duration_seconds']:.2f}s; {wall:.2f}s with process start and planning, "
          f"{n / wall:,.0f} events/s)")
    print(f"ratio replay / embedded: {r_rep / r_emb:.2f}  (goal >= 0.5)")
    print(f"alerts: embedded {n_alerts}, replay {summary['alerts']}")


if __name__ == "__main__":
    main()
