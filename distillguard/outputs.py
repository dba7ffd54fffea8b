"""Output files and stdout of the commands: write errors name the output, apart from read errors.

A full disk is reported as "cannot write X" with exit status 2, not as a read error or a traceback; a
reader of stdout that went away (``... | head``) ends the command quietly with 141, like other Unix tools.
"""

from __future__ import annotations

import os
import stat
import sys
from contextlib import ExitStack
from typing import IO, Any


class WriteError(Exception):
    """Writing, flushing or closing an output failed (kept apart from read errors of the input)."""

    def __init__(self, out: Output, error: OSError) -> None:
        super().__init__(f"cannot write {out.name}: {error.strerror or error}")
        self.out, self.error = out, error


class Output:
    """An output stream whose OSErrors become :class:`WriteError` naming the output."""

    __slots__ = ("f", "is_stdout", "name")

    def __init__(self, f: IO[bytes], name: str, is_stdout: bool) -> None:
        self.f, self.name, self.is_stdout = f, name, is_stdout

    def write(self, data: bytes) -> None:
        try:
            self.f.write(data)
        except OSError as exc:
            raise WriteError(self, exc) from None

    def close(self) -> None:
        """Flush (stdout) or close (a file), so that a full disk is reported before exit status 0."""
        try:
            if self.is_stdout:
                self.f.flush()
            else:
                self.f.close()
        except OSError as exc:
            raise WriteError(self, exc) from None


def _close_quietly(f: IO[bytes]) -> None:
    """On an error path the error already reported wins; a second one from closing must not become a traceback."""
    try:
        f.close()
    except OSError:
        pass


def open_output(path: str, stack: ExitStack, dash_is_stdout: bool = True) -> Output:
    """``path`` (``-`` = stdout unless told otherwise) for writing; raises OSError when it cannot be opened."""
    if path == "-" and dash_is_stdout:
        return Output(sys.stdout.buffer, "stdout", True)
    f = open(path, "wb")  # noqa: SIM115 - closed by Output.close, or quietly by the stack on an error path
    stack.callback(_close_quietly, f)
    return Output(f, path, False)


def _special(path: str) -> bool:
    """A device or FIFO (``/dev/null``, a named pipe): writing it does not destroy anything to compare."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def clashing_paths(reads: dict[str, str | None], writes: dict[str, str | None]) -> str | None:
    """Why two of a command's files are one file (an output that is an input, or two outputs), else None.

    Opening an output truncates it: ``detect -i x -o x`` used to empty its input and exit 0. Paths are
    compared as files (``os.path.samefile``: hard links and ``./x`` included) when they exist, and by their
    absolute paths when an output does not exist yet; ``-`` (stdin/stdout) and unset ones are skipped.
    """
    def same(a: str, b: str) -> bool:
        try:
            return os.path.samefile(a, b)
        except OSError:  # one of them does not exist (yet): two outputs can still name one new file
            return os.path.abspath(a) == os.path.abspath(b)

    named = [(flag, path) for flag, path in writes.items() if path and path != "-" and not _special(path)]
    for i, (flag, path) in enumerate(named):
        for other, src in reads.items():
            if src and src != "-" and same(path, src):
                return f"{flag} {path} is the same file as {other} {src}: it would be overwritten"
        for other, out in named[i + 1:]:
            if same(path, out):
                return f"{flag} and {other} name the same file ({path}): give each output its own file"
    return None


def write_failed(err: WriteError, command: str, log: Any = None) -> int:
    """Report a failed write and return the exit status; a reader of stdout that went away ends quietly (141)."""
    if err.out.is_stdout:
        # The unwritten bytes stay buffered and Python flushes stdout again at exit: point fd 1 at devnull
        # so that flush cannot fail again (the recipe of the Python docs for SIGPIPE).
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        if isinstance(err.error, BrokenPipeError):
            return 141
    if log is not None:
        log.error("cannot write output", path=err.out.name, error=str(err.error))
    print(f"distillguard {command}: {err}", file=sys.stderr)
    return 2
