"""Say clearly in the log when a worker loses the broker and when it has it back.

During an outage aiokafka and Faust log one connection error per client per retry, none of which says
"the broker is gone" or "it is back, after N seconds". A timer sends one metadata request every few
seconds with a small client of its own (same connection and security settings as everything else) and
logs ``broker_unreachable`` / ``broker_reachable`` on each change, with the outage's length; the gauge
``distillguard_broker_up`` carries the same state for dashboards.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from prometheus_client import Gauge

from distillguard.logs import get_logger
from distillguard.settings import Settings
from streams import metrics

log = get_logger(__name__)
BROKER_UP = Gauge("distillguard_broker_up", "1 while the broker answers metadata requests, else 0",
                  registry=metrics.REGISTRY)
INTERVAL = 2.0  # seconds between probes
TIMEOUT = 5.0  # a metadata round trip slower than this counts as unreachable


def watch_broker(app: faust.App, settings: Settings, up_at_start: bool | None = None) -> None:
    """Attach the probe timer to ``app``; ``up_at_start`` is what the worker's start-up check found.

    Why ``up_at_start``: the first probe runs one interval after the app starts, and until then the gauge
    read 0, so ``min(distillguard_broker_up) == 0`` fired at every worker start. The worker reaches this
    only after ``preflight`` got through, so it passes ``True`` and the first reading is right.
    """
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaError

    from distillguard.settings import SettingsError
    from streams.clients import kafka_python_config

    state: dict[str, Any] = {"client": None, "up": up_at_start, "down_since": time.monotonic()}
    if up_at_start is not None:
        BROKER_UP.set(1 if up_at_start else 0)

    async def probe() -> bool:
        try:
            if state["client"] is None:
                client = AIOKafkaClient(client_id=f"{settings.app_id}-broker-watch", request_timeout_ms=int(TIMEOUT * 1000),
                                        **kafka_python_config(settings))
                await asyncio.wait_for(client.bootstrap(), TIMEOUT)
                state["client"] = client
            else:
                await asyncio.wait_for(state["client"].fetch_all_metadata(), TIMEOUT)
            return True
        except (KafkaError, OSError, TimeoutError, SettingsError) as exc:  # SettingsError: a key file gone since start
            state["last_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            return False

    @app.timer(interval=INTERVAL, name="distillguard.broker-watch")
    async def broker_watch() -> None:
        up = await probe()
        BROKER_UP.set(1 if up else 0)
        if up == state["up"]:
            return
        now = time.monotonic()
        if not up:
            state["down_since"] = now
            log.warning("broker_unreachable", bootstrap_servers=settings.bootstrap_servers,
                        error=state.get("last_error"), action="events wait in Kafka; alerts and checkpoints are "
                        "retried; processing resumes when the broker is back")
        elif state["up"] is False:
            log.info("broker_reachable", bootstrap_servers=settings.bootstrap_servers,
                     outage_seconds=round(now - state["down_since"], 1))
        state["up"] = up

    @app.on_before_shutdown.connect
    async def _close(sender: Any, **_: Any) -> None:  # pragma: no cover - process exit
        if state["client"] is not None:
            await state["client"].close()
