"""The one place that turns :class:`Settings` into Kafka client configuration.

Faust (aiokafka underneath) runs the workers; kafka-python serves the tools
around them (topic admin, simulate, replay, alerts tail, tests). Both get their
connection and security settings from here, so a deployment configures
security once.
"""

from __future__ import annotations

import ssl
from typing import Any

from distillguard.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A TLS context for SSL / SASL_SSL, or ``None`` for plaintext protocols."""
    if "SSL" not in settings.security_protocol:
        return None
    ctx = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    ctx.check_hostname = settings.ssl_check_hostname
    if settings.ssl_certfile:
        ctx.load_cert_chain(str(settings.ssl_certfile), str(settings.ssl_keyfile) if settings.ssl_keyfile else None)
    return ctx


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "security_protocol": settings.security_protocol,
    }
    ctx = ssl_context(settings)
    if ctx is not None:
        cfg["ssl_context"] = ctx
    if settings.security_protocol.startswith("SASL"):
        cfg["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        cfg["sasl_plain_username"] = settings.sasl_username
        cfg["sasl_plain_password"] = settings.sasl_secret()
    return cfg


def faust_broker_config(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments for the broker and its credentials."""
    import faust

    cfg: dict[str, Any] = {
        "broker": ";".join(f"kafka://{hp.strip()}" for hp in settings.bootstrap_servers.split(",")),
    }
    ctx = ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        creds = faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_secret(),
            ssl_context=ctx,
            mechanism=settings.sasl_mechanism or "PLAIN",
        )
        if ctx is None:
            creds.protocol = faust.types.auth.AuthProtocol.SASL_PLAINTEXT
        else:
            creds.protocol = faust.types.auth.AuthProtocol.SASL_SSL
        cfg["broker_credentials"] = creds
    elif ctx is not None:
        cfg["broker_credentials"] = faust.SSLCredentials(ctx)
    return cfg
