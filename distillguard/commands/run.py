"""Demo: simulate one day of traffic with a few distillation attacks, detect in-process, print alerts as they fire.

No broker needed. Ends with the evaluation summary (per attack: detected,
time to detect, requests served before detection; false alarms) and the path
of the report folder (summary.md + plots). Exit status: 0, 2 when the report
folder cannot be written, 130 on Ctrl-C, 143 on SIGTERM, 141 when the reader of
stdout goes away (``distillguard run | head``).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from typing import Any

from distillguard.argtypes import POSITIVE, POSITIVE_INT

NAME = "run"
HELP = "demo: simulate a day with attacks, detect in-process, print alerts and the evaluation summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("demo", "suite"), default="demo", help="traffic to generate (default: demo)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=POSITIVE_INT, help=argparse.SUPPRESS)
    parser.add_argument("--tenants", type=POSITIVE_INT, help=argparse.SUPPRESS)
    parser.add_argument("--intensity", type=POSITIVE, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--report", help="report folder (default: reports/<preset>-seed<seed>)")
    parser.add_argument("--late-after", type=POSITIVE, default=6.0,
                        help="hours (> 0) after which a detection counts as late")
    parser.add_argument("--max-reasons", type=int, default=3, help="reasons shown per alert line")


def run(args: argparse.Namespace) -> int:
    from distillguard.commands.evaluate import UsageError, evaluate
    from distillguard.outputs import WriteError, open_output, write_failed
    from distillguard.render import alert_line
    from evaluation.report import _fmt_dur

    args.events = args.labels = args.alerts = None
    args.no_progress = True
    with ExitStack() as stack:
        out = open_output("-", stack)

        def say(text: str = "", flush: bool = False) -> None:
            out.write(text.encode() + b"\n")
            if flush:
                out.close()  # on stdout this only flushes: alerts show as they fire

        def on_alert(alert: dict[str, Any]) -> None:
            if alert.get("status") in ("open", "update"):
                say(alert_line(alert, args.max_reasons), flush=True)

        try:
            say(f"distillguard run: simulating preset '{args.preset}' (seed {args.seed}) and detecting in-process; "
                "alerts as they fire (event time):", flush=True)
            try:
                result, summary = evaluate(args, on_alert=on_alert)
            except UsageError as exc:
                print(f"distillguard {NAME}: {exc}", file=sys.stderr)
                return 2
            say()
            say("Evaluation summary")
            for a in result["attacks"]:
                ttd = _fmt_dur(a["ttd_s"])
                say(f"  {a['attack_id']} {a['scenario']:20s} {a['outcome']:5s} time-to-detect {ttd:>8s}  "
                    f"served before detection {a['served_before_detection']:>6,}/{a['attack_events']:<6,}  "
                    f"members named {a['members_named']}/{a['members']}")
            prec = result["precision"]
            say(f"  open alerts {result['open_alerts']} (true {result['true_open_alerts']}, false "
                f"{result['false_open_alerts']}), precision {'n/a' if prec is None else f'{100 * prec:.0f}%'}, "
                f"false namings {result['false_per_1000_tenant_days']:.0f} per 1,000 benign tenant-days")
            say(f"report: {summary.parent}/ (summary.md, scores.png, threshold_sweep.png)")
            out.close()
        except WriteError as err:
            return write_failed(err, NAME)
    return 0
