"""Follow the alert topic: readable lines for people, ``--json`` for pipes.

Reads without a consumer group (it never commits offsets or disturbs the
workers), from the end of the topic unless ``--from-beginning``. Filters:
minimum severity, tenant (repeatable; matches cluster members too), kind, status.
"""

from __future__ import annotations

import argparse
import sys
import time

NAME = "alerts"
HELP = "follow the alert topic (alerts tail)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = sub.add_parser("tail", help="print alerts as they arrive")
    tail.add_argument("--topic", help="alert topic (default DISTILLGUARD_ALERTS_TOPIC)")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest retained alert")
    tail.add_argument("--severity", choices=["low", "medium", "high", "critical"], default="low",
                      help="minimum severity shown (default low = all)")
    tail.add_argument("--tenant", action="append", default=[], help="only alerts about this tenant (repeatable)")
    tail.add_argument("--kind", choices=["tenant", "cluster"], help="only this kind")
    tail.add_argument("--status", choices=["open", "update", "resolved"], action="append", help="only these statuses")
    tail.add_argument("--json", action="store_true", help="print each alert as it is on the topic (JSON lines)")
    tail.add_argument("--max", type=int, help="stop after this many alerts")
    tail.add_argument("--idle-timeout", type=float, help="stop after this many seconds without an alert")


def matches(alert: dict, args: argparse.Namespace) -> bool:
    """Whether an alert passes the command's filters."""
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


def run(args: argparse.Namespace) -> int:
    import orjson
    from kafka import KafkaConsumer, TopicPartition

    from distillguard.render import alert_line
    from distillguard.settings import load_settings
    from streams.clients import kafka_python_config, preflight

    settings = load_settings()
    preflight(settings)
    topic = args.topic or settings.alerts_topic
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, consumer_timeout_ms=500,
                             **kafka_python_config(settings))
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        print(f"distillguard alerts tail: topic {topic!r} does not exist (create it with `distillguard topics create`)",
              file=sys.stderr)
        return 2
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    (consumer.seek_to_beginning if args.from_beginning else consumer.seek_to_end)(*tps)
    shown, last = 0, time.monotonic()
    try:
        while True:
            for record in consumer:
                last = time.monotonic()
                try:
                    alert = orjson.loads(record.value)
                except orjson.JSONDecodeError:
                    print(f"skipping a record that is not JSON at {record.partition}/{record.offset}", file=sys.stderr)
                    continue
                if not matches(alert, args):
                    continue
                print(record.value.decode() if args.json else alert_line(alert), flush=True)
                shown += 1
                if args.max and shown >= args.max:
                    return 0
            if args.idle_timeout and time.monotonic() - last >= args.idle_timeout:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()
