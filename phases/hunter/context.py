"""Context numbers of the hologram (reference §2.5): the volatility index and relative strength
against BTC, both from 4h candles, and the ATR used by stops and trailing. Floats: indicators."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from titan.phases.hunter.bars import Bar


def true_ranges(bars: Sequence[Bar]) -> list[float]:
    out = []
    for prev, bar in itertools.pairwise(bars):
        h, lo, pc = float(bar.high), float(bar.low), float(prev.close)
        out.append(max(h - lo, abs(h - pc), abs(lo - pc)))
    return out


def atr(bars: Sequence[Bar], period: int = 14) -> float:
    """Simple mean of the last ``period`` true ranges (0 with fewer than period + 1 bars)."""
    if len(bars) < period + 1:
        return 0.0
    return sum(true_ranges(bars[-(period + 1):])) / period


def volatility_index(bars: Sequence[Bar], period: int = 14) -> float:
    """ATR as a share of the last close × 100 × 20, capped at 100 (ATR 2 % → 40, ≥ 5 % → 100)."""
    value = atr(bars, period)
    if value == 0 or not bars or bars[-1].close <= 0:
        return 0.0
    return min(100.0, value / float(bars[-1].close) * 100 * 20)


def relative_strength(asset: Sequence[Bar], btc: Sequence[Bar]) -> float:
    """Asset return minus BTC return over the last two candles, clamped to [−1, 1]; 0 without data."""
    if len(asset) < 2 or len(btc) < 2 or asset[-2].close <= 0 or btc[-2].close <= 0:
        return 0.0
    ra = float(asset[-1].close / asset[-2].close) - 1
    rb = float(btc[-1].close / btc[-2].close) - 1
    return max(-1.0, min(1.0, ra - rb))
