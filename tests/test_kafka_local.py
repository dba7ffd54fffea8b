"""Integration tests for the local Kafka broker run by ``docker/kafka-local.sh``.

They talk to a real broker (Kafka 4.0.x, KRaft) on ``127.0.0.1:$DG_KAFKA_PORT``
(default 19092) with both Python clients the project uses:

* kafka-python (admin: create/delete topic; producer; group consumer + commit)
* aiokafka, the client under faust-streaming (same round trip, asyncio)

Start the broker first::

    docker/kafka-local.sh start
    pytest tests/test_kafka_local.py
    docker/kafka-local.sh stop

If the broker is not running the tests FAIL, unless

* ``DISTILLGUARD_NO_KAFKA=1``: the tests are skipped (machines without Java), or
* ``DG_KAFKA_TEST_AUTOSTART=1``: the module starts the broker itself and stops it
  again afterwards (only if it was not already running).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "docker" / "kafka-local.sh"
PORT = int(os.environ.get("DG_KAFKA_PORT", "19092"))
BOOTSTRAP = f"127.0.0.1:{PORT}"
N_MESSAGES = 100
PARTITIONS = 3
TIMEOUT_S = 60.0

pytestmark = pytest.mark.kafka


def _script(cmd: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def bootstrap() -> str:
    if os.environ.get("DISTILLGUARD_NO_KAFKA") == "1":
        pytest.skip("DISTILLGUARD_NO_KAFKA=1: skipping tests that need the local Kafka broker")

    status = _script("status", timeout=60)
    started_here = False
    if status.returncode != 0:
        if os.environ.get("DG_KAFKA_TEST_AUTOSTART") == "1":
            start = _script("start", timeout=900)
            if start.returncode != 0:
                pytest.fail(
                    f"docker/kafka-local.sh start failed (exit {start.returncode}):\n"
                    f"{start.stdout}\n{start.stderr}"
                )
            started_here = True
        else:
            pytest.fail(
                f"Kafka broker is not running on {BOOTSTRAP}.\n"
                "Start it with `docker/kafka-local.sh start`, or set DG_KAFKA_TEST_AUTOSTART=1 "
                "to let these tests start and stop it, or DISTILLGUARD_NO_KAFKA=1 to skip them.\n"
                f"`kafka-local.sh status` said:\n{status.stdout}{status.stderr}"
            )
    yield BOOTSTRAP
    if started_here:
        _script("stop", timeout=120)


def _unique_topic(kind: str) -> str:
    return f"dg-test-{kind}-{uuid.uuid4().hex[:12]}"


def _payloads(topic: str) -> list[tuple[bytes, bytes]]:
    return [(f"key-{i % 7}".encode(), f"{topic}:{i}".encode()) for i in range(N_MESSAGES)]


# ------------------------------------------------------------------ kafka-python


@pytest.fixture
def kp_admin(bootstrap):
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="dg-test-admin")
    yield admin
    admin.close()


def _kp_wait_topic(admin, topic: str, present: bool) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if (topic in admin.list_topics()) == present:
            return
        time.sleep(0.2)
    raise AssertionError(f"topic {topic} {'never appeared' if present else 'still listed'}")


def test_broker_metadata(bootstrap, kp_admin):
    cluster = kp_admin.describe_cluster()
    assert cluster["cluster_id"]
    assert cluster["controller_id"] == 1
    [broker] = cluster["brokers"]
    assert broker["broker_id"] == 1
    assert (broker["host"], broker["port"]) == ("127.0.0.1", PORT)


def test_broker_has_no_time_retention(kp_admin):
    """Tests and replays write records stamped with months-old event times; a time retention would delete
    them at its next check, mid-test (it did: a replay's checkpointed offsets were suddenly out of range)."""
    from kafka.admin import ConfigResource

    got = kp_admin.describe_configs([ConfigResource("BROKER", "1", configs=["log.retention.ms"])],
                                    config_filter="all")
    assert got["broker"]["1"]["log.retention.ms"]["value"] == "-1"


def test_kafka_python_round_trip(bootstrap, kp_admin):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = _unique_topic("kp")
    kp_admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}})
    try:
        _kp_wait_topic(kp_admin, topic, present=True)

        sent = _payloads(topic)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        try:
            futures = [producer.send(topic, key=k, value=v) for k, v in sent]
            producer.flush(timeout=TIMEOUT_S)
            metas = [f.get(timeout=TIMEOUT_S) for f in futures]
        finally:
            producer.close(timeout=10)
        assert {m.topic for m in metas} == {topic}

        group = f"dg-test-group-{uuid.uuid4().hex[:8]}"
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        received: list[tuple[bytes, bytes]] = []
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while len(received) < N_MESSAGES and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    received.extend((r.key, r.value) for r in records)
            consumer.commit()
            committed = sum(
                consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS)
            )
        finally:
            consumer.close()

        assert len(received) == N_MESSAGES
        assert sorted(received) == sorted(sent)
        assert committed == N_MESSAGES

        kp_admin.delete_topics([topic])
        _kp_wait_topic(kp_admin, topic, present=False)
    finally:
        if topic in kp_admin.list_topics():
            kp_admin.delete_topics([topic])


# ------------------------------------------------------------------ aiokafka


async def _aiokafka_round_trip(bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = _unique_topic("aio")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="dg-test-aioadmin")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        try:
            await _aio_wait_topic(admin, topic, present=True)

            sent = _payloads(topic)
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
            await producer.start()
            try:
                futures = [await producer.send(topic, key=k, value=v) for k, v in sent]
                metas = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S)
            finally:
                await producer.stop()
            assert {m.topic for m in metas} == {topic}

            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                group_id=f"dg-test-aiogroup-{uuid.uuid4().hex[:8]}",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            received: list[tuple[bytes, bytes]] = []
            try:
                deadline = time.monotonic() + TIMEOUT_S
                while len(received) < N_MESSAGES and time.monotonic() < deadline:
                    batches = await consumer.getmany(timeout_ms=500)
                    for records in batches.values():
                        received.extend((r.key, r.value) for r in records)
                await consumer.commit()
                committed = 0
                for p in range(PARTITIONS):
                    committed += await consumer.committed(TopicPartition(topic, p)) or 0
            finally:
                await consumer.stop()

            assert len(received) == N_MESSAGES
            assert sorted(received) == sorted(sent)
            assert committed == N_MESSAGES

            await admin.delete_topics([topic])
            await _aio_wait_topic(admin, topic, present=False)
        finally:
            if topic in await admin.list_topics():
                await admin.delete_topics([topic])
    finally:
        await admin.close()


async def _aio_wait_topic(admin, topic: str, present: bool) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if (topic in await admin.list_topics()) == present:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"topic {topic} {'never appeared' if present else 'still listed'}")


def test_aiokafka_round_trip(bootstrap):
    asyncio.run(_aiokafka_round_trip(bootstrap))
