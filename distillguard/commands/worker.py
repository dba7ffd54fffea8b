"""Run a Faust worker: consume usage events, validate them, detect, and publish alerts.

Stops cleanly on SIGTERM or Ctrl-C (offsets of processed events are committed).
Scale out by starting more workers with the same ``DISTILLGUARD_APP_ID``; each
needs its own ``--web-port`` when they share a host.
"""

from __future__ import annotations

import argparse

NAME = "worker"
HELP = "run a streaming worker (Faust)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web-port", type=int, help="metrics/health port (default DISTILLGUARD_WEB_PORT)")
    parser.add_argument("--data-dir", help="state directory (default DISTILLGUARD_DATA_DIR)")


def run(args: argparse.Namespace) -> int:
    import faust

    from distillguard.logs import configure_logging, get_logger, logging_dict_config
    from distillguard.settings import load_settings
    from streams.app import create_app
    from streams.broker_watch import watch_broker
    from streams.clients import BrokerAuthError, BrokerConnectError, preflight

    overrides = {}
    if args.web_port is not None:
        overrides["web_port"] = args.web_port
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    settings = load_settings(**overrides)
    configure_logging(settings.log_format, settings.log_level)  # our lines before Faust's own set-up, same format
    try:  # a wrong password or CA stops here with a clear message, not in Faust's endless retry loop
        preflight(settings)
    except BrokerAuthError:
        raise
    except BrokerConnectError as exc:  # not up yet: Faust keeps retrying, as before
        get_logger(__name__).warning("broker_unreachable_at_start", error=str(exc))
    app = create_app(settings)
    watch_broker(app, settings)
    get_logger(__name__).info(
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
