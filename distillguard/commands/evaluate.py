"""Evaluate detection against labelled synthetic traffic and write a report (summary.md, results.json, plots).

By default it generates the ``suite`` preset in memory and runs the engine
in-process (``detectors.Engine``) over it. ``--events`` + ``--labels`` use
files from ``distillguard simulate`` instead; ``--alerts`` scores an existing
alerts file (e.g. from ``distillguard detect``) without running the engine.
Exit status: 0, 2 on a bad option or input file or an unwritable report folder
(one line, checked before the run where possible), 130 on Ctrl-C, 143 on SIGTERM.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from distillguard.argtypes import POSITIVE, POSITIVE_INT, sigterm_unwinds

NAME = "evaluate"
HELP = "score the engine's alerts against labelled synthetic traffic and write a report"

_ALERT_KINDS = ("tenant", "cluster")
_ALERT_STATUSES = ("open", "update", "resolved")


class UsageError(Exception):
    """A bad input file, option combination or report folder: one line on stderr and exit status 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("demo", "suite"), default="suite", help="traffic to generate (default: suite)")
    parser.add_argument("--seed", type=int, default=7)
    # the checks of `distillguard simulate`: a zero, negative or nan value divided by zero, hung or scored nothing
    parser.add_argument("--days", type=POSITIVE_INT, help="override the preset's number of days (>= 1)")
    parser.add_argument("--tenants", type=POSITIVE_INT, help="scale the preset to about this many benign tenants (>= 1)")
    parser.add_argument("--intensity", type=POSITIVE, default=1.0, help="multiply attack request rates, > 0")
    parser.add_argument("--events", help="events JSONL from `distillguard simulate` (needs --labels)")
    parser.add_argument("--labels", help="labels JSON from `distillguard simulate`")
    parser.add_argument("--alerts", help="score this alerts JSONL instead of running the engine (needs --labels)")
    parser.add_argument("--report", help="report folder (default: reports/<preset>-seed<seed>)")
    parser.add_argument("--late-after", type=POSITIVE, default=6.0,
                        help="hours (> 0) after which a detection counts as late")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--in-process", action="store_true", help="generate in this process (default: a child process)")


def default_report_dir(args: argparse.Namespace) -> Path:
    if args.report:
        return Path(args.report)
    if args.alerts:
        return Path("reports") / f"alerts-{Path(args.alerts).stem}"
    if args.events:
        return Path("reports") / f"events-{Path(args.events).stem}"
    return Path("reports") / f"{args.preset}-seed{args.seed}"


def _is_time(value: Any) -> bool:
    """An RFC 3339 time or epoch seconds, as scoring reads them (anything else failed there with a traceback)."""
    from evaluation.scoring import ts_of

    if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return False
    try:
        ts_of(value)
    except ValueError:
        return False
    return True


def _read_error(option: str, path: str, exc: OSError) -> UsageError:
    return UsageError(f"cannot read {option} {path}: {exc.strerror or exc}")


def read_labels(path: str) -> dict[str, Any]:
    """The labels JSON of `distillguard simulate`, or a UsageError naming what is wrong with the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _read_error("--labels", path, exc) from None
    hint = f"--labels {path} is not a labels file from `distillguard simulate --labels`"
    try:
        labels = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{hint} (not one JSON document: {exc})") from None
    ok = (isinstance(labels, dict) and _is_time(labels.get("start")) and isinstance(labels.get("tenants"), dict)
          and all(isinstance(t, dict) and "role" in t for t in labels["tenants"].values())
          and isinstance(labels.get("attacks"), list)
          and all(isinstance(a, dict) and {"attack_id", "tenants"} <= a.keys() and _is_time(a.get("start"))
                  for a in labels["attacks"]))
    if not ok:
        raise UsageError(f"{hint} (no start, tenants or attacks)")
    return labels


def read_alerts(path: str) -> list[dict[str, Any]]:
    """Alerts JSON lines (``detect`` output, ``alerts tail --json``); a line that is not an alert is a UsageError."""
    alerts: list[dict[str, Any]] = []
    try:
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    alert = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise UsageError(f"--alerts {path} line {n} is not JSON: not an alerts file") from None
                if not (isinstance(alert, dict) and alert.get("kind") in _ALERT_KINDS
                        and alert.get("status") in _ALERT_STATUSES and _is_time(alert.get("detected_at"))):
                    raise UsageError(f"--alerts {path} line {n} is not an alert (kind, status, detected_at); "
                                     "an events file goes to --events")
                alerts.append(alert)
    except OSError as exc:
        raise _read_error("--alerts", path, exc) from None
    return alerts


def _check_readable(option: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise _read_error(option, path, exc) from None


def _make_report_dir(path: Path) -> None:
    """Created before the (long) run, so that a path that is a file or not writable fails at once."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"cannot write the report to {path}: it exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {path}: {exc.strerror or exc}") from None


def evaluate(args: argparse.Namespace, on_alert: Any = None, title: str | None = None) -> tuple[dict[str, Any], Path]:
    """Run (or load) alerts, score them, write the report; return (result, summary path).

    Raises UsageError for a bad input file or report folder (the commands print it as one line, exit 2)."""
    with sigterm_unwinds():  # killed on the spot, it left the simulation child blocked on its full queue
        return _evaluate(args, on_alert, title)


def _evaluate(args: argparse.Namespace, on_alert: Any, title: str | None) -> tuple[dict[str, Any], Path]:
    from evaluation.report import write_report
    from evaluation.runner import (
        ParallelSimulation,
        file_lines,
        record_lines,
        run_engine,
    )
    from evaluation.scoring import score_alerts
    from simulator import HARD_NEGATIVE_PROFILES, generate

    meta: dict[str, Any] = {"command": "distillguard " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []) or
                                                                  sys.argv[1:]),
                            "hard_negative_profiles": sorted(HARD_NEGATIVE_PROFILES)}
    windows = None
    report_dir = default_report_dir(args)
    if args.alerts:
        if not args.labels:
            raise UsageError("--alerts needs --labels (the labels JSON of `distillguard simulate`)")
        labels = read_labels(args.labels)
        alerts = read_alerts(args.alerts)
        _make_report_dir(report_dir)
        meta["title"] = title or f"alerts file {args.alerts}"
    elif args.events:
        if not args.labels:
            raise UsageError("--events needs --labels (the labels JSON of `distillguard simulate`)")
        labels = read_labels(args.labels)
        _check_readable("--events", args.events)
        _make_report_dir(report_dir)
        total = labels.get("counts", {}).get("lines")
        run = run_engine(file_lines(args.events), progress_total=total, show_progress=None if not args.no_progress else False,
                         on_alert=on_alert)
        alerts, windows = run.alerts, run.windows
        meta.update(title=title or f"events file {args.events}", events=run.events, malformed=run.rejected,
                    engine_s=round(run.seconds, 1), engine_events_per_s=round(run.events / max(run.seconds, 1e-9)),
                    open_threshold=run.open_threshold)
    else:
        from distillguard.commands.simulate import build_config

        cfg = build_config(args)
        _make_report_dir(report_dir)
        t0 = time.perf_counter()
        with ExitStack() as stack:
            if getattr(args, "in_process", False):
                sim = generate(cfg)
                source, get_labels = record_lines(sim), sim.labels
            else:  # generate in a child process while the engine runs here; stopped on any way out
                psim = stack.enter_context(ParallelSimulation(cfg))
                source, get_labels = psim.lines(), psim.labels
            run = run_engine(source, show_progress=None if not args.no_progress else False, on_alert=on_alert)
        total_s = time.perf_counter() - t0
        labels = get_labels()
        alerts, windows = run.alerts, run.windows
        meta.update(title=title or f"preset {cfg.preset}, seed {cfg.seed}", preset=cfg.preset, seed=cfg.seed,
                    days=cfg.days, events=run.events, malformed=run.rejected,
                    engine_s=round(run.seconds, 1), engine_events_per_s=round(run.events / max(run.seconds, 1e-9)),
                    generation_and_engine_s=round(total_s, 1), open_threshold=run.open_threshold)
    tenants = labels["tenants"]
    meta["tenants"] = len(tenants)
    meta["benign_tenants"] = sum(1 for t in tenants.values() if t["role"] == "benign")
    result = score_alerts(alerts, labels, late_after_s=args.late_after * 3600)
    try:
        summary = write_report(report_dir, result, labels, meta, windows=windows, alerts=alerts)
        if not args.labels:  # generated in memory: keep the ground truth next to the alerts, for re-scoring with --alerts
            (report_dir / "labels.json").write_bytes(orjson.dumps(labels))
    except OSError as exc:
        raise UsageError(f"cannot write the report to {report_dir}: {exc.strerror or exc}") from None
    return result, summary


def run(args: argparse.Namespace) -> int:
    try:
        result, summary = evaluate(args)
    except UsageError as exc:
        print(f"distillguard {NAME}: {exc}", file=sys.stderr)
        return 2
    det = sum(a["detected"] for a in result["attacks"])
    prec = result["precision"]
    print(f"evaluate: detected {det}/{len(result['attacks'])} attacks; false namings "
          f"{result['false_per_1000_tenant_days']:.1f} per 1,000 benign tenant-days; precision "
          f"{'n/a' if prec is None else f'{100 * prec:.1f}%'}; report {summary}", file=sys.stderr)
    return 0
