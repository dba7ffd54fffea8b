"""The ``distillguard`` command line: discovers subcommands in ``distillguard.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from distillguard import __version__, commands


def _command_modules() -> list[ModuleType]:
    import pkgutil  # here, not at the top: inside main's try (it pulls in typing, slow on a busy host)

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
    # A Ctrl-C while the modules load (~0.3 s) is held until they are loaded, then ends like one during the run:
    # "interrupted", exit status 130, no traceback
    try:
        with _ctrl_c_deferred() as pressed:
            args, user_errors = _prepare(argv)
        if pressed:
            raise KeyboardInterrupt
        return _run(args, user_errors)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


@contextmanager
def _ctrl_c_deferred() -> Iterator[list[int]]:
    """Hold a Ctrl-C until the block is done (the list says whether one came): a KeyboardInterrupt raised while a
    C extension initialises (orjson's, seen) can crash the interpreter with SIGSEGV instead of ending it."""
    import signal

    pressed: list[int] = []
    previous = None
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored (a background job)
        try:
            previous = signal.signal(signal.SIGINT, lambda signum, _frame: pressed.append(signum))
        except ValueError:  # not the main thread: signals are not ours to handle
            previous = None
    try:
        yield pressed
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _prepare(argv: list[str] | None) -> tuple[argparse.Namespace, tuple[type[Exception], ...]]:
    """Load the commands, parse the arguments and check the environment: everything before the command runs.

    Returns the arguments and the errors that `_run` reports as one line (imported here, with Ctrl-C held)."""
    args = build_parser().parse_args(argv)
    if args.config:  # one way for every subcommand and its child processes to see the file
        import os

        os.environ["DISTILLGUARD_CONFIG"] = args.config
    from distillguard.settings import SettingsError, unknown_variables
    from streams.clients import BrokerConnectError

    for name in unknown_variables():
        print(f"distillguard {args.command}: warning: {name} is not a setting and is ignored (README, Configuration)",
              file=sys.stderr)
    return args, (BrokerConnectError, SettingsError)


def _run(args: argparse.Namespace, user_errors: tuple[type[Exception], ...]) -> int:
    """Run the command; user errors the command does not report itself become one line, exit 2."""
    try:
        return int(args._run(args) or 0)
    except user_errors as exc:  # wrong address, credentials, TLS or setting: no traceback
        print(f"distillguard {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
