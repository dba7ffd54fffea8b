"""Engine benchmark: embedded detection rate (decode + engine, one core) and per-tenant state size.

Run: ``make bench`` (or ``python bench/bench_engine.py [EVENTS] [TENANTS_FOR_MEMORY]``; 0 tenants skips
the memory part). It writes
generated events to a temporary JSONL file and measures, in this run on this machine:

* a bare ``orjson.loads`` loop over the file's lines (the baseline),
* ``EventCodec.decode`` + ``Engine.process`` over the same lines, metadata only (goal >= 100,000 events/s),
* the same with gateway-computed ``prompt_fingerprint`` / ``prompt_template_id`` / ``prompt_topic``,
* the same with ``prompt_text`` present (features derived at ingest by ``detectors.features``),
* per-tenant state bytes with 100,000 tenants (tracemalloc of the engine's allocations, and RSS growth;
  goal <= 16 KB).
"""

from __future__ import annotations

import gc
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors import Engine  # noqa: E402
from detectors.common import iso  # noqa: E402
from detectors.features import prompt_features  # noqa: E402
from schemas import EventCodec  # noqa: E402

T0 = 1_782_000_000.0
WORDS = ("explain derive prove compute translate summarize the a of in for with step by reasoning model data "
         "system energy market protein graph theorem network policy history language").split()


def make_events(n: int, tenants: int, mode: str, seed: int = 1, span_hours: float = 1.0,
                round_robin: bool = False) -> list[bytes]:
    """Gateway-shaped events (~20 fields) spread over ``tenants`` tenants and ``span_hours`` of event time.

    ``mode``: ``meta`` (metadata only), ``fp`` (+ gateway fingerprint/template/topic), ``text`` (+ prompt_text).
    """
    rng = random.Random(seed)
    step = span_hours * 3600.0 / max(n, 1)
    out = []
    for i in range(n):
        t = i % tenants if round_robin else rng.randrange(tenants)
        ts = T0 + i * step
        ev = {
            "event_id": f"req_{i:010d}",
            "timestamp": iso(ts),
            "tenant_id": f"org_{t:06d}",
            "account_id": f"acct_{t:06d}_{rng.randrange(5)}",
            "model": rng.choice(["atlas-3", "atlas-3-mini", "atlas-4"]),
            "input_tokens": rng.randint(10, 8000),
            "output_tokens": rng.randint(1, 4000),
            "api_key_id": f"key_{t % 1000}",
            "endpoint": "messages",
            "max_tokens": rng.choice([256, 1024, 4096]),
            "temperature": rng.choice([0, 0.7, 1.0]),
            "status_code": 200,
            "stop_reason": rng.choice(["end_turn", "max_tokens", "tool_use"]),
            "latency_ms": rng.randint(100, 30000),
            "session_id": f"s_{rng.randint(0, 10**6)}" if rng.random() < 0.5 else None,
            "turn_index": rng.randint(0, 10),
            "client_ip_prefix": f"p_{t % 5000}",
            "asn": rng.choice([16509, 15169, 8075, 64500 + t % 100]),
            "country": "US",
            "user_agent": "anthropic-sdk-python/0.40.0",
        }
        if mode == "fp":
            ev["prompt_fingerprint"] = f"{rng.getrandbits(64):016x}"
            ev["prompt_template_id"] = f"tmpl_{rng.randrange(50)}"
            ev["prompt_topic"] = f"topic_{rng.randrange(40)}"
        elif mode == "text":
            ev["prompt_text"] = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80)))
        out.append(orjson.dumps(ev))
    return out


def write_file(lines: list[bytes]) -> Path:
    fd, name = tempfile.mkstemp(prefix="dg-bench-", suffix=".jsonl")
    with os.fdopen(fd, "wb") as f:
        for line in lines:
            f.write(line + b"\n")
    return Path(name)


def read_lines(path: Path) -> list[bytes]:
    with open(path, "rb") as f:
        return [line.rstrip(b"\n") for line in f]


def bare_rate(lines: list[bytes]) -> float:
    loads = orjson.loads
    t = time.perf_counter()
    for line in lines:
        loads(line)
    return len(lines) / (time.perf_counter() - t)


def engine_rate(lines: list[bytes]) -> tuple[float, int]:
    codec = EventCodec(prompt_hook=prompt_features)
    engine = Engine()
    decode, process = codec.decode, engine.process
    n_alerts = 0
    gc.collect()
    t = time.perf_counter()
    for line in lines:
        a = process(decode(line))
        if a:
            n_alerts += len(a)
    n_alerts += len(engine.finish())
    return len(lines) / (time.perf_counter() - t), n_alerts


def engine_only_rate(lines: list[bytes]) -> float:
    """Engine alone over pre-decoded events (what the engine adds to the codec's cost)."""
    codec = EventCodec(prompt_hook=prompt_features)
    events = [codec.decode(x) for x in lines]
    engine = Engine()
    process = engine.process
    gc.collect()
    t = time.perf_counter()
    for ev in events:
        process(ev)
    engine.finish()
    return len(events) / (time.perf_counter() - t)


# the usage-event fields the engine's per-event path reads (besides tenant_id and ts)
COUNTED = ("input_tokens", "output_tokens", "cot_elicitation", "reasoning_tokens", "max_tokens", "stop_reason",
           "temperature", "session_id", "turn_index", "tools_count", "logprobs", "top_logprobs", "logit_bias_size",
           "prompt_fingerprint", "prompt_template_id", "prompt_topic", "model", "account_id", "api_key_id",
           "ip_prefix", "asn", "user_agent")


def floor_rate(lines: list[bytes]) -> float:
    """Decode plus the least a per-tenant window engine must do per event in Python: find the tenant's window and
    count the fields it reads. No scoring, no models, no window closes, no guards: a floor for any engine written
    in Python over this codec, measured beside the real one."""
    codec = EventCodec(prompt_hook=prompt_features)
    decode = codec.decode
    windows: dict[tuple[str, float], list[int]] = {}
    fields = tuple(enumerate(COUNTED, 1))
    gc.collect()
    t = time.perf_counter()
    for line in lines:
        ev = decode(line)
        ts = ev["ts"]
        key = (ev["tenant_id"], ts - ts % 300.0)
        w = windows.get(key)
        if w is None:
            w = windows[key] = [0] * (len(COUNTED) + 1)
        w[0] += 1
        get = ev.get
        for i, name in fields:
            if get(name):
                w[i] += 1
    return len(lines) / (time.perf_counter() - t)


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def state_per_tenant(tenants: int, per_tenant: int) -> dict[str, float]:
    """Run ``tenants * per_tenant`` events (all tenants stay active: open windows + learned state)."""
    lines = make_events(tenants * per_tenant, tenants, "fp", seed=3, span_hours=0.5, round_robin=True)
    path = write_file(lines)
    try:
        lines = read_lines(path)
        codec = EventCodec(prompt_hook=prompt_features)
        decoded = [codec.decode(x) for x in lines]  # decoded events are input, not state: allocated first
        del lines
        gc.collect()
        rss0 = rss_bytes()
        tracemalloc.start()
        engine = Engine()
        for ev in decoded:
            engine.process(ev)
        engine.advance(T0 + 900)  # close the first windows of every tenant (models learned, summaries handed over)
        gc.collect()
        traced, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss1 = rss_bytes()
        n = len(engine.tenants)
        snap = sum(len(engine.tenants.snapshot(t)) for t in engine.tenants.tenant_ids[:1000]) / 1000
        return {"tenants": n, "traced_bytes_per_tenant": traced / n, "rss_bytes_per_tenant": (rss1 - rss0) / n,
                "snapshot_bytes_per_tenant": snap}
    finally:
        path.unlink(missing_ok=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    mem_tenants = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    print(f"engine benchmark: {n:,} events, 2,000 tenants, 1 h of event time (~12 events per tenant window); Python {sys.version.split()[0]}")
    for mode, label in (("meta", "metadata only"), ("fp", "+ gateway fingerprint/template/topic"),
                        ("text", "+ prompt_text (features at ingest)")):
        count = n if mode != "text" else max(n // 10, 1000)
        path = write_file(make_events(count, 2000, mode))
        try:
            lines = read_lines(path)
            bare = max(bare_rate(lines) for _ in range(3))
            rate, alerts = max(engine_rate(lines) for _ in range(2 if mode != "text" else 1))
        finally:
            path.unlink(missing_ok=True)
        print(f"  {label:40s} decode+engine {rate:>10,.0f} ev/s   bare orjson.loads {bare:>12,.0f} ev/s   "
              f"ratio {rate / bare:.3f}   ({count:,} events, {alerts} alerts)"
              + ("   goal >= 100,000 ev/s: " + ("met" if rate >= 100_000 else "NOT met") if mode == "meta" else ""))
        if mode != "text":
            eng = max(engine_only_rate(lines) for _ in range(2))
            print(f"  {'':40s} engine only (pre-decoded) {eng:>10,.0f} ev/s = {1e6 / eng:.1f} us/event incl. window closes")
        if mode == "meta":
            floor = max(floor_rate(lines) for _ in range(2))
            print(f"  {'':40s} floor: decode + per-window field counting only (no detection) {floor:>10,.0f} ev/s "
                  f"= {1e6 / floor:.1f} us/event")
    if mem_tenants <= 0:
        return
    mem = state_per_tenant(mem_tenants, 3)
    print(f"  state with {mem['tenants']:,} active tenants: {mem['traced_bytes_per_tenant']:,.0f} B/tenant (tracemalloc), "
          f"{mem['rss_bytes_per_tenant']:,.0f} B/tenant (RSS growth), snapshot {mem['snapshot_bytes_per_tenant']:,.0f} B; "
          f"goal <= 16,384 B: {'met' if max(mem['traced_bytes_per_tenant'], mem['rss_bytes_per_tenant']) <= 16384 else 'NOT met'}")


if __name__ == "__main__":
    main()
