"""`distillguard feedback`: verdicts are validated against the schema before anything reaches the topic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from distillguard.commands.feedback import problems
from tests.kafka_utils import consume

REPO = Path(__file__).resolve().parent.parent


def feedback(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distillguard.cli", "feedback", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.kafka
def test_invalid_verdicts_send_nothing_and_valid_ones_are_keyed_by_tenant(kafka_env, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"alert_id": "t-1", "label": "true_positive", "tenant_id": "acme"}\n'
                   '{"alert_id": "t-2", "label": "maybe", "tenant_id": "acme"}\n'
                   'not json\n'
                   '{"alert_id": "t-3", "label": "false_positive"}\n')
    res = feedback(kafka_env, "--file", str(bad))
    assert res.returncode == 2
    assert "line 2: label must be one of true_positive, false_positive, benign_expected" in res.stderr
    assert "line 3: invalid JSON (" in res.stderr and "line 4: tenant_id is missing" in res.stderr
    assert problems({"alert_id": "t-9", "label": "false_positive", "tenant_id": None}) == ["tenant_id is missing"]
    assert problems({"alert_id": "t-9", "label": "true_positive", "tenant_id": "a", "note": "x" * 4097}) == [
        "note is longer than 4096 characters"]

    res = feedback(kafka_env, "--alert-id", "t-4", "--tenant", "acme", "--label", "benign_expected", "--note", "eval harness")
    assert res.returncode == 0, res.stderr
    good = tmp_path / "good.jsonl"
    good.write_text('{"alert_id": "c-5", "label": "true_positive", "tenant_id": "globex", "note": null}\n')
    assert feedback(kafka_env, "--file", str(good)).returncode == 0

    topic = kafka_env["DISTILLGUARD_FEEDBACK_TOPIC"]
    records = consume(kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], topic, until=lambda rs: len(rs) >= 2, timeout=30)
    got = sorted((r.key, orjson.loads(r.value)["alert_id"]) for r in records)
    assert got == [(b"acme", "t-4"), (b"globex", "c-5")]  # nothing from the rejected file
    assert orjson.loads(next(r.value for r in records if r.key == b"acme")) == {
        "alert_id": "t-4", "label": "benign_expected", "tenant_id": "acme", "note": "eval harness"}
