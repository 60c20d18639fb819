"""Points of interest from price (reference §2.7): fair value gaps and order blocks, and when they
are touched and mitigated.

A fair value gap is a three-candle imbalance around a displacement candle ``m``: bullish when
``high[m-1] < low[m+1]`` and ``m`` closes up, bearish when ``low[m-1] > high[m+1]`` and ``m`` closes
down (the original skipped the displacement condition). It is known when ``m+1`` closes.
An order block is the last opposite candle before a break of structure, known with the break.
Touches and mitigations are separate facts with their own time, so a reported zone never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from titan.phases.hunter.bars import Bar
from titan.phases.hunter.structure import Bias, StructureBreak

OB_VOLUME_BARS = 20


@dataclass(frozen=True)
class FairValueGap:
    bias: Bias
    index: int              # the displacement (middle) candle
    top: Decimal
    bottom: Decimal
    known_at_ns: int

    @property
    def midpoint(self) -> Decimal:
        return (self.top + self.bottom) / 2

    @property
    def key(self) -> str:
        return f"fvg:{self.index}"


@dataclass(frozen=True)
class OrderBlock:
    bias: Bias
    index: int              # the order-block candle
    break_index: int        # the break of structure it precedes
    high: Decimal
    low: Decimal
    confidence: float       # 0..100 (volume relative to the 20 candles before)
    known_at_ns: int

    @property
    def key(self) -> str:
        return f"ob:{self.index}:{self.break_index}"


@dataclass(frozen=True)
class ZoneEvent:
    """A zone first traded into (``touched``) or fully filled/traded through (``mitigated``)."""

    key: str
    kind: str               # "touched" | "mitigated"
    index: int
    known_at_ns: int


def gap_at(bars: Sequence[Bar], m: int) -> FairValueGap | None:
    if m < 1 or m + 1 >= len(bars):
        return None
    before, mid, after = bars[m - 1], bars[m], bars[m + 1]
    if before.high < after.low and mid.bullish:
        return FairValueGap(Bias.BULLISH, m, after.low, before.high, after.close_ns)
    if before.low > after.high and mid.bearish:
        return FairValueGap(Bias.BEARISH, m, before.low, after.high, after.close_ns)
    return None


def gaps(bars: Sequence[Bar]) -> list[FairValueGap]:
    return [g for m in range(len(bars)) if (g := gap_at(bars, m)) is not None]


def gap_events(gap: FairValueGap, bar: Bar, index: int, seen: set[str]) -> list[ZoneEvent]:
    """What ``bar`` (after the gap formed) does to it: first touch (traded into the gap) and
    mitigation (bullish: traded down to its bottom; bearish: up to its top). ``seen`` holds
    the kinds already reported for this gap."""
    if index <= gap.index + 1:
        return []
    out = []
    bull = gap.bias is Bias.BULLISH
    if "touched" not in seen and (bar.low <= gap.top if bull else bar.high >= gap.bottom):
        out.append(ZoneEvent(gap.key, "touched", index, bar.close_ns))
    if "mitigated" not in seen and (bar.low <= gap.bottom if bull else bar.high >= gap.top):
        out.append(ZoneEvent(gap.key, "mitigated", index, bar.close_ns))
    return out


def order_block_for(bars: Sequence[Bar], brk: StructureBreak) -> OrderBlock | None:
    """The last candle against the break before it (a down candle before a bullish break)."""
    for j in range(brk.index - 1, -1, -1):
        bar = bars[j]
        if (bar.bearish if brk.bias is Bias.BULLISH else bar.bullish):
            window = bars[max(0, j - OB_VOLUME_BARS + 1): j + 1]
            avg = sum((b.volume for b in window), Decimal(0)) / len(window)
            ratio = float(bar.volume / avg) if avg > 0 else 1.0
            confidence = min(90.0, 60.0 + 15.0 * ratio)
            return OrderBlock(brk.bias, j, brk.index, bar.high, bar.low, confidence, brk.known_at_ns)
    return None


def order_blocks(bars: Sequence[Bar], all_breaks: Sequence[StructureBreak]) -> list[OrderBlock]:
    return [ob for brk in all_breaks if (ob := order_block_for(bars, brk)) is not None]


def block_events(block: OrderBlock, bar: Bar, index: int, seen: set[str]) -> list[ZoneEvent]:
    """Touched when price returns into the block after its break, mitigated when it trades
    through it (bullish: below its low)."""
    if index <= block.break_index:
        return []
    out = []
    bull = block.bias is Bias.BULLISH
    if "touched" not in seen and (bar.low <= block.high if bull else bar.high >= block.low):
        out.append(ZoneEvent(block.key, "touched", index, bar.close_ns))
    if "mitigated" not in seen and (bar.low < block.low if bull else bar.high > block.high):
        out.append(ZoneEvent(block.key, "mitigated", index, bar.close_ns))
    return out
