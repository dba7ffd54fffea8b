"""Scoring alerts against labels (hand-built cases), the threshold sweep, the report, and the CLI paths."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from evaluation.report import summary_markdown, write_report
from evaluation.scoring import score_alerts, served_before, sweep_thresholds

T0 = "2026-06-01T00:00:00Z"
H = 3600.0
START = 1780272000.0  # 2026-06-01T00:00:00Z


def iso(hours: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(START + hours * H, timezone.utc).isoformat().replace("+00:00", "Z")


def labels() -> dict:
    """Four attacks (sweep, probe, slow, 5-member cluster) and benign tenants of two profiles over 10 tenant-days."""
    def attack(aid, scenario, tenants, accounts, start_h, end_h, events, per_minute_from_h):
        m0 = int(per_minute_from_h * 60)
        return {"attack_id": aid, "scenario": scenario, "tenants": tenants, "accounts": accounts,
                "start": iso(start_h), "end": iso(end_h), "attack_events": events,
                "timeline_minutes": [[m0 + i, 1] for i in range(events)], "cluster_id": aid if len(tenants) > 1 else None}

    tenants = {f"b{i}": {"role": "benign", "profile": "chat" if i < 3 else "batch", "hard_negative": i >= 3,
                         "accounts": [f"ub{i}"], "attack_id": None, "active_days": 2.0} for i in range(5)}
    attacks = [
        attack("A1", "reasoning_sweep", ["s1"], ["s1a", "s1b"], 10, 20, 600, 10),  # 1 request a minute from 10:00
        attack("A2", "logprob_probe", ["p1"], ["p1a"], 5, 30, 300, 5),
        attack("A3", "low_and_slow", ["l1"], ["l1a"], 2, 40, 100, 2),
        attack("A4", "hydra_cluster", [f"h{i}" for i in range(5)], [f"h{i}a" for i in range(5)], 1, 40, 500, 1),
        attack("A5", "siphon_ramp", ["x1"], ["x1svc"], 24, 40, 50, 24),
    ]
    for a in attacks:
        for tid in a["tenants"]:
            tenants[tid] = {"role": "attack", "profile": a["scenario"], "hard_negative": False, "attack_id": a["attack_id"],
                            "accounts": [acc for acc in a["accounts"] if acc.startswith(tid)] + [f"{tid}-human"],
                            "active_days": 2.0}
    return {"start": T0, "days": 2, "tenants": tenants, "attacks": attacks,
            "benign_tenant_days": {"chat": 6.0, "batch": 4.0}}


def alert(aid, kind, status, hours, tenant=None, tenants=None, accounts=None, score=0.8, signals=("cot",)):
    a = {"alert_id": aid, "schema_version": 1, "kind": kind, "status": status, "severity": "high", "score": score,
         "detected_at": iso(hours), "first_seen": iso(hours - 0.5), "window_start": iso(hours - 0.1),
         "window_end": iso(hours), "evidence": [], "detector_version": "test",
         "reasons": [{"signal": s, "value": 1.0, "baseline": 0.0, "weight": 1.0, "text": s} for s in signals]}
    if kind == "tenant":
        a["tenant_id"] = tenant
    else:
        a["tenant_ids"], a["account_ids"] = tenants, accounts or []
    return a


def hand_built_alerts() -> list[dict]:
    return [
        alert("t-s1", "tenant", "open", 10.5, tenant="s1"),  # hit: 30 min after start
        alert("t-s1", "tenant", "open", 10.5, tenant="s1"),  # duplicate delivery, same id
        alert("t-s1-u", "tenant", "update", 11.0, tenant="s1"),  # an update is not a new incident
        alert("t-l1", "tenant", "open", 14.0, tenant="l1"),  # late hit: 12 h after start (> 6 h)
        alert("t-b0", "tenant", "open", 3.0, tenant="b0", signals=("reasoning", "cap")),  # false positive (chat)
        alert("t-b3", "tenant", "open", 4.0, tenant="b3", signals=("logprobs",)),  # false positive (batch)
        alert("t-b3-u", "tenant", "update", 5.0, tenant="b3"),  # updates are not counted again
        # cluster: names 2 of 5 members at first, a third (and a benign tenant) in a later open alert
        alert("c-1", "cluster", "open", 6.0, tenants=["h0", "h1"], accounts=["h0a", "h1a"]) | {"cluster_id": "K1"},
        # its update adds a member and a benign batch tenant (a false naming even though it is not an open)
        alert("c-1-u", "cluster", "update", 8.0, tenants=["h0", "h1", "h2", "b4"],
              accounts=["h0a", "h1a", "h2a"]) | {"cluster_id": "K1"},
        alert("c-2", "cluster", "open", 9.0, tenants=["h3", "b1"], accounts=["h3a"]),
        alert("t-x1-pre", "tenant", "open", 12.0, tenant="x1"),  # siphoning customer before its attack began
        # A2 (probe) never gets an alert: miss
    ]


@pytest.fixture()
def result():
    return score_alerts(hand_built_alerts(), labels())


def by_id(result, aid):
    return next(a for a in result["attacks"] if a["attack_id"] == aid)


def test_hit(result):
    a = by_id(result, "A1")
    assert a["outcome"] == "hit" and a["detected"]
    assert a["ttd_s"] == pytest.approx(0.5 * H)
    assert a["served_before_detection"] == 30  # one extraction request a minute for 30 minutes
    assert a["first_alert_kind"] == "tenant" and a["members_named"] == 1
    assert a["accounts_named"] == 2  # a tenant alert implicates the tenant's attacking accounts


def test_miss(result):
    a = by_id(result, "A2")
    assert a["outcome"] == "miss" and not a["detected"] and a["ttd_s"] is None
    assert a["served_before_detection"] == a["attack_events"] == 300
    assert a["named_share"] == 0


def test_late_hit(result):
    a = by_id(result, "A3")
    assert a["outcome"] == "late" and a["detected"]
    assert a["ttd_s"] == pytest.approx(12 * H)
    assert a["served_before_detection"] == 100  # all 100 requests (minutes 120..219) came before 14:00
    # with a looser deadline the same alert is a hit
    assert by_id(score_alerts(hand_built_alerts(), labels(), late_after_s=13 * H), "A3")["outcome"] == "hit"


def test_cluster_partial_coverage(result):
    a = by_id(result, "A4")
    assert a["outcome"] == "hit" and a["first_alert_kind"] == "cluster"
    assert a["ttd_s"] == pytest.approx(5 * H) and a["first_named_at"] == iso(6.0)
    assert a["members_named"] == 4 and a["named_share"] == pytest.approx(0.8)  # h0, h1, h2 (update), h3
    assert a["accounts_named"] == 4
    assert a["served_before_detection"] == 300  # minutes 60..359


def test_false_positives_and_precision(result):
    # open alerts after dedupe: t-s1, t-l1, t-b0, t-b3, c-1, c-2, t-x1-pre = 7
    assert result["open_alerts"] == 7
    assert result["true_open_alerts"] == 4  # t-s1, t-l1, c-1, c-2 (names h3)
    assert result["false_open_alerts"] == 3  # t-b0, t-b3, t-x1-pre
    assert result["precision"] == pytest.approx(4 / 7)
    fp = result["false_by_profile"]
    assert fp["chat"]["false_namings"] == 2  # b0 alone, b1 inside cluster alert c-2
    assert fp["batch"]["false_namings"] == 2  # b3 alone, b4 added to cluster K1 by an update
    assert fp["chat"]["per_1000_tenant_days"] == pytest.approx(1000 * 2 / 6)
    assert fp["batch"]["per_1000_tenant_days"] == pytest.approx(1000 * 2 / 4)
    assert result["false_per_1000_tenant_days"] == pytest.approx(1000 * 4 / 10)
    assert result["cluster_incidents"]["K1"] == {"named": 4, "attackers": 3, "benign": 1}
    assert [p["tenant_id"] for p in result["pre_attack_alerts"]] == ["x1"]
    assert by_id(result, "A5")["outcome"] == "miss"  # the pre-attack alert does not count as detection
    assert result["recall"] == pytest.approx(3 / 5)


def test_no_alerts_at_all():
    r = score_alerts([], labels())
    assert r["recall"] == 0 and r["precision"] is None and r["false_per_1000_tenant_days"] == 0
    assert all(a["outcome"] == "miss" for a in r["attacks"])


def test_served_before_uses_event_minutes():
    tl = [[0, 5], [10, 5], [20, 5]]
    assert served_before(tl, START, START + 10 * 60) == 5
    assert served_before(tl, START, START + 10 * 60 + 59) == 5
    assert served_before(tl, START, START + 11 * 60) == 10
    assert served_before(tl, START, None) == 15


def test_threshold_sweep():
    lab = labels()
    w = [("s1", START + 10 * H, START + 10.1 * H, 0.9),  # A1 at 0.9
         ("s1", START, START + 0.1 * H, 0.99),  # before its attack: ignored for recall
         ("h2", START + 2 * H, START + 2.1 * H, 0.5),  # A4 at 0.5
         ("b0", START + 1 * H, START + 1.1 * H, 0.7), ("b0", START + 2 * H, START + 2.1 * H, 0.8),  # same day
         ("b3", START + 30 * H, START + 30.1 * H, 0.3)]
    rows = {r["threshold"]: r for r in sweep_thresholds(w, lab, [0.2, 0.6, 0.85, 0.95])}
    assert rows[0.2]["caught"] == 2 and rows[0.2]["false_tenant_days"] == 2
    assert rows[0.6]["caught"] == 1 and rows[0.6]["false_tenant_days"] == 1
    assert rows[0.85]["caught"] == 1 and rows[0.85]["false_tenant_days"] == 0
    assert rows[0.95]["caught"] == 0
    assert rows[0.6]["false_per_1000_tenant_days"] == pytest.approx(100.0)


def test_report_with_plots_from_synthetic_scores(tmp_path, result):
    import math

    lab = labels()
    windows = []
    for tid in lab["tenants"]:
        for k in range(0, 48 * 12):
            t = START + k * 300
            base = 0.1 + 0.05 * math.sin(k / 20)
            a = lab["tenants"][tid]["attack_id"]
            if a and any(x["attack_id"] == a and START + 10 * H < t for x in lab["attacks"]):
                base = 0.8
            windows.append((tid, t - 300, t, base))
    meta = {"title": "synthetic", "open_threshold": 0.6, "hard_negative_profiles": ["batch"]}
    summary = write_report(tmp_path / "rep", result, lab, meta, windows=windows, alerts=hand_built_alerts())
    text = summary.read_text()
    assert "| A1 | reasoning_sweep | **hit** | 30 min |" in text
    assert "| A2 | logprob_probe | **miss** |" in text
    assert "| A3 | low_and_slow | **late** | 12.0 h |" in text
    assert "4/5 (80%)" in text
    assert "| batch | yes | 4 | 2 | 500.0 |" in text
    for png in ("scores.png", "threshold_sweep.png"):
        data = (tmp_path / "rep" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    res = orjson.loads((tmp_path / "rep" / "results.json").read_bytes())
    assert res["result"]["open_alerts"] == 7 and len(res["meta"]["sweep"]) > 5


def test_summary_markdown_without_windows(result):
    md = summary_markdown(result, {"title": "x", "preset": "suite"})
    assert md.startswith("# distillguard evaluation") and "precision 57.1%" in md


def test_evaluate_cli_scores_an_alerts_file(tmp_path):
    lab = labels()
    (tmp_path / "labels.json").write_bytes(orjson.dumps(lab))
    with open(tmp_path / "alerts.jsonl", "wb") as f:
        for a in hand_built_alerts():
            f.write(orjson.dumps(a) + b"\n")
    rep = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", "evaluate", "--labels", str(tmp_path / "labels.json"),
                           "--alerts", str(tmp_path / "alerts.jsonl"), "--report", str(rep)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "detected 3/5 attacks" in proc.stderr and "precision 57.1%" in proc.stderr
    res = orjson.loads((rep / "results.json").read_bytes())["result"]
    assert [a["outcome"] for a in res["attacks"]] == ["hit", "miss", "late", "hit", "miss"]
    assert (rep / "summary.md").exists()


def test_alert_line_shows_numbers_not_text():
    from distillguard.render import alert_line

    a = alert("x", "cluster", "open", 3.0, tenants=[f"t{i}" for i in range(7)], signals=("cot", "cap", "shared_asn"))
    a["reasons"][0]["text"] = "SECRET PROMPT WORDS"
    line = alert_line(a)
    assert "SECRET" not in line and "cluster" in line and "7 tenants" in line and "cot=1" in line
    assert "t0,t1,t2,t3,…" in line
    assert line.startswith("2026-06-01 03:00:00")


def test_engine_run_on_small_simulation_writes_no_prompt_text(tmp_path):
    pytest.importorskip("detectors.engine")
    from tests.test_simulator import mini_config

    from evaluation.runner import record_lines, run_engine
    from simulator import generate

    cfg = mini_config(seed=9)
    cfg.days = 2
    cfg.attacks = cfg.attacks[:2] + [a for a in cfg.attacks if a.scenario == "logprob_probe"]
    sim = generate(cfg)
    run = run_engine(record_lines(sim), show_progress=False)
    lab = sim.labels()
    assert run.events == lab["counts"]["valid_events"] and run.rejected == lab["counts"]["malformed"]
    assert run.windows and all(0.0 <= w[3] <= 1.0 for w in run.windows)
    result = score_alerts(run.alerts, lab)
    summary = write_report(tmp_path / "r", result, lab, {"title": "t", "open_threshold": run.open_threshold},
                           windows=run.windows, alerts=run.alerts)
    for f in (tmp_path / "r").iterdir():
        assert b"prompt_text" not in f.read_bytes()
    assert summary.exists()


def test_attack_window_stats_explain_misses():
    from evaluation.scoring import attack_window_stats

    lab = labels()
    w = [("p1", START + 4 * H, START + 4.1 * H, 0.95),  # before A2 started (5 h): ignored
         ("p1", START + 6 * H, START + 6.1 * H, 0.55), ("p1", START + 7 * H, START + 7.1 * H, 0.65),
         ("b0", START + 6 * H, START + 6.1 * H, 0.99)]
    st = attack_window_stats(w, lab, 0.6)
    assert st["A2"] == {"windows": 2, "best_score": 0.65, "mean_score": pytest.approx(0.6), "windows_at_threshold": 1}
    assert st["A1"]["best_score"] is None and st["A1"]["windows"] == 0


def test_attack_absorbed_by_cluster_update_is_named_but_not_detected():
    lab = labels()
    alerts = [alert("c", "cluster", "open", 6.0, tenants=["h0", "h1"]) | {"cluster_id": "K"},
              alert("c-u", "cluster", "update", 30.0, tenants=["h0", "h1", "x1"]) | {"cluster_id": "K"}]
    a = by_id(score_alerts(alerts, lab), "A5")
    assert a["outcome"] == "miss" and a["served_before_detection"] == 50
    assert a["first_named_at"] == iso(30.0) and a["first_named_status"] == "update" and a["named_share"] == 1.0


def test_parallel_simulation_yields_the_same_bytes_and_labels():
    from evaluation.runner import ParallelSimulation
    from simulator import generate, preset

    cfg = preset("demo", seed=21, tenants=4, intensity=0.05)
    sim = generate(cfg)
    expected = [r.line for r in sim.records()]
    par = ParallelSimulation(preset("demo", seed=21, tenants=4, intensity=0.05), batch=500)
    assert list(par.lines()) == expected
    assert orjson.dumps(par.labels()) == orjson.dumps(orjson.loads(orjson.dumps(sim.labels())))
