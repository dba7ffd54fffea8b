"""Configuration, alert building and small helpers shared by the detectors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import blake2b
from typing import Any

from distillguard import DETECTOR_VERSION

SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class DetectorConfig:
    """Every tunable of the detection engine (event-time seconds unless said otherwise)."""

    window_seconds: float = 300.0  # tumbling event-time window per tenant
    allowed_lateness: float = 120.0  # watermark = max event time - allowed lateness
    max_future_seconds: float = 86400.0  # a jump further ahead than this is quarantined (clamped)
    future_confirm_seconds: float = 3600.0  # a second far-future event within this of the first confirms the jump
    watermark_quorum: int = 2  # the partition clock is the quorum-th latest tenant clock: one tenant cannot move it
    # scoring
    open_threshold: float = 0.6  # window score that counts as suspicious
    watch_threshold: float = 0.4  # window score that starts / continues a suspicious run (first_seen)
    persistence_k: int = 4  # suspicious windows needed ...
    persistence_n: int = 6  # ... among the tenant's last n active windows
    drift_threshold: float = 1.5  # Page-Hinkley threshold on the window score
    drift_delta: float = 0.05
    drift_memory_windows: int = 12  # a drift detection stays valid this many active windows
    prior_score: float = 0.05  # population-normal window score (Page-Hinkley reference prior)
    baseline_half_life: float = 288.0  # per-tenant baseline half-life, in active windows
    baseline_prior_weight: float = 6.0  # population prior counts as this many windows
    min_window_events: int = 5  # smaller windows are pooled (sparse tenants) instead of decided on alone
    sparse_events: int = 20  # a pool of consecutive small windows is decided on once it holds this many events
    sparse_max_seconds: float = 3 * 3600.0  # ... and a pool older than this starts over
    single_shot_span: float = 900.0  # a mixed window's single-shot requests are judged with those of this much event time
    new_model_horizon: float = 86400.0  # a model first seen less than this ago is "new"
    new_model_warmup: float = 21600.0  # models seen in the first hours of the stream existed before it
    # alert lifecycle
    quiet_period: float = 7200.0  # no suspicious window for this long -> resolved
    cooldown: float = 3600.0  # no new incident for this long after a resolution
    update_evidence_factor: float = 4.0  # an update needs the severity to rise or the incident's events to grow this much
    severity_cuts: tuple[float, float, float] = (0.7, 0.8, 0.9)  # medium, high, critical
    # cluster stage
    cluster_window_seconds: float = 3600.0
    cluster_min_members: int = 5
    cluster_threshold: float = 0.6
    cluster_max_keys: int = 20000  # per cluster window
    cluster_max_members: int = 256  # per key and window
    cluster_sync_seconds: float = 6 * 3600.0  # members first seen within this of the median start are "synchronous"
    cluster_quiet_period: float = 7200.0
    max_accounts_per_summary: int = 8
    cluster_half_life: float = 6 * 3600.0  # decay of a tenant's evidence profile in the cluster stage
    cluster_horizon_seconds: float = 86400.0  # keys/accounts older than this are forgotten; idle profiles expire
    cluster_max_tenants: int = 50000  # tenants per staged cluster window, and evidence profiles kept (LRU)
    cluster_min_events: float = 1.0  # decayed events a profile needs before it can join the link graph
    cluster_node_extraction: float = 0.1  # profile extraction strength to join the link graph
    cluster_member_extraction: float = 0.25  # min(elicit, harvest) of a profile to be named in a cluster alert ...
    cluster_member_strong_share: float = 0.1  # ... or this share of its windows with clear extraction (≥ 2 of them)
    cluster_fresh_seconds: float = 3 * 86400.0  # members signed up within this of the median start are "fresh"
    cluster_min_accounts: int = 3  # a single sparse tenant is judged as a group of its accounts from this many ...
    cluster_account_min_strong: float = 10.0  # ... once it has this many (decayed) clear-extraction windows
    cluster_volume_windows: float = 50.0  # clear-extraction windows across a group at which its volume term saturates
    extra: dict[str, Any] = field(default_factory=dict)


_ISO_MIN = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_ISO_MAX = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp()


def iso(ts: float) -> str:
    """Epoch seconds -> RFC 3339 UTC with milliseconds (``2026-06-25T11:32:00.123Z``).

    Clamped to years 1-9999: an alert time computed from an accepted event time (an incident's quiet
    period after an event in 9999-12-31, say) must not crash the stage on the way out.
    """
    ts = round(ts, 3)
    if ts >= _ISO_MAX:
        return "9999-12-31T23:59:59.999Z"
    return datetime.fromtimestamp(max(ts, _ISO_MIN), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stable_id(*parts: Any) -> str:
    """Deterministic 32-hex-char id of the parts (blake2b; never Python's randomised hash)."""
    h = blake2b(digest_size=16)
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\x1f")
    return h.hexdigest()


def severity_of(score: float, cuts: tuple[float, float, float]) -> str:
    if score >= cuts[2]:
        return "critical"
    if score >= cuts[1]:
        return "high"
    if score >= cuts[0]:
        return "medium"
    return "low"


def rnd(x: float | None, nd: int = 4) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), nd)


def sigmoid(x: float) -> float:
    if x < -40:
        return 0.0
    return 1.0 / (1.0 + math.exp(-x))


def alert_id(kind: str, subject: str, incident_start: float, seq: int, status: str) -> str:
    """The deterministic id of the ``seq``-th alert of an incident (``t-`` tenant, ``c-`` cluster): what a
    replay reproduces and what an analyst's verdict names.

    The status is part of it: a run that ends early resolves an incident at the sequence number where a
    longer run over more of the same events sends an ``update``, and consumers dedupe on the id.
    """
    return f"{kind[0]}-{stable_id(kind, subject, round(incident_start, 3), seq, status)}"


def incident_alert_ids(kind: str, subject: str, incident_start: float, n: int, resolved: bool) -> list[str]:
    """The ids of an incident's first ``n`` alerts: ``open``, then ``update``s, then ``resolved`` if it ended;
    and, for verdicts on alerts sent before the status joined the id (until the tenth session), their ids of
    that form, so an incident open across the upgrade still takes them."""
    start = round(incident_start, 3)
    return [alert_id(kind, subject, incident_start, seq,
                     "open" if seq == 0 else "resolved" if resolved and seq == n - 1 else "update") for seq in range(n)
            ] + [f"{kind[0]}-{stable_id(kind, subject, start, seq)}" for seq in range(n)]


def make_alert(*, kind: str, status: str, subject: str, incident_start: float, seq: int, score: float,
               severity: str, detected_at: float, first_seen: float, window_start: float, window_end: float,
               reasons: list[dict[str, Any]], evidence: list[str], **extra: Any) -> dict[str, Any]:
    """An alert dict per ``schemas/alert.schema.json`` with a deterministic ``alert_id``."""
    alert: dict[str, Any] = {
        "alert_id": alert_id(kind, subject, incident_start, seq, status),
        "schema_version": 1,
        "kind": kind,
        "status": status,
    }
    alert.update(extra)
    alert.update({
        "severity": severity,
        "score": round(min(1.0, max(0.0, score)), 4),
        "detected_at": iso(detected_at),
        "first_seen": iso(min(first_seen, detected_at)),
        "window_start": iso(window_start),
        "window_end": iso(window_end),
        "reasons": reasons,
        "evidence": list(dict.fromkeys(evidence))[:20],
        "detector_version": DETECTOR_VERSION,
    })
    return alert
