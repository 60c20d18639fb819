"""Tripwires and the calculators that place them (the generator, "web").

Every calculator is a pure function of candles and market state and returns tripwires (or nothing).
Levels derived from exact prices (range high/low, previous-day levels, volume-profile bins) stay
Decimal; levels derived from float indicators (Bollinger bands) are converted back to Decimal with
10 significant digits. Confidences are on the 0..1 scale everywhere.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from titan.core.money import to_decimal
from titan.phases import indicators
from titan.phases.scavenger.params import ScavengerParams


class Direction(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"


class TrapType(StrEnum):
    BREAKOUT = "BREAKOUT"
    BREAKDOWN = "BREAKDOWN"
    PULLBACK = "PULLBACK"
    LIQUIDATION = "LIQUIDATION"
    DAILY_LEVEL = "DAILY_LEVEL"
    BOLLINGER = "BOLLINGER"
    OI_WIPEOUT = "OI_WIPEOUT"
    FUNDING_SQUEEZE = "FUNDING_SQUEEZE"
    BASIS_ARB = "BASIS_ARB"


class Structure(StrEnum):
    BREAKOUT = "BREAKOUT"
    BREAKDOWN = "BREAKDOWN"
    TREND_UP = "TREND_UP"
    TREND_DOWN = "TREND_DOWN"
    RANGE = "RANGE"


HIGH_VOL = "HIGH_VOL"
LOW_VOL = "LOW_VOL"


@dataclass(frozen=True)
class CandleBar:
    """A closed candle with exact prices (oldest first in every sequence)."""

    open_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    def as_float(self) -> indicators.Bar:
        return indicators.Bar(
            float(self.open), float(self.high), float(self.low), float(self.close), float(self.volume)
        )


@dataclass(frozen=True)
class Tripwire:
    symbol: str
    trap_type: TrapType
    direction: Direction
    trigger: Decimal
    confidence: float                   # 0..1
    leverage: Decimal
    cascade: Decimal                    # expected move, fraction
    target: Decimal | None = None
    stop: Decimal | None = None
    atr: float = 0.0
    vol_regime: str = ""                # HIGH_VOL | LOW_VOL | "" (unknown)
    adx: float = 0.0
    trend: str = ""                     # UP | DOWN | FLAT | "" (unknown)

    @property
    def id(self) -> str:
        """Stable across rebuilds: cooldowns survive the 60 s regeneration."""
        return f"{self.symbol}:{self.trap_type.value}:{self.direction.value}"

    @property
    def setup(self) -> str:
        return f"trap.{self.trap_type.value.lower()}"


def to_price(x: float) -> Decimal:
    """A float level (from an indicator) as a Decimal price, 10 significant digits."""
    return to_decimal(f"{x:.10g}")


def bars_f(bars: Sequence[CandleBar]) -> list[indicators.Bar]:
    return [b.as_float() for b in bars]


# --- structure ---------------------------------------------------------------------------------
def structure(bars: Sequence[CandleBar], adx_res: indicators.AdxResult | None = None, adx_threshold: float = 25.0) -> (
    tuple[Structure, Decimal, Decimal, Decimal] | None
):
    """Range regime from the bars: H = max high, L = min low, C = last close.

    C > 0.99·H → BREAKOUT; C < 1.01·L → BREAKDOWN; otherwise TREND_UP / TREND_DOWN when ADX is above
    the threshold (direction from the DIs), else RANGE. (The original never returned the trend
    regimes, which left its pullback traps unreachable.)"""
    if not bars:
        return None
    hi = max(b.high for b in bars)
    lo = min(b.low for b in bars)
    close = bars[-1].close
    if close > Decimal("0.99") * hi:
        return Structure.BREAKOUT, hi, lo, close
    if close < Decimal("1.01") * lo:
        return Structure.BREAKDOWN, hi, lo, close
    if adx_res is not None and adx_res.adx > adx_threshold:
        if adx_res.trend == "UP":
            return Structure.TREND_UP, hi, lo, close
        if adx_res.trend == "DOWN":
            return Structure.TREND_DOWN, hi, lo, close
    return Structure.RANGE, hi, lo, close


def structural_traps(symbol: str, bars: Sequence[CandleBar], p: ScavengerParams, adx_res: indicators.AdxResult) -> (
    list[Tripwire]
):
    """Breakout/breakdown traps at the range extremes, pullback traps in a trend.

    RANGE: LONG breakout at H and SHORT breakdown at L. BREAKOUT regime (close within 1% of H): the
    LONG breakout at H only; BREAKDOWN symmetric. TREND_UP: breakout LONG at H plus a pullback LONG
    at L; TREND_DOWN: breakdown SHORT at L plus a pullback SHORT at H."""
    st = structure(bars, adx_res, p.adx_trend_threshold)
    if st is None:
        return []
    regime, hi, lo, _close = st
    conf, lev, cascade = p.structure_confidence, Decimal(5), Decimal("0.02")
    breakout = Tripwire(symbol, TrapType.BREAKOUT, Direction.LONG, hi, conf, lev, cascade)
    breakdown = Tripwire(symbol, TrapType.BREAKDOWN, Direction.SHORT, lo, conf, lev, cascade)
    pb_conf, pb_lev, pb_cascade = p.pullback_confidence, Decimal(3), Decimal("0.015")
    if regime is Structure.RANGE:
        return [breakout, breakdown]
    if regime is Structure.BREAKOUT:
        return [breakout]
    if regime is Structure.BREAKDOWN:
        return [breakdown]
    if regime is Structure.TREND_UP:
        return [breakout, Tripwire(symbol, TrapType.PULLBACK, Direction.LONG, lo, pb_conf, pb_lev, pb_cascade)]
    return [breakdown, Tripwire(symbol, TrapType.PULLBACK, Direction.SHORT, hi, pb_conf, pb_lev, pb_cascade)]


def volatility(bars: Sequence[CandleBar]) -> tuple[float, str]:
    """(ATR = mean true range over the bars, HIGH_VOL if ATR > 1% of the first bar's close)."""
    if not bars:
        return 0.0, ""
    atr = indicators.atr_mean(bars_f(bars)) or 0.0
    return atr, HIGH_VOL if atr > 0.01 * float(bars[0].close) else LOW_VOL


# --- calculators from the original library, wired in --------------------------------------------
def liquidation_cluster(symbol: str, bars: Sequence[CandleBar], confidence: float, bins: int = 50) -> (
    Tripwire | None
):
    """Volume-profile clusters: the top 3 bins by volume (each bar's volume in the bin of its close);
    the nearest above the close is a LONG candidate (trigger ×1.002), the nearest below a SHORT one
    (×0.998). LONG wins if it exists and there is no SHORT or its volume is larger. Needs ≥ 50 bars."""
    if len(bars) < 50:
        return None
    prof = indicators.volume_profile(bars_f(bars), bins)
    if prof is None:
        return None
    _lo_f, _step_f, vols = prof
    lo = min(b.low for b in bars)
    hi = max(b.high for b in bars)
    step = (hi - lo) / bins
    ranked = sorted((i for i in range(bins) if vols[i] > 0), key=lambda i: (-vols[i], i))[:3]
    close = bars[-1].close
    above: tuple[Decimal, float] | None = None
    below: tuple[Decimal, float] | None = None
    for i in ranked:
        price = lo + step * (Decimal(i) + Decimal("0.5"))
        if price > close and (above is None or price - close < above[0] - close):
            above = (price, vols[i])
        elif price < close and (below is None or close - price < close - below[0]):
            below = (price, vols[i])
    if above is not None and (below is None or above[1] > below[1]):
        return Tripwire(symbol, TrapType.LIQUIDATION, Direction.LONG, above[0] * Decimal("1.002"),
                        confidence, Decimal(20), Decimal("0.05"))
    if below is not None:
        return Tripwire(symbol, TrapType.LIQUIDATION, Direction.SHORT, below[0] * Decimal("0.998"),
                        confidence, Decimal(20), Decimal("0.05"))
    return None


def daily_level(symbol: str, bars: Sequence[CandleBar], confidence: float) -> Tripwire | None:
    """Previous-day high/low from hourly bars [-48, -24): within 2% of the close, the closer one
    (the high on a tie-free preference) gives LONG at PDH×1.001 or SHORT at PDL×0.999. Needs ≥ 48."""
    if len(bars) < 48:
        return None
    prev = bars[-48:-24]
    pdh = max(b.high for b in prev)
    pdl = min(b.low for b in prev)
    close = bars[-1].close
    if close <= 0:
        return None
    dist_h = abs(pdh - close) / close
    dist_l = abs(close - pdl) / close
    near = Decimal("0.02")
    if dist_h < near and dist_h < dist_l:
        return Tripwire(symbol, TrapType.DAILY_LEVEL, Direction.LONG, pdh * Decimal("1.001"), confidence,
                        Decimal(12), Decimal("0.03"))
    if dist_l < near:
        return Tripwire(symbol, TrapType.DAILY_LEVEL, Direction.SHORT, pdl * Decimal("0.999"), confidence,
                        Decimal(12), Decimal("0.03"))
    return None


def bollinger_trap(symbol: str, bars: Sequence[CandleBar], confidence: float) -> Tripwire | None:
    """Bollinger squeeze (20, 2σ, bottom 10% of 72 historical widths): LONG at upper×1.001 when the
    close is above the SMA, else SHORT at lower×0.999. Needs ≥ 92 bars."""
    closes = [float(b.close) for b in bars]
    res = indicators.bollinger_squeeze(closes)
    if res is None:
        return None
    squeezed, bb = res
    if not squeezed:
        return None
    if closes[-1] > bb.middle:
        return Tripwire(symbol, TrapType.BOLLINGER, Direction.LONG, to_price(bb.upper * 1.001), confidence,
                        Decimal(15), Decimal("0.04"))
    return Tripwire(symbol, TrapType.BOLLINGER, Direction.SHORT, to_price(bb.lower * 0.999), confidence,
                    Decimal(15), Decimal("0.04"))


# --- structural-flaw detectors -------------------------------------------------------------------
@dataclass
class OIHistory:
    """Open-interest points per symbol, kept for ``keep_ns`` (10 min). The original never recorded
    any, so its OI-wipeout detector could not fire; here every OpenInterest event is recorded."""

    keep_ns: int = 600 * 1_000_000_000
    points: deque[tuple[int, Decimal]] = field(default_factory=deque)

    def record(self, ts_ns: int, oi: Decimal) -> None:
        if self.points and ts_ns < self.points[-1][0]:
            return  # out of order: ignore
        self.points.append((ts_ns, oi))
        while self.points and self.points[0][0] < ts_ns - self.keep_ns:
            self.points.popleft()

    def latest(self) -> Decimal | None:
        return self.points[-1][1] if self.points else None

    def at_least_old(self, now_ns: int, age_ns: int) -> Decimal | None:
        """The newest point that is at least ``age_ns`` old."""
        found: Decimal | None = None
        for ts, oi in self.points:
            if ts <= now_ns - age_ns:
                found = oi
            else:
                break
        return found


def oi_wipeout(
    symbol: str,
    price: Decimal,
    one_min: Sequence[CandleBar],
    oi_5min_ago: Decimal | None,
    oi_now: Decimal | None,
    cvd_60s: Decimal,
    p: ScavengerParams,
) -> Tripwire | None:
    """V-shape catch (LONG): price fell > 3% over the last five 1-min bars, OI fell > 20% within
    5 min, and takers are buying again (60 s CVD > 0). Enter at the current price, target the 50%
    retrace, stop 2% below."""
    if len(one_min) < 5 or oi_5min_ago is None or oi_now is None or oi_5min_ago <= 0 or price <= 0:
        return None
    start = one_min[-5].close
    if start <= 0:
        return None
    drop = (start - price) / start
    if drop <= p.oi_wipeout_price_drop:
        return None
    oi_drop = (oi_5min_ago - oi_now) / oi_5min_ago
    if oi_drop <= p.oi_wipeout_oi_drop:
        return None
    if cvd_60s <= 0:
        return None
    target = price + (start - price) / 2
    return Tripwire(symbol, TrapType.OI_WIPEOUT, Direction.LONG, price, p.oi_wipeout_confidence, Decimal(20),
                    Decimal("0.05"), target=target, stop=price * Decimal("0.98"))


def funding_squeeze(
    symbol: str,
    funding_rate: Decimal | None,
    five_min: Sequence[CandleBar],
    cvd_recent: Decimal,
    cvd_previous: Decimal,
    p: ScavengerParams,
) -> Tripwire | None:
    """Shorts paying (funding ≤ -0.02%), three rising lows on 5-min bars and rising CVD (last 300 s
    vs the 300 s before): LONG at close×1.001, target 10-bar high×1.02, stop last low×0.995."""
    if funding_rate is None or funding_rate > p.funding_squeeze_threshold or len(five_min) < 3:
        return None
    l3, l2, l1 = five_min[-3].low, five_min[-2].low, five_min[-1].low
    if not (l3 < l2 < l1):
        return None
    if not cvd_recent > cvd_previous:
        return None
    last = five_min[-1]
    high10 = max(b.high for b in five_min[-10:])
    return Tripwire(symbol, TrapType.FUNDING_SQUEEZE, Direction.LONG, last.close * Decimal("1.001"),
                    p.funding_squeeze_confidence, Decimal(15), Decimal("0.10"),
                    target=high10 * Decimal("1.02"), stop=last.low * Decimal("0.995"))


def basis_arb(
    symbol: str, spot: Decimal | None, perp: Decimal | None, volume_24h: Decimal, p: ScavengerParams
) -> Tripwire | None:
    """Rubber band (LONG perp): basis = (spot - perp)/spot > 0.5% (strict) and 24 h quote volume ≥ 1M.
    Trigger perp×1.001, target spot×0.999, stop perp×0.995, cascade = the basis."""
    if spot is None or perp is None or spot <= 0 or perp <= 0:
        return None
    basis = (spot - perp) / spot
    if basis <= p.basis_threshold or volume_24h < p.basis_min_volume:
        return None
    return Tripwire(symbol, TrapType.BASIS_ARB, Direction.LONG, perp * Decimal("1.001"), p.basis_confidence,
                    Decimal(10), basis, target=spot * Decimal("0.999"), stop=perp * Decimal("0.995"))


def with_context(traps: Sequence[Tripwire], atr: float, regime: str, adx_res: indicators.AdxResult) -> list[Tripwire]:
    """Attach volatility and ADX trend context to every tripwire."""
    trend = adx_res.trend if adx_res.adx > 0 else ""
    return [replace(t, atr=atr, vol_regime=regime, adx=adx_res.adx, trend=trend) for t in traps]
