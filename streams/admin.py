"""Topic administration with kafka-python (used by ``distillguard topics`` and the tests)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

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


@dataclass(frozen=True)
class TopicResult:
    """What :func:`ensure_topics` found or did for one topic."""

    name: str
    state: str  # "created", "exists" or "failed"
    partitions: int | None = None  # as the broker reports them; None when the topic failed or its metadata did not say
    error: str = ""  # the broker's error and reason, when failed


class TopicCreateError(BrokerConnectError):
    """The broker refused to create some topics (the message names each one and the broker's reason)."""


def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[TopicResult]:
    """Create the topics that do not exist yet; one :class:`TopicResult` per topic, in the order of ``specs``.

    Each missing topic gets a request of its own, so a topic the broker refuses (replication factor above the
    broker count, an invalid name, a partition limit) is reported with the broker's own reason and does not
    stop the others. Partition counts come from the broker (the creation response, or the metadata of a topic
    that already existed), never from the settings: an existing topic keeps the partitions it has.
    KafkaError (the broker went away) is raised.
    """
    specs = list({s.name: s for s in (specs if specs is not None else public_topics(settings))}.values())
    admin = KafkaAdminClient(client_id="distillguard-admin", **kafka_python_config(settings))
    try:
        existing = set(admin.list_topics())
        results: dict[str, TopicResult] = {}
        for spec in specs:
            if spec.name in existing:
                continue
            new = NewTopic(spec.name, spec.partitions, settings.replication_factor, topic_configs=spec.config)
            answer = admin.create_topics([new], raise_errors=False)["topics"][0]
            error = for_code(answer["error_code"])
            if answer["error_code"] == 0:
                count = answer.get("num_partitions", -1)
                results[spec.name] = TopicResult(spec.name, "created", count if count > 0 else spec.partitions)
            elif error is TopicAlreadyExistsError:  # created concurrently by another tool or worker
                existing.add(spec.name)
            else:
                reason = answer.get("error_message") or error.description
                results[spec.name] = TopicResult(spec.name, "failed", None, f"{error.__name__}: {reason}")
        described = [s.name for s in specs if s.name in existing]
        counts = {d.get("name", d.get("topic")): len(d["partitions"]) for d in admin.describe_topics(described)
                  if d["error_code"] == 0 and d["partitions"]} if described else {}
        for name in described:
            results[name] = TopicResult(name, "exists", counts.get(name))
        return [results[s.name] for s in specs]
    finally:
        admin.close()


def partition_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    """``{topic: partitions}`` of the topics in ``names`` that exist (the broker's metadata; nothing is created)."""
    admin = KafkaAdminClient(client_id="distillguard-admin", **kafka_python_config(settings))
    try:
        existing = set(admin.list_topics())  # (one metadata request, not one per name)
        present = [n for n in names if n in existing]
        return {d.get("name", d.get("topic")): len(d["partitions"]) for d in admin.describe_topics(present)
                if d["error_code"] == 0 and d["partitions"]} if present else {}
    finally:
        admin.close()


def create_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> dict[str, str]:
    """Create the topics that do not exist yet; returns ``{name: "created" | "exists"}``.

    Raises :class:`TopicCreateError` naming every topic the broker refused (the others are created).
    """
    results = ensure_topics(settings, specs)
    failed = [r for r in results if r.state == "failed"]
    if failed:
        raise TopicCreateError("the broker refused to create " + "; ".join(f"{r.name!r} ({r.error})" for r in failed))
    return {r.name: r.state for r in results}


def delete_topics(settings: Settings, names: list[str]) -> None:
    """Delete topics that exist (tests clean up after themselves with this)."""
    admin = KafkaAdminClient(client_id="distillguard-admin", **kafka_python_config(settings))
    try:
        existing = set(admin.list_topics())  # (one metadata request, not one per name)
        present = [n for n in names if n in existing]
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
