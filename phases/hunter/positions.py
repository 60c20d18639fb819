"""Position management as exits (reference §2.12): the strategy keeps the plan of each entry it
sent (stop, target, initial risk) and, once execution reports the position, manages it on every
base candle: stop or target hit → close; at 1.5 R the stop moves to entry; at 2 R half is taken
off; while in profit the stop trails 1 ATR behind price (ratchet only), 0.5 ATR after 48 h.
The prices of the plan are exact; the ATR is an indicator (float) turned into a Decimal offset."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from titan.phases.hunter.bars import Bar
from titan.phases.hunter.scoring import Direction

HOUR_NS = 3_600 * 10**9


class ExitKind(enum.Enum):
    STOP = "STOP"
    TARGET = "TARGET"
    PARTIAL = "PARTIAL"


@dataclass(frozen=True)
class ManagePolicy:
    breakeven_r: Decimal
    partial_r: Decimal
    partial_fraction: Decimal
    trail_atr: float
    tighten_after_ns: int
    tightened_trail_atr: float


@dataclass(frozen=True)
class Exit:
    kind: ExitKind
    fraction: Decimal           # of the position (1 = all)
    price: Decimal              # the level that triggered it


@dataclass
class Managed:
    """One open plan; ``quantity`` is 0 until execution reports the position."""

    symbol: str
    direction: Direction
    entry: Decimal
    stop: Decimal
    target: Decimal
    risk: Decimal               # |entry − initial stop| per unit
    opened_ns: int
    signal_id: str
    quantity: Decimal = Decimal(0)
    breakeven: bool = False
    partial: bool = False
    closing: bool = False       # a close was sent; wait for the position to go flat

    @property
    def long(self) -> bool:
        return self.direction is Direction.LONG

    def r_multiple(self, price: Decimal) -> Decimal:
        move = price - self.entry if self.long else self.entry - price
        return move / self.risk if self.risk > 0 else Decimal(0)

    def filled(self, quantity: Decimal, average_entry: Decimal) -> None:
        """Execution's position: the plan's risk is re-based on the real entry (same stop)."""
        first = self.quantity == 0
        self.quantity = quantity
        if first and average_entry > 0:
            self.entry = average_entry
            self.risk = abs(average_entry - self.stop)

    def on_bar(self, bar: Bar, atr: float, policy: ManagePolicy) -> list[Exit]:
        """The exits ``bar`` triggers; moves the stop (breakeven, trail) for the next bars."""
        if self.quantity == 0 or self.closing:
            return []
        adverse = bar.low if self.long else bar.high
        favourable = bar.high if self.long else bar.low
        if (adverse <= self.stop) if self.long else (adverse >= self.stop):
            return [Exit(ExitKind.STOP, Decimal(1), self.stop)]
        if (favourable >= self.target) if self.long else (favourable <= self.target):
            return [Exit(ExitKind.TARGET, Decimal(1), self.target)]
        out = []
        r_now = self.r_multiple(bar.close)
        if r_now >= policy.breakeven_r and not self.breakeven:
            self.breakeven = True
            self.stop = max(self.stop, self.entry) if self.long else min(self.stop, self.entry)
        if r_now >= policy.partial_r and not self.partial:
            self.partial = True
            out.append(Exit(ExitKind.PARTIAL, policy.partial_fraction, bar.close))
        if r_now > 0 and atr > 0:
            held = bar.close_ns - self.opened_ns
            mult = policy.tightened_trail_atr if held >= policy.tighten_after_ns else policy.trail_atr
            offset = Decimal(repr(atr * mult))
            trail = bar.close - offset if self.long else bar.close + offset
            self.stop = max(self.stop, trail) if self.long else min(self.stop, trail)
        return out
