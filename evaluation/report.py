"""The evaluation report: ``summary.md`` (Markdown tables), ``results.json`` and PNG plots (matplotlib, Agg).

Nothing here reads or writes prompt text: inputs are scored results, labels
(which never contain prompts), alerts restricted to contract fields, and
window scores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from evaluation.scoring import attack_window_stats, named_tenants, sweep_thresholds, ts_of

DEFAULT_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def _fmt_dur(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400 * 2:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _wcols(w: Mapping[str, Any] | None) -> str:
    if not w or w.get("best_score") is None:
        return " — | 0 |"
    return f" {w['best_score']:.2f} | {w['windows_at_threshold']} of {w['windows']} |"


def summary_markdown(result: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """The report's Markdown: run facts, per-scenario table, false alarms by benign profile, precision."""
    lines = [f"# distillguard evaluation — {meta.get('title', 'run')}", ""]
    facts = [(k, meta[k]) for k in ("command", "preset", "seed", "days", "tenants", "benign_tenants", "events",
                                    "malformed", "generation_s", "engine_s", "generation_and_engine_s", "engine_events_per_s", "open_threshold")
             if k in meta]
    lines += ["| fact | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in facts] + [""]
    lines += ["## Attacks", "",
              "| attack | scenario | outcome | time to detect | first alert | extraction requests served before detection "
              "| members named | accounts named | prompt repr. |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    wstats = meta.get("attack_windows") or {}
    if wstats:
        lines[-2] += " best window score | windows ≥ threshold |"
        lines[-1] += " --- | --- |"
    for a in result["attacks"]:
        served = f"{a['served_before_detection']:,} / {a['attack_events']:,}"
        lines.append(f"| {a['attack_id']} | {a['scenario']} | **{a['outcome']}** | {_fmt_dur(a['ttd_s'])} | "
                     f"{a['first_alert_kind'] or '—'} | {served} | {a['members_named']}/{a['members']} "
                     f"({100 * a['named_share']:.0f}%) | {a['accounts_named']}/{a['accounts']} | {a.get('prompt_mode') or 'mixed'} |"
                     + (_wcols(wstats.get(a["attack_id"])) if wstats else ""))
    prec = result["precision"]
    absorbed = [a for a in result["attacks"] if not a["detected"] and a.get("first_named_at")]
    if absorbed:
        lines += ["", "Named only through `update` alerts of an existing cluster incident (not counted as detected): "
                  + ", ".join(f"{a['attack_id']} (first named {a['first_named_at']})" for a in absorbed) + "."]
    if result.get("cluster_incidents"):
        lines += ["", "Cluster incidents: " + "; ".join(
            f"`{k}` named {v['named']} tenants ({v['attackers']} attackers, {v['benign']} benign)"
            for k, v in result["cluster_incidents"].items()) + "."]
    lines += ["", f"Detected {sum(a['detected'] for a in result['attacks'])}/{len(result['attacks'])} attacks "
              f"({sum(a['outcome'] == 'hit' for a in result['attacks'])} within {result['late_after_s'] / 3600:.0f} h).", "",
              "## False alarms on benign tenants (open alerts and cluster updates)", "",
              "| benign profile | hard negative | tenant-days | false namings | per 1,000 tenant-days |",
              "| --- | --- | --- | --- | --- |"]
    hard = set(meta.get("hard_negative_profiles", ()))
    for p, row in result["false_by_profile"].items():
        lines.append(f"| {p} | {'yes' if p in hard else ''} | {row['tenant_days']:.0f} | {row['false_namings']} | "
                     f"{row['per_1000_tenant_days']:.1f} |")
    lines.append(f"| **all** | | {result['benign_tenant_days']:.0f} | {result['false_namings']} | "
                 f"**{result['false_per_1000_tenant_days']:.1f}** |")
    lines += ["", f"Open alerts: {result['open_alerts']}, of which true {result['true_open_alerts']} and false "
              f"{result['false_open_alerts']}; precision "
              f"{'n/a' if prec is None else f'{100 * prec:.1f}%'}. Alerts on the siphoning tenant before its attack "
              f"began: {len(result['pre_attack_alerts'])}.", ""]
    if result["false_alerts"]:
        sig: dict[str, int] = defaultdict(int)
        for fa in result["false_alerts"]:
            for s in fa["signals"][:3]:
                sig[s] += 1
        top = ", ".join(f"{k} ({v})" for k, v in sorted(sig.items(), key=lambda kv: -kv[1])[:8])
        lines += [f"Most frequent top reasons in false alerts: {top}.", ""]
    if meta.get("sweep"):
        lines += ["## Threshold sweep (tenant window scores)", "",
                  "| threshold | attacks caught | recall | benign tenant-days flagged | per 1,000 tenant-days |",
                  "| --- | --- | --- | --- | --- |"]
        for r in meta["sweep"]:
            lines.append(f"| {r['threshold']:.2f} | {r['caught']} | {100 * r['recall']:.0f}% | {r['false_tenant_days']} | "
                         f"{r['false_per_1000_tenant_days']:.1f} |")
        lines.append("")
    if meta.get("plots"):
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in meta["plots"]] + [""]
    return "\n".join(lines)


def _pick_series(windows: Sequence[tuple[str, float, float, float]], labels: Mapping[str, Any], n_negatives: int = 4
                 ) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Tenants to plot: one (two for clusters) per attack, plus the highest-scoring benign tenant of hard-negative profiles."""
    best: dict[str, float] = defaultdict(float)
    for tid, _ws, _we, sc in windows:
        if sc > best[tid]:
            best[tid] = sc
    picks: list[tuple[str, str, dict[str, Any] | None]] = []
    for a in labels["attacks"]:
        members = sorted(a["tenants"], key=lambda t: -best.get(t, 0.0))
        for tid in members[: 2 if len(members) > 1 else 1]:
            picks.append((tid, f"{a['attack_id']} {a['scenario']}", a))
    tenants = labels["tenants"]
    by_prof: dict[str, tuple[float, str]] = {}
    for tid, info in tenants.items():
        if info["role"] == "benign" and info.get("hard_negative"):
            sc = best.get(tid, 0.0)
            if sc >= by_prof.get(info["profile"], (-1.0, ""))[0]:
                by_prof[info["profile"]] = (sc, tid)
    for prof, (_sc, tid) in sorted(by_prof.items(), key=lambda kv: -kv[1][0])[:n_negatives]:
        picks.append((tid, f"benign {prof} (hard negative)", None))
    return picks


def plot_scores(path: Path, windows: Sequence[tuple[str, float, float, float]], labels: Mapping[str, Any],
                alerts: Sequence[Mapping[str, Any]], threshold: float | None) -> None:
    """Per-tenant window score over event time; attack interval shaded, open alerts as red lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = _pick_series(windows, labels)
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    wanted = {p[0] for p in picks}
    for tid, _ws, we, sc in windows:
        if tid in wanted:
            series[tid].append((we, sc))
    t0 = ts_of(labels["start"]) or 0.0
    alert_times: dict[str, list[tuple[float, str]]] = defaultdict(list)
    cluster_named: set[str] = set()
    for al in alerts:
        status, kind = al.get("status"), str(al.get("kind"))
        if status not in ("open", "update") or (status == "update" and kind != "cluster"):
            continue
        for tid in named_tenants(al):
            if tid not in wanted:
                continue
            if kind == "cluster":  # the first time a cluster incident names the tenant (open or update)
                if tid in cluster_named:
                    continue
                cluster_named.add(tid)
            alert_times[tid].append(((ts_of(al["detected_at"]) or t0) - t0, kind))
    n = max(1, len(picks))
    cols = 2
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.1 * rows), sharex=True, squeeze=False)
    days = labels.get("days", 1)
    for ax, (tid, title, attack) in zip(axes.flat, picks):
        pts = sorted(series.get(tid, []))
        if pts:
            xs = [(p[0] - t0) / 3600 for p in pts]
            ax.plot(xs, [p[1] for p in pts], lw=0.4, color="#1f77b4", marker=".", ms=1.5)
        if attack is not None:
            ax.axvspan(((ts_of(attack["start"]) or t0) - t0) / 3600, ((ts_of(attack["end"]) or t0) - t0) / 3600,
                       color="#d62728", alpha=0.08, lw=0)
        for x, kind in alert_times.get(tid, []):
            ax.axvline(x / 3600, color="#d62728" if kind == "tenant" else "#9467bd", lw=1.8, ls="--")
        if threshold is not None:
            ax.axhline(threshold, color="grey", lw=0.6, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(0, days * 24)
        ax.set_title(f"{title} · {tid}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(picks):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("hours since start (event time)", fontsize=8)
    fig.suptitle("tenant window score (shaded: attack interval; dashed: open tenant alert in red, first naming by a "
                 "cluster incident in purple; dotted: open threshold)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=72)
    plt.close(fig)
    _shrink_png(path)


def _shrink_png(path: Path, colors: int = 128) -> None:
    """Re-save a plot with a small palette (line plots lose nothing visible; files get several times smaller)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.FASTOCTREE)
    small.save(path, optimize=True)


def plot_sweep(path: Path, sweep: Sequence[Mapping[str, Any]], threshold: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    th = [r["threshold"] for r in sweep]
    ax.plot(th, [100 * r["recall"] for r in sweep], marker="o", ms=3, color="#2ca02c", label="attacks caught (%)")
    ax.set_xlabel("window score threshold")
    ax.set_ylabel("recall (%)", color="#2ca02c")
    ax.set_ylim(0, 105)
    ax2 = ax.twinx()
    ax2.plot(th, [r["false_per_1000_tenant_days"] for r in sweep], marker="s", ms=3, color="#d62728",
             label="benign tenant-days flagged / 1,000")
    ax2.set_ylabel("false positives per 1,000 benign tenant-days", color="#d62728")
    ax2.set_yscale("symlog", linthresh=1)
    if threshold is not None:
        ax.axvline(threshold, color="grey", ls=":", lw=1)
    ax.set_title("recall and false positives vs window-score threshold", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    _shrink_png(path)


def write_report(report_dir: str | Path, result: Mapping[str, Any], labels: Mapping[str, Any], meta: dict[str, Any],
                 windows: Sequence[tuple[str, float, float, float]] | None = None,
                 alerts: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write summary.md, results.json, alerts.jsonl and plots; return the summary path."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots: list[str] = []
    threshold = meta.get("open_threshold")
    if windows:
        sweep = sweep_thresholds(windows, labels, DEFAULT_THRESHOLDS)
        meta["sweep"] = sweep
        meta["attack_windows"] = attack_window_stats(windows, labels, threshold if threshold is not None else 0.6)
        plot_sweep(out / "threshold_sweep.png", sweep, threshold)
        plot_scores(out / "scores.png", windows, labels, alerts or [], threshold)
        plots = ["scores.png", "threshold_sweep.png"]
    meta["plots"] = plots
    (out / "summary.md").write_text(summary_markdown(result, meta))
    (out / "results.json").write_bytes(orjson.dumps({"meta": meta, "result": result},
                                                    option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    if alerts is not None:
        with open(out / "alerts.jsonl", "wb") as f:
            for a in alerts:
                f.write(orjson.dumps(a) + b"\n")
    return out / "summary.md"
