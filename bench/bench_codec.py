"""Decode benchmark: the schema-compiled codec against a bare ``orjson.loads`` loop over the same events.

Run: ``make bench`` (or ``python bench/bench_codec.py [N]``). Prints events/s of
both and their ratio; both are measured in this run, on this machine, so the
ratio is what to compare across machines.
"""

from __future__ import annotations

import random
import sys
import time

import orjson

from schemas import EventCodec


def make_events(n: int, seed: int = 1) -> list[bytes]:
    """Metadata-only usage events of gateway-like shape (~20 fields, ~500 bytes)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ev = {
            "event_id": f"req_{rng.getrandbits(64):016x}",
            "timestamp": f"2026-06-25T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z",
            "tenant_id": f"org_{rng.randint(0, 9999):05d}",
            "account_id": f"acct_{rng.randint(0, 99999):06d}",
            "model": rng.choice(["atlas-3", "atlas-3-mini", "atlas-4"]),
            "input_tokens": rng.randint(10, 8000),
            "output_tokens": rng.randint(1, 4000),
            "api_key_id": f"key_{rng.randint(0, 999)}",
            "endpoint": "messages",
            "max_tokens": rng.choice([256, 1024, 4096]),
            "temperature": rng.choice([0, 0.7, 1.0]),
            "status_code": 200,
            "stop_reason": rng.choice(["end_turn", "max_tokens", "tool_use"]),
            "latency_ms": rng.randint(100, 30000),
            "session_id": f"s_{rng.randint(0, 10**6)}" if rng.random() < 0.5 else None,
            "turn_index": rng.randint(0, 10),
            "prompt_fingerprint": f"{rng.getrandbits(64):016x}",
            "prompt_chars": rng.randint(10, 20000),
            "asn": rng.randint(1, 60000),
            "country": rng.choice(["US", "DE", "SG", "BR"]),
            "user_agent": "atlas-python/1.4.2",
        }
        out.append(orjson.dumps(ev))
    return out


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
    lines = make_events(n)
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
