"""Rolling per-phase performance: Sharpe over closed trades and the weight modifier it yields.

Sharpe = mean / sample-stdev of per-trade net PnL in the window, x sqrt(365) (the original's
scale, so "2" still means good). Fewer than ``min_trades`` trades -> modifier 1. A zero stdev
gives +3 / -3 / 0 by the sign of the mean. Modifier = clamp(1 + slope x Sharpe, min, max): it is
monotone non-decreasing in Sharpe, and it is applied to the allocation (the original only
reported it).

A trade is what one signal closed: the closing fills of its orders (every leg of a hedged unit,
its steps, a market order's fills at several levels) are one trade with their PnL summed.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from titan.core.clock import NS_PER_S
from titan.operator.brain.policy import PerformancePolicy

MAX_TRADES_PER_PHASE = 5000  # memory bound; older trades fall out of the window first
_UNIT_LOOKBACK = 16  # a closing fill joins its signal's trade among this many latest trades


@dataclass(frozen=True)
class Trade:
    phase_id: str
    ts_ns: int
    pnl: Decimal
    unit: str = ""  # the signal that closed it ("" = a trade of its own)


def sharpe(pnls: list[float]) -> float:
    if len(pnls) < 2:
        return 0.0
    mean = statistics.fmean(pnls)
    sd = statistics.stdev(pnls)
    if sd == 0.0:
        return 3.0 if mean > 0 else (-3.0 if mean < 0 else 0.0)
    return mean / sd * math.sqrt(365)


def modifier_for(sharpe_value: float, policy: PerformancePolicy) -> Decimal:
    raw = Decimal(1) + policy.slope * Decimal(repr(sharpe_value))
    return min(policy.max_modifier, max(policy.min_modifier, raw)).quantize(Decimal("0.0001"))


class PerformanceTracker:
    """Closed trades per phase; the Sharpe of a phase's window is computed again only when its
    trades changed (a trade recorded, or one leaving the window)."""

    def __init__(self) -> None:
        self._trades: dict[str, deque[Trade]] = {}
        self._version: dict[str, int] = {}
        self._cached: dict[str, tuple[int, float, int]] = {}  # phase -> (version, sharpe, trades)

    def record(self, trade: Trade) -> None:
        """Add a closed trade, or add its PnL to the recent trade of the same signal."""
        q = self._trades.setdefault(trade.phase_id, deque(maxlen=MAX_TRADES_PER_PHASE))
        self._version[trade.phase_id] = self._version.get(trade.phase_id, 0) + 1
        if trade.unit:
            for back in range(1, min(len(q), _UNIT_LOOKBACK) + 1):
                earlier = q[-back]
                if earlier.unit == trade.unit:
                    q[-back] = Trade(trade.phase_id, max(earlier.ts_ns, trade.ts_ns), earlier.pnl + trade.pnl,
                                     trade.unit)
                    return
        q.append(trade)

    def window(self, phase_id: str, now_ns: int, window_s: int) -> list[Trade]:
        q = self._trades.get(phase_id)
        if not q:
            return []
        start = now_ns - window_s * NS_PER_S
        if q[0].ts_ns < start:
            while q and q[0].ts_ns < start:
                q.popleft()
            self._version[phase_id] = self._version.get(phase_id, 0) + 1
        return list(q)

    def sharpe(self, phase_id: str, now_ns: int, policy: PerformancePolicy) -> tuple[float, int]:
        q = self._trades.get(phase_id)
        start = now_ns - policy.window_s * NS_PER_S
        if q and q[0].ts_ns < start:
            self.window(phase_id, now_ns, policy.window_s)
        version = self._version.get(phase_id, 0)
        cached = self._cached.get(phase_id)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        trades = list(q or ())
        value = sharpe([float(t.pnl) for t in trades]), len(trades)
        self._cached[phase_id] = (version, *value)
        return value

    def modifier(self, phase_id: str, now_ns: int, policy: PerformancePolicy) -> Decimal:
        value, n = self.sharpe(phase_id, now_ns, policy)
        if n < policy.min_trades:
            return Decimal(1)
        return modifier_for(value, policy)
