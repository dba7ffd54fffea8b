"""Cardinality flood: the embedded engine with a tenant cap over a flood of distinct tenant ids.

Run: ``python bench/bench_flood.py [FLOOD_TENANTS] [CAP]`` (``make soak`` runs 1,000,000 with a cap of
20,000). One event per flood tenant (every tenth comes back an hour later, restored from the spill store), interleaved in event time with real tenants (an extraction attack
and benign chat/batch traffic) over six hours. Evicted tenants spill to RocksDB (``distillguard.spill``).
Prints one JSON line: events, seconds, RSS before the stream and its peak during it (sampled), the
engine's counters, and the real tenants' alerts (so a caller can compare them with a run without flood).
"""

from __future__ import annotations

import gc
import heapq
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors import Engine  # noqa: E402
from detectors import synthetic as syn  # noqa: E402
from distillguard.spill import SpillStore  # noqa: E402

HOURS = 6.0
REAL = ("atk", "chat-1", "chat-2", "batch-1")


def real_events() -> list[dict[str, Any]]:
    """The real tenants: one extraction attack among benign ones."""
    return syn.merge(syn.extraction("atk", start=syn.T0 + 3600, hours=3, rate=0.5, seed=1),
                     syn.chat("chat-1", start=syn.T0, hours=HOURS, seed=2),
                     syn.chat("chat-2", start=syn.T0, hours=HOURS, seed=3),
                     syn.batch("batch-1", start=syn.T0, hours=HOURS, rate=0.2, seed=4))


def flooded(n: int, real: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``real`` with ``n`` flood tenants interleaved in event time; every tenth returns once an hour later."""
    step = HOURS * 3600 / max(n, 1)
    first = (syn._event(f"flood-{i:07d}", 0, syn.T0 + i * step) for i in range(n))
    again = (syn._event(f"flood-{i:07d}", 1, syn.T0 + i * step + 3600) for i in range(0, n, 10))
    return heapq.merge(real, first, again, key=lambda e: e["ts"])


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run(n: int, cap: int) -> dict[str, Any]:
    real = real_events()
    gc.collect()
    before = peak = rss_mb()
    started = time.perf_counter()
    with SpillStore() as spill:
        engine = Engine(max_tenants=cap, store=spill) if cap else Engine()
        alerts: list[dict[str, Any]] = []
        for k, ev in enumerate(flooded(n, real)):
            alerts += engine.process(ev)
            if k % 10_000 == 0:
                peak = max(peak, rss_mb())
        alerts += engine.finish()
        peak = max(peak, rss_mb())
        stats = {k: v for k, v in engine.stats.items() if k != "cluster"}
    seconds = time.perf_counter() - started
    mine = [a for a in alerts if a.get("tenant_id") in REAL]
    return {"flood_tenants": n, "cap": cap, "events": stats["events"], "seconds": round(seconds, 1),
            "events_per_second": round(stats["events"] / seconds), "rss_before_mb": round(before),
            "rss_peak_mb": round(peak), "stats": stats,
            "real_alerts": [orjson.dumps(a, option=orjson.OPT_SORT_KEYS).decode() for a in mine]}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    cap = int(sys.argv[2]) if len(sys.argv) > 2 else 5_000
    print(orjson.dumps(run(n, cap)).decode())
