"""`distillguard alerts tail` against alerts on the real broker."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
from kafka import KafkaProducer

from tests.kafka_utils import REPO

pytestmark = pytest.mark.kafka


def alert(i: int, severity: str, tenant: str, kind: str = "tenant") -> dict:
    a = {"alert_id": f"t-{i}", "schema_version": 1, "kind": kind, "status": "open", "severity": severity,
         "score": 0.9, "detected_at": "2026-06-25T11:32:00.000Z", "first_seen": "2026-06-25T11:00:00.000Z",
         "window_start": "2026-06-25T11:25:00.000Z", "window_end": "2026-06-25T11:30:00.000Z",
         "reasons": [{"signal": "cot_share", "value": 0.97, "baseline": 0.05, "weight": 0.4, "text": "t"}],
         "evidence": [f"ev-{i}"], "detector_version": "test"}
    if kind == "tenant":
        a["tenant_id"] = tenant
    else:
        a.update(tenant_ids=[tenant, "other"], account_ids=["acc"], cluster_id=f"c-{i}")
    return a


def tail(env: dict, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "distillguard.cli", "alerts", "tail", "--from-beginning",
                          "--idle-timeout", "4", *args], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.splitlines()


def test_tail_filters_and_renders(kafka_env):
    topic = kafka_env["DISTILLGUARD_ALERTS_TOPIC"]
    producer = KafkaProducer(bootstrap_servers=kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"])
    alerts = [alert(0, "low", "quiet-co"), alert(1, "high", "evil\x1b[2Jcorp"), alert(2, "critical", "acme"),
              alert(3, "medium", "acme", kind="cluster")]
    for a in alerts:
        producer.send(topic, key=b"k", value=orjson.dumps(a))
    producer.flush()
    producer.close()

    # four independent readers of the same topic, run side by side: each waits out its own idle timeout
    with ThreadPoolExecutor(4) as pool:
        runs = [pool.submit(tail, kafka_env, *args) for args in
                [(), ("--severity", "high"), ("--tenant", "acme", "--json"), ("--kind", "cluster", "--json")]]
    lines, high, acme, cluster = (run.result() for run in runs)
    assert len(lines) == 4
    assert any("evil\\x1b[2Jcorp" in line for line in lines), "control characters are escaped"
    assert not any("\x1b" in line for line in lines)
    assert sorted(line.split()[2] for line in high) == ["CRITICAL", "HIGH"]
    assert sorted(orjson.loads(line)["alert_id"] for line in acme) == ["t-2", "t-3"]
    assert [orjson.loads(x)["kind"] for x in cluster] == ["cluster"]


def test_tail_on_missing_topic_is_a_clear_error(kafka_env):
    out = subprocess.run([sys.executable, "-m", "distillguard.cli", "alerts", "tail", "--topic", "no.such.topic.x"],
                         env=kafka_env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "does not exist" in out.stderr
