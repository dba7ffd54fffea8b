"""Webhook sink: POST each notification as signed JSON, with retries, off the stream's path.

:meth:`WebhookSink.offer` never waits: it puts the body on a bounded queue or, when the queue is
full, drops it and counts the drop (``distillguard_webhook_dropped_total``) — a slow or dead
endpoint must not stall detection. One sender task drains the queue in order; each body is
retried on connection errors, timeouts, 5xx and 429 with exponential backoff and full jitter,
re-signed per attempt (``X-Distillguard-Signature: t=<unix>,v1=<hmac-sha256 hex>``, see
``delivery.signature``). Other 4xx and 3xx are final. The notifications topic is the durable record;
the webhook is best effort (a stopping worker drops what is still queued).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from delivery.signature import SIGNATURE_HEADER, sign
from distillguard.logs import get_logger
from streams import metrics

log = get_logger(__name__)
USER_AGENT = "distillguard-webhook/1"


def redact(url: str) -> str:
    """``scheme://host[:port]``: webhook paths and queries often carry tokens, so logs show only this."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname  # IPv6 literal
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


class WebhookSink:
    """A bounded queue in front of one sequential HTTP sender; run :meth:`run` as a task."""

    def __init__(self, url: str, secret: bytes, *, timeout: float = 10.0, max_retries: int = 5,
                 queue_size: int = 1000, backoff: float = 0.5, backoff_max: float = 30.0,
                 rng: random.Random | None = None) -> None:
        if not secret:
            raise ValueError("a webhook needs a signing secret (webhook_secret or webhook_secret_file)")
        self.url, self.target = url, redact(url)
        self._secret = secret
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff, self.backoff_max = backoff, backoff_max
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=queue_size)
        self.sent = self.failed = self.dropped = self.retries = 0

    def offer(self, notification: dict[str, Any]) -> bool:
        """Queue one notification for delivery; ``False`` (and a counted drop) when the queue is full."""
        body = orjson.dumps(notification)
        nid = str(notification.get("notification", {}).get("notification_id", ""))
        try:
            self._queue.put_nowait((nid, body))
        except asyncio.QueueFull:
            self.dropped += 1
            metrics.WEBHOOK_DROPPED.inc()
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("webhook_queue_full", target=self.target, dropped=self.dropped)
            return False
        metrics.WEBHOOK_QUEUE.set(self._queue.qsize())
        return True

    def pending(self) -> int:
        return self._queue.qsize()

    async def drain(self) -> None:
        """Wait until everything queued so far has been delivered or given up on."""
        await self._queue.join()

    async def run(self) -> None:
        """Send queued notifications until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT}) as session:
            log.info("webhook_started", target=self.target, queue_size=self._queue.maxsize)
            while True:
                nid, body = await self._queue.get()
                try:
                    await self._deliver(session, nid, body)
                finally:
                    self._queue.task_done()
                    metrics.WEBHOOK_QUEUE.set(self._queue.qsize())

    async def _deliver(self, session: aiohttp.ClientSession, nid: str, body: bytes) -> bool:
        outcome = ""
        for attempt in range(self.max_retries + 1):
            retry_after: str | None = None
            headers = {"Content-Type": "application/json", "X-Distillguard-Notification-Id": nid,
                       SIGNATURE_HEADER: sign(self._secret, body, int(time.time()))}
            try:
                async with session.post(self.url, data=body, headers=headers, allow_redirects=False) as resp:
                    await resp.read()
                    status, retry_after = resp.status, resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            else:
                if 200 <= status < 300:
                    self.sent += 1
                    metrics.WEBHOOK_SENT.inc()
                    return True
                outcome = f"http {status}"
                if status != 429 and status < 500:
                    break  # the receiver rejected it: retrying will not help
            if attempt == self.max_retries:
                break
            self.retries += 1
            metrics.WEBHOOK_RETRIES.inc()
            await asyncio.sleep(self._delay(attempt, retry_after))
        self.failed += 1
        metrics.WEBHOOK_FAILED.inc()
        log.warning("webhook_failed", target=self.target, notification_id=nid, outcome=outcome)
        return False

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Full jitter over an exponential cap; a numeric ``Retry-After`` (429/503) is honoured up to the max."""
        if retry_after is not None:
            try:
                return min(self.backoff_max, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return self._rng.uniform(0, min(self.backoff_max, self.backoff * 2 ** attempt))
