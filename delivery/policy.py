"""The notification policy: which contract alerts page humans, and when (Alertmanager-like, no I/O).

``extraction.alerts`` stays the complete detection record (SIEMs dedupe on ``alert_id``); this
policy decides what a paging channel sees. It consumes alerts in one total order and keeps one
*incident* per subject (``tenant:<tenant_id>``, ``cluster:<cluster_id>``):

- **inhibition**: while a cluster incident is open, alerts of its member tenants are *folded* into
  it (recorded on the cluster incident, counted) instead of paging. A cluster ``open`` also folds
  member incidents that are already open: their later updates stop paging. A member incident that
  had paged on its own still gets its own ``resolved`` (so whoever opened it can close it); one
  that never paged resolves silently inside the cluster. When the cluster resolves, still-open
  members are released: one that never paged pages now (reason ``new``), the others resume
  repeating.
- **repeat interval**: an open, paged, not folded incident is re-sent (reason ``repeat``) every
  ``repeat_interval`` seconds of the caller's clock.
- **group wait**: a new tenant incident is held ``group_wait`` seconds before it pages, so a cluster
  alert arriving just after it can still fold it.
- **dedupe**: an ``alert_id`` seen before (a worker re-sending after a restart) is ignored.

Time is whatever the caller passes as ``now`` (the worker passes wall-clock seconds; offline
callers may pass event time), so the same inputs give the same notifications. State is bounded
(``max_incidents`` with least-recently-touched eviction; seen ids by count and age) and is exported
as per-key changes for a changelog-backed table (:meth:`drain_changes`, :meth:`restore`).
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from detectors.common import iso, stable_id

CLOCK_KEY = "clock"


@dataclass(frozen=True)
class PolicyConfig:
    """Knobs of the policy (seconds are on the caller's clock)."""

    repeat_interval: float = 4 * 3600.0  # 0 = never repeat
    group_wait: float = 0.0  # 0 = page new tenant incidents at once
    max_incidents: int = 100_000  # open incidents kept; the least recently touched is evicted beyond
    seen_capacity: int = 200_000  # alert ids remembered for dedupe
    seen_retention: float = 7 * 86400.0  # ... and for at most this long
    max_folded_ids: int = 100  # folded alert ids listed on a cluster notification (the count is exact)


@dataclass
class Incident:
    """One open subject: its latest alert and its paging state."""

    key: str
    kind: str
    opened_alert_id: str
    alert: dict[str, Any]
    touched: int = 0
    notified: bool = False
    last_notified: float = -math.inf
    sends: int = 0
    repeats: int = 0
    opened: int = 0
    held_until: float | None = None
    folded_into: str | None = None  # cluster incident key (tenant incidents)
    members: list[str] = field(default_factory=list)  # cluster incidents
    folded_alert_ids: list[str] = field(default_factory=list)
    folded_tenant_ids: list[str] = field(default_factory=list)
    folded_count: int = 0

    def to_bytes(self) -> bytes:
        doc = {k: getattr(self, k) for k in self.__dataclass_fields__}
        doc["last_notified"] = None if self.last_notified == -math.inf else self.last_notified
        return orjson.dumps(doc)

    @classmethod
    def from_bytes(cls, data: bytes) -> Incident:
        doc = orjson.loads(data)
        doc["last_notified"] = -math.inf if doc["last_notified"] is None else doc["last_notified"]
        return cls(**doc)


def incident_key(alert: dict[str, Any]) -> str:
    """``tenant:<id>`` or ``cluster:<id>`` (a cluster alert without ``cluster_id`` keys on its members)."""
    if alert["kind"] == "tenant":
        return f"tenant:{alert['tenant_id']}"
    cid = alert.get("cluster_id") or "members-" + stable_id(sorted(alert.get("tenant_ids") or []))[:16]
    return f"cluster:{cid}"


def _valid(alert: Any) -> bool:
    if not isinstance(alert, dict) or not isinstance(alert.get("alert_id"), str):
        return False
    if alert.get("status") not in ("open", "update", "resolved"):
        return False
    if alert.get("kind") == "tenant":
        return isinstance(alert.get("tenant_id"), str) and bool(alert["tenant_id"])
    members = alert.get("tenant_ids")
    return alert.get("kind") == "cluster" and isinstance(members, list) and all(isinstance(m, str) for m in members)


class NotificationPolicy:
    """Feed alerts with :meth:`process` and clock ticks with :meth:`tick`; both return notifications.

    A notification is the alert (all contract fields) plus a ``notification`` object: ``reason``
    (new | update | repeat | resolved), ``notification_id`` (deterministic: receivers dedupe on it),
    ``incident_key``, ``incident_alert_id`` (the alert that opened the incident), ``notified_at``,
    ``repeat`` (how many repeats so far), and for clusters ``folded_alert_ids``,
    ``folded_tenant_ids``, ``folded_count``; ``folded_into`` / ``released_from`` name the cluster
    incident a tenant notification relates to.
    """

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()
        self.counts: Counter[str] = Counter()  # folded, duplicate, invalid, held, evicted, and one per reason
        self._incidents: OrderedDict[str, Incident] = OrderedDict()  # least recently touched first
        self._containers: dict[str, set[str]] = {}  # tenant id -> open cluster incident keys listing it
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()  # alert id -> (now, order)
        self._clock = -math.inf
        self._seq = 0
        self._next_due = -math.inf
        self._dirty: set[str] = set()

    def __len__(self) -> int:
        return len(self._incidents)

    def incident(self, key: str) -> Incident | None:
        """The open incident under ``key`` (``tenant:<id>`` / ``cluster:<id>``), if any."""
        return self._incidents.get(key)

    # -- inputs ---------------------------------------------------------------------------------

    def process(self, alert: dict[str, Any], now: float) -> list[dict[str, Any]]:
        """Apply one alert at time ``now``; due holds and repeats up to ``now`` come first."""
        out = self.tick(now)
        now = self._clock
        if not _valid(alert):
            self.counts["invalid"] += 1
            return out
        aid = alert["alert_id"]
        if aid in self._seen:
            self.counts["duplicate"] += 1
            return out
        self._seq += 1
        self._seen[aid] = (now, self._seq)
        self._dirty.add(f"s/{aid}")
        self._forget_seen(now)
        out += self._cluster(alert, now) if alert["kind"] == "cluster" else self._tenant(alert, now)
        self._evict()
        return out

    def tick(self, now: float) -> list[dict[str, Any]]:
        """Advance the clock (never backwards) and emit due group-wait releases and repeats."""
        if now > self._clock:
            self._clock = now
            self._dirty.add(CLOCK_KEY)
        now = self._clock
        if now < self._next_due:
            return []
        out: list[dict[str, Any]] = []
        repeat = self.config.repeat_interval
        next_due = math.inf
        for inc in list(self._incidents.values()):
            if inc.held_until is not None:
                if inc.held_until <= now:
                    inc.held_until = None
                    out.append(self._page(inc, "new", now))
                else:
                    next_due = min(next_due, inc.held_until)
                    continue
            if repeat > 0 and inc.notified and inc.folded_into is None:
                if inc.last_notified + repeat <= now:
                    out.append(self._page(inc, "repeat", now))
                next_due = min(next_due, inc.last_notified + repeat)
        self._next_due = next_due
        self._forget_seen(now)
        return out

    # -- tenants ----------------------------------------------------------------------------------

    def _tenant(self, alert: dict[str, Any], now: float) -> list[dict[str, Any]]:
        key, status, tid = incident_key(alert), alert["status"], alert["tenant_id"]
        inc = self._incidents.get(key)
        container = self._container(tid)
        if status == "resolved" and inc is None:  # an incident from before our state (or evicted)
            if container:
                self._fold(container, alert, tid)
                return []
            return [self._page(self._new(key, alert, keep=False), "resolved", now)]
        if inc is None or status == "open":
            if inc is not None:
                self._drop(inc)  # its resolve never arrived: the new open replaces it
            inc = self._new(key, alert)
            if container:
                inc.folded_into = container
                self._fold(container, alert, tid)
                return []
            if self.config.group_wait > 0:
                inc.held_until = now + self.config.group_wait
                self._next_due = min(self._next_due, inc.held_until)
                self.counts["held"] += 1
                return []
            return [self._page(inc, "new", now)]
        self._touch(inc, alert)
        if inc.folded_into is not None and inc.folded_into not in self._incidents:
            inc.folded_into = container  # its cluster went away without releasing it (state from an older version)
        if inc.folded_into is not None:
            cluster = inc.folded_into
            self._fold(cluster, alert, tid)
            if status == "resolved":
                self._drop(inc)
                if inc.notified:
                    return [self._page(inc, "resolved", now, folded_into=cluster.split(":", 1)[1])]
            return []
        if inc.held_until is not None:
            if status == "resolved":  # opened and resolved within the wait: one notification tells both
                self._drop(inc)
                return [self._page(inc, "resolved", now)]
            return []  # the release carries the latest alert
        if status == "resolved":
            self._drop(inc)
            return [self._page(inc, "resolved", now)]
        return [self._page(inc, "update" if inc.notified else "new", now)]

    # -- clusters ---------------------------------------------------------------------------------

    def _cluster(self, alert: dict[str, Any], now: float) -> list[dict[str, Any]]:
        key, status = incident_key(alert), alert["status"]
        inc = self._incidents.get(key)
        if status == "resolved":
            if inc is None:
                return [self._page(self._new(key, alert, keep=False), "resolved", now)]
            self._touch(inc, alert)
            self._drop(inc)
            return [self._page(inc, "resolved", now), *self._release(inc, now)]
        new = inc is None  # an ``open`` for a key already open (its resolve was lost) continues the incident
        if inc is None:
            inc = self._new(key, alert)
        else:
            self._touch(inc, alert)
        for tid in alert["tenant_ids"]:
            if tid not in inc.members:
                inc.members.append(tid)
            self._containers.setdefault(tid, set()).add(key)
        for tid in alert["tenant_ids"]:  # fold member incidents that are already open
            member = self._incidents.get(f"tenant:{tid}")
            if member is not None and member.folded_into is None:
                member.folded_into = key
                self._dirty.add(f"i/{member.key}")
                if member.held_until is not None:  # held, never paged: its alert is absorbed
                    member.held_until = None
                    self._fold(key, member.alert, tid)
                else:
                    self._add_folded_tenant(inc, tid)
        return [self._page(inc, "new" if new else "update", now)]

    def _release(self, cluster: Incident, now: float) -> list[dict[str, Any]]:
        """Members folded into a closing cluster: refold into another open cluster, else page or resume."""
        out = []
        for tid in cluster.members:
            keys = self._containers.get(tid)
            if keys is not None:
                keys.discard(cluster.key)
                if not keys:
                    del self._containers[tid]
            member = self._incidents.get(f"tenant:{tid}")
            if member is None or member.folded_into != cluster.key:
                continue
            self._dirty.add(f"i/{member.key}")
            other = self._container(tid)
            if other:
                member.folded_into = other
                self._add_folded_tenant(self._incidents[other], tid)
                continue
            member.folded_into = None
            if not member.notified:
                out.append(self._page(member, "new", now, released_from=cluster.key.split(":", 1)[1]))
            else:
                self._next_due = -math.inf  # its repeats resume
        return out

    def _container(self, tid: str) -> str | None:
        """The oldest open cluster incident listing ``tid``."""
        keys = self._containers.get(tid)
        if not keys:
            return None
        return min(keys, key=lambda k: (self._incidents[k].opened, k))

    def _fold(self, cluster_key: str, alert: dict[str, Any], tid: str) -> None:
        cluster = self._incidents[cluster_key]
        cluster.folded_count += 1
        if len(cluster.folded_alert_ids) < self.config.max_folded_ids:
            cluster.folded_alert_ids.append(alert["alert_id"])
        self._add_folded_tenant(cluster, tid)
        self.counts["folded"] += 1

    def _add_folded_tenant(self, cluster: Incident, tid: str) -> None:
        if tid not in cluster.folded_tenant_ids:
            cluster.folded_tenant_ids.append(tid)
        self._dirty.add(f"i/{cluster.key}")

    # -- incidents and notifications --------------------------------------------------------------

    def _new(self, key: str, alert: dict[str, Any], keep: bool = True) -> Incident:
        inc = Incident(key=key, kind=alert["kind"], opened_alert_id=alert["alert_id"], alert=alert, opened=self._seq)
        if keep:
            self._incidents[key] = inc
            self._touch(inc, alert)
        return inc

    def _touch(self, inc: Incident, alert: dict[str, Any]) -> None:
        self._seq += 1
        inc.alert, inc.touched = alert, self._seq
        self._incidents.move_to_end(inc.key)
        self._dirty.add(f"i/{inc.key}")

    def _drop(self, inc: Incident) -> None:
        if self._incidents.get(inc.key) is inc:
            del self._incidents[inc.key]
            self._dirty.add(f"i/{inc.key}")
            if inc.kind == "cluster":
                for tid in inc.members:
                    keys = self._containers.get(tid)
                    if keys is not None:
                        keys.discard(inc.key)
                        if not keys:
                            del self._containers[tid]

    def _page(self, inc: Incident, reason: str, now: float, **extra: str) -> dict[str, Any]:
        if reason == "repeat":
            inc.repeats += 1
        note: dict[str, Any] = {
            "notification_id": "n-" + stable_id(inc.key, inc.opened_alert_id, inc.sends)[:24],
            "reason": reason,
            "incident_key": inc.key,
            "incident_alert_id": inc.opened_alert_id,
            "notified_at": iso(now),
            "repeat": inc.repeats if reason == "repeat" else 0,
        }
        if inc.kind == "cluster":
            note.update(folded_alert_ids=list(inc.folded_alert_ids), folded_tenant_ids=sorted(inc.folded_tenant_ids),
                        folded_count=inc.folded_count)
        note.update(extra)
        inc.sends += 1
        if reason != "resolved":
            inc.notified, inc.last_notified = True, now
            if self.config.repeat_interval > 0:
                self._next_due = min(self._next_due, now + self.config.repeat_interval)
        if inc.key in self._incidents:
            self._dirty.add(f"i/{inc.key}")
        self.counts[reason] += 1
        body = {k: v for k, v in inc.alert.items() if k != "notification"}
        body["notification"] = note
        return body

    def _evict(self) -> None:
        while len(self._incidents) > self.config.max_incidents:
            inc = next(iter(self._incidents.values()))
            self._drop(inc)
            if inc.kind == "cluster":
                for tid in inc.members:
                    member = self._incidents.get(f"tenant:{tid}")
                    if member is not None and member.folded_into == inc.key:
                        member.folded_into = self._container(tid)
                        self._dirty.add(f"i/{member.key}")
            self.counts["evicted"] += 1

    def _forget_seen(self, now: float) -> None:
        cap, horizon = self.config.seen_capacity, now - self.config.seen_retention
        while self._seen:
            aid, (ts, _) = next(iter(self._seen.items()))
            if len(self._seen) <= cap and ts >= horizon:
                break
            del self._seen[aid]
            self._dirty.add(f"s/{aid}")

    # -- persistence ------------------------------------------------------------------------------

    def drain_changes(self) -> dict[str, bytes | None]:
        """Storage keys changed since the last call: new bytes, or ``None`` for a deletion."""
        out: dict[str, bytes | None] = {}
        for key in sorted(self._dirty):
            if key == CLOCK_KEY:
                out[key] = orjson.dumps({"clock": None if self._clock == -math.inf else self._clock, "seq": self._seq})
            elif key.startswith("i/"):
                inc = self._incidents.get(key[2:])
                out[key] = inc.to_bytes() if inc is not None else None
            else:
                seen = self._seen.get(key[2:])
                out[key] = orjson.dumps(seen) if seen is not None else None
        self._dirty.clear()
        return out

    def restore(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Rebuild from the storage items :meth:`drain_changes` produced (in any order)."""
        incidents, seen = [], []
        for key, data in items:
            if key == CLOCK_KEY:
                doc = orjson.loads(data)
                self._clock = -math.inf if doc["clock"] is None else doc["clock"]
                self._seq = max(self._seq, doc["seq"])
            elif key.startswith("i/"):
                incidents.append(Incident.from_bytes(data))
            elif key.startswith("s/"):
                ts, order = orjson.loads(data)
                seen.append((order, ts, key[2:]))
        self._incidents = OrderedDict((inc.key, inc) for inc in sorted(incidents, key=lambda i: i.touched))
        self._seen = OrderedDict((aid, (ts, order)) for order, ts, aid in sorted(seen))
        self._containers = {}
        for inc in self._incidents.values():
            if inc.kind == "cluster":
                for tid in inc.members:
                    self._containers.setdefault(tid, set()).add(inc.key)
        self._next_due = -math.inf
        self._dirty.clear()
