"""Create the Kafka topics the workers and tools use, with the configured partitions and replication factor.

``topics create`` creates the events, dead-letter, alerts, feedback and notifications topics, plus the
OCSF and ECS alert topics when ``DISTILLGUARD_ALERT_FORMATS`` enables those formats (docs/SIEM.md).
Every topic gets ``DISTILLGUARD_PARTITIONS`` partitions (or ``--partitions``) and
``DISTILLGUARD_REPLICATION_FACTOR`` replicas; no topic-level configuration is set, so retention and the
rest are the broker's defaults. Topics that already exist are left as they are: each line shows the
partitions the broker reports, and says so when they differ from the configured count. A topic the broker
refuses (say, a replication factor above the number of brokers) gets one line with the broker's reason on
stderr; the others are still created, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.admin import TopicResult

NAME = "topics"
HELP = "create the Kafka topics (events, dead-letter, alerts, feedback, notifications, enabled SIEM formats)"


def _partitions(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create missing topics (existing ones are left as they are)",
                            description=__doc__)
    create.add_argument("--partitions", type=_partitions,
                        help="partitions of each new topic, >= 1 (overrides DISTILLGUARD_PARTITIONS)")


def _line(result: TopicResult, configured: int) -> str:
    """One stdout line for a topic that exists now: the partitions the broker reports, and any mismatch."""
    if result.partitions is None:
        return f"{result.name}: {result.state} (partition count not known yet)"
    line = f"{result.name}: {result.state} ({result.partitions} partitions"
    if result.partitions != configured:
        line += f", not the {configured} configured: an existing topic keeps its partitions"
    return line + ")"


def run(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from distillguard.outputs import Output, WriteError, write_failed
    from distillguard.settings import load_settings
    from streams.admin import ensure_topics
    from streams.clients import BrokerConnectError, preflight

    overrides = {"partitions": args.partitions} if args.partitions is not None else {}
    settings = load_settings(**overrides)
    preflight(settings)
    try:
        results = ensure_topics(settings)
    except KafkaError as exc:  # the broker went away after preflight
        raise BrokerConnectError(f"cannot create the topics: {type(exc).__name__}: {exc}") from None
    out = Output(sys.stdout.buffer, "stdout", True)
    failed = [r for r in results if r.state == "failed"]
    try:
        for r in results:
            if r.state == "failed":
                out.close()  # keep the order of the lines when stdout and stderr are one terminal
                print(f"distillguard {NAME}: {r.name}: not created: {r.error}", file=sys.stderr)
            else:
                out.write(f"{_line(r, settings.partitions)}\n".encode())
        out.close()
    except WriteError as err:
        return write_failed(err, NAME)
    if failed:
        done = [r.name for r in results if r.state == "created"]
        print(f"distillguard {NAME}: {len(failed)} of {len(results)} topics not created; "
              f"{'created (they stay): ' + ', '.join(done) if done else 'none created'}", file=sys.stderr)
        return 2
    return 0
