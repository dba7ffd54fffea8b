"""Direct delivery (streams/transport.py, ``Transport.direct``) in a real Faust worker process on the local broker.

The worker's detect handler runs on this path; these pin what it relies on: every message reaches the
handler in partition order, offsets are committed from the handler's own acks, a handler that asks
for its partition again (after a failure it could not finish) gets every message from that offset again,
and ``Consumer.redeliver`` brings back a partition that Faust stopped fetching (the stalled-partition guard).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import TopicPartition

from tests.conftest import REPO

pytestmark = pytest.mark.kafka

PER_PARTITION = 150
CHECKPOINT_EVERY = 25  # the toy handler acks in batches, after its "checkpoint", as the detect handler does
FAIL_AT = (0, 120)  # partition, offset: the handler fails there once; its last checkpoint covers 0..99
STALL_AT = (1, 60)  # partition, offset: there Faust stops fetching the partition, until a redeliver 2 s later

APP = textwrap.dedent(f"""
    import asyncio
    import sys
    sys.path.insert(0, {str(REPO)!r})
    import faust
    from streams.transport import Transport

    topic_name, out_path, app_id, bootstrap = sys.argv[1:5]
    app = faust.App(app_id, broker=f"kafka://{{bootstrap}}", key_serializer="raw", value_serializer="raw",
                    web_enabled=False, consumer_auto_offset_reset="earliest", store="memory://",
                    broker_commit_interval=0.5)
    app.transport = Transport(app.conf.broker_consumer, app)
    topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
    app.topics.add(topic)
    out = open(out_path, "a", buffering=1)
    pending, checkpointed, failed, stalled = {{}}, {{}}, [], []

    async def handle(msg):
        out.write(f"{{msg.partition}} {{msg.offset}}\\n")
        if (msg.partition, msg.offset) == {FAIL_AT!r} and not failed:
            failed.append(msg.offset)
            pending[msg.partition] = []  # what it built since its checkpoint is dropped
            return checkpointed.get(msg.partition, -1) + 1
        batch = pending.setdefault(msg.partition, [])
        batch.append(msg)
        if len(batch) >= {CHECKPOINT_EVERY}:
            for m in batch:
                app.consumer.ack(m)
            checkpointed[msg.partition] = msg.offset
            batch.clear()
        if (msg.partition, msg.offset) == {STALL_AT!r} and not stalled:
            # the stall the worker's guard is for: the partition drops out of the set Faust fetches for
            # (and the rest of this fetch is dropped), so nothing more of it arrives ...
            stalled.append(msg.offset)
            app.consumer._active_partitions.discard(msg.tp)
            # ... until the guard asks for it again from the next offset (streams/pipeline.py, upkeep)
            asyncio.get_running_loop().call_later(2.0, app.consumer.redeliver, msg.tp, msg.offset + 1)
            return msg.offset + 1
        return None

    app.transport.direct[topic_name] = handle
    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()
""")


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: probe.committed(TopicPartition(topic, p)) or 0 for p in (0, 1)}
    finally:
        probe.close()


def test_direct_handler_gets_every_message_commits_its_acks_and_is_redelivered_on_request(
        kafka_env: dict[str, str], kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = kafka_env["DISTILLGUARD_EVENTS_TOPIC"] + "-direct"  # (the fixture's prefix: deleted afterwards)
    group = kafka_env["DISTILLGUARD_APP_ID"] + "-direct"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(PER_PARTITION):
        for p in (0, 1):
            producer.send(topic, value=b"%d" % i, partition=p)
    producer.flush()
    producer.close()

    script, out = tmp_path / "direct_app.py", tmp_path / "delivered.txt"
    script.write_text(APP)
    log = open(tmp_path / "direct_app.log", "wb")
    proc = subprocess.Popen([sys.executable, str(script), topic, str(out), group, kafka_bootstrap],
                            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        committed: dict[int, int] = {}
        while time.monotonic() < deadline and committed != {0: PER_PARTITION, 1: PER_PARTITION}:
            assert proc.poll() is None, (tmp_path / "direct_app.log").read_text()[-3000:]
            time.sleep(0.5)
            committed = _committed(kafka_bootstrap, group, topic)
        assert committed == {0: PER_PARTITION, 1: PER_PARTITION}, committed
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    seen: dict[int, list[int]] = {0: [], 1: []}
    for line in out.read_text().splitlines():
        p, o = map(int, line.split())
        seen[p].append(o)
    fail_p, fail_o = FAIL_AT
    redeliver_from = (fail_o // CHECKPOINT_EVERY) * CHECKPOINT_EVERY  # the offset after its last checkpoint
    # the failed partition: up to the failure, then again from its checkpoint, in order, nothing skipped
    assert seen[fail_p] == list(range(fail_o + 1)) + list(range(redeliver_from, PER_PARTITION))
    # the stalled partition: nothing lost, nothing twice, once redeliver put it back among the fetched ones
    assert STALL_AT[0] == 1 - fail_p and seen[1 - fail_p] == list(range(PER_PARTITION))
