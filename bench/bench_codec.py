"""Decode benchmark: the schema-compiled codec against a bare ``orjson.loads`` loop over the same events.

Run: ``make bench`` (or ``python bench/bench_codec.py [N]``). Prints events/s of
both and their ratio; both are measured in this run, on this machine, so the
ratio is what to compare across machines.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson

from schemas import EventCodec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import make_events  # noqa: E402  (the same gateway-shaped events as the engine benchmark)


def rate(fn, lines: list[bytes], repeats: int = 3) -> float:
    """Best-of-``repeats`` events per second of ``fn`` over ``lines``."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for line in lines:
            fn(line)
        best = min(best, time.perf_counter() - t0)
    return len(lines) / best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    lines = make_events(n, tenants=2000, mode="fp")  # with gateway fingerprint/template/topic: ~21 fields
    codec = EventCodec()
    bare = rate(orjson.loads, lines)
    ours = rate(codec.decode, lines)
    avg = sum(map(len, lines)) / len(lines)
    print(f"codec benchmark: {n} events, {avg:.0f} bytes each on average")
    print(f"  bare orjson.loads : {bare:>12,.0f} events/s")
    print(f"  EventCodec.decode : {ours:>12,.0f} events/s")
    print(f"  ratio codec/bare  : {ours / bare:.3f}")


if __name__ == "__main__":
    main()
