"""Reading one partition's offset range outside the consumer group.

Why: a worker resumes a partition where its restored state ends (the checkpointed offset),
and Faust resumes fetching at the group's committed offset. Offsets are committed only after
the checkpoint that covers them, so the two agree, except when a rebalance leaves Faust's
fetch position past the checkpoint (docs/RELIABILITY.md, "Resuming a partition"). The events
in between would then be missing from the state. Seeking Faust's own consumer back races
its read-offset bookkeeping; a separate consumer without a group reads them, commits nothing,
and leaves the group's positions alone.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from distillguard.settings import Settings
from streams.clients import kafka_python_config


async def read_range(settings: Settings, topic: str, partition: int, start: int, stop: int,
                     idle_timeout: float = 60.0) -> AsyncIterator[list[Any]]:
    """Yield the records of ``topic``/``partition`` with ``start <= offset < stop`` in batches, in order.

    Offsets before the log start (deleted by retention) are skipped; gaps (transaction markers) are
    followed by position. Raises :class:`TimeoutError` when no record arrives for ``idle_timeout`` s.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, client_id="distillguard-catchup",
                                auto_offset_reset="earliest", **kafka_python_config(settings))
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        position = max(start, (await consumer.beginning_offsets([tp]))[tp])
        if position >= stop:
            return
        consumer.seek(tp, position)
        deadline = time.monotonic() + idle_timeout
        while position < stop:
            batch = (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
            records = [r for r in batch if start <= r.offset < stop]
            if records:
                yield records
            new_position = await consumer.position(tp)
            if new_position > position:
                position, deadline = new_position, time.monotonic() + idle_timeout
            elif time.monotonic() > deadline:
                raise TimeoutError(f"{topic}/{partition}: nothing read past offset {position} "
                                   f"(wanted up to {stop - 1}) in {idle_timeout:.0f} s")
    finally:
        await consumer.stop()
