"""streams/metrics.py: the worker's lock-free latency histogram exports what prometheus_client's would."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.metrics import LoopHistogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def test_loop_histogram_exports_the_same_text_as_a_prometheus_histogram() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("dg_test_seconds", "doc", buckets=BUCKETS, registry=theirs)
    loop = LoopHistogram("dg_test_seconds", "doc", BUCKETS, ours)
    rng = random.Random(5)
    values = [0.0, 0.005, 0.0050001, 1.0, 30.0, 31.0, 1e9] + [rng.expovariate(20) for _ in range(5000)]
    for v in values:
        reference.observe(v)
        loop.observe(v)
    want = [line for line in generate_latest(theirs).decode().splitlines() if "_created" not in line]
    got = generate_latest(ours).decode().splitlines()
    assert got == want
    assert f'dg_test_seconds_count {float(len(values))}' in got  # every observation counted once, +Inf included
