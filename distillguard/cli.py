"""The ``distillguard`` command line: discovers subcommands in ``distillguard.commands``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

from distillguard import __version__, commands


def _command_modules() -> list[ModuleType]:
    found = [importlib.import_module(f"{commands.__name__}.{m.name}") for m in pkgutil.iter_modules(commands.__path__)]
    return sorted((m for m in found if hasattr(m, "NAME")), key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command module."""
    parser = argparse.ArgumentParser(
        prog="distillguard",
        description="Detect distillation / extraction-style querying in LLM API usage streams.",
    )
    parser.add_argument("--version", action="version", version=f"distillguard {__version__}")
    parser.add_argument("--config", help="TOML settings file (same keys as the DISTILLGUARD_* variables)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.config:  # one way for every subcommand and its child processes to see the file
        import os

        os.environ["DISTILLGUARD_CONFIG"] = args.config
    from distillguard.settings import SettingsError, unknown_variables
    from streams.clients import BrokerConnectError

    for name in unknown_variables():
        print(f"distillguard {args.command}: warning: {name} is not a setting and is ignored (README, Configuration)",
              file=sys.stderr)
    try:
        return int(args._run(args) or 0)
    except (BrokerConnectError, SettingsError) as exc:  # wrong address, credentials, TLS or setting: no traceback
        print(f"distillguard {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
