"""Run a Faust worker: consume usage events, validate them, detect, and publish alerts.

Stops cleanly on SIGTERM or Ctrl-C (it commits the offsets its last checkpoint covers; the events after
it are processed again by the next owner, with the same alert ids).
Scale out by starting more workers with the same ``DISTILLGUARD_APP_ID``; each
needs its own ``--web-port`` when they share a host.

Before Faust starts, the worker checks that its web port can be bound (a second worker on the same
port stops at once with one line, exit code 2) and that its data directory is a writable directory
(same), and waits for the broker: a broker that is not up yet
is retried with a capped backoff until it answers (SIGTERM or Ctrl-C end the wait), while a wrong
password, mechanism or CA stops the worker at once.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "worker"
HELP = "run a streaming worker (Faust)"

BROKER_RETRY_FIRST = 1.0  # seconds before the second attempt to reach the broker; doubles each time
BROKER_RETRY_MAX = 15.0  # the longest pause between two attempts
BROKER_LOG_EVERY = 30.0  # at most one ``waiting_for_broker`` line per this many seconds


class StartupError(Exception):
    """The worker cannot start for a reason its operator must fix (the message says how); exit code 2."""


class _Terminated(BaseException):
    """SIGTERM while the worker waits for the broker (a BaseException: nothing on the way swallows it)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web-port", type=int, help="metrics/health port (default DISTILLGUARD_WEB_PORT)")
    parser.add_argument("--data-dir", help="state directory (default DISTILLGUARD_DATA_DIR)")


def check_web_port(host: str, port: int) -> None:
    """Bind ``host:port`` as aiohttp will (every address it resolves to, SO_REUSEADDR) and let go again.

    Why: Faust binds its web server late in its start-up, and a port already taken (another worker on
    the same host) ended the worker after ~1 s with exit code 1 and ``OSError 98`` buried in a
    traceback among ~38 Faust log lines. The port can still be taken between this check and Faust's
    bind; that rare race fails as before.
    """
    where = f"web port {port} on {host or '0.0.0.0'}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"{where}: cannot resolve {host!r} ({exc.strerror}): set DISTILLGUARD_WEB_HOST") from None
    for family, type_, proto, _, addr in infos:
        try:
            with socket.socket(family, type_, proto) as sock:
                if hasattr(socket, "SO_REUSEADDR") and sys.platform != "win32":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"{where} is in use (another worker?): set --web-port or DISTILLGUARD_WEB_PORT") from None
            raise StartupError(f"{where} cannot be bound ({exc.strerror or exc}): set --web-port or "
                               f"DISTILLGUARD_WEB_PORT, or DISTILLGUARD_WEB_HOST") from None


def check_data_dir(path: Path) -> None:
    """Make sure ``path`` is a directory the worker can write to (creating it, parents too), in one line if not.

    Why: Faust creates its data directory late in its start-up (and without parents): a regular file in the
    way, a missing parent or a read-only directory ended the worker with exit code 1 and a FileExistsError
    or PermissionError traceback inside a JSON log line among ~30 Faust lines.
    """
    where = f"data directory {str(path)!r}"
    hint = "set --data-dir or DISTILLGUARD_DATA_DIR"
    if path.exists() and not path.is_dir():
        raise StartupError(f"{where} is not a directory: {hint}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"{where} cannot be created ({exc.strerror or exc}): {hint}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".distillguard-write-check-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StartupError(f"{where} is not writable ({exc.strerror or exc}): {hint}") from None


def check_webhook(settings: Any) -> None:
    """A webhook URL needs a signing key it can read: say so before waiting for the broker, in one line.

    Why: the delivery stage refuses an unsigned webhook when the app is built, after the broker wait, and
    that refusal (or a secret file that is not there) ended the worker with a traceback and exit code 1.
    """
    from streams.delivery import webhook_secret

    try:
        webhook_secret(settings)
    except ValueError as exc:
        raise StartupError(str(exc)) from None


def wait_for_broker(settings: Any, log: Any) -> None:
    """Return once ``preflight`` reaches the broker; retry a broker that is not up yet with a capped backoff.

    A refused login or TLS handshake (``BrokerAuthError``) is raised at once: retrying won't help.
    Logs ``broker_unreachable_at_start`` after the first failure, then ``waiting_for_broker`` at most
    every ``BROKER_LOG_EVERY`` seconds, and ``broker_reachable_at_start`` if it had to wait. Errors
    from ``preflight`` name hosts and causes, never a credential.
    """
    from streams.clients import BrokerAuthError, BrokerConnectError, preflight

    start = time.monotonic()
    delay, attempts, logged_at = BROKER_RETRY_FIRST, 0, 0.0
    while True:
        attempts += 1
        try:
            preflight(settings)
        except BrokerAuthError:
            raise
        except BrokerConnectError as exc:
            now = time.monotonic()
            if attempts == 1:
                logged_at = now
                log.warning("broker_unreachable_at_start", bootstrap_servers=settings.bootstrap_servers,
                            error=str(exc), action=f"waiting for the broker (retried every {BROKER_RETRY_FIRST:g}-"
                            f"{BROKER_RETRY_MAX:g} s); SIGTERM or Ctrl-C stops the worker")
            elif now - logged_at >= BROKER_LOG_EVERY:
                logged_at = now
                log.warning("waiting_for_broker", bootstrap_servers=settings.bootstrap_servers, attempts=attempts,
                            elapsed_seconds=round(now - start, 1), error=str(exc))
            time.sleep(delay)
            delay = min(delay * 2, BROKER_RETRY_MAX)
            continue
        if attempts > 1:
            log.info("broker_reachable_at_start", bootstrap_servers=settings.bootstrap_servers, attempts=attempts,
                     waited_seconds=round(time.monotonic() - start, 1))
        return


def check_partitions(settings: Any, log: Any) -> None:
    """Refuse an events topic whose partition count differs from the worker's state topics.

    Why: the tenant state is partitioned like the events topic. Faust stops a worker whose table changelog
    and source topic differ (``PartitionsMismatch``) with a traceback, and a supervisor restarts it into
    the same crash; events topics that gained partitions while workers ran end the same way. The state
    topic's count wins once it exists; on a first start the ``partitions`` setting creates it.
    """
    from streams.admin import partition_counts

    changelog = f"{settings.app_id}-tenant-state-changelog"
    try:
        counts = partition_counts(settings, [settings.events_topic, changelog])
    except Exception as exc:  # noqa: BLE001 -- the check must not stop a worker the broker will serve
        log.warning("partition_check_skipped", reason=f"{type(exc).__name__}: {exc}")
        return
    events = counts.get(settings.events_topic)
    if events is None:  # missing: the worker waits for it, and /readyz says so
        return
    if changelog in counts and counts[changelog] != events:
        raise StartupError(
            f"the events topic {settings.events_topic!r} has {events} partitions and this app's state topic "
            f"{changelog!r} has {counts[changelog]}; the tenant state is partitioned like the events, so they must "
            f"match: give the events topic {counts[changelog]} partitions again, or start a new app "
            f"(DISTILLGUARD_APP_ID) with DISTILLGUARD_PARTITIONS={events} (docs/guides/data-platform.md)")
    if changelog not in counts and settings.partitions != events:
        raise StartupError(
            f"the events topic {settings.events_topic!r} has {events} partitions but DISTILLGUARD_PARTITIONS is "
            f"{settings.partitions}; set DISTILLGUARD_PARTITIONS={events} (the tenant state is partitioned like the events)")


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated


def run(args: argparse.Namespace) -> int:
    import faust

    from distillguard.logs import configure_logging, get_logger, logging_dict_config
    from distillguard.settings import load_settings
    from streams.app import create_app
    from streams.broker_watch import watch_broker

    overrides = {}
    if args.web_port is not None:
        overrides["web_port"] = args.web_port
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    settings = load_settings(**overrides)
    configure_logging(settings.log_format, settings.log_level)  # our lines before Faust's own set-up, same format
    log = get_logger(__name__)
    try:
        check_webhook(settings)
        check_web_port(settings.web_host, settings.web_port)
        check_data_dir(settings.data_dir)
        # SIGTERM (docker stop, systemd, a test's teardown) ends the wait cleanly; Ctrl-C raises
        # KeyboardInterrupt, which the CLI reports as "interrupted" (exit code 130). Faust installs its
        # own handlers later.
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            # a wrong password or CA stops here with a clear message (BrokerAuthError, exit code 2), not in
            # Faust's endless retry loop; a broker that is not up yet is waited for: Faust itself gives up
            # after ~3 s when no bootstrap server answers at its start
            wait_for_broker(settings, log)
        finally:
            signal.signal(signal.SIGTERM, previous)
        check_web_port(settings.web_host, settings.web_port)  # again: the wait may have been long
        check_partitions(settings, log)
    except StartupError as exc:
        print(f"distillguard {NAME}: {exc}", file=sys.stderr)
        return 2
    except _Terminated:
        log.info("worker_stopped", reason="SIGTERM while waiting for the broker")
        return 0
    app = create_app(settings)
    watch_broker(app, settings, up_at_start=True)  # wait_for_broker got through: the gauge reads 1 from the start
    log.info(
        "worker_starting",
        app_id=settings.app_id,
        bootstrap_servers=settings.bootstrap_servers,
        security_protocol=settings.security_protocol,
        events_topic=settings.events_topic,
        web_port=settings.web_port,
    )
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        logging_config=logging_dict_config(settings.log_format, settings.log_level),
        redirect_stdouts=False,
        quiet=True,
    )
    # Faust shows a start-up spinner at WARNING and above by lowering the root logger to DEBUG, so every
    # debug call in Faust and aiokafka builds a record (2-2.4 % of a worker's time): no spinner, no records
    worker.spinner = None
    worker.execute_from_commandline()
    return 0
