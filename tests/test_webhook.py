"""The webhook sink (streams/webhook.py) against a real local HTTP server (aiohttp.web on a free port)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections.abc import Awaitable, Callable

import orjson
import pytest
from aiohttp import web

from delivery.signature import SIGNATURE_HEADER, sign, verify
from distillguard.settings import Settings
from streams import metrics
from streams.delivery import make_sink
from streams.webhook import WebhookSink, redact

SECRET = b"whsec-test-0123456789"


def note(i: int) -> dict:
    return {"alert_id": f"t-{i}", "kind": "tenant", "tenant_id": "t1", "status": "open",
            "notification": {"notification_id": f"n-{i}", "reason": "new", "incident_key": "tenant:t1"}}


class Receiver:
    """A real HTTP endpoint: answers from a script of statuses (then 200), optionally held at a gate."""

    def __init__(self, statuses: list[int] | None = None, gate: asyncio.Event | None = None) -> None:
        self.statuses = list(statuses or [])
        self.gate = gate
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, headers={"Retry-After": "0"} if status == 429 else None)


async def serve(receiver: Receiver, body: Callable[[str], Awaitable[None]]) -> None:
    app = web.Application()
    app.router.add_post("/hook/{token}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await body(f"http://127.0.0.1:{port}/hook/tok-secret-path")
    finally:
        await runner.cleanup()


async def with_sink(sink: WebhookSink, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(sink.run())
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def documented_check(secret: bytes, body: bytes, header: str) -> bool:
    """The verification recipe of docs/DELIVERY.md, written out independently of delivery.signature."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret, fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(fields["t"])) <= 300


def test_delivers_in_order_with_a_verifiable_signature():
    receiver = Receiver()
    sent_before = metrics.WEBHOOK_SENT._value.get()

    async def scenario(url: str) -> None:
        sink = WebhookSink(url, SECRET, timeout=5, max_retries=0)

        async def body() -> None:
            assert all(sink.offer(note(i)) for i in range(3))
            await asyncio.wait_for(sink.drain(), 20)

        await with_sink(sink, body)
        assert sink.sent == 3 and sink.failed == 0 and sink.dropped == 0

    asyncio.run(serve(receiver, scenario))
    assert [orjson.loads(b)["alert_id"] for _, b in receiver.requests] == ["t-0", "t-1", "t-2"]
    for headers, body in receiver.requests:
        header = headers[SIGNATURE_HEADER]
        assert documented_check(SECRET, body, header)
        assert verify(SECRET, body, header, time.time())
        assert not verify(b"other-secret", body, header, time.time())
        assert not verify(SECRET, body.replace(b"t-", b"x-"), header, time.time()), "a changed body fails"
        assert not verify(SECRET, body, header, time.time() + 3600), "an old signature fails (replay)"
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Distillguard-Notification-Id"] == orjson.loads(body)["notification"]["notification_id"]
    assert metrics.WEBHOOK_SENT._value.get() - sent_before == 3


def test_retries_5xx_429_and_connection_errors_but_not_4xx():
    receiver = Receiver(statuses=[503, 500, 200, 429, 200, 400])
    retries_before = metrics.WEBHOOK_RETRIES._value.get()

    async def scenario(url: str) -> None:
        sink = WebhookSink(url, SECRET, timeout=5, max_retries=3, backoff=0.01, rng=random.Random(1))

        async def body() -> None:
            for i in range(3):
                sink.offer(note(i))
            await asyncio.wait_for(sink.drain(), 20)

        await with_sink(sink, body)
        assert (sink.sent, sink.failed, sink.retries) == (2, 1, 3)

    asyncio.run(serve(receiver, scenario))
    ids = [orjson.loads(b)["alert_id"] for _, b in receiver.requests]
    assert ids == ["t-0", "t-0", "t-0", "t-1", "t-1", "t-2"], "the 400 is final: no retry"
    assert all(documented_check(SECRET, b, h[SIGNATURE_HEADER]) for h, b in receiver.requests), "every retry is signed"
    assert metrics.WEBHOOK_RETRIES._value.get() - retries_before == 3

    async def refused() -> None:  # nothing listens on the port: connection errors are retried, then given up
        probe = web.AppRunner(web.Application())
        await probe.setup()
        site = web.TCPSite(probe, "127.0.0.1", 0)
        await site.start()
        port = probe.addresses[0][1]
        await probe.cleanup()
        sink = WebhookSink(f"http://127.0.0.1:{port}/x", SECRET, timeout=2, max_retries=2, backoff=0.01)

        async def body() -> None:
            sink.offer(note(9))
            await asyncio.wait_for(sink.drain(), 20)

        await with_sink(sink, body)
        assert (sink.sent, sink.failed, sink.retries) == (0, 1, 2)

    asyncio.run(refused())


def test_full_queue_drops_and_counts_without_blocking_the_producer():
    gate = asyncio.Event()
    receiver = Receiver(gate=gate)
    dropped_before = metrics.WEBHOOK_DROPPED._value.get()

    async def scenario(url: str) -> None:
        sink = WebhookSink(url, SECRET, timeout=30, max_retries=0, queue_size=3)
        beats = 0

        async def heartbeat() -> None:
            nonlocal beats
            while True:
                beats += 1
                await asyncio.sleep(0.01)

        async def body() -> None:
            hb = asyncio.create_task(heartbeat())
            assert sink.offer(note(0))
            await asyncio.wait_for(receiver.arrived.wait(), 10)  # the endpoint now holds the sender
            accepted = [sink.offer(note(i)) for i in range(1, 21)]  # synchronous: returns at once, never awaits
            assert accepted == [True] * 3 + [False] * 17
            assert sink.dropped == 17 and sink.pending() == 3
            seen = beats
            await asyncio.sleep(0.3)
            assert beats > seen, "the event loop keeps running while the endpoint is stuck"
            gate.set()
            await asyncio.wait_for(sink.drain(), 20)
            hb.cancel()

        await with_sink(sink, body)
        assert sink.sent == 4

    asyncio.run(serve(receiver, scenario))
    assert [orjson.loads(b)["alert_id"] for _, b in receiver.requests] == ["t-0", "t-1", "t-2", "t-3"]
    assert metrics.WEBHOOK_DROPPED._value.get() - dropped_before == 17


def test_settings_secret_handling(tmp_path):
    assert make_sink(Settings()) is None, "off by default"
    with pytest.raises(ValueError, match="webhook_secret"):
        make_sink(Settings(webhook_url="https://hooks.example/x"))
    with pytest.raises(ValueError):
        Settings(webhook_url="ftp://hooks.example/x")
    path = tmp_path / "secret"
    path.write_text("from-file-secret\n")
    s = Settings(webhook_url="https://hooks.example/T0/abc?token=zzz", webhook_secret_file=path)
    sink = make_sink(s)
    assert sink is not None and sink.target == "https://hooks.example"
    assert s.webhook_secret_bytes() == b"from-file-secret"
    assert "hunter2" not in repr(Settings(webhook_secret="hunter2"))
    assert redact("http://user:pw@127.0.0.1:8080/a/b?c=d") == "http://127.0.0.1:8080"
    assert redact("http://[::1]:8080/hook?token=x") == "http://[::1]:8080", "an IPv6 host keeps its brackets"
    mac = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign(b"k", b"{}", 1700000000) == f"t=1700000000,v1={mac}"


def test_the_documented_verification_snippet_accepts_our_signatures():
    """docs/DELIVERY.md's Python snippet, run as written, against the sink's signing code."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "DELIVERY.md").read_text()
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 - our own documentation
    body = orjson.dumps(note(1))
    header = sign(SECRET, body, int(time.time()))
    assert namespace["verify"](SECRET, body, header)
    assert not namespace["verify"](SECRET, body + b" ", header)
    assert not namespace["verify"](SECRET, body, sign(SECRET, body, int(time.time()) - 600))
