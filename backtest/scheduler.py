"""One time-ordered queue for everything a backtest does: market events, signals in flight,
updates in flight and the periodic work of every part.

Order at equal times: market data first (it happened at that instant), then deliveries (signals to
execution, updates to phases) in the order they were sent, then periodic work in a fixed order
(engine tick, equity snapshot, Brain decision, phase timers). Ties keep insertion order, so a run is
deterministic.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum


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
    """Work run every ``every_ns`` from ``first_ns`` on (see :class:`titan.backtest.config.Cadence`)."""

    name: str
    lane: Lane
    every_ns: int
    action: Action


class Scheduler:
    """A heap of (time, lane, sequence, action). Periodic work is kept as one pending entry each,
    re-armed after it runs; with ``idle_after_ns`` > 0 a periodic entry that would run more than
    ``idle_after_ns`` after the last input jumps to its last due time before the next input."""

    def __init__(self, idle_after_ns: int = 0) -> None:
        self._heap: list[tuple[int, int, int, Action | Periodic]] = []
        self._seq = 0
        self.idle_after_ns = idle_after_ns
        self.last_input_ns = 0
        self.now_ns = 0
        self.skipped = 0  # periodic runs skipped over idle time

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, ts_ns: int, lane: Lane, action: Action) -> None:
        if ts_ns < self.now_ns:
            ts_ns = self.now_ns  # never in the past: a zero latency delivers at once
        self._seq += 1
        heapq.heappush(self._heap, (ts_ns, int(lane), self._seq, action))

    def every(self, periodic: Periodic, first_ns: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (first_ns, int(periodic.lane), self._seq, periodic))

    def next_time(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def run_until(self, limit_ns: int, next_input_ns: int | None) -> None:
        """Run everything due at or before ``limit_ns``. ``next_input_ns`` is when the next market
        event arrives (None: none left), which bounds how far idle periodic work may be skipped."""
        heap = self._heap
        while heap and heap[0][0] <= limit_ns:
            ts, lane, _, item = heapq.heappop(heap)
            self.now_ns = ts
            if isinstance(item, Periodic):
                item.action(ts)
                self._rearm(item, ts, next_input_ns)
            else:
                if lane == Lane.DELIVERY:
                    self.last_input_ns = ts
                item(ts)

    def _rearm(self, periodic: Periodic, ts: int, next_input_ns: int | None) -> None:
        due = ts + periodic.every_ns
        idle = self.idle_after_ns
        if idle and due > self.last_input_ns + idle:
            # Idle: nothing arrives before the next market event or the next one-off (a delivery or
            # a part's own timer), so only the last run before it can matter.
            horizon = self._next_one_off(next_input_ns)
            if horizon is None:
                return  # nothing will ever arrive again: the caller drains what is left
            last_due = due + (horizon - due) // periodic.every_ns * periodic.every_ns
            if last_due == horizon:
                last_due -= periodic.every_ns  # at the input itself the input goes first anyway
            if last_due > due:
                self.skipped += (last_due - due) // periodic.every_ns
                due = last_due
        self.every(periodic, due)

    def _next_one_off(self, next_input_ns: int | None) -> int | None:
        times = [t for t, _, _, item in self._heap if not isinstance(item, Periodic)]
        if next_input_ns is not None:
            times.append(next_input_ns)
        return min(times) if times else None

    def mark_input(self, ts_ns: int) -> None:
        self.last_input_ns = ts_ns
        self.now_ns = max(self.now_ns, ts_ns)


__all__ = ["Action", "Lane", "Periodic", "Scheduler"]
