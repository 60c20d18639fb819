"""What entries depend on besides the signal itself: the ledger writing, execution's own events
reaching the bus, and this execution holding the ledger's lease. Pure: times in, a verdict out.

Each watched dependency has a *last known good* time. It is unavailable once that time is older
than the grace (``grace_ns``), or at once when it is known lost (the lease held by another
execution). While any is unavailable the gate refuses entries (reduce-only: CLOSE/REDUCE pass).

* ``LEDGER`` — fed with the ledger writer's heartbeat: the last time it committed (or, with nothing
  failing, the database accepted a write probe). Clocks of the writer and execution must agree to
  well within the grace, as they already must within the replay window for signals.
* ``BUS`` — fed with the publisher's backlog: good while nothing waits; while some waits, good as of
  the last event JetStream acknowledged (or the backlog's start).
* ``LEASE`` — fed with each confirmation that this execution still holds the ledger's lease; lost
  (without grace) when another execution holds it.
* ``OUTBOX`` — fed with the publisher's journal: lost (without grace) when events execution produced
  could not be journaled, so an acknowledged decision would wait in memory only; good again once a
  journal write succeeds and no event waits unjournaled. No grace: the ack of every later entry
  would promise what a kill could lose.

A dependency that is not watched never degrades (a backtest, a runtime without a ledger).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from titan.core.clock import NS_PER_S
from titan.execution import enums

RejectReason = enums.RejectReason


class Dependency(StrEnum):
    LEDGER = "ledger"
    BUS = "bus"
    LEASE = "lease"
    OUTBOX = "outbox"


# The order in which an outage past the grace is reported when several apply (a dependency known
# lost comes before all): a stuck publisher is execution's own view of the bus; a silent ledger may be
# a symptom of it; an unconfirmed lease is most often a symptom of the ledger's database being away.
_PRIORITY = (Dependency.BUS, Dependency.LEDGER, Dependency.LEASE)

REASONS: dict[Dependency, int] = {
    Dependency.LEDGER: RejectReason.REJECT_REASON_LEDGER_UNAVAILABLE,
    Dependency.BUS: RejectReason.REJECT_REASON_BUS_UNAVAILABLE,
    Dependency.LEASE: RejectReason.REJECT_REASON_LEASE_LOST,
    Dependency.OUTBOX: RejectReason.REJECT_REASON_OUTBOX_UNAVAILABLE,
}

_WHAT = {
    Dependency.LEDGER: "the ledger has not written",
    Dependency.BUS: "execution's events have waited for NATS",
    Dependency.LEASE: "the ledger's lease is not confirmed",
    Dependency.OUTBOX: "execution's outbox has not journaled its events",
}


@dataclass(frozen=True)
class Outage:
    """Why entries are refused: the dependency, its reject reason, since when it was last good."""

    dependency: Dependency
    reason: int
    last_good_ns: int
    detail: str

    def age_s(self, now_ns: int) -> float:
        return max(0, now_ns - self.last_good_ns) / NS_PER_S


class Dependencies:
    """Last known good times of the watched dependencies, and the outage they amount to now."""

    __slots__ = ("_good", "_lost", "_waiting", "grace_ns")

    def __init__(self, grace_ns: int) -> None:
        if grace_ns <= 0:
            raise ValueError("the grace must be positive")
        self.grace_ns = grace_ns
        self._good: dict[Dependency, int] = {}
        self._lost: dict[Dependency, str] = {}  # known lost, with why
        self._waiting: dict[Dependency, int | None] = {}  # fed by backlog: owed work waits since (None: none)

    @property
    def watched(self) -> frozenset[Dependency]:
        return frozenset(self._good)

    def watch(self, dependency: Dependency, now_ns: int) -> None:
        """Start requiring ``dependency``: known good now, so the grace runs from here."""
        self._good.setdefault(dependency, now_ns)

    def confirm(self, dependency: Dependency, good_at_ns: int) -> None:
        """``dependency`` was good at ``good_at_ns`` (older news than what is known changes nothing);
        a lost dependency confirmed again is back."""
        if dependency not in self._good:
            return
        if good_at_ns > self._good[dependency]:
            self._good[dependency] = good_at_ns
        self._lost.pop(dependency, None)

    def waiting_since(self, dependency: Dependency, oldest_ns: int | None) -> None:
        """``dependency`` owes work waiting since ``oldest_ns``; None: it owes nothing, so it is good
        however long no more news comes."""
        if dependency in self._good:
            self._waiting[dependency] = oldest_ns

    def lose(self, dependency: Dependency, detail: str) -> None:
        """``dependency`` is known lost: unavailable at once, until confirmed again."""
        if dependency in self._good:
            self._lost[dependency] = detail

    def outage(self, now_ns: int) -> Outage | None:
        """A dependency known lost, else the first one past the grace (see ``_PRIORITY``), or None
        when entries may go on."""
        if not self._good:
            return None
        if self._lost:
            dependency, why = next(iter(self._lost.items()))
            return Outage(dependency, REASONS[dependency], self._good[dependency], why)
        for dependency in _PRIORITY:
            good = self._good.get(dependency)
            if good is None:
                continue
            if dependency in self._waiting:
                since = self._waiting[dependency]
                if since is None:
                    continue
                good = since
            if now_ns - good > self.grace_ns:
                detail = f"{_WHAT[dependency]} for {(now_ns - good) / NS_PER_S:.1f}s (grace " \
                         f"{self.grace_ns / NS_PER_S:g}s): only exposure-reducing signals"
                return Outage(dependency, REASONS[dependency], good, detail)
        return None
