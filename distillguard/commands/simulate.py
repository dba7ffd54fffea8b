"""Generate labelled synthetic usage events (benign profiles + distillation attacks) to a file, stdout or Kafka.

The output is deterministic: the same preset, options and seed give the same
bytes. Events files stand for gateway output and may contain ``prompt_text``;
the labels file never does.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack, nullcontext
from typing import Any

import orjson

from distillguard.argtypes import POSITIVE, POSITIVE_INT, checked

NAME = "simulate"
HELP = "generate labelled synthetic usage events (to a JSONL file, stdout or Kafka)"


# Zero or negative rate multipliers make attack intervals divide by zero or never advance (a hang), zero days
# or tenants make no traffic at all: argparse rejects them (exit status 2) instead.
_SHARE = checked(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("demo", "suite"), default="demo", help="traffic mix (default: demo)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument("--days", type=POSITIVE_INT, help="override the preset's number of days (>= 1)")
    parser.add_argument("--tenants", type=POSITIVE_INT,
                        help="scale the preset to about this many benign tenants (>= 1)")
    parser.add_argument("--intensity", type=POSITIVE, default=1.0,
                        help="multiply attack request rates, > 0 (default: 1)")
    parser.add_argument("--benign", action="append", default=[], metavar="PROFILE=N",
                        help="set the number of benign tenants of one profile (repeatable), e.g. --benign batch=20")
    parser.add_argument("--volume", type=POSITIVE, help="multiply benign request rates, > 0")
    parser.add_argument("--malformed-share", type=_SHARE, help="share of deliberately malformed lines, 0 to 1")
    parser.add_argument("--out", default="-", help="events JSONL file, '-' for stdout (default)")
    parser.add_argument("--labels", help="write the ground-truth labels JSON here ('-' for stdout when the events "
                                         "go to a file or Kafka)")
    parser.add_argument("--to", choices=("file", "kafka"), default="file", help="write to --out (file) or produce to Kafka")
    parser.add_argument("--rate", type=POSITIVE,
                        help="with --to kafka: events per second, > 0 (default: as fast as possible)")


def build_config(args: argparse.Namespace) -> Any:
    from simulator import preset

    cfg = preset(args.preset, seed=args.seed, days=args.days, tenants=args.tenants, intensity=args.intensity)
    if getattr(args, "malformed_share", None) is not None:
        cfg.malformed_share = args.malformed_share
    if getattr(args, "volume", None) is not None:
        cfg.volume = args.volume
    from simulator import BENIGN_PROFILES

    for item in getattr(args, "benign", None) or []:
        name, _, count = item.partition("=")
        if name not in BENIGN_PROFILES or not count.isdigit():
            print(f"distillguard simulate: --benign wants PROFILE=N with PROFILE one of {', '.join(BENIGN_PROFILES)}",
                  file=sys.stderr)
            raise SystemExit(2)
        cfg.benign[name] = int(count)
    return cfg


def kafka_producer_config(settings: Any) -> dict[str, Any]:
    """kafka-python keyword arguments from the settings (connection + security)."""
    try:
        from streams.clients import kafka_python_config
    except ImportError:  # pragma: no cover - streams/clients.py is the single source once present
        # TODO(lead): remove once streams.clients.kafka_python_config is always available.
        cfg: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers.split(","),
                               "security_protocol": settings.security_protocol}
        if settings.security_protocol.startswith("SASL"):
            cfg.update(sasl_mechanism=settings.sasl_mechanism or "PLAIN", sasl_plain_username=settings.sasl_username,
                       sasl_plain_password=settings.sasl_secret())
        if "SSL" in settings.security_protocol:
            cfg.update(ssl_cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None,
                       ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
                       ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
                       ssl_check_hostname=settings.ssl_check_hostname)
        return cfg
    return kafka_python_config(settings)


def _progress(total: int | None, unit: str = "ev"):
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, unit=unit, unit_scale=True, file=sys.stderr, desc="simulate")
    return nullcontext(None)


def _check_kafka_target(settings: Any) -> None:
    """The broker answers and the events topic exists, checked before anything is generated or written (a
    missing topic leaves no half-written labels file and no 60 s hang); else one line, exit 2 (cli.main)."""
    from streams.admin import require_topic
    from streams.clients import preflight

    preflight(settings)
    require_topic(settings, settings.events_topic,
                  "create it with `distillguard topics create` (or set DISTILLGUARD_EVENTS_TOPIC)")


def _to_kafka(sim: Any, rate: float | None, settings: Any) -> tuple[int, int]:
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka_producer_config(settings), acks="all", linger_ms=20, compression_type=None)
    sent = 0
    t0 = time.monotonic()
    try:
        with _progress(None) as bar:
            for rec in sim.records():
                producer.send(settings.events_topic, key=rec.tenant_id.encode(), value=rec.line)
                sent += 1
                if bar is not None:
                    bar.update(1)
                if rate:
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        producer.flush()
    finally:
        producer.close()
    return sent, 0


def run(args: argparse.Namespace) -> int:
    from distillguard.outputs import WriteError, clashing_paths, open_output, write_failed
    from simulator import generate

    events_path = args.out if args.to == "file" else None
    clash = clashing_paths({}, {"--out": events_path, "--labels": args.labels})
    if args.labels == "-" and events_path == "-":
        clash = "--out and --labels both name stdout: write one of them to a file"
    if clash:
        print(f"distillguard simulate: {clash}", file=sys.stderr)
        return 2
    cfg = build_config(args)
    settings = None
    if args.to == "kafka":
        from distillguard.settings import load_settings

        settings = load_settings()
        _check_kafka_target(settings)
    t0 = time.monotonic()
    with ExitStack() as stack:
        try:  # open both outputs before generating anything, so a bad path fails at once
            labels_out = open_output(args.labels, stack) if args.labels else None
            out = open_output(args.out, stack) if args.to == "file" else None
        except OSError as exc:
            print(f"distillguard simulate: cannot write {exc.filename or args.out}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        sim = generate(cfg)
        try:
            if out is None:
                _to_kafka(sim, args.rate, settings)
                dest = f"kafka topic {settings.events_topic}"
            else:
                with _progress(None) as bar:
                    sim.write(out, progress=bar.update if bar is not None else None)
                out.close()
                dest = out.name
            labels = sim.labels()
            if labels_out is not None:
                labels_out.write(orjson.dumps(labels, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
                labels_out.close()
        except WriteError as err:
            return write_failed(err, NAME)
    c = labels["counts"]
    n_att = len(labels["attacks"])
    n_ten = len(labels["tenants"])
    print(f"simulate: preset={cfg.preset} seed={cfg.seed} days={cfg.days} tenants={n_ten} attacks={n_att} "
          f"lines={c['lines']} valid={c['valid_events']} malformed={c['malformed']} -> {dest} "
          f"in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    return 0
