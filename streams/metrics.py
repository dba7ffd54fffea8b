"""Prometheus metrics of a worker, served at ``/metrics`` on the Faust web port.

Labels are bounded by construction (result, field name from the schema, alert
kind and severity, partition number): a tenant id or any other
attacker-controlled string never becomes a label.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry(auto_describe=True)


class LoopHistogram:
    """A histogram observed from the event loop's thread only, exported by a custom collector.

    Why: ``prometheus_client.Histogram.observe`` takes two locks per observation (sum and bucket),
    about 7 % of a worker's CPU when observed for every event. Here an observation is a list update
    and the cumulative buckets are built when ``/metrics`` is scraped (same thread: Faust's web
    server runs on the worker's event loop). Same names and ``le`` labels as a ``Histogram``.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = sorted(float(b) for b in buckets if b != math.inf)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        self.sum += value

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family, total, buckets = HistogramMetricFamily(self.name, self.documentation), 0, []
        for bound, count in zip([*self.bounds, math.inf], self.counts, strict=True):
            total += count
            buckets.append((floatToGoString(bound), total))
        family.add_metric([], buckets, sum_value=self.sum)
        yield family


EVENTS = Counter("distillguard_events", "usage events consumed, by result", ["result"], registry=REGISTRY)
DLQ = Counter("distillguard_dead_letters", "inputs sent to the dead-letter topic, by reason kind", ["reason"], registry=REGISTRY)
ALERTS = Counter("distillguard_alerts", "alerts produced", ["kind", "severity", "status"], registry=REGISTRY)
LATENCY = LoopHistogram(
    "distillguard_processing_seconds",
    "time from an event's append to the end of its processing (wall clock)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
LAG = Gauge("distillguard_consumer_lag", "consumer lag of the events topic, by partition", ["partition"], registry=REGISTRY)
TENANTS = Gauge("distillguard_tenants_in_memory", "tenants whose state is in memory", registry=REGISTRY)
NOTIFICATIONS = Counter("distillguard_notifications", "notifications sent, by reason", ["reason"], registry=REGISTRY)
NOTIFY_FOLDED = Counter("distillguard_notifications_folded", "tenant alerts folded into an open cluster incident instead of paging", registry=REGISTRY)
NOTIFY_SKIPPED = Counter("distillguard_notifications_skipped", "alerts the notification policy ignored (duplicate, invalid) and incidents it evicted", ["why"], registry=REGISTRY)
OPEN_INCIDENTS = Gauge("distillguard_open_incidents", "incidents the notification policy holds open", registry=REGISTRY)
WEBHOOK_SENT = Counter("distillguard_webhook_sent", "notifications the webhook accepted (2xx)", registry=REGISTRY)
WEBHOOK_FAILED = Counter("distillguard_webhook_failed", "notifications given up on (retries exhausted or rejected)", registry=REGISTRY)
WEBHOOK_RETRIES = Counter("distillguard_webhook_retries", "webhook POST attempts repeated after an error", registry=REGISTRY)
WEBHOOK_DROPPED = Counter("distillguard_webhook_dropped", "notifications dropped because the webhook queue was full", registry=REGISTRY)
WEBHOOK_QUEUE = Gauge("distillguard_webhook_queue", "notifications waiting for the webhook", registry=REGISTRY)
EVICTIONS = Counter("distillguard_tenants_evicted", "tenants moved out of memory (max_tenants_in_memory)", registry=REGISTRY)
RESTORES = Counter("distillguard_tenants_restored", "evicted or checkpointed tenants restored from the state table",
                   registry=REGISTRY)
EVENT_TIME = Counter("distillguard_event_time_adjusted", "events processed with an adjusted time: late (behind their tenant's "
                     "closed windows) or future_clamped (quarantined far-future timestamp)", ["kind"], registry=REGISTRY)
CATCH_UP = Counter("distillguard_catch_up_events", "events read outside the group because a partition resumed past "
                   "its restored checkpoint (docs/RELIABILITY.md)", registry=REGISTRY)
PARTITIONS_FAILING = Gauge("distillguard_partitions_failing", "input partitions held back because the broker "
                           "refused or did not confirm records produced from them (logged as send_failed); "
                           "/readyz answers 503 while any is", registry=REGISTRY)
IDLE_PARTITIONS = Gauge("distillguard_partitions_idle", "owned events partitions this worker declares idle (they do not "
                        "hold cluster windows back: docs/STREAMING.md)", registry=REGISTRY)
SEND_FAILURES = Counter("distillguard_send_failures", "records the broker refused or did not confirm, by destination topic "
                        "role (alerts, dead_letters, ...): their source events are processed again, nothing is "
                        "committed past them (docs/RELIABILITY.md)", ["topic"], registry=REGISTRY)
MISKEYED = Counter("distillguard_events_miskeyed", "events whose record key is not their tenant_id (another value, or none): "
                   "a tenant whose events reach several partitions has its state split between them, which changes "
                   "its alerts (docs/STREAMING.md)", registry=REGISTRY)
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
