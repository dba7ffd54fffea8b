"""argparse ``type=`` functions for the commands' numeric options: finite, in range, one line when not; and
:func:`sigterm_unwinds`, how a long command turns SIGTERM into a clean exit.

argparse turns the ``ArgumentTypeError`` into ``distillguard CMD: error: argument --X: must be ...`` and
exit status 2, so a 0, a negative, ``nan`` or ``inf`` never reaches the code as a division by zero or a hang.
"""

from __future__ import annotations

import argparse
import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def checked(convert: Callable[[str], float], ok: Callable[[float], bool], wanted: str) -> Callable[[str], Any]:
    """An argparse ``type=``: ``convert`` the text, then insist on a finite value that is ``ok``."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {text!r}") from None
        if not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {text!r}")
        return value

    return parse


def seconds(*, positive: bool) -> Callable[[str], float]:
    """An argparse ``type=``: a finite number of seconds, > 0 when ``positive`` else >= 0."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number of seconds, not {text!r}")
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text!r}")
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative, not {text!r}")
        return value

    return parse


POSITIVE = checked(float, lambda v: v > 0, "a finite number greater than 0")
POSITIVE_INT = checked(int, lambda v: v > 0, "a whole number greater than 0")


def _unwind(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While the block runs, SIGTERM raises ``SystemExit(143)`` instead of ending the process on the spot, so
    the command's clean-up runs (a spill directory removed, a child process stopped). Main thread only."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return
    previous = signal.signal(signal.SIGTERM, _unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
