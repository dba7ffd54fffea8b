"""The Faust application factory: one app per worker process, configured from :class:`Settings`."""

from __future__ import annotations

import faust

from distillguard.settings import Settings
from streams import metrics
from streams.clients import faust_broker_config
from streams.transport import Transport, failing_inputs


def create_app(settings: Settings) -> faust.App:
    """Build the app with its topics, agents and web pages (``/metrics``, ``/healthz``, ``/readyz``)."""
    app = faust.App(
        settings.app_id,
        **faust_broker_config(settings),
        key_serializer="raw",
        value_serializer="raw",
        store=settings.table_store,  # rocksdb:// keeps evicted tenants' state on disk (docs/RELIABILITY.md)
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # un-acked events are the ones after the last state checkpoint: a rebalance or a stop must not
        # wait for them; they are redelivered to the next owner, which restores the checkpoint
        stream_wait_empty=False,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_in_thread=False,
    )
    # our consumer's drain loop, without Faust's per-message task race (streams/transport.py); set before
    # anything (topics, agents) makes the app build Faust's default transport
    app.transport = Transport(app.conf.broker_consumer, app)
    app.conf.distillguard = settings  # type: ignore[attr-defined]
    metrics.PARTITIONS_FAILING.set_function(lambda: len(failing_inputs(app)))

    @app.page("/metrics")
    async def metrics_page(web, request):  # type: ignore[no-untyped-def]
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web, request):  # type: ignore[no-untyped-def]
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web, request):  # type: ignore[no-untyped-def]
        # missing: topics of the subscription the broker did not list when the consumer subscribed, as
        # re-checked every 10 s in the background (streams/transport.py); no broker call per request
        missing = list(getattr(app.consumer, "missing_topics", ()))
        if missing:
            return web.json({"ready": False, "missing_topics": missing,
                             "reason": "subscribed topics do not exist: create them with `distillguard topics create`"},
                            status=503)
        failing = failing_inputs(app)
        if failing:
            return web.json({"ready": False, "failing_partitions": failing,
                             "reason": "the broker refuses records produced from these partitions (logged as "
                                       "send_failed): they are delivered again with a back-off, and nothing past "
                                       "them is committed"}, status=503)
        ready = app.rebalancing is False and bool(app.consumer.assignment())
        return web.json({"ready": ready}, status=200 if ready else 503)

    from streams.pipeline import register_pipeline

    register_pipeline(app, settings)
    from streams.delivery import register_delivery

    register_delivery(app, settings)
    return app
