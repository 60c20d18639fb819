"""Portfolio breakers: HARD (halt, manual reset) and SOFT (entry pause after a losing streak).

HARD trips when the drawdown since the UTC day start reaches ``max_daily_drawdown``, when the
drawdown from the high-water mark reaches ``max_drawdown``, or when equity falls below
``min_equity``. It stays tripped (also across UTC days and restarts) until a manual reset.
SOFT trips after ``soft_losses`` consecutive losing trades within ``soft_window_s`` and clears by
itself ``soft_cooldown_s`` later; it never downgrades a HARD trip. A trade is what the performance
tracker counts: what one signal closed (both legs of a hedged unit are one trade, with their PnL
summed); closing fills of a signal already counted revise its trade rather than adding one. Pure:
events in, changes out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from titan.core.clock import NS_PER_S
from titan.core.money import to_decimal, to_wire
from titan.operator.brain.performance import Trade
from titan.operator.brain.policy import BrainPolicy

RECENT_TRADES = 256  # trades remembered for the streak (and for revising a signal's trade): > any soft_losses


@dataclass
class _Counted:
    """A trade as the SOFT breaker counts it."""

    phase_id: str
    unit: str
    ts_ns: int
    pnl: Decimal
    spent: bool = False  # part of a losing streak that already tripped the breaker


class BreakerKind(StrEnum):
    HARD = "HARD"
    SOFT = "SOFT"


@dataclass(frozen=True)
class BreakerChange:
    kind: BreakerKind
    tripped: bool  # True = trip, False = reset
    reason: str
    equity: Decimal
    drawdown: Decimal
    ts_ns: int


class Breakers:
    def __init__(self) -> None:
        self.hard_tripped = False
        self.hard_reason = ""
        self.hard_since_ns = 0
        self.soft_until_ns = 0
        self.soft_reason = ""
        self.last_reset_token = ""
        self._recent: deque[_Counted] = deque(maxlen=RECENT_TRADES)  # the latest trades, newest last

    # --- state ---------------------------------------------------------------------------
    def soft_active(self, now_ns: int) -> bool:
        return now_ns < self.soft_until_ns

    def to_dict(self) -> dict[str, Any]:
        return {
            "hardTripped": self.hard_tripped,
            "hardReason": self.hard_reason,
            "hardSinceNs": str(self.hard_since_ns),
            "softUntilNs": str(self.soft_until_ns),
            "softReason": self.soft_reason,
            "lastResetToken": self.last_reset_token,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Breakers:
        b = cls()
        b.hard_tripped = bool(data.get("hardTripped", False))
        b.hard_reason = str(data.get("hardReason", ""))
        b.hard_since_ns = int(data.get("hardSinceNs", 0) or 0)
        b.soft_until_ns = int(data.get("softUntilNs", 0) or 0)
        b.soft_reason = str(data.get("softReason", ""))
        b.last_reset_token = str(data.get("lastResetToken", ""))
        return b

    # --- inputs --------------------------------------------------------------------------
    def on_trade(self, trade: Trade, equity: Decimal, policy: BrainPolicy) -> list[BreakerChange]:
        """A closed trade (or more of a signal's trade already counted): a loss extends the streak,
        anything else ends it."""
        self._count(trade)
        streak = self._streak(trade.ts_ns - policy.soft_window_s * NS_PER_S)
        if len(streak) < policy.soft_losses or self.hard_tripped:
            return []
        for counted in streak:
            counted.spent = True  # the streak starts again from zero
        until = trade.ts_ns + policy.soft_cooldown_s * NS_PER_S
        fresh = not self.soft_active(trade.ts_ns)
        self.soft_until_ns = max(self.soft_until_ns, until)
        self.soft_reason = f"{policy.soft_losses} consecutive losses within {policy.soft_window_s}s"
        if not fresh:
            return []
        return [BreakerChange(BreakerKind.SOFT, True, self.soft_reason, equity, Decimal(0), trade.ts_ns)]

    def _count(self, trade: Trade) -> None:
        if trade.unit:
            for counted in reversed(self._recent):
                if (counted.phase_id, counted.unit) == (trade.phase_id, trade.unit):
                    counted.pnl += trade.pnl
                    counted.ts_ns = max(counted.ts_ns, trade.ts_ns)
                    return
        self._recent.append(_Counted(trade.phase_id, trade.unit, trade.ts_ns, trade.pnl))

    def _streak(self, since_ns: int) -> list[_Counted]:
        """The latest losing trades in a row, not yet part of a trip, that closed at or after ``since_ns``."""
        streak: list[_Counted] = []
        for counted in reversed(self._recent):
            if counted.pnl >= 0 or counted.spent or counted.ts_ns < since_ns:
                break
            streak.append(counted)
        return streak

    def check(
        self,
        now_ns: int,
        equity: Decimal,
        daily_drawdown: Decimal,
        peak_drawdown: Decimal,
        policy: BrainPolicy,
    ) -> list[BreakerChange]:
        changes: list[BreakerChange] = []
        if self.soft_until_ns and not self.soft_active(now_ns):
            changes.append(BreakerChange(BreakerKind.SOFT, False, "cool-down over", equity, daily_drawdown, now_ns))
            self.soft_until_ns = 0
            self.soft_reason = ""
        if self.hard_tripped:
            return changes
        reason = ""
        if daily_drawdown >= policy.max_daily_drawdown:
            reason = f"daily drawdown {to_wire(daily_drawdown)} >= {to_wire(policy.max_daily_drawdown)}"
        elif peak_drawdown >= policy.max_drawdown:
            reason = f"drawdown from peak {to_wire(peak_drawdown)} >= {to_wire(policy.max_drawdown)}"
        elif equity < policy.min_equity:
            reason = f"equity {to_wire(equity)} below floor {to_wire(policy.min_equity)}"
        if reason:
            self.hard_tripped = True
            self.hard_reason = reason
            self.hard_since_ns = now_ns
            changes.append(BreakerChange(BreakerKind.HARD, True, reason, equity, daily_drawdown, now_ns))
        return changes

    def reset(self, token: str, now_ns: int, equity: Decimal) -> list[BreakerChange]:
        """Manual reset of a HARD trip: a new, non-empty token (TitanBrain.spec.breakerResetToken)."""
        if not token or token == self.last_reset_token:
            return []
        self.last_reset_token = token
        if not self.hard_tripped:
            return []
        self.hard_tripped = False
        reason = f"manual reset ({token})"
        self.hard_reason = ""
        self.hard_since_ns = 0
        return [BreakerChange(BreakerKind.HARD, False, reason, equity, Decimal(0), now_ns)]


def decimal_or_none(value: Any) -> Decimal | None:
    return None if value in (None, "") else to_decimal(str(value))
