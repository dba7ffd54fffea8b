"""Create the contract's Kafka topics (events, dead-letter, alerts, feedback) with the configured partitions."""

from __future__ import annotations

import argparse

NAME = "topics"
HELP = "create the Kafka topics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create missing topics (existing ones are left as they are)")
    create.add_argument("--partitions", type=int, help="override DISTILLGUARD_PARTITIONS")


def run(args: argparse.Namespace) -> int:
    from distillguard.settings import load_settings
    from streams.admin import create_topics
    from streams.clients import preflight

    overrides = {"partitions": args.partitions} if args.partitions else {}
    settings = load_settings(**overrides)
    preflight(settings)
    for name, state in create_topics(settings).items():
        print(f"{name}: {state} ({settings.partitions} partitions)")
    return 0
