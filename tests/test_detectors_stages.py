"""The stages' change tracking: what a streaming checkpoint must write."""

from __future__ import annotations

from detectors import synthetic as syn
from detectors.stages import TenantStage


def test_a_quiet_tenant_whose_window_another_tenant_closes_counts_as_changed():
    stage = TenantStage()
    stage.process(syn._event("quiet", 0, syn.T0))
    assert stage.drain_dirty() == {"quiet"}
    assert stage.drain_dirty() == set(), "draining resets"
    for i in range(60):  # an hour of two other tenants' traffic moves the watermark past quiet's window
        stage.process(syn._event("busy", i, syn.T0 + 60 * (i + 1)))  # (the clock needs watermark_quorum = 2 tenants)
        stage.process(syn._event("busy2", i, syn.T0 + 60 * (i + 1)))
    assert stage.drain_dirty() == {"busy", "busy2", "quiet"}
    assert not stage.detector.tenant_info("quiet")["open_windows"]


def test_restored_and_feedback_tenants_count_as_changed():
    stage = TenantStage()
    stage.process(syn._event("t1", 0, syn.T0))
    snap = stage.detector.snapshot("t1")
    fresh = TenantStage()
    fresh.detector.restore("t1", snap)
    assert fresh.drain_dirty() == {"t1"}
    fresh.detector.apply_feedback({"alert_id": "x", "label": "true_positive", "tenant_id": "t1"})
    assert fresh.drain_dirty() == {"t1"}
