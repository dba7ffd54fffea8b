"""Evaluate detection against labelled synthetic traffic and write a report (summary.md, results.json, plots).

By default it generates the ``suite`` preset in memory and runs the engine
in-process (``detectors.Engine``) over it. ``--events`` + ``--labels`` use
files from ``distillguard simulate`` instead; ``--alerts`` scores an existing
alerts file (e.g. from ``distillguard detect``) without running the engine.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import orjson

NAME = "evaluate"
HELP = "score the engine's alerts against labelled synthetic traffic and write a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("demo", "suite"), default="suite", help="traffic to generate (default: suite)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, help="override the preset's number of days")
    parser.add_argument("--tenants", type=int, help="scale the preset to about this many benign tenants")
    parser.add_argument("--intensity", type=float, default=1.0, help="multiply attack request rates")
    parser.add_argument("--events", help="events JSONL from `distillguard simulate` (needs --labels)")
    parser.add_argument("--labels", help="labels JSON from `distillguard simulate`")
    parser.add_argument("--alerts", help="score this alerts JSONL instead of running the engine (needs --labels)")
    parser.add_argument("--report", help="report folder (default: reports/<preset>-seed<seed>)")
    parser.add_argument("--late-after", type=float, default=6.0, help="hours after which a detection counts as late")
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


def evaluate(args: argparse.Namespace, on_alert: Any = None, title: str | None = None) -> tuple[dict[str, Any], Path]:
    """Run (or load) alerts, score them, write the report; return (result, summary path)."""
    from evaluation.report import write_report
    from evaluation.runner import ParallelSimulation, file_lines, load_jsonl, record_lines, run_engine
    from evaluation.scoring import score_alerts
    from simulator import HARD_NEGATIVE_PROFILES, generate

    meta: dict[str, Any] = {"command": "distillguard " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []) or
                                                                  sys.argv[1:]),
                            "hard_negative_profiles": sorted(HARD_NEGATIVE_PROFILES)}
    windows = None
    if args.alerts:
        if not args.labels:
            raise SystemExit("evaluate: --alerts needs --labels")
        labels = orjson.loads(Path(args.labels).read_bytes())
        alerts = load_jsonl(args.alerts)
        meta["title"] = title or f"alerts file {args.alerts}"
    elif args.events:
        if not args.labels:
            raise SystemExit("evaluate: --events needs --labels")
        labels = orjson.loads(Path(args.labels).read_bytes())
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
        t0 = time.perf_counter()
        if getattr(args, "in_process", False):
            sim = generate(cfg)
            source, get_labels = record_lines(sim), sim.labels
        else:  # generate in a child process while the engine runs here
            psim = ParallelSimulation(cfg)
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
    report_dir = default_report_dir(args)
    summary = write_report(report_dir, result, labels, meta, windows=windows, alerts=alerts)
    if not args.labels:  # generated in memory: keep the ground truth next to the alerts, for re-scoring with --alerts
        (report_dir / "labels.json").write_bytes(orjson.dumps(labels))
    return result, summary


def run(args: argparse.Namespace) -> int:
    result, summary = evaluate(args)
    det = sum(a["detected"] for a in result["attacks"])
    prec = result["precision"]
    print(f"evaluate: detected {det}/{len(result['attacks'])} attacks; false namings "
          f"{result['false_per_1000_tenant_days']:.1f} per 1,000 benign tenant-days; precision "
          f"{'n/a' if prec is None else f'{100 * prec:.1f}%'}; report {summary}", file=sys.stderr)
    return 0
