"""The one place that turns :class:`Settings` into Kafka client configuration.

Faust (aiokafka underneath) runs the workers; kafka-python serves the tools
around them (topic admin, simulate, replay, alerts tail, tests). Both get their
connection and security settings from here, so a deployment configures
security once.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any

from distillguard.settings import Settings, SettingsError, file_setting_error


def _ssl_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason without the ``(_ssl.c:NNNN)`` suffix (it never quotes the file's content)."""
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text)


def _readable(field: str, path: Path) -> str:
    """``path`` as a string once it is a readable regular file, else a :class:`SettingsError` naming ``field``.

    Why: OpenSSL's FileNotFoundError names neither the setting nor the file (a key and a certificate are
    loaded in one call), and a command must report which setting to fix.
    """
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise file_setting_error(field, path, f"cannot be read ({exc.strerror or exc})") from None
    return str(path)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A TLS context for SSL / SASL_SSL, or ``None`` for plaintext protocols.

    A CA, certificate or key file that is missing, unreadable or not PEM is a :class:`SettingsError` naming
    the setting and the file, so every command says so in one line (exit 2) instead of a traceback.
    """
    if "SSL" not in settings.security_protocol:
        return None
    cafile = _readable("ssl_cafile", settings.ssl_cafile) if settings.ssl_cafile else None
    try:
        ctx = ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:
        raise file_setting_error("ssl_cafile", settings.ssl_cafile or Path(), "is not a PEM CA certificate "
                                 f"({_ssl_reason(exc)})") from None
    except OSError as exc:  # a directory, or a file that went away since the check
        raise file_setting_error("ssl_cafile", settings.ssl_cafile or Path(),
                                 f"cannot be read ({exc.strerror or exc})") from None
    ctx.check_hostname = settings.ssl_check_hostname
    if settings.ssl_certfile:
        certfile = _readable("ssl_certfile", settings.ssl_certfile)
        keyfile = _readable("ssl_keyfile", settings.ssl_keyfile) if settings.ssl_keyfile else None
        try:
            ctx.load_cert_chain(certfile, keyfile, password=_refuse_passphrase(
                "ssl_keyfile" if keyfile else "ssl_certfile", Path(keyfile or certfile)))
        except ssl.SSLError as exc:
            what = (f"and DISTILLGUARD_SSL_KEYFILE {keyfile!r} are not a matching PEM certificate and private key"
                    if keyfile else "is not a PEM certificate followed by its private key")
            raise file_setting_error("ssl_certfile", settings.ssl_certfile, f"{what} ({_ssl_reason(exc)})") from None
        except OSError as exc:
            raise file_setting_error("ssl_certfile", settings.ssl_certfile,
                                     f"or DISTILLGUARD_SSL_KEYFILE cannot be read ({exc.strerror or exc})") from None
    elif settings.ssl_keyfile:
        raise SettingsError("DISTILLGUARD_SSL_KEYFILE is set without DISTILLGUARD_SSL_CERTFILE: set both for "
                            "mutual TLS, or neither")
    return ctx


def _refuse_passphrase(field: str, path: Path) -> Any:
    """A passphrase callback that refuses: OpenSSL would otherwise prompt on the terminal for an encrypted key."""

    def refuse() -> bytes:
        raise file_setting_error(field, path, "holds an encrypted private key, and there is no passphrase setting: "
                                 "give an unencrypted key")

    return refuse


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient.

    Reads the password, CA, certificate and key files: one that cannot be used is a :class:`SettingsError`
    (one line, exit 2 in every command), raised before any connection is tried.
    """
    cfg: dict[str, Any] = {
        "bootstrap_servers": [hp.strip() for hp in settings.bootstrap_servers.split(",")],
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
    command at once with a message that says what failed (never the password itself). A password, CA,
    certificate or key file that cannot be used raises :class:`SettingsError` before any connection.
    """
    import asyncio

    from aiokafka import errors
    from aiokafka.conn import create_conn

    cfg = kafka_python_config(settings)
    servers = cfg.pop("bootstrap_servers")
    who = f"user {settings.sasl_username!r} ({cfg.get('sasl_mechanism')})" if "sasl_mechanism" in cfg else ""

    async def attempt(hostport: str) -> None:
        host, _, port = hostport.strip().rpartition(":")  # host:port was checked when the settings were loaded
        if host.startswith("[") and host.endswith("]"):  # [IPv6]:port
            host = host[1:-1]
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
