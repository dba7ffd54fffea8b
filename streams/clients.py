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


class BrokerConnectError(RuntimeError):
    """The broker cannot be reached or refuses the credentials; the message names no secret."""


class BrokerAuthError(BrokerConnectError):
    """The broker answered but refused the credentials, the mechanism or the TLS handshake: retrying won't help."""


def preflight(settings: Settings, timeout: float = 15.0) -> None:
    """Open one authenticated connection to a bootstrap server, or raise :class:`BrokerConnectError`.

    Why: kafka-python retries a failed SASL login until its bootstrap timeout and then reports only
    "Unable to bootstrap", and a Faust worker retries forever; a wrong password should instead stop a
    command at once with a message that says what failed (never the password itself).
    """
    import asyncio

    from aiokafka import errors
    from aiokafka.conn import create_conn

    cfg = kafka_python_config(settings)
    servers = cfg.pop("bootstrap_servers")
    who = f"user {settings.sasl_username!r} ({cfg.get('sasl_mechanism')})" if "sasl_mechanism" in cfg else ""

    async def attempt(hostport: str) -> None:
        host, _, port = hostport.strip().rpartition(":")
        conn = await asyncio.wait_for(create_conn(host, int(port), client_id="distillguard-preflight",
                                                  request_timeout_ms=int(timeout * 1000), **cfg), timeout)
        conn.close()

    failures = []
    for hostport in servers:
        try:
            asyncio.run(attempt(hostport))
            return
        except errors.SaslAuthenticationFailed as exc:
            raise BrokerAuthError(f"SASL authentication failed for {who} at {hostport.strip()}: "
                                  f"{_first_line(exc)}") from None
        except errors.UnsupportedSaslMechanismError as exc:
            raise BrokerAuthError(f"the broker at {hostport.strip()} does not offer "
                                  f"{cfg.get('sasl_mechanism')}: {_first_line(exc)}") from None
        except ssl.SSLError as exc:
            raise BrokerAuthError(f"TLS handshake with {hostport.strip()} failed: {exc.reason or exc}") from None
        except (OSError, TimeoutError, errors.KafkaError) as exc:
            failures.append(f"{hostport.strip()}: {_first_line(exc) or type(exc).__name__}")
    raise BrokerConnectError(f"cannot connect to Kafka over {settings.security_protocol} "
                             f"({'; '.join(failures)})")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""
