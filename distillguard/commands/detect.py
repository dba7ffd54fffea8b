"""Embedded mode: run the detection engine over a JSONL events file (no broker) and write alerts as JSON lines.

Events are read in file order (``-`` = stdin) and alerts written one JSON object a line (``-`` = stdout),
with exactly the detection logic of the Kafka workers (``detectors.Engine``). Lines that are not valid
events go to ``--dead-letter`` as records per ``schemas/dead_letter.schema.json`` (reason, line number,
raw bytes without prompt text; a raw newline inside a prompt_text value splits an event, so the rejected lines
after one that ends inside such a value get a redaction marker as raw, until a line is an event again) and
processing goes on. ``--feedback`` applies analyst verdicts
(``schemas/feedback.schema.json``) as soon as the alert they name is emitted (alert ids are
deterministic, so verdicts on a previous run's alerts apply to a re-run). ``--format ocsf|ecs`` writes
each alert as an OCSF Detection Finding or an ECS document instead (docs/SIEM.md). Exit status: 0, or 2 when
the input cannot be opened or read, an output cannot be written (a full disk, say) or an output is one of the
input files (it would be emptied). When the reader of stdout goes away (``detect ... | head``) it stops quietly
with status 141, like other Unix tools; SIGTERM stops it with 143 after removing its spill directory.

Gzip-compressed input (a file or stdin) is read as such; a UTF-8 byte order mark before the first line is
skipped. A line longer than ``max_event_bytes`` is read only that far (the rest is skipped up to its newline)
and dead-lettered as oversized, so one huge line cannot take the memory.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import orjson

from distillguard.argtypes import seconds, sigterm_unwinds
from distillguard.outputs import WriteError, clashing_paths, open_output, write_failed

NAME = "detect"
HELP = "run detection over an events JSONL file (embedded mode, no Kafka) and write alerts as JSON lines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", "-i", required=True, help="events JSONL file, '-' for stdin")
    parser.add_argument("--output", "-o", default="-", help="alerts JSONL file, '-' for stdout (default)")
    parser.add_argument("--dead-letter", help="write rejected lines here (JSON lines with reason and line number)")
    parser.add_argument("--feedback", help="analyst feedback JSONL file to apply (feedback.schema.json records)")
    parser.add_argument("--window-seconds", type=seconds(positive=True),
                        help="tenant window length in seconds, > 0 (default 300)")
    parser.add_argument("--allowed-lateness", type=seconds(positive=False),
                        help="watermark lateness in seconds, >= 0 (default 120)")
    parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    parser.add_argument("--format", choices=("contract", "ocsf", "ecs"), default="contract",
                        help="alert document format: the contract alert (default), an OCSF Detection Finding or an "
                             "ECS document, for SIEM file imports (docs/SIEM.md)")


_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
# what reading a gzip stream can raise besides OSError (BadGzipFile is one): a truncated or corrupt stream
READ_ERRORS = (OSError, EOFError, zlib.error)


class _Prefixed(io.RawIOBase):
    """``head`` then the rest of ``rest``: puts back bytes read to look at the start of a pipe."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._rest.read1(len(buf))
        buf[: len(data)] = data
        return len(data)


def _open_in(path: str, stack: ExitStack) -> tuple[IO[bytes], bool]:
    """The input (``-`` = stdin) and whether it is gzip-compressed (told by its first two bytes)."""
    f: Any = sys.stdin.buffer if path == "-" else stack.enter_context(open(path, "rb"))  # noqa: SIM115
    head = f.peek(2)[:2]
    if len(head) == 1:  # a pipe that has delivered one byte so far: read on until two (or the end), put them back
        head = f.read(1)
        while len(head) < 2 and (more := f.read(2 - len(head))):
            head += more
        f = io.BufferedReader(_Prefixed(head, f))
    if head == _GZIP_MAGIC:
        return stack.enter_context(gzip.GzipFile(fileobj=f, mode="rb")), True
    return f, False


def _lines(fin: IO[bytes], limit: int) -> Iterator[tuple[bytes, int]]:
    """``(line, skipped)`` for each line of ``fin``: a line longer than ``limit`` bytes comes as its first
    ``limit + 3`` bytes (no newline) and the number of bytes skipped after them, up to and without its newline;
    ``skipped`` is 0 for every other line. Reading a whole 300 MB line used to take 1.2 GB before it was refused."""
    readline = fin.readline
    cap = limit + 3  # the body, "\r\n", and one byte more: a shorter read without a newline ends the input
    while line := readline(cap):
        if len(line) < cap or line.endswith(b"\n"):
            yield line, 0
            continue
        skipped = 0
        cr = False  # a "\r\n" split between two skipped reads ends the line too (the prefix's is stripped)
        while more := readline(1 << 20):
            if more.endswith(b"\n"):
                # the "\r" of a "\r\n" counted with the chunk before belongs to the line's end
                skipped += len(more) - (2 if more.endswith(b"\r\n") else 1) - (cr and more == b"\n")
                break
            skipped += len(more)
            cr = more.endswith(b"\r")
        yield line, skipped


def _load_feedback(path: str, log: Any) -> dict[str, list[dict[str, Any]]]:
    from schemas.feedback import feedback_problems

    by_alert: dict[str, list[dict[str, Any]]] = {}
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                log.warning("feedback line skipped", line=n, error=str(exc))
                continue
            found = feedback_problems(rec)
            if found:  # the rule `distillguard feedback` and the workers apply
                log.warning("feedback line skipped", line=n, error="; ".join(found))
                continue
            by_alert.setdefault(rec["alert_id"], []).append(rec)
    return by_alert


def run(args: argparse.Namespace) -> int:
    from detectors import DetectorConfig, Engine
    from detectors.features import prompt_features
    from distillguard.logs import configure_logging, get_logger
    from distillguard.settings import load_settings
    from schemas import DecodeError, EventCodec
    from schemas.codec import ends_inside_prompt
    from schemas.dead_letter import dead_letter_record
    from schemas.formats import ALERT_MAPPERS

    clash = clashing_paths({"--input": args.input, "--feedback": args.feedback},
                           {"--output": args.output, "--dead-letter": args.dead_letter})
    if clash:
        print(f"distillguard detect: {clash}", file=sys.stderr)
        return 2
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    log = get_logger("distillguard.detect")
    overrides = {k: v for k, v in (("window_seconds", args.window_seconds),
                                   ("allowed_lateness", args.allowed_lateness)) if v is not None}
    from distillguard.spill import SpillStore

    spill = SpillStore()  # evicted tenants beyond max_tenants_in_memory (created on first use, removed at exit)
    engine = Engine(DetectorConfig(**overrides), max_tenants=settings.max_tenants_in_memory, store=spill)
    codec = EventCodec(max_bytes=settings.max_event_bytes, prompt_hook=prompt_features)
    max_bytes = settings.max_event_bytes
    source = "<stdin>" if args.input == "-" else args.input

    feedback: dict[str, list[dict[str, Any]]] = {}
    if args.feedback:
        try:
            feedback = _load_feedback(args.feedback, log)
        except OSError as exc:
            print(f"distillguard detect: cannot read feedback file {args.feedback}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2

    counts = {"lines": 0, "events": 0, "dead_letter": 0, "blank": 0, "alerts": 0, "open": 0, "feedback_applied": 0}
    started = time.perf_counter()
    with ExitStack() as stack:
        stack.enter_context(sigterm_unwinds())  # the spill directory and open files are closed on SIGTERM too
        stack.callback(spill.close)
        try:
            fin, compressed = _open_in(args.input, stack)
        except OSError as exc:
            print(f"distillguard detect: cannot read input {args.input}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        try:
            fout = open_output(args.output, stack)
            fdl = open_output(args.dead_letter, stack) if args.dead_letter else None
        except OSError as exc:
            path = exc.filename if exc.filename is not None else args.output
            print(f"distillguard detect: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        bar = None
        if not args.no_progress and sys.stderr.isatty():
            from tqdm import tqdm

            total = None
            if args.input != "-" and not compressed:  # (the bar counts the bytes of the lines read)
                try:
                    total = Path(args.input).stat().st_size
                except OSError:
                    total = None
            bar = stack.enter_context(tqdm(total=total, unit="B", unit_scale=True, desc="detect", file=sys.stderr))

        write = fout.write
        dumps = orjson.dumps
        render = ALERT_MAPPERS[args.format]

        def emit(alerts: list[dict[str, Any]]) -> None:
            for a in alerts:
                write(dumps(render(a)) + b"\n")
                counts["alerts"] += 1
                if a["status"] == "open":
                    counts["open"] += 1
                recs = feedback.pop(a["alert_id"], None) if feedback else None
                if recs:
                    for rec in recs:
                        counts["feedback_applied"] += 1
                        emit(engine.apply_feedback(rec))

        decode = codec.decode
        process = engine.process
        stage = engine.tenant_stage
        pending = 0
        lineno = 0
        # a raw newline inside a prompt_text value splits an event over lines: once a rejected line ends inside
        # one, the rejected lines after it (the rest of the prompt) are dead-lettered redacted, until an event
        in_prompt = False
        try:
            try:
                for lineno, (raw, skipped) in enumerate(_lines(fin, max_bytes), 1):  # noqa: B007 - used after
                    if bar is not None:
                        pending += len(raw) + skipped
                        if pending >= 1 << 20:
                            bar.update(pending)
                            pending = 0
                    body = raw.rstrip(b"\r\n")
                    if lineno == 1 and body.startswith(_BOM):  # written by some editors and Windows tools
                        body = body[len(_BOM):]
                    if not body.strip():
                        counts["blank"] += 1
                        continue
                    try:
                        if skipped:  # the worded reason of the codec, for the line's full length
                            raise DecodeError(f"oversized: {len(body) + skipped} bytes > limit {max_bytes}")
                        ev = decode(body)
                    except DecodeError as exc:
                        counts["dead_letter"] += 1
                        if fdl is not None:
                            fdl.write(dumps(dead_letter_record(body, exc.reason, max_bytes, continues_prompt=in_prompt,
                                                               source_file=source, line=lineno)) + b"\n")
                            in_prompt = in_prompt or ends_inside_prompt(body)
                        elif counts["dead_letter"] <= 5:
                            log.warning("rejected line", line=lineno, reason=exc.reason)
                        continue
                    in_prompt = False
                    alerts = process(ev)
                    if stage.rejected is not None:  # a replayed event id: dead-lettered like a bad line
                        counts["dead_letter"] += 1
                        if fdl is not None:
                            fdl.write(dumps(dead_letter_record(body, stage.rejected, max_bytes, source_file=source,
                                                               line=lineno)) + b"\n")
                        continue
                    counts["events"] += 1
                    if alerts:
                        emit(alerts)
            except READ_ERRORS as exc:  # only reading can raise these here: writes raise WriteError
                what = "corrupt gzip data: " if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)) else ""
                print(f"distillguard detect: cannot read input {args.input} (line {lineno + 1}): "
                      f"{what}{getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
                return 2
            counts["lines"] = lineno
            emit(engine.finish())
            if bar is not None:
                bar.update(pending)
            fout.close()
            if fdl is not None:
                fdl.close()
        except WriteError as err:
            return write_failed(err, NAME, log)
    elapsed = time.perf_counter() - started
    stats = engine.stats
    log.info("detect finished", **counts, late_events=stats["late_events"], future_clamped=stats["future_clamped"],
             replays=stats["replays"], evicted=stats["evicted"], restored=stats["restored"],
             tenants=len(engine.tenants), seconds=round(elapsed, 3),
             events_per_second=round(counts["events"] / elapsed) if elapsed > 0 else None)
    return 0
