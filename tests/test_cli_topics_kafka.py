"""A missing Kafka topic is a user error (one line, exit 2, at once) for `simulate --to kafka` and `feedback`;
an existing topic still works; `alerts tail` prints scores that agree with the severity."""

from __future__ import annotations

import subprocess
import sys
import time

import orjson
import pytest
from kafka.admin import KafkaAdminClient

from distillguard.render import alert_line
from tests.kafka_utils import REPO, read_topic

pytestmark = pytest.mark.kafka

SMALL_SIM = ["simulate", "--preset", "demo", "--days", "1", "--tenants", "1", "--volume", "0.1",
             "--intensity", "0.02", "--seed", "3"]
VERDICT = ["feedback", "--alert-id", "t-42", "--tenant", "acme", "--label", "true_positive"]


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "distillguard.cli", *args], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=timeout, check=False)
    return res, time.monotonic() - start


def topics(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def assert_one_line_error(res: subprocess.CompletedProcess, took: float, expected: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stderr.splitlines() == [expected], res.stderr
    assert took < 20, f"took {took:.1f}s: no wait for the producer's 60 s metadata timeout"


def test_simulate_to_missing_topic_is_one_line_and_exit_2(kafka_env, tmp_path):
    missing = kafka_env["DISTILLGUARD_EVENTS_TOPIC"] + ".missing"  # under the test's prefix: cleaned up anyway
    env = {**kafka_env, "DISTILLGUARD_EVENTS_TOPIC": missing}
    labels = tmp_path / "labels.json"
    res, took = cli(env, *SMALL_SIM, "--to", "kafka", "--labels", str(labels), timeout=90)
    assert_one_line_error(res, took, f"distillguard simulate: topic {missing!r} does not exist: create it with "
                                     "`distillguard topics create` (or set DISTILLGUARD_EVENTS_TOPIC)")
    assert not labels.exists(), "checked before any output is opened"
    assert missing not in topics(kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]), "the check must not create the topic"


def test_feedback_to_missing_topic_is_one_line_and_exit_2(kafka_env):
    bootstrap = kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"]
    missing = kafka_env["DISTILLGUARD_FEEDBACK_TOPIC"] + ".missing"
    res, took = cli(kafka_env, *VERDICT, "--topic", missing, timeout=90)
    assert_one_line_error(res, took, f"distillguard feedback: topic {missing!r} does not exist: check --topic "
                                     "(`distillguard topics create` creates the DISTILLGUARD_FEEDBACK_TOPIC one)")
    assert "sent" not in res.stdout

    res, took = cli({**kafka_env, "DISTILLGUARD_FEEDBACK_TOPIC": missing}, *VERDICT, timeout=90)
    assert_one_line_error(res, took, f"distillguard feedback: topic {missing!r} does not exist: create it with "
                                     "`distillguard topics create` (or set DISTILLGUARD_FEEDBACK_TOPIC)")
    assert missing not in topics(bootstrap), "the check must not create the topic"


def test_feedback_empty_alert_id_says_empty(kafka_env):
    res, _ = cli(kafka_env, "feedback", "--alert-id", "", "--tenant", "acme", "--label", "true_positive")
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == ["distillguard feedback: verdict: alert_id is empty"]
    res, _ = cli(kafka_env, "feedback", "--tenant", "acme", "--label", "true_positive")
    assert res.stderr.splitlines() == ["distillguard feedback: verdict: alert_id is missing"]


def test_simulate_to_existing_topic_produces_and_names_it(kafka_env, tmp_path):
    topic = kafka_env["DISTILLGUARD_EVENTS_TOPIC"]
    labels = tmp_path / "labels.json"
    res, _ = cli(kafka_env, *SMALL_SIM, "--to", "kafka", "--labels", str(labels), timeout=180)
    assert res.returncode == 0, res.stderr
    assert f"-> kafka topic {topic} in " in res.stderr, res.stderr
    n = orjson.loads(labels.read_bytes())["counts"]["lines"]
    assert 0 < n < 20_000
    assert len(read_topic(kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], topic)) == n


def test_feedback_to_existing_topic_sends_one_record(kafka_env):
    topic = kafka_env["DISTILLGUARD_FEEDBACK_TOPIC"]
    res, _ = cli(kafka_env, *VERDICT, "--note", "checked")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"sent 1 verdict(s) to {topic}"
    records = read_topic(kafka_env["DISTILLGUARD_BOOTSTRAP_SERVERS"], topic)
    assert [(r.key, orjson.loads(r.value)) for r in records] == [
        (b"acme", {"alert_id": "t-42", "label": "true_positive", "tenant_id": "acme", "note": "checked"})]


# ------------------------------------------------------------------------------- tail rendering (no broker)
def _alert(score: float, severity: str, status: str = "open", baseline: float | None = 0.05) -> dict:
    return {"alert_id": "t-1", "kind": "tenant", "status": status, "severity": severity, "score": score,
            "detected_at": "2026-06-25T11:32:00.000Z", "tenant_id": "acme",
            "reasons": [{"signal": "cot_share", "value": 0.97, "baseline": baseline, "weight": 0.4}]}


@pytest.mark.parametrize(("score", "severity", "shown"), [
    (0.7963, "medium", "0.796"), (0.7999, "medium", "0.799"), (0.8, "high", "0.800"), (0.8999, "high", "0.899"),
    (0.9, "critical", "0.900"), (0.29, "low", "0.290"), (1.0, "critical", "1.000")])
def test_tail_score_agrees_with_severity(score, severity, shown):
    line = alert_line(_alert(score, severity))
    assert f" score={shown} " in line and severity.upper() in line
    printed = float(line.split("score=")[1].split()[0])
    cuts = {"low": (0.0, 0.7), "medium": (0.7, 0.8), "high": (0.8, 0.9), "critical": (0.9, 1.01)}[severity]
    assert cuts[0] <= printed < cuts[1], f"printed score {printed} contradicts {severity}"


def test_tail_omits_a_missing_baseline():
    resolved = alert_line(_alert(0.31, "low", status="resolved", baseline=None))
    assert "None" not in resolved and "(base" not in resolved
    assert resolved.endswith("| cot_share=0.97")
    assert alert_line(_alert(0.95, "critical")).endswith("| cot_share=0.97 (base 0.05)")
