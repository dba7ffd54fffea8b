"""The aiokafka transport with a cheaper per-message delivery path.

Why: Faust's ``Consumer._drain_messages`` hands every fetched message to the
conductor through ``wait_first(callback(message), suspend_flow.wait())``: four
new tasks (with the service's stopped and crashed waits), an ``asyncio.wait`` and
their clean-up per message. The race exists for one reason: a callback that
blocks (stream buffer full, flow control suspended for a rebalance, producer
buffer full) must be abandoned when the consumer's flow is suspended.

Here the callback coroutine is first stepped inline. Nearly always it completes
in that step (the message is put on the stream's queue) and no task is made.
Only when it blocks is the rest of it run as a task raced against
``suspend_flow`` exactly as Faust does, so a rebalance still cancels a blocked
delivery. A message is not delivered at all once flow is suspended.
The loop still yields to the event loop once per message (one ``sleep(0)``
instead of four tasks), so the agent and rebalance callbacks interleave with
delivery as they did. Everything else (read offsets, gaps, periodic commits)
is Faust 0.15's loop unchanged.

Topics registered in :attr:`Transport.direct` skip Faust's delivery altogether: their messages go
from the fetch straight to a handler coroutine, awaited inline in this loop, which yields to the
event loop only every ``DIRECT_YIELD_EVERY`` messages. Why: Faust's conductor, channel queue and
stream cost about 100 microseconds of CPU per message, which capped a worker at a few thousand
events per second whatever the detection cost (docs/BENCHMARKS.md). A direct handler acks its
messages itself (``Consumer.ack``) once its state covers them; offsets are committed from those acks
exactly as for a stream's. A handler that cannot finish a message returns the offset to deliver its
partition again from (it has dropped what it built since): the partition is sought back there, as
for records skipped during a rebalance, and nothing un-acked is lost. A handler is not raced against
``suspend_flow``: a rebalance waits neither for it nor for streams (``stream_wait_empty`` is off),
and a handler that finishes an event of a revoked partition leaves it un-acked for the next owner.

Two at-least-once holes of Faust's rebalance are closed here (docs/RELIABILITY.md,
"Resuming a partition past its checkpoint"); both were seen in the hand-over test's
worker logs. A partition without a committed offset is not sought at all, so it
goes on from the fetch position of before the rebalance, past records that were
delivered to queues and state the rebalance dropped: such a stream partition is
now sought to its log start (at-least-once: nothing committed, read it again).
And a partition with a committed offset resumed 34-35 records past it: records
skipped while flow was suspended are now remembered (the first per partition) and
the partition is sought back to it once flow resumes, unless Faust's own seek to
the committed offsets came in between (it supersedes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterable, Iterator
from typing import Any, ClassVar, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ConsumerT, Message
from mode import Service, ServiceT

from distillguard.logs import get_logger
from streams import metrics
from streams.admin import wait_for_topics

log = get_logger(__name__)

# returns None, or the offset from which the message's partition must be delivered again
DirectHandler = Callable[[Message], Coroutine[Any, Any, "int | None"]]
DIRECT_YIELD_EVERY = 64  # direct messages between two yields to the event loop (timers, rebalance callbacks)
TOPIC_WAIT_SECONDS = 30.0  # how long a subscription waits for its topics to reach the broker's metadata
MISSING_RECHECK_SECONDS = 10.0  # how often topics still missing after that wait are looked for again


class _Continue:
    """Awaitable that drives a coroutine already stepped once (it yielded ``blocked_on``) to its end.

    ``await coro`` is refused for a coroutine suspended inside an ``await``, so this forwards every
    yield to the awaiting task and every send/throw (cancellation included) back into the coroutine,
    as ``await`` would have.
    """

    __slots__ = ("blocked_on", "coro")

    def __init__(self, coro: Coroutine[Any, Any, Any], blocked_on: Any) -> None:
        self.coro, self.blocked_on = coro, blocked_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self.coro, self.blocked_on
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - e.g. CancelledError: it belongs to the coroutine
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _resume(coro: Coroutine[Any, Any, Any], blocked_on: Any) -> Any:
    """The rest of a coroutine whose first step yielded ``blocked_on``, as something a task can run."""
    return await _Continue(coro, blocked_on)


class Consumer(faust_aiokafka.Consumer):
    """aiokafka consumer whose drain loop steps the delivery callback inline instead of racing tasks per message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._skipped: dict[TP, int] = {}  # first record per partition not delivered while flow was suspended

    #: Topics of the subscription the broker did not list at the last check: nothing is consumed from
    #: them and ``/readyz`` answers 503 naming them (streams/app.py). Checked when Faust subscribes,
    #: then every ``MISSING_RECHECK_SECONDS`` in the background while any is missing.
    missing_topics: tuple[str, ...] = ()
    _missing_watch: asyncio.Future | None = None

    async def subscribe(self, topics: Iterable[str]) -> None:
        """Faust's subscribe, once every topic is in the broker's metadata (at most ``TOPIC_WAIT_SECONDS``).

        Why: Faust declares its internal topics (cluster summaries, changelogs) just before it
        subscribes. In a CI run the group leader assigned from metadata that did not list the new
        cluster-summaries topic yet ("Ignoring missing topic"); the topic stayed unassigned until the
        consumer's next metadata refresh (up to 5 minutes), so no cluster alert came at all.

        Topics still missing after the wait (an events topic nobody created, a typo in a topic
        setting) are remembered in :attr:`missing_topics`, so the worker does not report ready while
        it consumes nothing from them, and looked for again in the background (``_recheck_missing``).
        """
        names = list(topics)  # (Faust passes its topic -> channels index)
        settings = getattr(self.app.conf, "distillguard", None)
        if settings is not None and names:
            missing = await asyncio.to_thread(wait_for_topics, settings, names, TOPIC_WAIT_SECONDS)
            self.missing_topics = tuple(missing)
            if missing:
                log.warning("topics_missing_at_subscribe", topics=missing, waited_seconds=TOPIC_WAIT_SECONDS,
                            action="nothing is consumed from them and /readyz answers 503 until they exist: create "
                            "them with `distillguard topics create` (same settings as the worker) or fix the topic "
                            "settings; the worker looks for them every "
                            f"{MISSING_RECHECK_SECONDS:g} s and is ready once they are assigned")
                if self._missing_watch is None or self._missing_watch.done():
                    self._missing_watch = self.add_future(self._recheck_missing(settings))
        await super().subscribe(names)

    async def _recheck_missing(self, settings: Any) -> None:
        """Every ``MISSING_RECHECK_SECONDS`` while topics are missing: look them up once; when some appear,
        make the consumer refresh its metadata, which starts a rebalance that assigns them, and forget them
        once that rebalance has assigned partitions (a new consumer generation).

        Without the refresh a topic created later would be assigned only at the consumer's next
        periodic metadata refresh, up to 5 minutes later.
        """
        while self.missing_topics and not self.should_stop:
            await self.sleep(MISSING_RECHECK_SECONDS)
            if self.should_stop or not self.missing_topics:
                return
            before = list(self.missing_topics)
            try:
                still = await asyncio.to_thread(wait_for_topics, settings, before, 0.0)
            except Exception as exc:  # noqa: BLE001 - the broker may be away: try again at the next round
                log.info("topics_recheck_failed", topics=before, error=f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            if still == before:
                continue
            appeared = sorted(set(before) - set(still))
            generation = self.app.consumer_generation_id
            try:
                client = self._thread._ensure_consumer()._client  # type: ignore[attr-defined]
                await self._thread.call_thread(client.force_metadata_update)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - tried again at the next round
                log.warning("metadata_refresh_failed", error=f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            # still "missing" (not ready) until the rebalance the new metadata starts has assigned them
            waited = 0.0
            while self.app.consumer_generation_id == generation and waited < TOPIC_WAIT_SECONDS:
                await self.sleep(0.5)
                waited += 0.5
                if self.should_stop:
                    return
            if self.app.consumer_generation_id == generation:
                log.warning("topics_appeared_not_assigned", topics=appeared, waited_seconds=waited,
                            action=f"metadata refreshed again in {MISSING_RECHECK_SECONDS:g} s")
                continue
            if list(self.missing_topics) == before:  # (unless a subscribe checked again meanwhile)
                self.missing_topics = tuple(still)
            log.info("topics_appeared", topics=appeared, still_missing=still, assigned_after_seconds=waited)

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets, and to the log start for stream partitions without one.

        Every position is sought again here, so records skipped before it need no rewind of their own.
        """
        self._skipped.clear()
        await super().perform_seek()
        changelogs = self.app.tables.changelog_topics
        fresh = [tp for tp in self.assignment()
                 if tp.topic not in changelogs and self._committed_offset.get(tp) is None]
        if fresh:
            # seek_wait: through the consumer's own thread (as Faust's recovery seeks), and it resets the read offsets
            await self.seek_wait({tp: offset or 0 for tp, offset in (await self.earliest_offsets(*fresh)).items()})

    def redeliver(self, tp: TP, offset: int) -> bool:
        """Deliver ``tp`` again from ``offset``: it is sought there before this fetch loop's next message
        (or at the end of the current fetch), and what was fetched of it meanwhile is dropped.

        A partition that is assigned and not paused but missing from Faust's set of partitions it
        returns records for (which would keep its fetch position where it is) is put back in it;
        returns True if it was missing. ``tp`` may be any (topic, partition) pair: Faust's fetcher
        asserts that its set holds only its own ``TP`` tuples (a message's ``tp`` need not be one).
        """
        tp = TP(tp.topic, tp.partition)
        active = self._active_partitions
        missing = active is not None and tp not in active and tp not in self._paused_partitions
        if missing:
            active.add(tp)
        self._note_skipped(tp, offset)
        return missing

    def _note_skipped(self, tp: TP, offset: int) -> None:
        if offset < self._skipped.get(tp, offset + 1):
            self._skipped[tp] = offset

    async def _rewind_skipped(self) -> set[TP]:
        """Seek the still assigned partitions with skipped records back to the first of them."""
        skipped, self._skipped = self._skipped, {}
        assigned = self.assignment()
        rewound = {tp for tp in skipped if tp in assigned}
        if rewound:
            await self.seek_wait({tp: skipped[tp] for tp in rewound})
        return rewound

    async def _deliver(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run one delivery; only a delivery that blocks is raced against ``suspend_flow`` (Faust's semantics)."""
        try:
            blocked_on = coro.send(None)
        except StopIteration:
            return
        except BaseException:
            coro.close()
            raise
        await self.wait_first(_resume(coro, blocked_on), self.suspend_flow.wait())

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - runs inside the worker
        # Faust 0.15.3's Consumer._drain_messages with ``wait_first`` per message replaced by ``_deliver``.
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        flow_suspended = self.suspend_flow.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        deliver = self._deliver
        direct: dict[str, DirectHandler] = cast(Transport, self.transport).direct
        n_direct = 0

        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = cast(AsyncIterator, getmany(timeout=1.0))
                await self.sleep(0)
                if not self.should_stop:
                    rewound: set[TP] = set()
                    async for tp, message in ait:
                        # back to the loop once per message, as Faust's per-message wait did: the agent, the
                        # rebalance callbacks and timers interleave with delivery as before (a sleep(0) costs a
                        # few microseconds, the four tasks it replaces tens); once every DIRECT_YIELD_EVERY
                        # for a direct topic, whose handler runs here and needs no other task to progress
                        handler = direct.get(tp.topic)
                        if handler is None:
                            await sleep(0)
                        else:
                            n_direct += 1
                            if n_direct >= DIRECT_YIELD_EVERY:
                                n_direct = 0
                                await sleep(0)
                        if flow_suspended():
                            # a rebalance is on: deliver nothing more of this fetch, and remember where each
                            # partition stopped (perform_seek seeks every partition again; a record fetched
                            # after that seek is sought again when flow resumes)
                            self._note_skipped(tp, message.offset)
                            continue
                        if self._skipped:  # flow resumed: the partitions with skipped records go back first
                            rewound |= await self._rewind_skipped()
                        if tp in rewound:
                            continue  # fetched before its partition's rewind: it comes again

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if handler is None:
                                await deliver(callback(message))
                            else:
                                again = await handler(message)
                                if again is not None:  # sought back before the next message (below)
                                    self._note_skipped(tp, again)
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                    if self._skipped and not flow_suspended():  # (a redelivery asked for by the fetch's last message)
                        await self._rewind_skipped()
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)  # noqa: TRY401 - as Faust logs it
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`Consumer`; producers and admin calls are Faust's own.

    ``direct``: topic name -> handler for topics delivered without Faust's streams (see the module
    docstring). Such a topic must still be subscribed (``app.topics.add``) for its partitions to be
    assigned, and its handler must ack every message it is done with.
    """

    Consumer: ClassVar[type[ConsumerT]] = Consumer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direct: dict[str, DirectHandler] = {}
        #: callables returning the input partitions held back by refused sends (see :func:`failing_inputs`)
        self.failing: list[Callable[[], Iterable[TP]]] = []


def failing_inputs(app: Any) -> list[dict[str, Any]]:
    """Input partitions held back because the broker refused (or did not confirm) records produced from them:
    they wait for their redelivery, and count as failing until the work that failed is checkpointed or acked.
    ``/readyz`` answers 503 naming them and ``distillguard_partitions_failing`` counts them: their consumer
    lag alone does not show a stall (a restarted partition has no new position to report)."""
    held = {(tp.topic, tp.partition) for source in cast(Transport, app.transport).failing for tp in source()}
    return [{"topic": topic, "partition": partition} for topic, partition in sorted(held)]


# ---------------------------------------------------------------------------------------------------------
# Checking what the worker sent.
#
# ``await topic.send(...)`` only puts a record in the producer's buffer: a record the broker refuses (a
# topic's max.message.bytes, a deleted topic, an authorization error) never raises there. Faust's producer
# sets the refusal on the future ``send`` returns (aiokafka's, or the FutureMessage of a table's changelog
# write via ``Topic._on_published``) and otherwise only logs a warning. Every record the worker sends is
# therefore kept, with its destination, in a :data:`Sent` list of the input it belongs to (an events
# partition's un-checkpointed events, one stream event) and :func:`confirm`-ed before the offsets of that
# input are acked, so nothing is committed past an event whose output was not written (docs/RELIABILITY.md).

Sent = list[tuple[asyncio.Future, str, str]]  # (send future, destination role, destination topic)
CONFIRM_TIMEOUT = 120.0  # a send not confirmed by then counts as failed (Faust lets aiokafka retry for 20 min)
RETRY_MIN_SECONDS, RETRY_MAX_SECONDS = 1.0, 30.0  # back-off of a partition whose output keeps being refused
_collecting: contextvars.ContextVar[Sent | None] = contextvars.ContextVar("distillguard_sent", default=None)


class SendFailed(Exception):
    """Records sent for an input were refused by the broker (or not confirmed): the input must be processed again."""

    def __init__(self, role: str, topic: str, reason: str, failed: int) -> None:
        super().__init__(f"{failed} record(s) for the {role} topic {topic!r} not written: {reason}")
        self.role, self.topic, self.reason, self.failed = role, topic, reason, failed


def retry_delay(failures: int) -> float:
    """Seconds to wait before processing a partition again after its ``failures``-th consecutive send failure."""
    return min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2 ** max(0, min(failures - 1, 10)))


def send_error(fut: asyncio.Future) -> str | None:
    """The broker's reason a finished send failed (None: written). Retrieves the exception (no asyncio warning)."""
    if fut.cancelled():
        return "send cancelled"
    exc = fut.exception()
    if exc is None:
        return None
    return f"{type(exc).__name__}: {str(exc)[:200]}"  # a Kafka error names its code, never the record


async def send(topic: Any, sent: Sent | None, role: str, key: bytes | None, value: bytes,
               on_written: Callable[[], None] | None = None) -> None:
    """``topic.send`` whose result is kept in ``sent`` (checked by :func:`confirm` before the source is acked).

    ``on_written``: called once the broker has the record (the metrics count written records only).
    ``sent`` None: nobody checks it; a refusal is still logged (``send_failed``) and counted.
    A record the producer refuses at once (before buffering it) raises :class:`SendFailed` here, as a refusal
    found by :func:`confirm` does later: callers handle both the same way.
    """
    # what ``Topic.send`` does (without attachments, which are off), keeping the FutureMessage: Faust's
    # ``_on_published`` sets the broker's answer on it, and checking it here retrieves a refusal (else asyncio
    # logs "FutureMessage exception was never retrieved")
    fut = topic.as_future_message(key=key, value=value)
    try:
        await topic.publish_message(fut)
    except Exception as exc:  # noqa: BLE001 - the producer refused it at once (e.g. closed, or a size check)
        raise SendFailed(role, topic.get_topic_name(), f"{type(exc).__name__}: {str(exc)[:200]}", 1) from exc
    track(fut, sent, role, topic.get_topic_name(), on_written)


def track(fut: asyncio.Future, sent: Sent | None, role: str, topic_name: str,
          on_written: Callable[[], None] | None = None) -> None:
    """Keep a send's future in ``sent`` (or, without one, log and count its failure when it comes)."""
    if on_written is not None:
        fut.add_done_callback(lambda f: on_written() if not f.cancelled() and f.exception() is None else None)
    if sent is not None:
        fut.add_done_callback(send_error)  # retrieved even if nobody checks it any more (a restarted partition)
        sent.append((fut, role, topic_name))
        return

    def unchecked(f: asyncio.Future) -> None:
        reason = send_error(f)
        if reason is not None:
            metrics.SEND_FAILURES.labels(topic=role).inc()
            log.error("send_failed", topic=topic_name, role=role, reason=reason, checked=False,
                      action="not re-sent: nothing waits for this record (docs/RELIABILITY.md)")
    fut.add_done_callback(unchecked)


@contextlib.contextmanager
def collecting(sent: Sent) -> Iterator[Sent]:
    """Table writes in this block keep their changelog records' futures in ``sent`` (see :func:`track_changelog`)."""
    token = _collecting.set(sent)
    try:
        yield sent
    finally:
        _collecting.reset(token)


def track_changelog(table: Any, role: str) -> None:
    """Keep the futures of ``table``'s changelog records: in the :func:`collecting` list if there is one (its
    writer confirms them before acking), else logged and counted when one fails.

    Faust's ``Table.on_key_set``/``on_key_del`` send through ``self.send_changelog``, which returns the
    record's FutureMessage; ``Topic._on_published`` sets the broker's refusal on it.
    """
    original = table.send_changelog

    def send_changelog(partition: int | None, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        fut = original(partition, key, value, *args, **kwargs)
        track(fut, _collecting.get(), role, table.changelog_topic.get_topic_name())
        return fut

    table.send_changelog = send_changelog


async def confirm(sent: Sent, **where: Any) -> None:
    """Wait until every record in ``sent`` is written (one broker round trip for all), and empty it.

    A refused record (or one not confirmed within ``CONFIRM_TIMEOUT``) is logged as ``send_failed`` with its
    destination, ``where`` (e.g. the source partition) and the broker's reason, never the record's content,
    counted in ``distillguard_send_failures{topic=<role>}``, and raised as :class:`SendFailed`.
    """
    if not sent:
        return
    records, sent[:] = list(sent), []
    waiting = [f for f, _, _ in records if not f.done()]
    if waiting:
        await asyncio.wait(waiting, timeout=CONFIRM_TIMEOUT)
    failed: dict[tuple[str, str], list[Any]] = {}
    for fut, role, topic in records:
        reason = send_error(fut) if fut.done() else f"not confirmed within {CONFIRM_TIMEOUT:g} s"
        if reason is not None:
            failed.setdefault((role, topic), [0, reason])[0] += 1
    if not failed:
        return
    for (role, topic), (count, reason) in failed.items():
        metrics.SEND_FAILURES.labels(topic=role).inc(count)
        log.error("send_failed", topic=topic, role=role, records=count, reason=reason, **where)
    (role, topic), (count, reason) = next(iter(failed.items()))
    raise SendFailed(role, topic, reason, count)


class _Pending:
    __slots__ = ("event", "sent")

    def __init__(self, event: Any, sent: Sent) -> None:
        self.event, self.sent = event, sent


class OrderedAcks:
    """Acks a Faust stream's events (a ``noack()`` stream) in offset order per partition, each once the
    records sent while processing it are written. Nothing waits on the agent's path: the futures' done
    callbacks ack.

    A refused record stops its partition: nothing from that event on is acked, the partition is
    delivered again from that event after a back-off (:func:`retry_delay`, doubling up to 30 s while it
    keeps failing) and the events delivered meanwhile are skipped (:meth:`skip`), so its outputs are sent
    again instead of lost.
    """

    def __init__(self, app: Any, stage: str) -> None:
        self.app, self.stage = app, stage
        self.queues: dict[TP, deque[_Pending]] = {}
        self.held: dict[TP, int] = {}  # partition -> offset it is delivered again from (skip anything later)
        # per partition: consecutive failures (the back-off) and the offset that failed last (its ack ends them)
        self.failures: dict[TP, tuple[int, int]] = {}
        cast(Transport, app.transport).failing.append(lambda: self.failures)  # named by /readyz

    def skip(self, event: Any) -> bool:
        """True for an event of a partition waiting to be delivered again from an earlier offset."""
        msg = event.message
        at = self.held.get(msg.tp)
        if at is None:
            return False
        if msg.offset > at:
            return True
        del self.held[msg.tp]  # the redelivery has come
        return False

    def done(self, event: Any, sent: Sent) -> None:
        """The event is processed; ack it once ``sent`` is written (and every earlier event of its partition is).
        Takes ``sent`` over: each caller collects one list per event."""
        tp = event.message.tp
        entry = _Pending(event, sent)
        self.queues.setdefault(tp, deque()).append(entry)
        for fut, _, _ in entry.sent:
            if not fut.done():
                fut.add_done_callback(lambda _f, tp=tp: self._settle(tp))
        self._settle(tp)

    def _settle(self, tp: TP) -> None:
        queue = self.queues.get(tp)
        while queue:
            head = queue[0]
            if not all(f.done() for f, _, _ in head.sent):
                return
            failed = [(role, topic, reason) for f, role, topic in head.sent if (reason := send_error(f)) is not None]
            if failed:
                self._fail(tp, head, failed)
                return
            queue.popleft()
            head.event.ack()
            if tp in self.failures and head.event.message.offset >= self.failures[tp][1]:
                del self.failures[tp]

    def failed(self, event: Any, exc: SendFailed) -> None:
        """A send of ``event`` failed while it was processed (already logged by :func:`confirm`): stop its
        partition and deliver it again from its first un-acked event."""
        tp = event.message.tp
        queue = self.queues.get(tp)
        offset = min(queue[0].event.message.offset, event.message.offset) if queue else event.message.offset
        self._hold(tp, offset, exc.role, exc.topic, exc.reason, event.message.offset)

    def _fail(self, tp: TP, head: _Pending, failed: list[tuple[str, str, str]]) -> None:
        offset = head.event.message.offset
        for role, topic, reason in failed:
            metrics.SEND_FAILURES.labels(topic=role).inc()
        role, topic, reason = failed[0]
        log.error("send_failed", topic=topic, role=role, records=len(failed), reason=reason, stage=self.stage,
                  source_topic=tp.topic, source_partition=tp.partition, source_offset=offset)
        self._hold(tp, offset, role, topic, reason, offset)

    def _hold(self, tp: TP, offset: int, role: str, topic: str, reason: str, failed_at: int) -> None:
        self.queues.pop(tp, None)  # later events are not acked either: they are delivered again
        n, last_failed = self.failures.get(tp, (0, failed_at))
        n += 1
        self.failures[tp] = (n, max(failed_at, last_failed))
        delay = retry_delay(n)
        self.held[tp] = offset
        log.error("partition_restarted", stage=self.stage, topic=tp.topic, partition=tp.partition,
                  redeliver_from=offset, retry_in_seconds=delay, consecutive_failures=n,
                  error=f"SendFailed: {role} topic {topic!r}: {reason}")
        asyncio.get_running_loop().call_later(delay, self._redeliver, tp, offset)

    def _redeliver(self, tp: TP, offset: int) -> None:
        if self.held.get(tp) == offset and tp in self.app.consumer.assignment():
            cast(Consumer, self.app.consumer).redeliver(tp, offset)

    def revoked(self, tps: Iterable[Any]) -> None:
        """Forget revoked partitions: their un-acked events go to the next owner."""
        for tp in tps:
            key = TP(tp.topic, tp.partition)
            self.queues.pop(key, None)
            self.held.pop(key, None)
            self.failures.pop(key, None)
