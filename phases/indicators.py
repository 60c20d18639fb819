"""Technical indicators shared by the phases.

Indicators work on floats (the one place floats are allowed): they measure, they never hold money.
Callers convert the levels they derive from them back to Decimal before a price reaches a signal.
Every function is pure and deterministic; too little data gives ``None`` (or 0 where the reference
defines it so), never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar as floats, oldest first in every sequence passed to this module."""

    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


def sma(values: Sequence[float], period: int) -> float | None:
    """Simple mean of the last ``period`` values."""
    if period <= 0 or len(values) < period:
        return None
    window = values[-period:]
    return math.fsum(window) / period


def pstdev(values: Sequence[float], period: int) -> float | None:
    """Population standard deviation of the last ``period`` values."""
    mean = sma(values, period)
    if mean is None:
        return None
    window = values[-period:]
    return math.sqrt(math.fsum((v - mean) ** 2 for v in window) / period)


def true_ranges(bars: Sequence[Bar]) -> list[float]:
    """True range of every bar; the first bar has no previous close and uses high - low."""
    out: list[float] = []
    prev_close: float | None = None
    for b in bars:
        if prev_close is None:
            out.append(b.high - b.low)
        else:
            out.append(max(b.high - b.low, abs(b.high - prev_close), abs(b.low - prev_close)))
        prev_close = b.close
    return out


def atr_mean(bars: Sequence[Bar]) -> float | None:
    """Mean true range over all given bars (the Scavenger's volatility measure)."""
    if not bars:
        return None
    trs = true_ranges(bars)
    return math.fsum(trs) / len(trs)


@dataclass(frozen=True)
class AdxResult:
    adx: float
    plus_di: float
    minus_di: float

    @property
    def trend(self) -> str:
        """"UP" when +DI dominates, "DOWN" when -DI does, "FLAT" when equal."""
        if self.plus_di > self.minus_di:
            return "UP"
        if self.minus_di > self.plus_di:
            return "DOWN"
        return "FLAT"


def adx(bars: Sequence[Bar], period: int = 14) -> AdxResult:
    """Wilder's ADX.

    TR, +DM and -DM are smoothed the Wilder way (the first value is the sum of the first ``period``
    raw values, then ``S = S - S/period + x``); DI = 100·DM/TR; DX = 100·|DI+ - DI-|/(DI+ + DI-);
    ADX = simple mean of the last ``period`` DX values. Returns ADX 0 unless there are at least
    ``2·period`` bars and ``period`` DX values. The DIs are those of the last bar.
    """
    n = len(bars)
    if period <= 0 or n < 2 * period:
        return AdxResult(0.0, 0.0, 0.0)
    trs: list[float] = []
    pdm: list[float] = []
    mdm: list[float] = []
    for i in range(1, n):
        cur, prev = bars[i], bars[i - 1]
        trs.append(max(cur.high - cur.low, abs(cur.high - prev.close), abs(cur.low - prev.close)))
        up = cur.high - prev.high
        down = prev.low - cur.low
        pdm.append(up if up > down and up > 0 else 0.0)
        mdm.append(down if down > up and down > 0 else 0.0)
    s_tr = math.fsum(trs[:period])
    s_p = math.fsum(pdm[:period])
    s_m = math.fsum(mdm[:period])
    dxs: list[float] = []
    plus_di = minus_di = 0.0

    def _dx() -> float:
        nonlocal plus_di, minus_di
        plus_di = 100.0 * s_p / s_tr if s_tr > 0 else 0.0
        minus_di = 100.0 * s_m / s_tr if s_tr > 0 else 0.0
        total = plus_di + minus_di
        return 100.0 * abs(plus_di - minus_di) / total if total > 0 else 0.0

    dxs.append(_dx())
    for i in range(period, len(trs)):
        s_tr = s_tr - s_tr / period + trs[i]
        s_p = s_p - s_p / period + pdm[i]
        s_m = s_m - s_m / period + mdm[i]
        dxs.append(_dx())
    if len(dxs) < period:
        return AdxResult(0.0, plus_di, minus_di)
    return AdxResult(math.fsum(dxs[-period:]) / period, plus_di, minus_di)


@dataclass(frozen=True)
class Bollinger:
    middle: float
    upper: float
    lower: float
    width: float  # (upper - lower) / middle = 4σ/SMA for k = 2


def bollinger(closes: Sequence[float], period: int = 20, k: float = 2.0) -> Bollinger | None:
    mean = sma(closes, period)
    sd = pstdev(closes, period)
    if mean is None or sd is None or mean == 0:
        return None
    upper, lower = mean + k * sd, mean - k * sd
    return Bollinger(mean, upper, lower, (upper - lower) / mean)


def bollinger_squeeze(
    closes: Sequence[float], period: int = 20, history: int = 72, percentile: float = 0.1, k: float = 2.0
) -> tuple[bool, Bollinger] | None:
    """Is the current band width in the bottom ``percentile`` of the last ``history`` widths?

    The historical widths are the ``history`` consecutive ``period``-bar windows that end one bar
    before the current window starts (for 20/72: windows starting at bars n-92 … n-21). The squeeze
    holds iff the current width ≤ the element at index floor(history·percentile) of the ascending
    list. Needs ``period + history`` closes."""
    n = len(closes)
    if n < period + history:
        return None
    current = bollinger(closes, period, k)
    if current is None:
        return None
    widths: list[float] = []
    for start in range(n - period - history, n - period):
        b = bollinger(closes[start : start + period], period, k)
        if b is None:
            return None
        widths.append(b.width)
    widths.sort()
    threshold = widths[math.floor(history * percentile)]
    return current.width <= threshold, current


def volume_profile(bars: Sequence[Bar], bins: int = 50) -> tuple[float, float, list[float]] | None:
    """Volume by price bin over [min low, max high]; each bar's whole volume goes to the bin of its
    close. Returns (low, step, volumes); bin i's centre is low + (i + 0.5)·step."""
    if not bars or bins <= 0:
        return None
    lo = min(b.low for b in bars)
    hi = max(b.high for b in bars)
    if hi <= lo:
        return None
    step = (hi - lo) / bins
    vols = [0.0] * bins
    for b in bars:
        i = int((b.close - lo) / step)
        vols[min(max(i, 0), bins - 1)] += b.volume
    return lo, step, vols


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson correlation; 0 when undefined (fewer than 2 points or zero variance)."""
    n = min(len(xs), len(ys))
    if n < 2:
        return 0.0
    mx = math.fsum(xs[:n]) / n
    my = math.fsum(ys[:n]) / n
    sxy = math.fsum((xs[i] - mx) * (ys[i] - my) for i in range(n))
    sxx = math.fsum((xs[i] - mx) ** 2 for i in range(n))
    syy = math.fsum((ys[i] - my) ** 2 for i in range(n))
    if sxx <= 0 or syy <= 0:
        return 0.0
    return sxy / math.sqrt(sxx * syy)
