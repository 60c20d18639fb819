"""Injected clocks. The core never reads the wall clock itself: it is handed a Clock."""

from __future__ import annotations

import time
from typing import Protocol

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


class Clock(Protocol):
    def now_ns(self) -> int: ...


class WallClock:
    """Real time (UTC nanoseconds since the epoch)."""

    def now_ns(self) -> int:
        return time.time_ns()


class ManualClock:
    """A clock that only moves when told to: for tests and backtests."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, ts_ns: int) -> None:
        if ts_ns < self._now:
            raise ValueError("a ManualClock never goes backwards")
        self._now = ts_ns

    def advance(self, delta_ns: int) -> int:
        if delta_ns < 0:
            raise ValueError("a ManualClock never goes backwards")
        self._now += delta_ns
        return self._now
