"""One time-ordered queue for everything a backtest does: market events, signals in flight,
updates in flight and the periodic work of every part.

Order at equal times: periodic work the driver runs right before a market event of that instant
(:meth:`Scheduler.run_periodic_at`), the market event, then deliveries (signals to execution,
updates to phases) in the order they were sent, then periodic work in a fixed order (engine tick,
equity snapshot, Brain decision, phase timers). Ties keep insertion order, so a run is deterministic.

Idle time. Periodic work (equity snapshots, Brain decisions) runs on its cadence while inputs
arrive. More than ``idle_after_ns`` after the last input nothing can change until the next input
(a market event) or the next one-off (a delivery, or a part's own timer), so only the last run up to
it matters: the entry jumps there — to the next market event's own time at the latest (it then runs
first), strictly before a one-off. A one-off scheduled later pulls pending periodic work back to its
last cadence point before it, so e.g. a Brain decision always precedes a timer's signal by at most
one cadence, as in a live organism.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

_NEVER = 2**63 - 1


class Lane(IntEnum):
    """What runs first when several things are due at the same nanosecond."""

    MARKET = 0
    DELIVERY = 1
    ENGINE_TICK = 2
    EQUITY = 3
    BRAIN = 4
    PHASE_TIMER = 5


Action = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Periodic:
    """Work run every ``every_ns`` (see :class:`titan.backtest.config.Cadence`)."""

    name: str
    lane: Lane
    every_ns: int
    action: Action


class Scheduler:
    """A heap of (time, lane, sequence, action). Each periodic item has one live entry; moving it
    leaves the old entry behind, which is skipped when popped (its sequence no longer matches)."""

    def __init__(self, idle_after_ns: int = 0) -> None:
        self._heap: list[tuple[int, int, int, Action | Periodic]] = []
        self._seq = 0
        self._live: dict[str, tuple[int, int]] = {}   # periodic name -> (time, sequence) of its live entry
        self._periodic: dict[str, Periodic] = {}
        self._ran: dict[str, int] = {}                 # periodic name -> when it last ran
        self.idle_after_ns = idle_after_ns
        self.last_input_ns = 0
        self.now_ns = 0
        self.skipped = 0  # periodic runs skipped over idle time

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, ts_ns: int, lane: Lane, action: Action) -> None:
        """A one-off: a delivery or a part's timer."""
        if ts_ns < self.now_ns:
            ts_ns = self.now_ns  # never in the past: a zero latency delivers at once
        self._push(ts_ns, lane, action)
        if self.idle_after_ns:
            self._pull_forward(ts_ns)

    def every(self, periodic: Periodic, first_ns: int) -> None:
        self._periodic[periodic.name] = periodic
        self._live[periodic.name] = (first_ns, self._push(first_ns, periodic.lane, periodic))

    def next_time(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def run_until(self, limit_ns: int, next_input_ns: int | None) -> None:
        """Run everything due at or before ``limit_ns``. ``next_input_ns`` is when the next market
        event arrives (None: none left), which bounds how far idle periodic work may be skipped."""
        heap = self._heap
        while heap and heap[0][0] <= limit_ns:
            self._pop_and_run(next_input_ns)

    def run_periodic_at(self, ts_ns: int, next_input_ns: int | None) -> None:
        """Run the periodic work due exactly at ``ts_ns``, the time of a market event about to be
        handled (so a Brain decision coalesced onto it issues its budgets first). ``next_input_ns``:
        the market event after that one."""
        heap = self._heap
        while heap and heap[0][0] == ts_ns and isinstance(heap[0][3], Periodic):
            self._pop_and_run(next_input_ns)

    def mark_input(self, ts_ns: int) -> None:
        self.last_input_ns = ts_ns
        self.now_ns = max(self.now_ns, ts_ns)

    # --- internals --------------------------------------------------------------------------------
    def _push(self, ts_ns: int, lane: Lane, item: Action | Periodic) -> int:
        self._seq += 1
        heapq.heappush(self._heap, (ts_ns, int(lane), self._seq, item))
        return self._seq

    def _pop_and_run(self, next_input_ns: int | None) -> None:
        ts, lane, seq, item = heapq.heappop(self._heap)
        if isinstance(item, Periodic):
            if self._live.get(item.name) != (ts, seq):
                return  # moved elsewhere
            self.now_ns = ts
            self._ran[item.name] = ts
            item.action(ts)
            self._rearm(item, ts, next_input_ns)
            return
        self.now_ns = ts
        if lane == Lane.DELIVERY:
            self.last_input_ns = ts
        item(ts)

    def _rearm(self, periodic: Periodic, ts: int, next_input_ns: int | None) -> None:
        every = periodic.every_ns
        due = ts + every
        if self.idle_after_ns and due > self.last_input_ns + self.idle_after_ns:
            one_off = self._next_one_off()
            if next_input_ns is None and one_off is None:
                del self._live[periodic.name]
                return  # nothing will ever arrive again: the caller drains what is left
            last = min(_last_due(due, every, next_input_ns, inclusive=True),
                       _last_due(due, every, one_off, inclusive=False))
            if last > due:
                self.skipped += (last - due) // every
                due = last
        self._live[periodic.name] = (due, self._push(due, periodic.lane, periodic))

    def _pull_forward(self, one_off_ns: int) -> None:
        """A new one-off at ``one_off_ns``: periodic work parked beyond it moves back to its last
        cadence point before it (not into the past)."""
        for name, (ts, _) in list(self._live.items()):
            if ts <= one_off_ns:
                continue
            every = self._periodic[name].every_ns
            earlier = ts - ((ts - one_off_ns) // every + 1) * every
            if earlier >= self.now_ns and earlier > self._ran.get(name, -1) and earlier < ts:
                periodic = self._periodic[name]
                self._live[name] = (earlier, self._push(earlier, periodic.lane, periodic))

    def _next_one_off(self) -> int | None:
        times = [t for t, _, _, item in self._heap if not isinstance(item, Periodic)]
        return min(times) if times else None


def _last_due(due: int, every: int, horizon: int | None, *, inclusive: bool) -> int:
    """The last run on the grid ``due + k * every`` up to ``horizon`` (no horizon: no bound)."""
    if horizon is None:
        return _NEVER
    limit = horizon if inclusive else horizon - 1
    if limit < due:
        return due
    return due + (limit - due) // every * every


__all__ = ["Action", "Lane", "Periodic", "Scheduler"]
