"""Follow the alert topic: readable lines for people, ``--json`` for pipes.

Reads without a consumer group (it never commits offsets or disturbs the
workers), from the end of the topic unless ``--from-beginning``. Filters:
minimum severity, tenant (repeatable; matches cluster members too), kind, status.
A record that is not an alert (not JSON, not a JSON object, or a filtered field of
the wrong type) is skipped with one warning line naming its partition and offset,
so one bad message cannot stop the tail (or a forwarder fed by it) for good.
Exit status: 0 at ``--max`` or ``--idle-timeout``, 130 on Ctrl-C, 141 when the
reader of stdout goes away (``... | head``), 2 on a user or connection error.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from typing import Any

from distillguard.argtypes import POSITIVE_INT, seconds

NAME = "alerts"
HELP = "follow the alert topic (alerts tail)"

# ``--max 0`` ran forever and ``--max -1`` stopped after one alert: argparse rejects them (exit status 2)

# the fields the filters (and the readable line) use, with the JSON types they may have on the topic
_TEXT_FIELDS = ("severity", "kind", "status", "tenant_id")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = sub.add_parser(
        "tail", help="print alerts as they arrive",
        description="Print alerts as they arrive. Records that are not alerts (not JSON, not a JSON object, or "
                    "severity/kind/status/tenant_id not a string, tenant_ids not a list of strings) are skipped "
                    "with one warning line on stderr naming partition and offset, with --json too: a forwarder "
                    "fed by --json gets only alert objects (without --json, so is an alert the readable line "
                    "cannot show). Exit status: 0 at --max or --idle-timeout, 130 on Ctrl-C, 141 when the reader "
                    "of stdout goes away, 2 on a bad option, a missing topic or a connection error.")
    tail.add_argument("--topic", help="alert topic (default DISTILLGUARD_ALERTS_TOPIC)")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest retained alert")
    tail.add_argument("--severity", choices=["low", "medium", "high", "critical"], default="low",
                      help="minimum severity shown (default low = all)")
    tail.add_argument("--tenant", action="append", default=[], help="only alerts about this tenant (repeatable)")
    tail.add_argument("--kind", choices=["tenant", "cluster"], help="only this kind")
    tail.add_argument("--status", choices=["open", "update", "resolved"], action="append", help="only these statuses")
    tail.add_argument("--json", action="store_true",
                      help="print each alert as it is on the topic (JSON lines); records that are not alert "
                           "objects are skipped with a warning on stderr, never passed on")
    tail.add_argument("--max", type=POSITIVE_INT, help="stop after this many alerts shown (>= 1)")
    tail.add_argument("--idle-timeout", type=seconds(positive=True),
                      help="stop after this many seconds (> 0) without an alert that passes the filters")


def problem(alert: Any) -> str | None:
    """Why a decoded record cannot be filtered as an alert (None when it can): a wrong type must be skipped,
    not crash the tail and every restart of it with ``--from-beginning``."""
    if not isinstance(alert, dict):
        return "not a JSON object"
    for name in _TEXT_FIELDS:
        if not isinstance(alert.get(name), (str, type(None))):
            return f"{name} is not a string"
    members = alert.get("tenant_ids")
    if members is not None and not (isinstance(members, list) and all(isinstance(m, str) for m in members)):
        return "tenant_ids is not a list of strings"
    return None


def matches(alert: dict[str, Any], args: argparse.Namespace) -> bool:
    """Whether an alert (one ``problem`` accepts) passes the command's filters."""
    from distillguard.render import SEVERITY_RANK

    if SEVERITY_RANK.get(alert.get("severity"), 0) < SEVERITY_RANK[args.severity]:
        return False
    if args.kind and alert.get("kind") != args.kind:
        return False
    if args.status and alert.get("status") not in args.status:
        return False
    if args.tenant:
        subjects = {alert.get("tenant_id"), *(alert.get("tenant_ids") or [])}
        if not subjects & set(args.tenant):
            return False
    return True


def _skip(record: Any, why: str) -> None:
    print(f"distillguard alerts tail: warning: skipping the record at partition {record.partition} offset "
          f"{record.offset}: {why}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    import orjson
    from kafka import KafkaConsumer, TopicPartition

    from distillguard.outputs import WriteError, open_output, write_failed
    from distillguard.render import alert_line
    from distillguard.settings import load_settings
    from streams.clients import kafka_python_config, preflight

    settings = load_settings()
    preflight(settings)
    topic = args.topic or settings.alerts_topic
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **kafka_python_config(settings))
    with ExitStack() as stack:
        stack.callback(consumer.close)
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            print(f"distillguard alerts tail: topic {topic!r} does not exist (create it with "
                  "`distillguard topics create`)", file=sys.stderr)
            return 2
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        (consumer.seek_to_beginning if args.from_beginning else consumer.seek_to_end)(*tps)
        out = open_output("-", stack)
        shown, last = 0, time.monotonic()  # last: when the tail started or last showed an alert
        try:
            while True:
                # poll, not the iterator: a steady stream of records the filters drop must not keep the
                # idle timeout from ever being checked
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        try:
                            alert = orjson.loads(record.value)
                        except orjson.JSONDecodeError:
                            _skip(record, "not JSON")
                            continue
                        why = problem(alert)
                        if why is not None:
                            _skip(record, why)
                            continue
                        if not matches(alert, args):
                            continue
                        if args.json:
                            line = record.value
                        else:
                            try:
                                line = alert_line(alert).encode()
                            except (TypeError, ValueError, AttributeError):  # e.g. reasons not a list of objects
                                _skip(record, "cannot be shown as an alert line")
                                continue
                        out.write(line.rstrip(b"\r\n") + b"\n")
                        out.close()  # on stdout this only flushes: each alert reaches a pipe at once
                        shown += 1
                        last = time.monotonic()
                        if args.max and shown >= args.max:
                            return 0
                if args.idle_timeout and time.monotonic() - last >= args.idle_timeout:
                    return 0
        except WriteError as err:
            return write_failed(err, "alerts tail")
