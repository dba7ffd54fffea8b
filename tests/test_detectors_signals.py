"""One test per signal: a crafted window, closed, and the feature the detector computed for it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from detectors import DetectorConfig, TenantDetector
from detectors.scoring import absolute_score
from detectors.synthetic import T0
from detectors.window import FEATURES, F, NF

BASE = {"account_id": "acc", "model": "model-a", "input_tokens": 100, "output_tokens": 200}


def window_signals(events: list[dict[str, Any]], det: TenantDetector | None = None) -> dict[str, float]:
    seen: list[dict[str, float]] = []
    det = TenantDetector(DetectorConfig()) if det is None else det
    det.on_window = lambda t, ws, we, s, sig: seen.append(sig)
    for e in events:
        det.process(e)
    det.advance(max(e["ts"] for e in events) + 3600)
    return seen[-1]


def evs(n: int, dt: float = 1.0, start: float = T0, jitter: list[float] | None = None, **kw: Any) -> list[dict[str, Any]]:
    out, ts = [], start
    for i in range(n):
        fields = {k: (v(i) if callable(v) else v) for k, v in kw.items()}
        out.append({"event_id": f"e{i}", "tenant_id": "t", "ts": ts, "timestamp": "x", **BASE, **fields})
        ts += dt * (jitter[i % len(jitter)] if jitter else 1.0)
    return out


def test_cot_share_and_reasoning() -> None:
    s = window_signals(evs(20, cot_elicitation=lambda i: i % 4 != 0, reasoning_tokens=600, output_tokens=400))
    assert s["cot"] == pytest.approx(0.75)
    assert s["reasoning"] == pytest.approx(600 / 1001, rel=1e-3)


def test_cap_harvesting_and_out_in_ratio() -> None:
    s = window_signals(evs(10, max_tokens=1000, output_tokens=lambda i: 1000 if i < 6 else 100, input_tokens=50))
    assert s["cap"] == pytest.approx(0.6)
    assert s["out_in"] > 0.9
    s2 = window_signals(evs(10, stop_reason=lambda i: "max_tokens" if i < 3 else "end_turn"))
    assert s2["cap"] == pytest.approx(0.3)


def test_temperature_zero_share_counts_only_stated_temperatures() -> None:
    s = window_signals(evs(10, temperature=lambda i: 0.0 if i < 4 else (0.7 if i < 8 else None)))
    assert s["temp0"] == pytest.approx(0.5)


def test_machine_pacing_regular_vs_bursty() -> None:
    regular = window_signals(evs(60, dt=2.0, jitter=[0.98, 1.02]))
    bursty = window_signals(evs(60, dt=2.0, jitter=[0.05, 0.05, 0.05, 6.0]))
    assert regular["regularity"] > 0.9 and bursty["regularity"] < 0.2


def test_sessions_and_multi_turn() -> None:
    s = window_signals(evs(10, session_id=lambda i: None if i < 3 else "s1", turn_index=lambda i: i))
    assert s["no_session"] == pytest.approx(0.3)
    assert s["multi_turn"] == pytest.approx(0.7)


def test_logprob_and_logit_bias_probing_same_prompt_different_biases() -> None:
    s = window_signals(evs(20, logprobs=True, top_logprobs=20, max_tokens=1, output_tokens=1,
                           logit_bias_size=lambda i: i + 1, prompt_fingerprint=lambda i: f"{0xABC + i // 5:016x}"))
    assert s["logprobs"] == 1.0 and s["logit_bias"] == 1.0 and s["tiny_max"] == 1.0
    assert s["bias_repeat"] == pytest.approx(16 / 20)  # 4 distinct prompts, each re-sent 4 times
    assert s["probe"] > 0.7


def test_template_concentration_and_near_duplicates() -> None:
    base = 0x0F0F_F0F0_1234_5678
    s = window_signals(evs(20, prompt_template_id=lambda i: "tA" if i < 15 else f"t{i}",
                           prompt_fingerprint=lambda i: f"{base ^ (1 << (i % 60)) ^ (1 << ((i * 7) % 60)):016x}"))
    assert s["template_top"] == pytest.approx((17 / 20 - 3 / 20) / (1 - 3 / 20))  # top-3 share, size-corrected
    assert s["near_dup"] > 0.8 and s["repeat"] < 0.2


def test_exact_repeat_of_a_fixed_prompt_set() -> None:
    det = TenantDetector()
    fps = [f"{(i * 0x9E3779B97F4A7C15) & (2**64 - 1):016x}" for i in range(30)]
    first = window_signals(evs(30, prompt_fingerprint=lambda i: fps[i]), det)
    second = window_signals(evs(30, start=T0 + 900, prompt_fingerprint=lambda i: fps[i]), det)
    assert first["repeat"] < 0.1 and second["repeat"] == 1.0


def test_topic_sweep_entropy_and_coverage() -> None:
    sweep = window_signals(evs(40, prompt_topic=lambda i: f"topic-{i % 20}"))
    narrow = window_signals(evs(40, prompt_topic=lambda i: "billing" if i % 10 else "refunds"))
    coding = window_signals(evs(40, prompt_topic="python debugging"))
    assert sweep["topic_entropy"] > 0.95 and sweep["topic_new"] > 0.5
    assert narrow["topic_entropy"] < 0.2
    assert coding["coding"] == 1.0


def test_volume_relative_to_own_baseline() -> None:
    det = TenantDetector()
    for k in range(30):
        window_signals(evs(10, dt=20.0, start=T0 + 300 * k), det)
    quiet_z = det._tenants["t"].base.zvector([math.log1p(10)] + [0.0] * (NF - 1))[F["volume"]]
    loud_z = det._tenants["t"].base.zvector([math.log1p(1000)] + [0.0] * (NF - 1))[F["volume"]]
    assert abs(quiet_z) < 1.0 and loud_z > 5.0


def test_flat_24_hour_activity_vs_daily_cycle() -> None:
    flat: list[dict[str, Any]] = []
    cyc: list[dict[str, Any]] = []
    for h in range(30):
        flat += evs(6, dt=10.0, start=T0 + h * 3600)
        if 9 <= h % 24 <= 17:
            cyc += evs(6, dt=10.0, start=T0 + h * 3600)
    assert window_signals(flat)["flat_hours"] > 0.95
    assert window_signals(cyc)["flat_hours"] < 0.75


def test_pivot_to_newly_seen_model() -> None:
    det = TenantDetector()
    release = T0 + 2 * 86400
    det.process({"event_id": "e", "tenant_id": "early", "ts": T0, "timestamp": "x", **{**BASE, "model": "old"}})
    det.advance(release - 7200)  # the partition watermark moved on
    window_signals(evs(5, start=release - 3600, model="old"), det)
    det.process({"event_id": "o", "tenant_id": "other", "ts": release, "timestamp": "x", **{**BASE, "model": "new"}})
    s = window_signals(evs(10, start=release + 600, model=lambda i: "new" if i < 8 else "old"), det)
    assert s["new_model"] == pytest.approx(0.8)
    assert det.model_first_seen == {"old": T0, "new": release}
    s_old = window_signals(evs(10, start=release + 1.5 * 86400, model="new"), det)
    assert s_old["new_model"] == 0.0  # more than a day after its first appearance


def test_features_missing_prompt_data_still_score_metadata() -> None:
    s = window_signals(evs(30, max_tokens=2048, output_tokens=2048, temperature=0.0, cot_elicitation=True, dt=1.0))
    assert s["cap"] == 1.0 and s["cot"] == 1.0 and s["template_top"] == 0.0 and s["near_dup"] == 0.0
    assert s["score"] > 0.5


def test_conjunction_needed_single_signals_stay_low() -> None:
    for name in ("cot", "cap", "template_top", "near_dup", "regularity", "no_session", "topic_entropy", "temp0"):
        x = [0.0] * NF
        x[F["volume"]] = math.log1p(500)
        x[F[name]] = 1.0
        assert absolute_score(x)[0] < 0.2, name
    assert set(FEATURES) >= {"cot", "cap", "bias_repeat", "new_model", "flat_hours"}


def test_joint_signal_needs_elicitation_cap_and_no_session_on_the_same_request() -> None:
    both = window_signals(evs(10, cot_elicitation=True, max_tokens=1000, output_tokens=1000))
    split = window_signals(evs(10, cot_elicitation=lambda i: i % 2 == 0, max_tokens=1000,
                               output_tokens=lambda i: 1000 if i % 2 else 100))
    in_session = window_signals(evs(10, cot_elicitation=True, max_tokens=1000, output_tokens=1000, session_id="s"))
    reasoning = window_signals(evs(10, max_tokens=1000, output_tokens=1000, reasoning_tokens=3000))
    assert both["joint"] == 1.0 and split["joint"] == 0.0 and in_session["joint"] == 0.0
    assert reasoning["joint"] == 1.0  # a reasoning-heavy response counts as elicited


def test_key_summaries_one_per_shared_key() -> None:
    det = TenantDetector()
    for e in evs(6, prompt_template_id="tpl", asn=64500, client_ip_prefix="p1", user_agent="ua/1",
                 payment_fingerprint="card"):
        det.process(e)
    det.advance(T0 + 3600)
    summaries = det.drain_summaries()
    assert sorted(s.key for s in summaries) == ["asn:64500", "pay:card", "pfx:p1", "tmpl:tpl", "ua:ua/1"]
    s = summaries[0]
    assert s.tenant_id == "t" and s.events == 6 and s.accounts == ("acc",) and len(s.keys) == 5
    assert det.drain_summaries() == []
