"""The delivery shell: alerts -> notification policy -> notifications topic (and the webhook sink).

Inhibition needs tenant and cluster alerts in one place and in one order, so every worker re-keys
the alerts it consumes onto the single-partition topic ``<app_id>-delivery``, stamped with its wall
clock. The worker owning that partition runs the :class:`delivery.NotificationPolicy`; the leader
also sends clock ticks through the same topic, so group-wait releases and repeats are decided in
the same total order as the alerts. The policy's state lives in the changelog-backed table
``delivery-state`` (one key per incident, per remembered alert id, plus the clock): a new owner
rebuilds the policy from it and goes on from the committed offset. A crash can re-send the
notifications of the last uncommitted alerts, with the same ``notification_id``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import faust
import orjson

from delivery.policy import NotificationPolicy, PolicyConfig
from distillguard.logs import get_logger
from distillguard.settings import Settings
from streams import metrics
from streams.transport import OrderedAcks, SendFailed, Sent, collecting, confirm, send, track_changelog
from streams.webhook import WebhookSink

log = get_logger(__name__)
KEY = b"d"  # one key: one partition, one order
DELIVERY_RETENTION = timedelta(days=7)  # only needed until the delivery agent has consumed it


def policy_config(settings: Settings) -> PolicyConfig:
    return PolicyConfig(repeat_interval=settings.notify_repeat_interval_seconds,
                        group_wait=settings.notify_group_wait_seconds, max_incidents=settings.notify_max_incidents)


def tick_interval(settings: Settings) -> float | None:
    """How often the leader sends clock ticks: fine enough for the shortest wait, at most every 5 s."""
    waits = [w for w in (settings.notify_repeat_interval_seconds, settings.notify_group_wait_seconds) if w > 0]
    return min(5.0, max(0.5, min(waits) / 4)) if waits else None


def webhook_secret(settings: Settings) -> bytes | None:
    """The webhook's signing key, ``None`` when ``webhook_url`` is unset; ValueError (one line, saying which
    setting to fix) for a URL without a key or a secret file that cannot be read."""
    if not settings.webhook_url:
        return None
    try:
        secret = settings.webhook_secret_bytes()
    except OSError as exc:
        raise ValueError(f"webhook_secret_file {str(settings.webhook_secret_file)!r} cannot be read "
                         f"({exc.strerror or exc}): set DISTILLGUARD_WEBHOOK_SECRET_FILE") from None
    if not secret:
        raise ValueError("webhook_url is set but neither webhook_secret nor webhook_secret_file gives a signing "
                         "key: set DISTILLGUARD_WEBHOOK_SECRET_FILE (docs/DELIVERY.md)")
    return secret


def make_sink(settings: Settings) -> WebhookSink | None:
    """The webhook sink, or ``None`` when ``webhook_url`` is unset; a URL without a usable key is a ValueError."""
    secret = webhook_secret(settings)
    if secret is None:
        return None
    return WebhookSink(settings.webhook_url, secret, timeout=settings.webhook_timeout_seconds,
                       max_retries=settings.webhook_max_retries, queue_size=settings.webhook_queue_size,
                       backoff=settings.webhook_backoff_seconds)


def register_delivery(app: faust.App, settings: Settings) -> None:
    """Attach the re-key agent, the delivery agent, its state table, the tick timer and the webhook task."""
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    alerts_in = app.topic(settings.alerts_topic, partitions=settings.partitions, **raw)
    delivery_topic = app.topic(f"{settings.app_id}-delivery", partitions=1, internal=True,
                               retention=DELIVERY_RETENTION, **raw)
    notifications = app.topic(settings.notifications_topic, partitions=settings.partitions, **raw)
    table = app.Table("delivery-state", default=None, partitions=1, key_type=bytes, value_type=bytes)
    track_changelog(table, "delivery_state")
    # each input is acked once what it produced (a delivery record, notifications, the policy's table
    # records) is written; a refused record has its partition delivered again from it (streams/transport.py)
    rekey_acks = OrderedAcks(app, "delivery-rekey")
    deliver_acks = OrderedAcks(app, "delivery")
    sink = make_sink(settings)
    config = policy_config(settings)
    holder: dict[str, NotificationPolicy] = {}
    reported: dict[str, int] = {}

    def policy() -> NotificationPolicy:
        """The policy of the owned delivery partition, rebuilt from the table on first use after assignment."""
        if "p" not in holder:
            p = NotificationPolicy(config)
            p.restore((k.decode(), v) for k, v in list(table.items()) if v is not None)
            holder["p"] = p
            reported.clear()
            reported.update(p.counts)
            log.info("delivery_policy_restored", open_incidents=len(p))
        return holder["p"]

    def report(p: NotificationPolicy) -> None:
        """Turn the policy's counters into metric increments."""
        for name, value in p.counts.items():
            delta = value - reported.get(name, 0)
            if delta <= 0:
                continue
            reported[name] = value
            if name == "folded":
                metrics.NOTIFY_FOLDED.inc(delta)
            elif name in ("duplicate", "invalid", "evicted"):
                metrics.NOTIFY_SKIPPED.labels(why=name).inc(delta)
        metrics.OPEN_INCIDENTS.set(len(p))

    @app.agent(alerts_in, name="distillguard.delivery-rekey")
    async def rekey(stream: faust.StreamT) -> None:
        manual = stream.noack()
        async for event in manual.events():
            if rekey_acks.skip(event):
                continue  # its partition is delivered again from an earlier alert (a refused send)
            sent: Sent = []
            try:
                alert = orjson.loads(event.value)
                if not isinstance(alert, dict):
                    raise ValueError("not a JSON object")
            except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
                log.warning("delivery_alert_rejected", reason=str(exc)[:200])
            else:
                try:
                    await send(delivery_topic, sent, "delivery", KEY,
                               orjson.dumps({"type": "alert", "now": time.time(), "alert": alert}))
                except SendFailed as exc:  # refused at once by the producer: deliver it again
                    rekey_acks.failed(event, exc)
                    continue
            rekey_acks.done(event, sent)

    @app.agent(delivery_topic, name="distillguard.delivery")
    async def deliver(stream: faust.StreamT) -> None:
        manual = stream.noack()
        async for event in manual.events():
            if deliver_acks.skip(event):
                continue  # delivered again from an earlier input (a refused notification)
            try:
                await deliver_one(event)
            except SendFailed as exc:
                holder.clear()  # the policy took the input in: rebuilt from the table, which has not
                deliver_acks.failed(event, exc)

    async def deliver_one(event: Any) -> None:
        """One delivery input: its notifications are written (a page is rare: waiting costs nothing) before
        the webhook gets them and the policy's changes go to the table; acked once those are written too."""
        p = policy()
        try:
            msg = orjson.loads(event.value)
            now = float(msg["now"])
            notes = p.tick(now) if msg["type"] == "tick" else p.process(msg["alert"], now)
        except Exception as exc:  # noqa: BLE001 - one bad input must not stop delivery
            log.error("delivery_input_failed", error=f"{type(exc).__name__}: {str(exc)[:200]}")
            notes = []
        sent: Sent = []
        if notes:
            for note in notes:
                await send(notifications, sent, "notifications", note["notification"]["incident_key"].encode(),
                           orjson.dumps(note))
            await confirm(sent, stage="delivery", source_partition=event.message.partition)
            for note in notes:
                metrics.NOTIFICATIONS.labels(reason=note["notification"]["reason"]).inc()
                if sink is not None:
                    sink.offer(note)
        with collecting(sent):
            for key, data in p.drain_changes().items():
                k = key.encode()
                if data is not None:
                    table[k] = data
                elif k in table:
                    del table[k]
        deliver_acks.done(event, sent)
        report(p)

    interval = tick_interval(settings)
    if interval is not None:
        @app.timer(interval=interval, on_leader=True)
        async def tick() -> None:
            # unchecked (a refusal is logged and counted): the next tick, seconds later, does the same work
            await send(delivery_topic, None, "delivery", KEY, orjson.dumps({"type": "tick", "now": time.time()}))

    if sink is not None:
        @app.task
        async def webhook() -> None:
            try:
                await sink.run()
            except asyncio.CancelledError:
                log.info("webhook_stopped", pending=sink.pending(), sent=sink.sent, dropped=sink.dropped)
                raise

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        rekey_acks.revoked(revoked)
        deliver_acks.revoked(revoked)
        if any(tp.topic == delivery_topic.get_topic_name() for tp in revoked):
            holder.clear()  # the next owner may change the state: rebuild from the table when we own it again
