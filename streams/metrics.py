"""Prometheus metrics of a worker, served at ``/metrics`` on the Faust web port.

Labels are bounded by construction (result, field name from the schema, alert
kind and severity, partition number): a tenant id or any other
attacker-controlled string never becomes a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter("distillguard_events", "usage events consumed, by result", ["result"], registry=REGISTRY)
DLQ = Counter("distillguard_dead_letters", "inputs sent to the dead-letter topic, by reason kind", ["reason"], registry=REGISTRY)
ALERTS = Counter("distillguard_alerts", "alerts produced", ["kind", "severity", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "distillguard_processing_seconds",
    "time from an event's append to the end of its processing (wall clock)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
LAG = Gauge("distillguard_consumer_lag", "consumer lag of the events topic, by partition", ["partition"], registry=REGISTRY)
TENANTS = Gauge("distillguard_tenants_in_memory", "tenants whose state is in memory", registry=REGISTRY)
CHECKPOINT_AGE = Gauge("distillguard_checkpoint_age_seconds", "seconds since the last state checkpoint", registry=REGISTRY)


def reason_label(field: str | None, reason: str) -> str:
    """A bounded label for a dead-letter reason: the schema field, else the reason's category."""
    if field:
        return field
    head = reason.split(":", 1)[0]
    return head if head in {"invalid JSON", "not a JSON object", "oversized"} else "other"


def render() -> bytes:
    """The metrics in Prometheus text format."""
    return generate_latest(REGISTRY)
