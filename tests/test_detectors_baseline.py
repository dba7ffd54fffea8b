"""BaselineDetector (own-baseline model, also on a plain numeric series) and ScoreDrift (Page-Hinkley)."""

from __future__ import annotations

import math

from river import base as river_base

from detectors.baseline import BaselineDetector, ScoreDrift


def test_plain_series_with_timestamps() -> None:
    det = BaselineDetector(half_life_seconds=3600.0)
    for i in range(500):
        det.learn_one({"x": 100.0 + 5.0 * math.sin(i / 10.0)}, t=60.0 * i)
    normal = det.score_one({"x": 103.0})
    spike = det.score_one({"x": 180.0})
    assert normal < 0.2 and spike > 0.9
    assert abs(det.mean("x") - 100.0) < 5.0 and 2.0 < det.std("x") < 6.0
    assert isinstance(det, river_base.AnomalyDetector)


def test_time_decay_forgets_old_level() -> None:
    det = BaselineDetector(half_life_seconds=600.0)
    for i in range(100):
        det.learn_one({"x": 1.0}, t=float(i))
    for i in range(100):
        det.learn_one({"x": 10.0}, t=100_000.0 + i)  # a day later: old level has decayed away
    assert det.mean("x") > 9.5


def test_prior_for_new_entities_and_directions() -> None:
    det = BaselineDetector(features=("a", "b"), prior={"a": (0.1, 0.01), "b": (0.5, 0.04)}, prior_weight=5,
                           directions={"a": 1, "b": 1})
    assert det.weight == 5 and det.mean("a") == 0.1
    assert det.score_one({"a": 0.9, "b": 0.5}) > 0.5  # far above the prior
    assert det.score_one({"a": 0.0, "b": 0.0}) == 0.0  # below only: not counted with direction +1
    z = det.zscores({"a": 0.3, "b": 0.5})
    assert math.isclose(z["a"], 2.0) and z["b"] == 0.0


def test_state_bytes_roundtrip() -> None:
    det = BaselineDetector(features=("a",))
    for v in (1.0, 2.0, 3.0, 4.0):
        det.learn_one({"a": v})
    other = BaselineDetector(features=("a",))
    other.load_bytes(det.to_bytes())
    assert other.score_one({"a": 9.0}) == det.score_one({"a": 9.0})
    assert other.zvector([9.0]) == det.zvector([9.0])


def test_page_hinkley_fires_on_sustained_rise_not_on_blip() -> None:
    d = ScoreDrift(threshold=1.5, delta=0.05, prior_mean=0.05)
    fired = []
    for x in [0.05] * 30 + [0.9] + [0.05] * 30:
        d.update(x)
        fired.append(d.drift_detected)
    assert not any(fired)
    d2 = ScoreDrift(threshold=1.5, delta=0.05, prior_mean=0.05)
    for x in [0.05] * 30 + [0.8] * 5:
        d2.update(x)
        if d2.drift_detected:
            break
    assert d2.drift_detected
    assert isinstance(d2, river_base.DriftDetector)


def test_page_hinkley_prior_catches_attack_from_first_observation() -> None:
    d = ScoreDrift(threshold=1.5, delta=0.05, prior_mean=0.05)
    hits = 0
    for _ in range(4):
        d.update(0.85)
        hits += d.drift_detected
    assert hits >= 1


def test_page_hinkley_roundtrip() -> None:
    d = ScoreDrift()
    for x in (0.1, 0.5, 0.7):
        d.update(x)
    e = ScoreDrift()
    e.load_list(d.to_list())
    for x in (0.9, 0.9, 0.1):
        d.update(x)
        e.update(x)
        assert d.statistic == e.statistic and d.drift_detected == e.drift_detected
