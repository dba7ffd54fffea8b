"""Which events partitions hold the cluster stage's watermark back (streams/watermarks.py)."""

from __future__ import annotations

import math

import orjson

from streams.watermarks import SourceWatermarks

IDLE = 30.0


def reported(wms: dict[int, float], now: float = 0.0) -> SourceWatermarks:
    s = SourceWatermarks(len(wms), IDLE)
    for p, wm in wms.items():
        s.report(p, wm, False, now)
    return s


def test_nothing_closes_until_every_partition_has_reported() -> None:
    s = SourceWatermarks(3, IDLE)
    s.report(0, 100.0, False, 0.0)
    s.report(1, 200.0, False, 0.0)
    assert s.combined(0.0) is None
    s.report(2, 150.0, False, 1.0)
    assert s.combined(1.0) == 100.0


def test_a_silent_partition_holds_the_minimum_back_however_long_it_is_silent() -> None:
    """The hand-over case: partition 2's owner is gone (or restoring) while the others race ahead.

    A wall-clock staleness rule left it out after ``IDLE`` seconds, so cluster windows closed before
    its summaries arrived; only its owner may declare it idle.
    """
    s = reported({0: 100.0, 1: 100.0, 2: 100.0})
    for t in range(1, 600, 7):
        s.report(0, 100.0 + t * 60, False, float(t))
        s.report(1, 100.0 + t * 60, False, float(t))
        assert s.combined(float(t)) == 100.0


def test_a_declared_idle_partition_is_left_out_while_renewed_and_holds_back_once_it_lapses() -> None:
    s = reported({0: 500.0, 1: 900.0, 2: 100.0})
    s.report(2, None, True, 10.0)  # caught up and quiet: its owner declares it idle
    assert s.idle(10.0) == {2}
    assert s.combined(10.0) == 500.0
    s.report(2, None, True, 10.0 + IDLE - 1)  # renewed
    assert s.combined(10.0 + 2 * IDLE - 2) == 500.0
    # the owner stopped renewing (it left, crashed or found new events): the partition holds back again
    assert s.idle(10.0 + 2 * IDLE) == set()
    assert s.combined(10.0 + 2 * IDLE) == 100.0


def test_a_marker_with_a_watermark_withdraws_the_declaration_at_once() -> None:
    s = reported({0: 500.0, 1: 100.0})
    s.report(1, 100.0, True, 0.0)
    assert s.combined(1.0) == 500.0
    s.report(1, 130.0, False, 2.0)  # new events moved it
    assert s.idle(2.0) == set() and s.combined(2.0) == 130.0


def test_an_owner_that_gives_a_partition_up_withdraws_its_declaration() -> None:
    s = reported({0: 500.0, 1: 100.0})
    s.report(1, None, True, 0.0)
    assert s.combined(1.0) == 500.0
    s.withdraw(1)  # a rebalance or a shutdown: wait for the next owner rather than for the lapse
    assert s.combined(1.0) == 100.0


def test_an_idle_declaration_counts_as_a_report_and_all_idle_closes_at_the_started_clocks() -> None:
    s = SourceWatermarks(2, IDLE)
    s.report(0, None, True, 0.0)  # an empty partition: no clock, declared idle
    s.report(1, 300.0, False, 0.0)
    assert s.combined(0.0) == 300.0
    s.report(1, 300.0, True, 0.0)
    assert s.combined(0.0) == 300.0  # every owner caught up: close what the started clocks cover


def test_partitions_idle_before_the_last_one_reports_still_close_windows() -> None:
    """A fast worker: its partitions finish and go idle before the empty ones are first declared idle.
    (Returning None while all are idle left the cluster windows open for ever: a CI run failed on it.)"""
    s = SourceWatermarks(3, IDLE)
    s.report(0, 500.0, True, 0.0)
    s.report(1, 400.0, True, 0.0)
    assert s.combined(0.0) is None  # partition 2 has not reported yet
    s.report(2, None, True, 0.0)  # the empty one, declared idle last
    assert s.combined(0.0) == 400.0
    empty = SourceWatermarks(2, IDLE)
    empty.report(0, None, True, 0.0)
    empty.report(1, None, True, 0.0)
    assert empty.combined(0.0) is None  # no clock started anywhere: nothing to close
    # a clock-less partition whose declaration lapsed holds everything back (delay, never a lost summary)
    assert s.combined(IDLE + 1) == -math.inf


def test_checkpoint_round_trip_and_old_checkpoints() -> None:
    s = SourceWatermarks(3, IDLE)
    s.report(0, 500.0, False, 0.0)
    s.report(1, 100.0, True, 1000.0)
    s.report(2, None, True, 1010.0)  # no clock: -inf, written as null
    doc = orjson.loads(orjson.dumps(s.to_doc()))
    assert doc == {"source_wm": {"0": 500.0, "1": 100.0, "2": None}, "idle_until": {"1": 1030.0, "2": 1040.0}}
    r = SourceWatermarks(3, IDLE)
    r.load_doc(doc)
    assert r.watermark == {0: 500.0, 1: 100.0, 2: -math.inf}
    assert r.idle(1020.0) == {1, 2} and r.combined(1020.0) == 500.0
    # a declaration lapses when its owner's renewals stop, however late a restored stage reads it
    assert r.idle(1035.0) == {2} and r.combined(1035.0) == 100.0
    r.report(1, None, True, 1001.0)  # an old renewal, re-read after a restore, extends nothing
    assert r.idle(1035.0) == {2}
    old = SourceWatermarks(2, IDLE)
    old.load_doc({"offset": 7, "source_wm": {"0": 5.0, "1": 9.0}})  # from before idle declarations
    assert old.idle(0.0) == set() and old.combined(0.0) == 5.0
