"""Topic administration with kafka-python (used by ``distillguard topics`` and the tests)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from distillguard.settings import Settings
from streams.clients import BrokerConnectError, kafka_python_config


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def public_topics(settings: Settings) -> list[TopicSpec]:
    """The topics the workers and tools use, with their partitions (no topic-level configs: broker defaults)."""
    p = settings.partitions
    return [
        TopicSpec(settings.events_topic, p, {}),
        TopicSpec(settings.dlq_topic, p, {}),
        TopicSpec(settings.alerts_topic, p, {}),
        TopicSpec(settings.feedback_topic, p, {}),
        *(TopicSpec(t, p, {}) for f, t in settings.alert_format_topics().items() if f != "contract"),
        TopicSpec(settings.notifications_topic, p, {}),
    ]


def create_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> dict[str, str]:
    """Create the topics that do not exist yet; returns ``{name: "created" | "exists"}``."""
    specs = specs if specs is not None else public_topics(settings)
    admin = KafkaAdminClient(client_id="distillguard-admin", **kafka_python_config(settings))
    try:
        existing = set(admin.list_topics())
        result = {s.name: "exists" for s in specs if s.name in existing}
        new = [
            NewTopic(s.name, s.partitions, settings.replication_factor, topic_configs=s.config)
            for s in specs
            if s.name not in existing
        ]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another tool or worker
            result.update({t.name: "created" for t in new})
        return result
    finally:
        admin.close()


def delete_topics(settings: Settings, names: list[str]) -> None:
    """Delete topics that exist (tests clean up after themselves with this)."""
    admin = KafkaAdminClient(client_id="distillguard-admin", **kafka_python_config(settings))
    try:
        present = [n for n in names if n in set(admin.list_topics())]
        if present:
            admin.delete_topics(present)
    finally:
        admin.close()


def wait_for_topics(settings: Settings, names: list[str], timeout: float) -> list[str]:
    """Wait until the broker's metadata lists every topic in ``names``; returns those still missing.

    Why: a worker's consumer group assigns only the topics its leader finds in the metadata. A topic
    created just before the group forms (Faust declares its internal topics right before it
    subscribes) can be missing there; it is then left unassigned until the next metadata refresh,
    up to five minutes later.
    """
    admin = KafkaAdminClient(client_id="distillguard-admin", **kafka_python_config(settings))
    try:
        deadline = time.monotonic() + timeout
        while True:
            missing = sorted(set(names) - set(admin.list_topics()))
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.2)
    finally:
        admin.close()


class TopicMissingError(BrokerConnectError):
    """A topic a command produces to does not exist (the CLI prints the message in one line, exit 2)."""


def require_topic(settings: Settings, topic: str, hint: str) -> None:
    """Raise :class:`TopicMissingError` (saying ``hint``) unless ``topic`` exists on the broker.

    Why: a kafka-python producer waits ``max_block_ms`` (60 s) for the metadata of a topic that is not
    there, then dies with a KafkaTimeoutError traceback; listing the topics answers at once and never
    creates one. Call it after ``preflight``: a broker that stops answering here is a BrokerConnectError.
    """
    try:
        missing = wait_for_topics(settings, [topic], 0.0)
    except KafkaError as exc:
        raise BrokerConnectError(f"cannot list the topics on the broker: {type(exc).__name__}: {exc}") from None
    if missing:
        raise TopicMissingError(f"topic {topic!r} does not exist: {hint}")
