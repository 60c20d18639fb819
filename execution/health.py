"""Execution's health: the runtime's view of the gate's dependencies (see ``dependencies.py``).

The runtime feeds :class:`DependencyMonitor` what it observes — the ledger writer's heartbeats, the
publisher's backlog and journal problems, lease confirmations — and samples it a few times a second.
A journal problem reaches the gate at once (the publisher calls :meth:`DependencyMonitor.journal`),
not at the next sample: the signal after a failed write is already refused. Each sample asks
the gate's :class:`Dependencies` for the outage in force; on every change it logs one line and
moves ``titan_execution_degraded{reason}``. ``/healthz`` reports the last sample: 200 while the
process serves (also degraded: it still takes exposure-reducing signals, and a restart would not
bring the ledger back), with ``status`` ``ok``/``degraded``/``starting`` and the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from titan.core.clock import Clock
from titan.core.metrics import EXECUTION_DEGRADED
from titan.execution.dependencies import REASONS, Dependencies, Dependency, Outage
from titan.execution.engine import reason_label
from titan.v1 import events_pb2

log = logging.getLogger("titan.execution.health")


class Backlog(Protocol):
    """What the monitor reads of the publisher."""

    @property
    def unpublished(self) -> bool: ...

    published: int


@dataclass(frozen=True)
class HealthReport:
    status: str  # "starting" | "ok" | "degraded"
    outage: Outage | None = None
    at_ns: int = 0

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status,
                               "entries": "accepted" if self.status == "ok" else "refused"}
        if self.outage is not None:
            out |= {"reason": reason_name(self.outage.reason), "dependency": str(self.outage.dependency),
                    "detail": self.outage.detail, "unavailable_for_s": round(self.outage.age_s(self.at_ns), 1)}
        return out


def reason_name(reason: int) -> str:
    """``REJECT_REASON_LEDGER_UNAVAILABLE`` -> ``LEDGER_UNAVAILABLE`` (logs, /healthz)."""
    return reason_label(reason).upper()


class DependencyMonitor:
    """Feeds the gate's dependencies from the runtime; reports each change of the outage in force."""

    def __init__(self, dependencies: Dependencies, clock: Clock) -> None:
        self.dependencies = dependencies
        self.clock = clock
        self.report = HealthReport("starting")
        self._current: Dependency | None = None
        self._since_ns = 0
        self._published_seen = -1
        self._bus_waiting_since: int | None = None
        for reason in REASONS.values():
            EXECUTION_DEGRADED.labels(reason=reason_label(reason)).set(0)

    def watch(self, *dependencies: Dependency) -> None:
        now = self.clock.now_ns()
        for dependency in dependencies:
            self.dependencies.watch(dependency, now)

    # --- what the runtime observes ----------------------------------------------------------
    def ledger_heartbeat(self, heartbeat: events_pb2.LedgerHeartbeat) -> None:
        """The writer's last writing time, never later than now on this clock."""
        self.dependencies.confirm(Dependency.LEDGER, min(heartbeat.writing_at_ns, self.clock.now_ns()))

    def backlog(self, publisher: Backlog) -> None:
        """Events waiting for JetStream with no acknowledgement since: waiting since the last progress."""
        now = self.clock.now_ns()
        if not publisher.unpublished:
            self._bus_waiting_since = None
        elif self._bus_waiting_since is None or publisher.published != self._published_seen:
            self._bus_waiting_since = now
        self._published_seen = publisher.published
        self.dependencies.waiting_since(Dependency.BUS, self._bus_waiting_since)

    def journal(self, problem: str | None) -> None:
        """The publisher's journal problem changed: lost while there is one, good again without."""
        if problem is None:
            self.dependencies.confirm(Dependency.OUTBOX, self.clock.now_ns())
        else:
            self.dependencies.lose(Dependency.OUTBOX, f"{problem}: only exposure-reducing signals")

    def lease_confirmed(self) -> None:
        self.dependencies.confirm(Dependency.LEASE, self.clock.now_ns())

    def lease_lost(self, holder: str) -> None:
        self.dependencies.lose(Dependency.LEASE, f"the ledger's lease is held by {holder}: only exposure-reducing"
                                                 " signals")

    # --- sampling ---------------------------------------------------------------------------
    def sample(self) -> HealthReport:
        """The outage now; logs and moves the metric when it changed since the last sample."""
        now = self.clock.now_ns()
        outage = self.dependencies.outage(now)
        current = outage.dependency if outage is not None else None
        if current != self._current:
            self._transition(self._current, outage, now)
            self._current, self._since_ns = current, now
        self.report = HealthReport("ok" if outage is None else "degraded", outage, now)
        return self.report

    def _transition(self, previous: Dependency | None, outage: Outage | None, now: int) -> None:
        if previous is not None:
            EXECUTION_DEGRADED.labels(reason=reason_label(REASONS[previous])).set(0)
        if outage is not None:
            EXECUTION_DEGRADED.labels(reason=reason_label(outage.reason)).set(1)
            log.warning("execution refuses entries (%s): %s", reason_name(outage.reason), outage.detail)
        elif previous is not None:
            log.warning("execution accepts entries again: %s is back after %.1fs refusing them",
                        previous, (now - self._since_ns) / 1e9)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """For ``/healthz`` (called from the health server's thread: reads the last sample only)."""
        report = self.report
        return report.status != "starting", report.body()
