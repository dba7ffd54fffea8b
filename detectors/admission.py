"""Guards of a tenant stage against hostile input: a partition clock no single tenant can move, bounded
global first-seen times, and least-recently-seen eviction of tenants beyond a memory cap.

Why: windows use event time, and the gateway's timestamps are input. If the partition clock were the
maximum event time seen (as it was), one tenant with a far-future timestamp -- or one that steps its
clock forward a day at a time -- would close every other tenant's windows early and turn their traffic
into "late" events: detection suppressed for everyone. The clock here is the ``quorum``-th latest tenant
clock instead, so it moves only when at least ``quorum`` distinct tenants have reached a time. All rules
are pure functions of the event order, so live, replay and embedded runs agree (docs/RELIABILITY.md).
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

MAX_MODELS = 2048  # distinct model names with a first-seen time (a real fleet has tens); bounds the checkpoint


class QuorumClock:
    """Monotone event-time clock of a partition: the ``quorum``-th largest per-tenant clock.

    ``top`` holds the ``quorum`` tenants with the latest clocks; per-tenant clocks only grow, so replacing the
    smallest entry keeps it exact. With ``quorum == 1`` this is the plain maximum. Until ``quorum`` distinct
    tenants have been seen the clock does not start (a partition's first event cannot set it to year 9999).
    """

    __slots__ = ("quorum", "top", "kth", "value")

    def __init__(self, quorum: int = 2) -> None:
        self.quorum = max(1, int(quorum))
        self.top: dict[str, float] = {}
        self.kth = -math.inf  # smallest clock in ``top`` once it is full
        self.value = -math.inf

    def observe(self, tenant_id: str, ts: float) -> bool:
        """Account one tenant's effective event time; True when the clock moved forward."""
        top = self.top
        old = top.get(tenant_id)
        if old is not None:
            if ts <= old:
                return False
            top[tenant_id] = ts
            if old > self.kth and len(top) >= self.quorum:
                return False  # not the smallest clock of a full top: the quorum-th clock stays where it is
        elif len(top) < self.quorum:
            top[tenant_id] = ts
        else:
            kth = self.kth
            if ts <= kth:
                return False
            # the full top's smallest clock is kth: its first holder (the one min() would pick) leaves (a loop,
            # not next() over a generator: this runs for each event of a flood of new tenants)
            for holder, clock in top.items():  # noqa: B007 -- the loop finds holder
                if clock == kth:
                    break
            del top[holder]
            top[tenant_id] = ts
        if len(top) < self.quorum:
            return False
        self.kth = min(top.values())
        if self.kth > self.value:
            self.value = self.kth
            return True
        return False

    def state(self) -> dict[str, Any]:
        return {"quorum": self.quorum, "top": dict(self.top)}

    def load(self, state: dict[str, Any]) -> None:
        """Merge a checkpointed :meth:`state` (keeps the latest clock of each tenant, then the top ``quorum``)."""
        merged = dict(self.top)
        for tid, ts in state.get("top", {}).items():
            merged[tid] = max(ts, merged.get(tid, -math.inf))
        self.top = dict(sorted(merged.items(), key=lambda kv: kv[1], reverse=True)[: self.quorum])
        if len(self.top) >= self.quorum:
            self.kth = min(self.top.values())
            self.value = max(self.value, self.kth)


class LruTenants:
    """Least-recently-seen order of the tenants a stage holds, and eviction beyond ``max_tenants``.

    ``store`` (a mapping ``tenant_id -> snapshot bytes``) is where evicted tenants go and come back from;
    the detector restores them through its ``loader`` whenever they are needed again (an event, a verdict,
    or a window that the watermark closes), so eviction never changes what the detector outputs.

    A tenant restored for anything but one of its events (a window the watermark closes, a verdict) is
    *cold*: it leaves again before any tenant in :attr:`order`. Why: under a flood of new ids most tenants
    are evicted with their one window open and restored only to close it; at the most recent end of the
    order each held a slot of the cap for another cap's worth of tenants, so more tenants were evicted
    mid-window and restored in turn (about a third of the cap in the 1,000,000-tenant bench).
    """

    def __init__(self, max_tenants: int, store: MutableMapping[str, bytes] | None) -> None:
        self.max_tenants = max_tenants
        self.store = store
        self.order: dict[str, None] = {}  # insertion order = least recently seen first
        self.cold: dict[str, None] = {}  # restored without an event of theirs, in restore order: leave first
        self.evicted = 0
        self.restored = 0

    def touch(self, tenant_id: str) -> None:
        order = self.order
        if tenant_id in order:
            del order[tenant_id]
        elif self.cold:
            self.cold.pop(tenant_id, None)
        order[tenant_id] = None

    def load(self, tenant_id: str) -> bytes | None:
        """The stored snapshot of ``tenant_id`` (None: unknown); a tenant that :meth:`touch` has not just
        placed in :attr:`order` (its event is being processed) joins :attr:`cold`."""
        data = self.store.get(tenant_id) if self.store is not None else None
        if data is not None:
            self.restored += 1
            if tenant_id not in self.order:
                self.cold[tenant_id] = None
        return data

    def drop(self, tenant_id: str) -> None:
        """Forget an evicted tenant's place."""
        if tenant_id in self.cold:
            del self.cold[tenant_id]
        else:
            del self.order[tenant_id]

    def victims(self, detector: Any, count: int, clean_only: bool) -> list[str]:
        """Up to ``count`` tenants that may leave memory: the cold ones, then the least recently seen.

        A tenant with an open incident stays (its quiet-period resolution runs on every watermark tick);
        with ``clean_only`` so does one changed since the last checkpoint (its store copy would be stale).
        """
        out: list[str] = []
        changed = detector.changed
        for tids in (self.cold, self.order):
            for tid in tids:
                if len(out) >= count:
                    return out
                if tid not in detector:
                    continue
                if detector.has_open_incident(tid) or (clean_only and tid in changed):
                    continue
                out.append(tid)
        return out
