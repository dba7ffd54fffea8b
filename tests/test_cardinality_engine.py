"""Cardinality flood in embedded mode: the engine with a tenant cap over a flood of distinct tenant ids.

Runs ``bench/bench_flood.py`` in a fresh process (so its RSS is the engine's alone): the tenants in memory
stay under the cap (evicted ones spill to RocksDB and every tenth, which returns, is restored), memory
grows by far less than the ~6.9 KB a tenant that unbounded state would cost, and the real tenants'
alerts -- the attacker's included -- are exactly those of a run without the flood.
Sizes: ``DG_ENGINE_FLOOD_TENANTS`` (default 50,000) with a cap of ``DG_ENGINE_FLOOD_CAP`` (default 2,000);
``make test`` (what CI runs) and ``make soak`` run 1,000,000 with a cap of 20,000.
"""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from tests.kafka_utils import REPO

FLOOD = int(os.environ.get("DG_ENGINE_FLOOD_TENANTS", "50000"))
CAP = int(os.environ.get("DG_ENGINE_FLOOD_CAP", "2000"))


def bench_flood(n: int, cap: int) -> dict:
    out = subprocess.run([sys.executable, "bench/bench_flood.py", str(n), str(cap)], cwd=REPO, check=True,
                         capture_output=True, timeout=1800)
    return orjson.loads(out.stdout.splitlines()[-1])


@pytest.mark.timeout(1800)  # a million tenants take 4-6 min on two shared cores
def test_engine_keeps_tenants_under_the_cap_and_detects_the_attacker_in_a_flood():
    flooded = bench_flood(FLOOD, CAP)
    clean = bench_flood(0, 0)
    stats = flooded["stats"]
    assert stats["tenants_in_memory"] <= CAP
    assert stats["evicted"] >= FLOOD - CAP
    assert stats["restored"] >= FLOOD // 10 * 0.9, "returning tenants come back from the spill store"
    assert flooded["real_alerts"] == clean["real_alerts"]
    assert any('"tenant_id":"atk"' in a and '"status":"open"' in a for a in flooded["real_alerts"])
    growth = flooded["rss_peak_mb"] - flooded["rss_before_mb"]
    print(f"\nengine flood: {FLOOD} tenants, cap {CAP}: {flooded['events']} events in {flooded['seconds']} s, "
          f"RSS +{growth} MB, evicted {stats['evicted']}, restored {stats['restored']}")
    assert growth < FLOOD * 6.9 / 1024 / 2, "well under half of what the flood would cost without the cap"
