"""Send analyst verdicts on alerts to the feedback topic, checked against ``schemas/feedback.schema.json``.

One verdict from the options (``--alert-id``, ``--tenant``, ``--label``, ``--note``) or many from
``--file`` (JSON lines, ``-`` = stdin). Every record is validated before anything is sent, so a
typo in a label never reaches the workers; the record is keyed by ``tenant_id`` like the workers
re-key it. Exit status: 0 when all were sent, 2 when a record is invalid, the file cannot be read, the
broker cannot be reached or the topic does not exist.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

NAME = "feedback"
HELP = "send analyst verdicts on alerts (true_positive, false_positive, benign_expected)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from schemas.codec import load_schema

    labels = load_schema("feedback")["properties"]["label"]["enum"]
    parser.add_argument("--alert-id", help="the alert_id the verdict is about")
    parser.add_argument("--tenant", help="tenant_id of the alert (for a cluster alert: one of its tenant_ids)")
    parser.add_argument("--label", choices=labels, help="the verdict")
    parser.add_argument("--note", help="free text for the audit trail (never used for scoring)")
    parser.add_argument("--file", help="JSON lines of feedback records to send instead ('-' = stdin)")
    parser.add_argument("--topic", help="feedback topic (default DISTILLGUARD_FEEDBACK_TOPIC)")


def problems(record: Any) -> list[str]:
    """What is wrong with a feedback record (the workers and ``detect --feedback`` apply the same rule)."""
    from schemas.feedback import feedback_problems

    return feedback_problems(record)


_BOM = b"\xef\xbb\xbf"


def _records(args: argparse.Namespace) -> list[tuple[str, Any, str | None]]:
    """``(where, record, why not JSON)`` for each verdict, in file order (the reason is None for JSON)."""
    import orjson

    if args.file:
        stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115 - closed below
        try:
            rows: list[tuple[str, Any, str | None]] = []
            for n, line in enumerate(stream, 1):
                if n == 1 and line.startswith(_BOM):  # written by some editors and Windows tools
                    line = line[len(_BOM):]
                if line.strip():
                    try:
                        rows.append((f"line {n}", orjson.loads(line), None))
                    except orjson.JSONDecodeError as exc:
                        rows.append((f"line {n}", None, f"invalid JSON ({exc.msg})"))
            return rows
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
    record = {"alert_id": args.alert_id, "label": args.label, "tenant_id": args.tenant}
    if args.note:
        record["note"] = args.note
    return [("verdict", record, None)]


def run(args: argparse.Namespace) -> int:
    import orjson
    from kafka import KafkaProducer

    from distillguard.outputs import Output, WriteError, write_failed
    from distillguard.settings import load_settings
    from streams.admin import require_topic
    from streams.clients import kafka_python_config, preflight

    given = [flag for flag, value in (("--alert-id", args.alert_id), ("--tenant", args.tenant),
                                      ("--label", args.label), ("--note", args.note)) if value is not None]
    if args.file and given:  # the file's records would be sent and the verdict of the options dropped
        print(f"distillguard feedback: give either --file or a verdict by options, not both ({', '.join(given)} "
              "with --file)", file=sys.stderr)
        return 2
    try:
        rows = _records(args)
    except OSError as exc:
        print(f"distillguard feedback: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    bad = [(where, p) for where, rec, not_json in rows for p in ([not_json] if not_json else problems(rec))]
    records = [rec for _, rec, _ in rows]
    if bad or not records:
        for where, problem in bad or [("input", "no feedback records")]:
            print(f"distillguard feedback: {where}: {problem}", file=sys.stderr)
        return 2
    settings = load_settings()
    topic = args.topic or settings.feedback_topic
    preflight(settings)  # an unreachable broker or bad credentials: one clear line and exit 2 (cli.main), not a hang
    hint = ("check --topic (`distillguard topics create` creates the DISTILLGUARD_FEEDBACK_TOPIC one)" if args.topic
            else "create it with `distillguard topics create` (or set DISTILLGUARD_FEEDBACK_TOPIC)")
    require_topic(settings, topic, hint)  # else the producer would wait 60 s, then a traceback
    producer = KafkaProducer(acks="all", **kafka_python_config(settings))
    try:
        for rec in records:
            producer.send(topic, key=rec["tenant_id"].encode(), value=orjson.dumps(rec))
        producer.flush()
    finally:
        producer.close()
    out = Output(sys.stdout.buffer, "stdout", True)
    try:  # the verdicts are on the topic: a reader of stdout that went away only ends the command (141)
        out.write(f"sent {len(records)} verdict(s) to {topic}\n".encode())
        out.close()
    except WriteError as err:
        return write_failed(err, NAME)
    return 0
