"""Tripwire calculators: structure, volatility, liquidation cluster, PDH/PDL, Bollinger, detectors."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.phases import indicators
from titan.phases.scavenger import tripwires
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.tripwires import Direction, OIHistory, Structure, TrapType

from .helpers import bar, flat_bars

P = ScavengerParams()
NO_ADX = indicators.AdxResult(0.0, 0.0, 0.0)
MIN_NS = 60 * 10**9


def _range(close: str) -> list[tripwires.CandleBar]:
    bars = flat_bars(49, 100.0, 1.0)
    bars[10] = bar(100, 120, 99, 100)   # H = 120
    bars[20] = bar(100, 101, 80, 100)   # L = 80
    return [*bars, bar(close, close, close, close)]


def test_structure_regimes_and_levels() -> None:
    assert tripwires.structure(_range("100"))[:3] == (Structure.RANGE, Decimal(120), Decimal(80))  # type: ignore[index]
    assert tripwires.structure(_range("119"))[0] is Structure.BREAKOUT  # type: ignore[index]  # > 0.99·120 = 118.8
    assert tripwires.structure(_range("118.8"))[0] is Structure.RANGE  # type: ignore[index]   # boundary is strict
    assert tripwires.structure(_range("80.7"))[0] is Structure.BREAKDOWN  # type: ignore[index]  # < 1.01·80 = 80.8
    up = indicators.AdxResult(30.0, 40.0, 10.0)
    assert tripwires.structure(_range("100"), up)[0] is Structure.TREND_UP  # type: ignore[index]
    down = indicators.AdxResult(30.0, 10.0, 40.0)
    assert tripwires.structure(_range("100"), down)[0] is Structure.TREND_DOWN  # type: ignore[index]
    assert tripwires.structure(_range("100"), indicators.AdxResult(25.0, 40.0, 10.0))[0] is Structure.RANGE  # type: ignore[index]
    assert tripwires.structure([]) is None


def test_structural_traps_by_regime() -> None:
    rng = tripwires.structural_traps("X", _range("100"), P, NO_ADX)
    assert [(t.trap_type, t.direction, t.trigger) for t in rng] == [
        (TrapType.BREAKOUT, Direction.LONG, Decimal(120)),
        (TrapType.BREAKDOWN, Direction.SHORT, Decimal(80)),
    ]
    assert all(t.confidence == 0.8 and t.leverage == 5 and t.cascade == Decimal("0.02") for t in rng)
    assert [t.trap_type for t in tripwires.structural_traps("X", _range("119"), P, NO_ADX)] == [TrapType.BREAKOUT]
    assert [t.trap_type for t in tripwires.structural_traps("X", _range("80.7"), P, NO_ADX)] == [TrapType.BREAKDOWN]
    # Trend regimes make the pullback traps reachable (they never were in the original).
    up = tripwires.structural_traps("X", _range("100"), P, indicators.AdxResult(30.0, 40.0, 10.0))
    pull = [t for t in up if t.trap_type is TrapType.PULLBACK]
    assert len(pull) == 1 and pull[0].direction is Direction.LONG and pull[0].trigger == 80
    assert pull[0].confidence == 0.75 and pull[0].leverage == 3
    down = tripwires.structural_traps("X", _range("100"), P, indicators.AdxResult(30.0, 10.0, 40.0))
    pull = [t for t in down if t.trap_type is TrapType.PULLBACK]
    assert pull[0].direction is Direction.SHORT and pull[0].trigger == 120


def test_volatility_regime_against_the_first_close() -> None:
    calm = flat_bars(50, 100.0, 0.4)  # TR 0.8 < 1% of 100
    assert tripwires.volatility(calm) == (pytest.approx(0.8), tripwires.LOW_VOL)
    wild = flat_bars(50, 100.0, 0.6)  # TR 1.2 > 1
    assert tripwires.volatility(wild)[1] == tripwires.HIGH_VOL


def test_confidences_are_on_one_zero_to_one_scale() -> None:
    fields = [f for f in ScavengerParams.model_fields if f.endswith("_confidence")]
    assert len(fields) == 8
    assert all(0 < getattr(P, f) <= 1 for f in fields)


# --- liquidation cluster ----------------------------------------------------------------------------
def _cluster_bars(
    heavy_above: float, heavy_below: float, vol_above: float, vol_below: float
) -> list[tripwires.CandleBar]:
    bars = [bar(60, 150, 50, 60, 1) for _ in range(47)]  # range 50..150: 50 bins of 2; 47 in bin 5
    bars.append(bar(heavy_above, heavy_above, heavy_above, heavy_above, vol_above))
    bars.append(bar(heavy_below, heavy_below, heavy_below, heavy_below, vol_below))
    bars.append(bar(100, 100, 100, 100.5, 1))  # close 100.5; top-3 bins: 121, 81 and 61
    return bars


def test_liquidation_cluster_needs_50_bars() -> None:
    assert tripwires.liquidation_cluster("X", _cluster_bars(121, 81, 100, 90)[1:], 0.95) is None


def test_liquidation_cluster_picks_long_above_when_heavier() -> None:
    t = tripwires.liquidation_cluster("X", _cluster_bars(121, 81, 100, 90), 0.95)
    assert t is not None and t.direction is Direction.LONG and t.trap_type is TrapType.LIQUIDATION
    assert t.trigger == Decimal("121") * Decimal("1.002")  # bin [120, 122) centre 121, +0.2%
    assert (t.confidence, t.leverage, t.cascade) == (0.95, 20, Decimal("0.05"))


def test_liquidation_cluster_picks_short_below_when_heavier() -> None:
    t = tripwires.liquidation_cluster("X", _cluster_bars(121, 81, 90, 100), 0.95)
    assert t is not None and t.direction is Direction.SHORT
    assert t.trigger == Decimal("81") * Decimal("0.998")


# --- previous-day levels ----------------------------------------------------------------------------
def _daily(pdh: str, pdl: str, close: str) -> list[tripwires.CandleBar]:
    prev = [bar(100, 100, 100, 100) for _ in range(24)]
    prev[3] = bar(100, pdh, 100, 100)
    prev[7] = bar(100, 100, pdl, 100)
    today = [bar(close, close, close, close) for _ in range(24)]
    return prev + today


def test_daily_level_long_near_the_previous_high() -> None:
    t = tripwires.daily_level("X", _daily("101.5", "95", "100"), 0.85)
    assert t is not None and t.direction is Direction.LONG and t.trigger == Decimal("101.5") * Decimal("1.001")
    assert (t.confidence, t.leverage, t.cascade) == (0.85, 12, Decimal("0.03"))


def test_daily_level_prefers_the_closer_level_and_needs_2_percent() -> None:
    t = tripwires.daily_level("X", _daily("101.5", "99", "100"), 0.85)  # PDL closer (1%) than PDH (1.5%)
    assert t is not None and t.direction is Direction.SHORT and t.trigger == Decimal("99") * Decimal("0.999")
    assert tripwires.daily_level("X", _daily("103", "97", "100"), 0.85) is None  # both 3% away
    assert tripwires.daily_level("X", _daily("101", "99", "100")[1:], 0.85) is None  # 47 bars


# --- Bollinger -----------------------------------------------------------------------------------
def test_bollinger_trap_direction_by_sma() -> None:
    noisy = [100 + (5 if i % 2 else -5) for i in range(72)]
    quiet_up = [100 + (0.1 if i % 2 else -0.1) for i in range(19)] + [100.15]
    bars = [bar(c, c + 0.01, c - 0.01, c) for c in noisy + quiet_up]
    t = tripwires.bollinger_trap("X", bars, 0.9)
    assert t is not None and t.direction is Direction.LONG and t.trap_type is TrapType.BOLLINGER
    bb = indicators.bollinger([float(b.close) for b in bars])
    assert bb is not None and float(t.trigger) == pytest.approx(bb.upper * 1.001, rel=1e-9)
    quiet_down = [*quiet_up[:-1], 99.85]
    bars = [bar(c, c + 0.01, c - 0.01, c) for c in noisy + quiet_down]
    t = tripwires.bollinger_trap("X", bars, 0.9)
    assert t is not None and t.direction is Direction.SHORT
    assert tripwires.bollinger_trap("X", bars[1:], 0.9) is None


# --- OI wipeout ------------------------------------------------------------------------------------
def _one_min(start: str) -> list[tripwires.CandleBar]:
    return [bar(start, start, start, start)] + [bar(100, 100, 100, 100) for _ in range(4)]


def test_oi_history_keeps_ten_minutes_and_finds_a_five_minute_old_point() -> None:
    h = OIHistory()
    for m in range(16):
        h.record(m * MIN_NS, Decimal(1000 - m))
    assert h.points[0][0] == 5 * MIN_NS  # older than 10 min pruned
    assert h.at_least_old(15 * MIN_NS, 5 * MIN_NS) == Decimal(990)  # the point at minute 10
    assert h.latest() == Decimal(985)
    assert OIHistory().at_least_old(0, 5 * MIN_NS) is None


def test_oi_wipeout_fires_with_all_three_conditions() -> None:
    t = tripwires.oi_wipeout("X", Decimal(96), _one_min("100"), Decimal(1000), Decimal(790), Decimal(5), P)
    assert t is not None and t.direction is Direction.LONG and t.trap_type is TrapType.OI_WIPEOUT
    assert t.trigger == 96 and t.target == 98 and t.stop == Decimal(96) * Decimal("0.98")
    assert (t.confidence, t.leverage, t.cascade) == (0.95, 20, Decimal("0.05"))


@pytest.mark.parametrize(
    ("price", "oi_then", "oi_now", "cvd"),
    [
        ("97", "1000", "790", "5"),    # drop exactly 3% is not > 3%
        ("96", "1000", "800", "5"),    # OI drop exactly 20%
        ("96", "1000", "790", "0"),    # CVD not positive
        ("96", None, "790", "5"),      # no 5-minute-old OI point
    ],
)
def test_oi_wipeout_rejects(price: str, oi_then: str | None, oi_now: str, cvd: str) -> None:
    assert tripwires.oi_wipeout("X", Decimal(price), _one_min("100"), None if oi_then is None else Decimal(oi_then),
                         Decimal(oi_now), Decimal(cvd), P) is None


# --- funding squeeze ---------------------------------------------------------------------------------
def _five_min(lows: list[str]) -> list[tripwires.CandleBar]:
    bars = [bar(100, 103, 95, 100) for _ in range(17)]
    return bars + [bar(100, 101, lo, 100.5) for lo in lows]


def test_funding_squeeze_fires() -> None:
    t = tripwires.funding_squeeze("X", Decimal("-0.0002"), _five_min(["97", "98", "99"]), Decimal(5), Decimal(1), P)
    assert t is not None and t.direction is Direction.LONG
    assert t.trigger == Decimal("100.5") * Decimal("1.001")
    assert t.target == Decimal(103) * Decimal("1.02")
    assert t.stop == Decimal(99) * Decimal("0.995")
    assert t.cascade == Decimal("0.10") and t.confidence == 0.9 and t.leverage == 15


def test_funding_squeeze_rejects() -> None:
    good = _five_min(["97", "98", "99"])
    assert tripwires.funding_squeeze("X", Decimal("-0.00019"), good, Decimal(5), Decimal(1), P) is None
    assert tripwires.funding_squeeze("X", None, good, Decimal(5), Decimal(1), P) is None
    assert (
        tripwires.funding_squeeze("X", Decimal("-0.001"), _five_min(["97", "98", "98"]), Decimal(5), Decimal(1), P)
        is None
    )
    assert tripwires.funding_squeeze("X", Decimal("-0.001"), good, Decimal(1), Decimal(1), P) is None


# --- basis -----------------------------------------------------------------------------------------
def test_basis_arb_thresholds() -> None:
    t = tripwires.basis_arb("X", Decimal(1000), Decimal(994), Decimal(1_000_000), P)  # 0.6%, exactly 1M passes
    assert t is not None and t.direction is Direction.LONG and t.cascade == Decimal("0.006")
    assert t.trigger == Decimal(994) * Decimal("1.001")
    assert t.target == Decimal(1000) * Decimal("0.999") and t.stop == Decimal(994) * Decimal("0.995")
    assert tripwires.basis_arb("X", Decimal(1000), Decimal(995), Decimal(10**7), P) is None  # exactly 0.5%
    assert tripwires.basis_arb("X", Decimal(1000), Decimal(994), Decimal(999_999), P) is None
    assert tripwires.basis_arb("X", None, Decimal(994), Decimal(10**7), P) is None


@given(st.decimals(min_value=1, max_value=10**6, places=2), st.decimals(min_value=1, max_value=10**6, places=2))
def test_basis_arb_only_when_spot_is_rich(spot: Decimal, perp: Decimal) -> None:
    t = tripwires.basis_arb("X", spot, perp, Decimal(10**7), P)
    assert (t is not None) == ((spot - perp) / spot > Decimal("0.005"))


# --- properties ------------------------------------------------------------------------------------
prices = st.decimals(min_value=Decimal("10"), max_value=Decimal("1000"), places=2)


@st.composite
def candle_lists(draw: st.DrawFn, min_size: int = 50, max_size: int = 60) -> list[tripwires.CandleBar]:
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    out = []
    for _ in range(n):
        a, b, c, d = sorted(draw(st.lists(prices, min_size=4, max_size=4)))
        o, cl = (b, c) if draw(st.booleans()) else (c, b)
        vol = draw(st.decimals(min_value=0, max_value=1000, places=3))
        out.append(tripwires.CandleBar(0, o, d, a, cl, vol))
    return out


@settings(max_examples=60, deadline=None)
@given(candle_lists(), st.floats(min_value=0, max_value=100), st.booleans())
def test_structural_triggers_are_the_range_extremes(bars: list[tripwires.CandleBar], adx_v: float, up: bool) -> None:
    adx_res = indicators.AdxResult(adx_v, 40.0 if up else 10.0, 10.0 if up else 40.0)
    hi, lo = max(b.high for b in bars), min(b.low for b in bars)
    for t in tripwires.structural_traps("X", bars, P, adx_res):
        assert t.trigger in (hi, lo)
        if t.trap_type is TrapType.BREAKOUT:
            assert t.trigger == hi and t.direction is Direction.LONG
        if t.trap_type is TrapType.BREAKDOWN:
            assert t.trigger == lo and t.direction is Direction.SHORT
        assert 0 < t.confidence <= 1


@settings(max_examples=60, deadline=None)
@given(candle_lists())
def test_liquidation_cluster_sits_beyond_the_close_inside_the_range(bars: list[tripwires.CandleBar]) -> None:
    t = tripwires.liquidation_cluster("X", bars, 0.95)
    if t is None:
        return
    close = bars[-1].close
    hi, lo = max(b.high for b in bars), min(b.low for b in bars)
    if t.direction is Direction.LONG:
        assert close < t.trigger <= hi * Decimal("1.002")
    else:
        assert lo * Decimal("0.998") <= t.trigger < close


@settings(max_examples=60, deadline=None)
@given(candle_lists(48, 60))
def test_daily_level_only_within_two_percent(bars: list[tripwires.CandleBar]) -> None:
    t = tripwires.daily_level("X", bars, 0.85)
    if t is None:
        return
    close = bars[-1].close
    prev = bars[-48:-24]
    level = max(b.high for b in prev) if t.direction is Direction.LONG else min(b.low for b in prev)
    assert abs(level - close) / close < Decimal("0.02")
    assert t.trigger == level * (Decimal("1.001") if t.direction is Direction.LONG else Decimal("0.999"))
