"""Worker settings that cannot work end at start in one line and exit status 2 (twelfth-session audit).

Reproduced before the fix with real workers: a dead-letter topic that is the events topic fed each bad
event back in without end (about 1.5 GB written to the broker in a minute); an events topic whose
partition count differs from the worker's state topic crashed the worker in a loop with Faust's
``PartitionsMismatch`` traceback; an app id Kafka cannot use, "inf" seconds and web port 0 were accepted
and failed later (or turned a timer off). The settings tests need no broker; the partition tests use the
local one with topics of their own, deleted at teardown.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from tests.conftest import free_port
from tests.test_cli_kafka_errors_b import assert_one_line, base_env, run_cli

OVERLAPS = [
    ({"DISTILLGUARD_DLQ_TOPIC": "same.topic", "DISTILLGUARD_EVENTS_TOPIC": "same.topic"},
     "DISTILLGUARD_EVENTS_TOPIC and DISTILLGUARD_DLQ_TOPIC both name the topic 'same.topic'"),
    ({"DISTILLGUARD_NOTIFICATIONS_TOPIC": "same.topic", "DISTILLGUARD_ALERTS_TOPIC": "same.topic"},
     "DISTILLGUARD_ALERTS_TOPIC and DISTILLGUARD_NOTIFICATIONS_TOPIC both name the topic 'same.topic'"),
    ({"DISTILLGUARD_FEEDBACK_TOPIC": "same.topic", "DISTILLGUARD_ALERTS_TOPIC": "same.topic"},
     "DISTILLGUARD_ALERTS_TOPIC and DISTILLGUARD_FEEDBACK_TOPIC both name the topic 'same.topic'"),
    ({"DISTILLGUARD_ALERT_FORMATS": "contract,ecs", "DISTILLGUARD_ECS_TOPIC": "same.topic",
      "DISTILLGUARD_ALERTS_TOPIC": "same.topic"},
     "DISTILLGUARD_ALERTS_TOPIC and DISTILLGUARD_ECS_TOPIC both name the topic 'same.topic'"),
]
BAD_VALUES = [
    ({"DISTILLGUARD_APP_ID": "bad id/with slash"}, "DISTILLGUARD_APP_ID", "internal topic names"),
    ({"DISTILLGUARD_ALERTS_TOPIC": "alerts:v2"}, "DISTILLGUARD_ALERTS_TOPIC", "is not a Kafka topic name"),
    ({"DISTILLGUARD_CHECKPOINT_SECONDS": "inf"}, "DISTILLGUARD_CHECKPOINT_SECONDS", "finite number"),
    ({"DISTILLGUARD_IDLE_PARTITION_SECONDS": "Infinity"}, "DISTILLGUARD_IDLE_PARTITION_SECONDS", "finite number"),
    ({"DISTILLGUARD_WEB_PORT": "0"}, "DISTILLGUARD_WEB_PORT", "greater than or equal to 1"),
]


@pytest.mark.parametrize(("extra", "expected"), OVERLAPS)
def test_two_roles_on_one_topic_are_refused_by_every_command(tmp_path: Path, extra: dict[str, str],
                                                             expected: str) -> None:
    for command in (["worker"], ["topics", "create"], ["alerts", "tail"]):
        res = run_cli(*command, env=base_env(tmp_path, **extra), timeout=30)
        assert_one_line(res, "invalid settings: ", expected)


def test_an_unused_format_topic_may_share_a_name(tmp_path: Path) -> None:
    """The ECS topic is not written unless ``alert_formats`` names ecs: its name does not matter then."""
    env = base_env(tmp_path, DISTILLGUARD_ECS_TOPIC="x.alerts", DISTILLGUARD_ALERTS_TOPIC="x.alerts")
    res = run_cli("topics", "create", env=env, timeout=60)
    assert res.returncode == 2 and "invalid settings" not in res.stderr, res.stderr  # got as far as the broker


@pytest.mark.parametrize(("extra", "variable", "reason"), BAD_VALUES)
def test_values_kafka_or_faust_cannot_use_are_refused(tmp_path: Path, extra: dict[str, str], variable: str,
                                                      reason: str) -> None:
    started = time.monotonic()
    res = run_cli("worker", env=base_env(tmp_path, **extra), timeout=30)
    assert_one_line(res, "invalid settings: ", variable, reason)
    assert time.monotonic() - started < 20  # before any wait for the broker


def _create(bootstrap: str, **partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, n, 1) for name, n in partitions.items()])
    finally:
        admin.close()


@pytest.mark.kafka
def test_events_topic_with_other_partitions_than_the_setting_is_refused(fixb_env: dict[str, str]) -> None:
    env = dict(fixb_env, DISTILLGUARD_WEB_PORT=str(free_port()))
    _create(env["DISTILLGUARD_BOOTSTRAP_SERVERS"], **{env["DISTILLGUARD_EVENTS_TOPIC"]: 3})
    res = run_cli("worker", env=env, timeout=60)
    assert_one_line(res, f"the events topic {env['DISTILLGUARD_EVENTS_TOPIC']!r} has 3 partitions",
                    "DISTILLGUARD_PARTITIONS is 6", "set DISTILLGUARD_PARTITIONS=3")
    assert "worker_starting" not in res.stderr  # Faust never started


@pytest.mark.kafka
def test_events_topic_that_differs_from_the_state_topic_is_refused_whatever_the_setting(
        fixb_env: dict[str, str]) -> None:
    """Partitions added to the events topic of a running app: the state topic keeps its count, and no
    setting makes the two agree; the worker says what to do instead of crashing in a loop."""
    env = dict(fixb_env, DISTILLGUARD_WEB_PORT=str(free_port()), DISTILLGUARD_PARTITIONS="8")
    changelog = f"{env['DISTILLGUARD_APP_ID']}-tenant-state-changelog"
    _create(env["DISTILLGUARD_BOOTSTRAP_SERVERS"], **{env["DISTILLGUARD_EVENTS_TOPIC"]: 8, changelog: 6})
    res = run_cli("worker", env=env, timeout=60)
    assert_one_line(res, "has 8 partitions", f"state topic {changelog!r} has 6",
                    "give the events topic 6 partitions again", "DISTILLGUARD_PARTITIONS=8")
