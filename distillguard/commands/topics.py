"""Create the Kafka topics the workers and tools use, with the configured partitions and replication factor.

``topics create`` creates the events, dead-letter, alerts, feedback and notifications topics, plus the
OCSF and ECS alert topics when ``DISTILLGUARD_ALERT_FORMATS`` enables those formats (docs/SIEM.md).
Every topic gets ``DISTILLGUARD_PARTITIONS`` partitions (or ``--partitions``) and
``DISTILLGUARD_REPLICATION_FACTOR`` replicas; no topic-level configuration is set, so retention and the
rest are the broker's defaults. Topics that already exist are left as they are.
"""

from __future__ import annotations

import argparse

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


def run(args: argparse.Namespace) -> int:
    from distillguard.settings import load_settings
    from streams.admin import create_topics
    from streams.clients import preflight

    overrides = {"partitions": args.partitions} if args.partitions is not None else {}
    settings = load_settings(**overrides)
    preflight(settings)
    for name, state in create_topics(settings).items():
        print(f"{name}: {state} ({settings.partitions} partitions)")
    return 0
