"""The simulator: contract-valid events, labels that match the stream, determinism, realistic variety."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime

import jsonschema
import orjson
import pytest

from schemas import DecodeError, EventCodec, load_schema
from simulator import BENIGN_PROFILES, SCENARIOS, AttackSpec, SimConfig, generate, preset
from simulator.core import DAY, HOUR

REQUIRED = ("event_id", "timestamp", "tenant_id", "account_id", "model", "input_tokens", "output_tokens")


def _ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def mini_config(seed: int = 3) -> SimConfig:
    """Every benign profile once or twice and every attack scenario, small and fast (4 days)."""
    return SimConfig(seed=seed, days=4, preset="mini", volume=0.25, intensity=0.3, malformed_share=0.003,
                     benign={p: 2 for p in BENIGN_PROFILES} | {"org_workspace": 6},
                     attacks=[AttackSpec("reasoning_sweep", {"mode": "text", "window": (0.2, 0.5)}),
                              AttackSpec("reasoning_sweep", {"mode": "metadata", "window": (0.5, 0.8)}),
                              AttackSpec("tool_use_extraction", {"window": (0.3, 0.5)}),
                              AttackSpec("hydra_cluster", {"size": 8}),
                              AttackSpec("hydra_cluster", {"size": 6, "flavour": "coding", "window": (0.5, 1.0)}),
                              AttackSpec("siphon_ramp"), AttackSpec("logprob_probe", {"window": (0.6, 0.7)}),
                              AttackSpec("model_pivot"), AttackSpec("low_and_slow"),
                              AttackSpec("evasive_swarm", {"size": 8, "window": (0.2, 1.0)})])


@pytest.fixture(scope="module")
def mini():
    sim = generate(mini_config())
    records = list(sim.records())
    return sim, records, sim.labels()


@pytest.fixture(scope="module")
def decoded(mini):
    _sim, records, _labels = mini
    codec = EventCodec()
    return [(r, codec.decode(r.line)) for r in records if r.valid]


def test_mini_covers_every_profile_and_scenario(mini):
    _sim, _records, labels = mini
    profiles = {t["profile"] for t in labels["tenants"].values() if t["role"] == "benign"}
    assert profiles == set(BENIGN_PROFILES)
    assert {a["scenario"] for a in labels["attacks"]} == set(SCENARIOS)
    assert all(a["attack_events"] > 0 for a in labels["attacks"]), [(a["attack_id"], a["attack_events"]) for a in labels["attacks"]]


def test_valid_events_pass_codec_and_jsonschema(mini, decoded):
    _sim, records, _labels = mini
    assert len(decoded) == sum(r.valid for r in records) > 5000
    validator = jsonschema.Draft202012Validator(load_schema("usage_event"),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    sample = [r for r in records if r.valid][:: max(1, len(records) // 3000)]
    for r in sample:
        errors = list(validator.iter_errors(orjson.loads(r.line)))
        assert not errors, (r.line[:200], errors[0].message)


def test_malformed_lines_fail_validation_and_are_counted(mini):
    _sim, records, labels = mini
    bad = [r for r in records if not r.valid]
    assert bad, "the mini config has a malformed share"
    counts = labels["counts"]
    assert counts["malformed"] == len(bad)
    assert Counter(r.malformed_reason for r in bad) == Counter(counts["malformed_by_reason"])
    assert set(counts["malformed_by_reason"]) <= {"not_json", "missing_field", "wrong_type", "bad_timestamp"}
    codec = EventCodec()
    validator = jsonschema.Draft202012Validator(load_schema("usage_event"),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for r in bad:
        with pytest.raises(DecodeError):
            codec.decode(r.line)
        try:
            obj = orjson.loads(r.line)
        except orjson.JSONDecodeError:
            assert r.malformed_reason == "not_json"
            continue
        assert not validator.is_valid(obj), r.malformed_reason
    # line numbers in the labels point at the malformed lines of the stream
    lines = {m["line"] for m in counts["malformed_lines"]}
    assert lines == {i + 1 for i, r in enumerate(records) if not r.valid}


def test_event_time_order(mini, decoded):
    ts = [e["ts"] for _r, e in decoded]
    assert ts == sorted(ts)
    per_tenant = defaultdict(list)
    for _r, e in decoded:
        per_tenant[e["tenant_id"]].append(e["ts"])
    assert all(v == sorted(v) for v in per_tenant.values())
    assert len({e["event_id"] for _r, e in decoded}) == len(decoded)


def test_labels_match_the_stream(mini, decoded):
    _sim, _records, labels = mini
    counts = labels["counts"]
    assert Counter(e["tenant_id"] for _r, e in decoded) == Counter(counts["events_by_tenant"])
    assert set(counts["events_by_tenant"]) <= set(labels["tenants"])
    by_attack = Counter(r.attack_id for r, _e in decoded if r.attack_id)
    attack_tenants = {tid for a in labels["attacks"] for tid in a["tenants"]}
    for a in labels["attacks"]:
        start, end = _ts(a["start"]), _ts(a["end"])
        assert by_attack[a["attack_id"]] == a["attack_events"]
        assert sum(c for _m, c in a["timeline_minutes"]) == a["attack_events"]
        assert sum(a["attack_events_by_tenant"].values()) == a["attack_events"]
        assert set(a["attack_events_by_tenant"]) <= set(a["tenants"])
        for tid in a["tenants"]:
            assert labels["tenants"][tid]["role"] == "attack"
            assert labels["tenants"][tid]["attack_id"] == a["attack_id"]
        # every extraction request of the attack lies in its interval and comes from its accounts
        for r, e in decoded:
            if r.attack_id == a["attack_id"]:
                assert start <= e["ts"] <= end, (a["attack_id"], e["timestamp"])
                assert e["account_id"] in a["accounts"]
                assert e["tenant_id"] in a["tenants"]
        # fraudulent sign-ups (all but the siphoning customer) exist only inside the interval
        if a["scenario"] != "siphon_ramp":
            for r, e in decoded:
                if e["tenant_id"] in a["tenants"]:
                    assert start <= e["ts"] <= end
    # benign tenants never carry attack-flagged requests
    assert all(r.attack_id is None for r, e in decoded if e["tenant_id"] not in attack_tenants)


def test_cluster_labels_list_members_and_shared_infrastructure(mini, decoded):
    _sim, _records, labels = mini
    assert len(labels["clusters"]) == 3  # two hydras and the evasive swarm
    for cl in labels["clusters"]:
        attack = next(a for a in labels["attacks"] if a["attack_id"] == cl["attack_id"])
        assert cl["tenants"] == attack["tenants"] and len(cl["tenants"]) in (8, 6)
        assert set(cl["accounts"]) == {acc for tid in cl["tenants"] for acc in labels["tenants"][tid]["accounts"]}
        members = set(cl["tenants"])
        evs = [e for _r, e in decoded if e["tenant_id"] in members]
        assert {e["asn"] for e in evs} <= set(cl["shared"]["asns"])
        assert {e["client_ip_prefix"] for e in evs} <= set(cl["shared"]["client_ip_prefixes"])
        if cl["shared"]["user_agent"] is not None:
            assert {e["user_agent"] for e in evs} == {cl["shared"]["user_agent"]}
        else:  # the evasive swarm hides behind the common SDK strings and shares cards instead
            assert len({e["user_agent"] for e in evs}) > 1
            assert len(cl["shared"]["tenants_on_shared_cards"]) >= 2


def test_siphon_tenant_is_benign_before_its_ramp(mini, decoded):
    _sim, _records, labels = mini
    a = next(a for a in labels["attacks"] if a["scenario"] == "siphon_ramp")
    tid, start = a["tenants"][0], _ts(a["start"])
    before = [(r, e) for r, e in decoded if e["tenant_id"] == tid and e["ts"] < start]
    after_attack = [e for r, e in decoded if r.attack_id == a["attack_id"]]
    assert len(before) > 100 and all(r.attack_id is None for r, _e in before)
    assert all(e["account_id"] not in a["accounts"] for _r, e in before)
    # gradual ramp: the first day of the attack carries fewer extraction requests than the second
    day1 = sum(1 for e in after_attack if e["ts"] < start + DAY)
    day2 = sum(1 for e in after_attack if start + DAY <= e["ts"] < start + 2 * DAY)
    assert 0 < day1 < day2


def test_prompt_representations_and_languages(mini, decoded):
    _sim, records, labels = mini
    texts = [orjson.loads(r.line).get("prompt_text") for r in records if r.valid]
    texts = [t for t in texts if t]
    joined = "\n".join(texts)
    for phrase in ("step by step", "paso a paso", "étape par étape", "Schritt für Schritt", "一步一步", "段階的に"):
        assert phrase in joined, phrase
    modes = {t["prompt_mode"] for t in labels["tenants"].values()}
    assert modes == {"text", "fingerprint", "metadata"}
    fp = [e for _r, e in decoded if "prompt_fingerprint" in e]
    assert fp and all(len(e["prompt_fingerprint"]) == 16 for e in fp)
    assert any("prompt_template_id" in e and "cot_elicitation" in e for e in fp)
    meta_only = [e for _r, e in decoded if "prompt_fingerprint" not in e and "prompt_chars" in e]
    assert meta_only
    # fingerprint / metadata tenants tell the language; the sweeps are multilingual
    langs = Counter(e.get("prompt_language") for _r, e in decoded if "prompt_language" in e)
    assert {"en", "es", "fr", "de", "zh", "ja"} <= set(langs), langs


def test_benign_variety(mini, decoded):
    _sim, _records, labels = mini
    prof = {tid: t["profile"] for tid, t in labels["tenants"].items()}
    by = defaultdict(list)
    for _r, e in decoded:
        by[prof[e["tenant_id"]]].append(e)
    chat = by["chat"]
    assert any(e.get("turn_index", 0) >= 2 for e in chat) and all("session_id" in e for e in chat)
    coding = by["coding_agent"]
    assert all(e.get("tools_count", 0) > 0 for e in coding)
    assert Counter(e["stop_reason"] for e in coding)["tool_use"] > len(coding) / 3
    batch = by["batch"]
    assert len({e.get("prompt_template_id") or e.get("endpoint") for e in batch}) <= 2
    assert all(e["temperature"] == 0 for e in batch)
    # evaluation harnesses: atlas-4 at temperature 0 right after the release
    rel = _ts(labels["models"]["atlas-4"]["released_at"])
    ev4 = [e for e in by["eval_harness"] if e["model"] == "atlas-4"]
    assert ev4 and min(e["ts"] for e in ev4) < rel + 12 * HOUR and all(e["temperature"] == 0 for e in ev4)
    # the new model appears only at its release
    assert min(e["ts"] for _r, e in decoded if e["model"] == "atlas-4") >= rel
    # tutoring: step-by-step requests, but in multi-turn sessions at human pace and non-zero temperature
    tut = by["tutoring"]
    assert tut and all("session_id" in e and e["temperature"] > 0 for e in tut)
    assert any(e.get("turn_index", 0) >= 1 for e in tut)
    # daily cycle: chat tenants are busier in their local afternoon than at local 3 am
    hours = Counter(int((e["ts"] / 3600 + labels["tenants"][e["tenant_id"]]["tz_offset_h"]) % 24) for e in chat)
    assert hours[14] + hours[15] > 2 * (hours[3] + hours[4])


def test_attack_signatures(mini, decoded):
    _sim, _records, labels = mini
    att = {a["scenario"]: a for a in labels["attacks"]}
    flagged = defaultdict(list)
    for r, e in decoded:
        if r.attack_id:
            flagged[r.attack_id].append(e)
    sweep = flagged[att["reasoning_sweep"]["attack_id"]]
    assert all(e["temperature"] == 0 and "session_id" not in e for e in sweep)
    assert sum(e["stop_reason"] == "max_tokens" for e in sweep) > 0.5 * len(sweep)
    probe = flagged[att["logprob_probe"]["attack_id"]]
    assert all(e["logprobs"] and e["logit_bias_size"] > 0 and e["max_tokens"] <= 5 for e in probe)
    fps = Counter(e["prompt_fingerprint"] for e in probe)
    assert fps.most_common(1)[0][1] >= 20  # the same prompt, many biases
    pivot = att["model_pivot"]
    piv_at = _ts(pivot["pivot_at"])
    after = [e for _r, e in decoded if e["tenant_id"] in pivot["tenants"] and piv_at <= e["ts"] < piv_at + DAY]
    assert after and sum(e["model"] == "atlas-4" for e in after) > 0.7 * len(after)
    assert piv_at - _ts(pivot["release_at"]) < DAY
    tools = flagged[att["tool_use_extraction"]["attack_id"]]
    assert all(e["tools_count"] >= 6 for e in tools)


def test_hydra_members_stay_below_benign_volume_norms(mini):
    _sim, _records, labels = mini
    ev = labels["counts"]["events_by_tenant"]
    benign_rates = sorted(ev.get(tid, 0) / t["active_days"] for tid, t in labels["tenants"].items()
                          if t["role"] == "benign" and t["profile"] in ("chat", "rag_support", "coding_agent", "batch"))
    median = benign_rates[len(benign_rates) // 2]
    for cl in labels["clusters"]:
        for tid in cl["tenants"]:
            t = labels["tenants"][tid]
            assert ev.get(tid, 0) / t["active_days"] < median


def test_batch_fingerprints_match_the_engine():
    features = pytest.importorskip("detectors.features")
    import random

    from simulator import textgen as T
    from simulator.fingerprint import BatchFingerprinter

    r = random.Random(5)
    texts = [T.extraction(r, lang, i).text for i, lang in enumerate(["en", "es", "fr", "de", "zh", "ja"] * 30)]
    texts += [T.chat(r, "ja", 1).text, "ok", "", T.code(r, 1).text, T.eval_question(r, 3).text]
    fp = BatchFingerprinter()
    assert fp(texts) == [(features.simhash(t), features.template_id(t)) for t in texts]


def test_presets():
    demo = generate(preset("demo"))
    lab = demo.labels()
    assert lab["days"] == 1 and 35 <= len(lab["tenants"]) <= 60 and len(lab["attacks"]) >= 3
    suite = generate(preset("suite"))
    lab = suite.labels()
    assert sum(lab["benign_tenant_days"].values()) >= 1000
    assert {a["scenario"] for a in lab["attacks"]} == set(SCENARIOS)
    assert any(len(a["tenants"]) >= 100 for a in lab["attacks"])  # a hydra of a hundred tenants
    hard = {t["profile"] for t in lab["tenants"].values() if t["hard_negative"]}
    assert {"eval_harness", "batch", "migrating", "new_tenant"} <= hard
    assert lab["models"]["atlas-4"]["released_at"] > lab["start"]
    with pytest.raises(ValueError):
        preset("nope")


def test_demo_size():
    sim = generate(preset("demo"))
    n = sum(1 for _ in sim.records())
    assert 50_000 <= n <= 100_000


def _simulate(tmp_path, name, *extra):
    out, labels = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.labels.json"
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", "simulate", "--preset", "demo", "--tenants", "8",
                           "--out", str(out), "--labels", str(labels), *extra], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "simulate: preset=demo" in proc.stderr
    return out.read_bytes(), labels.read_bytes()


def test_same_seed_same_bytes_via_cli(tmp_path):
    ev1, lab1 = _simulate(tmp_path, "a", "--seed", "11")
    ev2, lab2 = _simulate(tmp_path, "b", "--seed", "11")
    assert ev1 == ev2 and lab1 == lab2
    ev3, _ = _simulate(tmp_path, "c", "--seed", "12")
    assert ev3 != ev1
    labels = orjson.loads(lab1)
    assert labels["counts"]["lines"] == ev1.count(b"\n")
    assert b"prompt_text" not in lab1


def test_simulate_to_stdout():
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", "simulate", "--preset", "demo", "--tenants", "4",
                           "--seed", "2", "--malformed-share", "0"], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    codec = EventCodec()
    assert len(lines) > 10_000
    for line in lines[:: len(lines) // 500]:
        ev = codec.decode(line)
        assert all(k in ev for k in REQUIRED)
