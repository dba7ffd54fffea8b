"""Replay a range of the events topic through the detection stages, isolated from the live pipeline.

Selects the range by event time (``--from/--to``: offsets found per partition with the broker's time
index, starting ``--lookback-seconds`` earlier and ending ``--lookahead-seconds`` later, then trimmed by
the events' own timestamps) or by explicit offsets (``--offsets 0:100-5000,1:0-``), optionally for some
tenants only. Runs one tenant stage per partition and the cluster stage at the minimum watermark (as the
live workers), with fresh state or a ``--state`` file, and writes alerts (carrying
``metadata.replay_run_id``) to ``<alerts topic>.replay.<run-id>`` or ``--output FILE``. No consumer
group, no committed offsets, nothing written to the live app's topics. Checkpoints let an interrupted
run continue with ``--resume``. ``--promote SOURCE`` copies reviewed replay alerts to the live alert
topic. See docs/REPLAY.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

from distillguard.argtypes import checked, seconds

NAME = "replay"
HELP = "replay historical events (by time or offsets, optionally some tenants) into a separate alert topic or file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    rng = parser.add_argument_group("range")
    rng.add_argument("--topic", help="events topic (default DISTILLGUARD_EVENTS_TOPIC)")
    rng.add_argument("--from", dest="time_from", metavar="TIME", help="first event time kept (RFC 3339, inclusive)")
    rng.add_argument("--to", dest="time_to", metavar="TIME", help="end of the event-time range (exclusive)")
    rng.add_argument("--offsets", metavar="SPEC",
                     help="explicit ranges P:START-END (END exclusive, either side may be empty), comma-separated")
    rng.add_argument("--tenant", action="append", default=[], help="only this tenant (repeatable)")
    rng.add_argument("--tenants-file", help="only the tenants listed in this file (one a line, # comments)")
    rng.add_argument("--lookback-seconds", type=seconds(positive=False),
                     help="scan records from this long before --from by record timestamp "
                          "(default allowed lateness + window = 420)")
    rng.add_argument("--lookahead-seconds", type=seconds(positive=False),
                     help="scan records until this long after --to by record timestamp (default as lookback)")
    rng.add_argument("--scan", action="store_true",
                     help="ignore the broker's time index: read every retained record and trim by event time")
    st = parser.add_argument_group("state and output")
    st.add_argument("--state", help="seed tenant state from this state file (JSON lines {tenant_id, snapshot})")
    st.add_argument("--save-state", help="write the tenants' state at the end of the range (before closing windows)")
    st.add_argument("--output", "-o", help="write alerts to this JSONL file instead of a topic (not `-`: stdout "
                                           "carries the summary)")
    st.add_argument("--output-topic", help="alert topic (default <DISTILLGUARD_ALERTS_TOPIC>.replay.<run-id>, "
                                           "created if missing; must be empty unless resuming)")
    st.add_argument("--dead-letter", help="write invalid events here (JSON lines); never to the live DLQ topic")
    st.add_argument("--no-finish", action="store_true",
                    help="do not close the windows still open at the end of the range (default: close them, "
                         "as `distillguard detect` does at end of input)")
    st.add_argument("--window-seconds", type=seconds(positive=True), help="tenant window length, > 0 (default 300)")
    st.add_argument("--allowed-lateness", type=seconds(positive=False),
                    help="watermark lateness in seconds, >= 0 (default 120)")
    run = parser.add_argument_group("run")
    run.add_argument("--run-id", help="name of this run: letters, digits, '.', '_', '-' (default UTC time + "
                                      "random suffix)")
    run.add_argument("--checkpoint", help="checkpoint file (default .distillguard-replay/<run-id>.checkpoint.json)")
    run.add_argument("--checkpoint-events", type=checked(int, lambda v: v >= 1, "a whole number >= 1"),
                     default=200_000, help="checkpoint every N records read (>= 1)")
    run.add_argument("--checkpoint-seconds", type=seconds(positive=True), default=30.0,
                     help="... or every this many seconds (> 0)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run of --checkpoint (or --run-id) with its stored plan and options")
    run.add_argument("--accept-gap", action="store_true",
                     help="with --resume: skip records that retention deleted since the run was planned "
                          "(default: refuse, naming them)")
    run.add_argument("--restart", action="store_true",
                     help="start the run over although its checkpoint is unfinished (the checkpoint is replaced)")
    run.add_argument("--dry-run", action="store_true", help="print the plan (partitions, offsets, estimate) and exit")
    run.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    run.add_argument("--json", action="store_true", help="print the plan / summary as one JSON object")
    run.add_argument("--promote", metavar="SOURCE",
                     help="copy alerts from a replay output (FILE or topic:NAME) to the live alert topic, "
                          "skipping alert ids already there, then exit")
    run.add_argument("--promote-kind", choices=["tenant", "cluster"], action="append",
                     help="with --promote: only this kind (repeatable)")
    run.add_argument("--crash-after", type=int, help=argparse.SUPPRESS)  # test hook: signal self after N records
    run.add_argument("--crash-signal", default="KILL", choices=["KILL", "TERM", "INT"], help=argparse.SUPPRESS)


def _tenants(args: argparse.Namespace) -> list[str] | None:
    from streams.replay import ReplayError

    names = list(args.tenant)
    if args.tenants_file:
        try:
            text = Path(args.tenants_file).read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReplayError(f"--tenants-file {args.tenants_file} is not UTF-8 text (byte {exc.start})") from None
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
    return sorted(set(names)) if (args.tenant or args.tenants_file) else None


def _print(obj: dict[str, Any], as_json: bool, text: str) -> None:
    import orjson

    if as_json:
        sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    else:
        print(text)
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from distillguard.logs import configure_logging, get_logger
    from distillguard.settings import load_settings
    from streams.clients import preflight
    from streams.replay import ReplayError

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level, stream=sys.stderr)
    try:
        _check_range(args)  # before the broker: a typo in the range needs no connection to be pointed out
        _check_args(args)
    except ReplayError as exc:
        print(f"distillguard replay: {exc}", file=sys.stderr)
        return 2
    preflight(settings)
    log = get_logger("distillguard.replay")
    try:
        return _run(args, settings, log)
    except ReplayError as exc:
        print(f"distillguard replay: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"distillguard replay: {exc}", file=sys.stderr)
        return 2


def _check_range(args: argparse.Namespace) -> None:
    """Raise ReplayError for a --from/--to that does not parse or is empty (the plan checks it again)."""
    from streams.replay import ReplayError, parse_time

    start = parse_time(args.time_from) if getattr(args, "time_from", None) else None
    end = parse_time(args.time_to) if getattr(args, "time_to", None) else None
    if start is not None and end is not None and end <= start:
        raise ReplayError(f"--to ({args.time_to}) must be after --from ({args.time_from})")


def _check_args(args: argparse.Namespace) -> None:
    """Raise ReplayError for names and option combinations that are wrong whatever the broker holds."""
    from distillguard.settings import topic_name_problem
    from streams.replay import ReplayError

    for flag, name in (("--run-id", args.run_id), ("--output-topic", args.output_topic), ("--topic", args.topic)):
        problem = topic_name_problem(name) if name is not None else None
        if problem:
            raise ReplayError(f"{flag} {name!r} {problem}")
    if args.output == "-":
        raise ReplayError("--output -: the summary goes to stdout and a resumable run needs a file; give a file name")
    if args.output is not None and not args.output:
        raise ReplayError("--output needs a file name")
    if args.resume and args.restart:
        raise ReplayError("use either --resume or --restart")
    if args.accept_gap and not args.resume:
        raise ReplayError("--accept-gap only applies to --resume")


def _abs(path: str | None) -> str | None:
    """Paths are stored absolute in the checkpoint, so ``--resume`` works from any directory."""
    return os.path.abspath(path) if path else None


def _check_writable(path: str, flag: str, *, keep: bool) -> None:
    """Fail now, not after the whole replay, when ``path`` cannot be written.

    ``keep`` files are opened for appending (nothing is truncated before the run starts); the others
    (written atomically through ``PATH.tmp`` at the end) are probed with that temporary file.
    """
    from streams.replay import ReplayError

    if os.path.isdir(path):
        raise ReplayError(f"cannot write {flag} {path}: it is a directory")
    if keep and os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        return  # a FIFO or a device (/dev/null): opening it to probe would end a FIFO's reader before the run
    probe = path if keep else f"{path}.tmp"
    existed = os.path.exists(probe)
    try:
        with open(probe, "ab"):
            pass
    except OSError as exc:
        raise ReplayError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None
    if not existed and not keep:
        os.unlink(probe)


def _run(args: argparse.Namespace, settings: Any, log: Any) -> int:
    import time

    from detectors import DetectorConfig
    from distillguard.outputs import clashing_paths
    from streams.admin import TopicSpec, create_topics
    from streams.replay import (
        FetchConsumer,
        FileSink,
        Replay,
        ReplayError,
        ReplayPlan,
        TopicSink,
        build_plan,
        check_output_topic,
        check_resume,
        default_run_id,
        make_consumer,
        parse_offsets,
        parse_time,
        promote,
        read_checkpoint,
        read_state_file,
        resume_file_problem,
    )

    if args.promote:
        stats = promote(settings, args.promote, kinds=set(args.promote_kind or []) or None, dry_run=args.dry_run)
        _print(stats, args.json, " ".join(f"{k}={v}" for k, v in stats.items())
               + f" (live topic {settings.alerts_topic})")
        return 0

    ckpt_doc = None
    state = None
    notes: list[str] = []
    if args.resume:
        if not args.checkpoint and not args.run_id:
            raise ReplayError("--resume needs --checkpoint FILE or --run-id")
        path = os.path.abspath(args.checkpoint or f".distillguard-replay/{args.run_id}.checkpoint.json")
        ckpt_doc = read_checkpoint(path)
        if ckpt_doc["status"] == "complete":
            _print({"status": "complete", "run_id": ckpt_doc["run_id"], **ckpt_doc["counts"]}, args.json,
                   f"replay {ckpt_doc['run_id']} is already complete; nothing to do")
            return 0
        opts = ckpt_doc["options"]
        run_id = ckpt_doc["run_id"]
        plan = ReplayPlan.from_dict(ckpt_doc["plan"])
        checkpoint_path = path
        next_offsets = {int(p): o for p, o in ckpt_doc["next_offsets"].items()}
        if opts["output"]:
            problem = resume_file_problem(opts["output"], ckpt_doc["output"]["position"], "output file")
            if problem:
                raise ReplayError(problem)
        else:
            check_output_topic(settings, opts["output_topic"], plan.topic)
        if opts.get("dead_letter") and ckpt_doc.get("dead_letter_position") is not None:
            problem = resume_file_problem(opts["dead_letter"], ckpt_doc["dead_letter_position"], "dead-letter file")
            if problem:
                raise ReplayError(problem)
        consumer = make_consumer(settings)
        try:
            notes = check_resume(consumer, plan, next_offsets, set(ckpt_doc["exhausted"]), accept_gap=args.accept_gap)
        finally:
            consumer.close()
    else:
        run_id = args.run_id or default_run_id()
        overrides = {k: v for k, v in (("window_seconds", args.window_seconds),
                                       ("allowed_lateness", args.allowed_lateness)) if v is not None}
        cfg = DetectorConfig(**overrides)
        margin = cfg.allowed_lateness + cfg.window_seconds
        lookback = args.lookback_seconds if args.lookback_seconds is not None else margin
        lookahead = args.lookahead_seconds if args.lookahead_seconds is not None else lookback
        source_topic = args.topic or settings.events_topic
        opts = {"config": overrides, "output": _abs(args.output),
                "output_topic": None if args.output else (args.output_topic
                                                          or f"{settings.alerts_topic}.replay.{run_id}"),
                "dead_letter": _abs(args.dead_letter), "finish": not args.no_finish,
                "save_state": _abs(args.save_state), "state": _abs(args.state)}
        if opts["output_topic"]:
            check_output_topic(settings, opts["output_topic"], source_topic)
        if args.offsets and (args.time_from or args.time_to):
            raise ReplayError("use either --offsets or --from/--to")
        checkpoint_path = os.path.abspath(args.checkpoint or f".distillguard-replay/{run_id}.checkpoint.json")
        clash = clashing_paths({"--state": args.state, "--tenants-file": args.tenants_file},
                               {"--output": args.output, "--dead-letter": args.dead_letter,
                                "--checkpoint": checkpoint_path})
        clash = clash or clashing_paths({"--tenants-file": args.tenants_file},
                                        {"--save-state": args.save_state, "--output": args.output,
                                         "--dead-letter": args.dead_letter, "--checkpoint": checkpoint_path})
        if clash:
            raise ReplayError(clash)
        tenants = _tenants(args)
        # read (and check) the state before the broker is asked anything or a file is touched
        state = read_state_file(opts["state"], DetectorConfig(**overrides)) if opts["state"] else None
        consumer = make_consumer(settings)
        try:
            plan = build_plan(consumer, source_topic,
                              time_from=parse_time(args.time_from) if args.time_from else None,
                              time_to=parse_time(args.time_to) if args.time_to else None,
                              offsets=parse_offsets(args.offsets) if args.offsets else None,
                              tenants=tenants, lookback=lookback, lookahead=lookahead, scan=args.scan)
            if not args.dry_run:
                _check_fresh_run(args, consumer, run_id, checkpoint_path, opts)
        finally:
            consumer.close()
        notes = plan.notes

    if args.dry_run:
        out = opts["output"] or f"topic {opts['output_topic']}"
        _print({"run_id": run_id, "plan": plan.to_dict(), "estimated_records": plan.estimated_records,
                "output": opts["output"] or opts["output_topic"], "checkpoint": str(checkpoint_path)}, args.json,
               f"replay {run_id} (dry run: no event is read)\n{plan.describe()}\n"
               f"alerts to: {out}\ncheckpoint: {checkpoint_path}")
        return 0
    for note in notes:  # a real run says what the plan found too: an empty range is not a silent 0
        print(f"distillguard replay: note: {note}", file=sys.stderr)

    config = DetectorConfig(**opts["config"])
    if ckpt_doc is None and args.restart and os.path.exists(checkpoint_path):
        os.unlink(checkpoint_path)  # the unfinished run it described is given up
    if opts["output"]:
        pos = ckpt_doc["output"]["position"] if ckpt_doc else None
        sink: Any = FileSink(opts["output"], pos)
    else:
        topic = opts["output_topic"]
        if ckpt_doc is None:
            create_topics(settings, [TopicSpec(topic, settings.partitions, {})])
        resume_from = {int(p): o for p, o in ckpt_doc["output"]["end_offsets"].items()} if ckpt_doc else None
        written = {int(p): v for p, v in ckpt_doc["output"].get("written_after", {}).items()} if ckpt_doc else None
        sink = TopicSink(settings, topic, resume_from, written)

    bar = None
    progress = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        done = ckpt_doc["counts"]["records"] if ckpt_doc else 0
        bar = tqdm(total=plan.estimated_records, initial=done, unit="ev", unit_scale=True, desc=f"replay {run_id}",
                   file=sys.stderr, smoothing=0.1)
        progress = bar.update
    rp = Replay(settings, plan, run_id, sink, config=config, checkpoint_path=checkpoint_path,
                checkpoint_events=args.checkpoint_events, checkpoint_seconds=args.checkpoint_seconds,
                dead_letter=opts["dead_letter"], finish=opts["finish"], state=state, save_state=opts["save_state"],
                progress=progress, crash_after=args.crash_after,
                crash_signal=getattr(signal, f"SIG{args.crash_signal}"))
    rp.options = opts
    if ckpt_doc is not None:
        rp.load_checkpoint(ckpt_doc)
        rp.next.update(next_offsets)  # moved past records no longer retained with --accept-gap
        rp.exhausted |= {r.partition for r in plan.ranges if rp.next[r.partition] >= r.end}
        log.info("replay_resumed", run_id=run_id, records=rp.counts.records, checkpoint=str(checkpoint_path))
    else:
        log.info("replay_started", run_id=run_id, partitions=[r.partition for r in plan.ranges],
                 estimated_records=plan.estimated_records, output=opts["output"] or opts["output_topic"])
    consumer = FetchConsumer(settings)
    started = time.monotonic()
    try:
        result = rp.run(consumer)
    finally:
        consumer.close()
        if bar is not None:
            bar.close()
    c = rp.counts
    wall = time.monotonic() - started
    summary = {"run_id": run_id, "status": result, **c.to_dict(), "seeded_tenants": rp.seeded_tenants,
               "duration_seconds": round(rp.duration, 3), "this_session_seconds": round(wall, 3),
               "events_per_second": round(c.records / rp.duration) if rp.duration > 0 else None,
               "output": opts["output"] or opts["output_topic"], "checkpoint": str(checkpoint_path)}
    lines = [f"replay {run_id}: {result}",
             f"  records read {c.records}, events replayed {c.events}, invalid (DLQ) {c.dead_letter}, "
             f"outside the time range {c.outside_range}, other tenants {c.other_tenants}",
             f"  alerts {c.alerts}: by kind {dict(c.by_kind)}, by severity {dict(c.by_severity)}, "
             f"by status {dict(c.by_status)}",
             f"  duration {rp.duration:.1f}s ({summary['events_per_second']} records/s), "
             f"alerts in {summary['output']}"]
    if result != "complete":
        lines.append(f"  interrupted: continue with `distillguard replay --resume --checkpoint {checkpoint_path}`")
    _print(summary, args.json, "\n".join(lines))
    return 0 if result == "complete" else 130


def _check_fresh_run(args: argparse.Namespace, consumer: Any, run_id: str, checkpoint_path: str,
                     opts: dict[str, Any]) -> None:
    """Refuse a new run that would duplicate or clobber an earlier one, or fail only after all its work."""
    from streams.replay import ReplayError, read_checkpoint, topic_records

    if os.path.isdir(checkpoint_path):
        raise ReplayError(f"cannot write --checkpoint {checkpoint_path}: it is a directory")
    if os.path.exists(checkpoint_path) and not args.restart:
        try:
            status = read_checkpoint(checkpoint_path).get("status")
        except ReplayError:
            status = "unreadable"
        if status != "complete":
            raise ReplayError(f"run {run_id} has an unfinished checkpoint ({status}) at {checkpoint_path}: continue "
                              f"it with `distillguard replay --resume --checkpoint {checkpoint_path}`, or start it "
                              "over with --restart")
    if opts["output_topic"]:
        n = topic_records(consumer, opts["output_topic"])
        if n:
            raise ReplayError(f"output topic {opts['output_topic']!r} already holds {n} records (an earlier run?): "
                              "a new run would add its alerts to them; use another --run-id or --output-topic, "
                              "delete the topic, or --resume the run that wrote them")
    try:
        Path(checkpoint_path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReplayError(f"cannot write --checkpoint {checkpoint_path}: {exc.strerror or exc}") from None
    _check_writable(checkpoint_path, "--checkpoint", keep=False)
    if opts["dead_letter"]:
        _check_writable(opts["dead_letter"], "--dead-letter", keep=True)
    if opts["save_state"]:
        _check_writable(opts["save_state"], "--save-state", keep=False)
    if opts["output"]:
        _check_writable(opts["output"], "--output", keep=True)
