"""The delivery step of streams/transport.py: inline when the callback does not block, Faust's race when it does.

The whole worker path (rebalances included) runs in tests/test_streaming_kafka.py; these pin the
semantics the drain loop relies on: a blocked delivery still finishes, and a flow suspension (a
rebalance) cancels it inside the callback, as Faust's ``wait_first`` per message did.
"""

from __future__ import annotations

import asyncio

from mode import Service

from streams.transport import Consumer


class Flow(Service):
    """A real mode Service with the consumer's ``suspend_flow`` event: what ``Consumer._deliver`` uses of ``self``."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()


def deliver(flow: Flow, coro) -> asyncio.Future:  # type: ignore[no-untyped-def]
    return asyncio.ensure_future(Consumer._deliver(flow, coro))  # type: ignore[arg-type]


def test_delivery_that_does_not_block_runs_inline() -> None:
    async def main() -> None:
        flow, seen = Flow(), []

        async def callback(n: int) -> None:
            seen.append(n)

        for n in range(3):
            coro = callback(n)
            await Consumer._deliver(flow, coro)  # type: ignore[arg-type]
            assert seen[-1] == n and coro.cr_frame is None  # finished before _deliver returned
        assert seen == [0, 1, 2]

    asyncio.run(main())


def test_blocked_delivery_finishes_with_its_result_and_errors() -> None:
    async def main() -> None:
        flow, space, seen = Flow(), asyncio.Event(), []

        async def callback() -> None:
            seen.append("in")
            await space.wait()  # e.g. the stream's queue is full
            await asyncio.sleep(0)
            seen.append("delivered")

        task = deliver(flow, callback())
        await asyncio.sleep(0.05)
        assert seen == ["in"] and not task.done()
        space.set()
        await asyncio.wait_for(task, 5)
        assert seen == ["in", "delivered"]

        async def failing() -> None:
            await asyncio.sleep(0.01)
            raise ValueError("decode failed")

        try:
            await asyncio.wait_for(deliver(flow, failing()), 5)
        except ValueError as exc:
            assert str(exc) == "decode failed"
        else:
            raise AssertionError("the callback's error was swallowed")

    asyncio.run(main())


def test_flow_suspension_cancels_a_blocked_delivery_inside_the_callback() -> None:
    async def main() -> None:
        flow, space, seen = Flow(), asyncio.Event(), []

        async def callback() -> None:
            try:
                await space.wait()
                seen.append("delivered")
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        task = deliver(flow, callback())
        await asyncio.sleep(0.05)
        flow.suspend_flow.set()  # a rebalance starts
        await asyncio.wait_for(task, 5)  # the drain loop is released
        space.set()
        await asyncio.sleep(0.05)
        assert seen == ["cancelled"]  # and the message was not delivered afterwards

    asyncio.run(main())


class Positions:
    """What ``_note_skipped`` / ``_rewind_skipped`` use of ``self``: the skip notes, the assignment and ``seek_wait``
    (here a record of the seeks instead of the broker's fetch positions)."""

    _note_skipped = Consumer._note_skipped
    _rewind_skipped = Consumer._rewind_skipped

    def __init__(self, assigned: set) -> None:
        self._skipped: dict = {}
        self.assigned, self.seeks = assigned, []

    def assignment(self) -> set:
        return self.assigned

    async def seek_wait(self, partitions: dict) -> None:
        self.seeks.extend(partitions.items())


def test_records_skipped_during_a_suspension_are_sought_again_from_the_first() -> None:
    from faust.types import TP

    p0, p1, gone = TP("events", 0), TP("events", 1), TP("events", 2)
    consumer = Positions({p0, p1})
    for tp, offset in [(p0, 4000), (p0, 4001), (p1, 17), (gone, 5), (p0, 3990)]:
        consumer._note_skipped(tp, offset)
    assert consumer._skipped == {p0: 3990, p1: 17, gone: 5}
    rewound = asyncio.run(consumer._rewind_skipped())
    assert rewound == {p0, p1}, "a partition revoked meanwhile is not sought (its next owner starts from its commit)"
    assert sorted(consumer.seeks) == [(p0, 3990), (p1, 17)]
    assert consumer._skipped == {} and asyncio.run(consumer._rewind_skipped()) == set()
