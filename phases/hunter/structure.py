"""Market structure of one timeframe (reference §2.4): fractal swings, breaks of structure, trend,
change of character, dealing range and premium/discount location.

Every element carries ``known_at_ns``, the close time of the bar that made it certain: a swing with
``right`` bars on its right is known when the ``right``-th of them closes; a break when the breaking
bar closes. Breaks only use swings already known when the breaking bar closed (the original used
every swing with a lower bar index, i.e. swings confirmed only later). The functions here take the
whole bar list (batch); :mod:`titan.phases.hunter.engine` applies the same rules bar by bar.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from titan.phases.hunter.bars import Bar


class Side(enum.Enum):
    HIGH = "HIGH"
    LOW = "LOW"


class Bias(enum.Enum):
    BULLISH = "BULLISH"
    BEARISH = "BEARISH"


class Trend(enum.Enum):
    BULL = "BULL"
    BEAR = "BEAR"
    RANGE = "RANGE"


class Location(enum.Enum):
    PREMIUM = "PREMIUM"
    EQUILIBRIUM = "EQUILIBRIUM"
    DISCOUNT = "DISCOUNT"


@dataclass(frozen=True)
class FractalSpec:
    """A swing high is a bar whose high beats the ``left`` bars before and the ``right`` after it
    (strictly, or allowing equal highs when ``strict`` is False); lows alike. 2/2/strict is the
    5-bar Bill Williams fractal."""

    left: int = 2
    right: int = 2
    strict: bool = True


@dataclass(frozen=True)
class Swing:
    side: Side
    index: int
    open_ns: int
    price: Decimal
    known_at_ns: int


@dataclass(frozen=True)
class StructureBreak:
    """A close beyond one or more known, unbroken swings (BOS)."""

    bias: Bias
    index: int
    price: Decimal                     # the breaking close
    swings: tuple[int, ...]            # bar indices of the swings it broke
    known_at_ns: int


@dataclass(frozen=True)
class CharacterChange:
    """Change of character / market-structure shift: a break against the trend of the last three."""

    bias: Bias
    index: int
    price: Decimal
    known_at_ns: int


@dataclass(frozen=True)
class DealingRange:
    high: Decimal
    low: Decimal

    @property
    def midpoint(self) -> Decimal:
        return self.low + (self.high - self.low) / 2

    def location(self, price: Decimal, tolerance: Decimal = Decimal("0.05")) -> Location:
        """PREMIUM above the midpoint + tolerance·range, DISCOUNT below midpoint − it, else EQUILIBRIUM."""
        band = (self.high - self.low) * tolerance
        if price > self.midpoint + band:
            return Location.PREMIUM
        if price < self.midpoint - band:
            return Location.DISCOUNT
        return Location.EQUILIBRIUM


def _beats(value: Decimal, other: Decimal, strict: bool, higher: bool) -> bool:
    if higher:
        return value > other if strict else value >= other
    return value < other if strict else value <= other


def swings_at(bars: Sequence[Bar], i: int, spec: FractalSpec) -> list[Swing]:
    """The swing high and/or low at bar ``i`` (both when one bar is both), if its window is complete."""
    if i - spec.left < 0 or i + spec.right >= len(bars):
        return []
    window = [j for j in range(i - spec.left, i + spec.right + 1) if j != i]
    known = bars[i + spec.right].close_ns
    out = []
    if all(_beats(bars[i].high, bars[j].high, spec.strict, True) for j in window):
        out.append(Swing(Side.HIGH, i, bars[i].open_ns, bars[i].high, known))
    if all(_beats(bars[i].low, bars[j].low, spec.strict, False) for j in window):
        out.append(Swing(Side.LOW, i, bars[i].open_ns, bars[i].low, known))
    return out


def swings(bars: Sequence[Bar], spec: FractalSpec = FractalSpec()) -> list[Swing]:
    """Every swing of ``bars`` (none with fewer than left + right + 1 bars)."""
    return [sw for i in range(len(bars)) for sw in swings_at(bars, i, spec)]


def breaks(bars: Sequence[Bar], found: Sequence[Swing]) -> list[StructureBreak]:
    """Breaks of structure: for each bar, the known unbroken swing highs its close is above (one
    bullish break) and the swing lows it is below (one bearish break). Each swing breaks once."""
    pending = sorted(found, key=lambda sw: (sw.known_at_ns, sw.index))
    active: list[Swing] = []
    out: list[StructureBreak] = []
    k = 0
    for j, bar in enumerate(bars):
        while k < len(pending) and pending[k].known_at_ns <= bar.close_ns:
            active.append(pending[k])
            k += 1
        out.extend(breaks_by(bar, j, active))
    return out


def breaks_by(bar: Bar, index: int, active: list[Swing]) -> list[StructureBreak]:
    """The breaks ``bar`` makes of ``active`` swings (removed from the list when broken)."""
    out = []
    for side, bias in ((Side.HIGH, Bias.BULLISH), (Side.LOW, Bias.BEARISH)):
        hit = [sw for sw in active if sw.side is side and sw.index < index
               and (bar.close > sw.price if side is Side.HIGH else bar.close < sw.price)]
        if hit:
            out.append(StructureBreak(bias, index, bar.close, tuple(sw.index for sw in hit), bar.close_ns))
            for sw in hit:
                active.remove(sw)
    return out


def trend_of(recent: Sequence[StructureBreak]) -> Trend:
    """From the last three breaks: BULL with ≥ 2 bullish and more bullish than bearish, BEAR alike,
    RANGE otherwise (also with fewer than two breaks)."""
    last = list(recent)[-3:]
    if len(last) < 2:
        return Trend.RANGE
    bull = sum(1 for b in last if b.bias is Bias.BULLISH)
    bear = len(last) - bull
    if bull >= 2 and bull > bear:
        return Trend.BULL
    if bear >= 2 and bear > bull:
        return Trend.BEAR
    return Trend.RANGE


def character_change(history: Sequence[StructureBreak]) -> CharacterChange | None:
    """The shift made by the newest break of ``history``: it opposes the trend of the last three
    breaks including itself (e.g. bull, bull, bear: a bearish shift)."""
    if not history:
        return None
    newest = history[-1]
    trend = trend_of(history)
    if (trend is Trend.BULL and newest.bias is Bias.BEARISH) or (trend is Trend.BEAR and newest.bias is Bias.BULLISH):
        return CharacterChange(newest.bias, newest.index, newest.price, newest.known_at_ns)
    return None


def character_changes(all_breaks: Sequence[StructureBreak]) -> list[CharacterChange]:
    out = []
    for n in range(1, len(all_breaks) + 1):
        shift = character_change(all_breaks[:n])
        if shift is not None:
            out.append(shift)
    return out


def dealing_range(found: Sequence[Swing]) -> DealingRange | None:
    """Highest swing high and lowest swing low (None without at least one of each)."""
    highs = [sw.price for sw in found if sw.side is Side.HIGH]
    lows = [sw.price for sw in found if sw.side is Side.LOW]
    if not highs or not lows:
        return None
    return DealingRange(max(highs), min(lows))
