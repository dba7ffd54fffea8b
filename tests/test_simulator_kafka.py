"""``distillguard simulate --to kafka`` against the real local broker (started by ``make test``)."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.kafka_utils import REPO, consume

pytestmark = pytest.mark.kafka


def test_simulate_produces_every_line_keyed_by_tenant(kafka_env, kafka_bootstrap, tmp_path):
    labels = tmp_path / "labels.json"
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", "simulate", "--preset", "demo", "--tenants", "3",
                           "--intensity", "0.02", "--seed", "4", "--to", "kafka", "--labels", str(labels)],
                          env=kafka_env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "-> kafka topic" in proc.stderr
    lab = orjson.loads(labels.read_bytes())
    n = lab["counts"]["lines"]
    assert 500 < n < 30_000
    records = consume(kafka_bootstrap, kafka_env["DISTILLGUARD_EVENTS_TOPIC"], until=lambda rs: len(rs) >= n, timeout=180)
    assert len(records) == n
    bad = 0
    for r in records:
        try:
            ev = orjson.loads(r.value)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if isinstance(ev.get("tenant_id"), str):
            assert r.key == ev["tenant_id"].encode()
    assert bad == lab["counts"]["malformed_by_reason"].get("not_json", 0)
