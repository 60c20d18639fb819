"""Indicators: SMA/σ, ATR, Wilder ADX, Bollinger squeeze, volume profile, Pearson."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.phases import indicators

floats = st.floats(min_value=1.0, max_value=1e6, allow_nan=False, allow_infinity=False)


def test_sma_and_population_stdev_use_the_last_period_values() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert indicators.sma(values, 3) == pytest.approx(4.0)
    assert indicators.pstdev(values, 3) == pytest.approx(math.sqrt(2 / 3))
    assert indicators.sma(values, 6) is None
    assert indicators.pstdev(values, 0) is None


@given(st.lists(floats, min_size=2, max_size=60))
def test_pstdev_matches_statistics(values: list[float]) -> None:
    sd = indicators.pstdev(values, len(values))
    assert sd == pytest.approx(statistics.pstdev(values), rel=1e-9, abs=1e-6)


def test_true_range_uses_previous_close_gaps() -> None:
    bars = [indicators.Bar(10, 11, 9, 10), indicators.Bar(13, 14, 13, 13.5)]  # gap up: |high - prev close| = 4
    assert indicators.true_ranges(bars) == [2, 4]
    assert indicators.atr_mean(bars) == 3
    assert indicators.atr_mean([]) is None


def _trend_bars(n: int, step: float) -> list[indicators.Bar]:
    out = []
    for i in range(n):
        base = 100 + i * step
        out.append(indicators.Bar(base, base + 1, base - 1, base + step / 2))
    return out


def test_adx_needs_two_periods_of_bars() -> None:
    assert indicators.adx(_trend_bars(27, 1.0)).adx == 0
    assert indicators.adx(_trend_bars(28, 1.0)).adx > 0


def test_adx_is_high_and_up_in_a_steady_uptrend_and_down_in_a_downtrend() -> None:
    up = indicators.adx(_trend_bars(60, 2.0))
    assert up.adx > 90 and up.trend == "UP" and up.plus_di > up.minus_di
    down = indicators.adx(_trend_bars(60, -2.0))
    assert down.adx > 90 and down.trend == "DOWN"


def test_adx_is_low_in_a_choppy_range() -> None:
    bars = [indicators.Bar(100, 101 + (i % 2), 99 - (i % 2), 100) for i in range(60)]
    assert indicators.adx(bars).adx < 25


@given(st.lists(st.tuples(floats, floats, floats), min_size=28, max_size=80))
def test_adx_is_bounded(raw: list[tuple[float, float, float]]) -> None:
    bars = []
    for a, b, c in raw:
        lo, mid, hi = sorted((a, b, c))
        bars.append(indicators.Bar(mid, hi, lo, mid))
    res = indicators.adx(bars)
    assert 0 <= res.adx <= 100 + 1e-9
    assert 0 <= res.plus_di <= 100 + 1e-9 and 0 <= res.minus_di <= 100 + 1e-9


def test_bollinger_width_is_four_sigma_over_sma() -> None:
    closes = [float(x) for x in range(1, 21)]
    bb = indicators.bollinger(closes)
    assert bb is not None
    sd = statistics.pstdev(closes)
    assert bb.middle == pytest.approx(10.5)
    assert bb.upper == pytest.approx(10.5 + 2 * sd)
    assert bb.width == pytest.approx(4 * sd / 10.5)


def test_bollinger_squeeze_needs_92_closes_and_detects_the_bottom_decile() -> None:
    noisy = [100 + (5 if i % 2 else -5) for i in range(72)]
    quiet = [100 + (0.1 if i % 2 else -0.1) for i in range(20)]
    assert indicators.bollinger_squeeze((noisy + quiet)[1:]) is None  # 91 closes
    squeezed, bb = indicators.bollinger_squeeze(noisy + quiet)  # type: ignore[misc]
    assert squeezed is True and bb.width < 0.01
    not_squeezed, _ = indicators.bollinger_squeeze(quiet * 4 + noisy[:12])  # type: ignore[misc]
    assert not_squeezed is False


def test_bollinger_squeeze_threshold_is_the_eighth_smallest_historical_width() -> None:
    # History windows are the 72 windows starting at bars 0..71 (of 92); the current one is bars 72..91.
    # Widths strictly decrease through the history, so the 8th smallest (index 7) is the window at 64.
    closes = [100 + (72 - i) * 0.5 * (1 if i % 2 else -1) for i in range(92)]
    widths = sorted(indicators.bollinger(closes[s : s + 20]).width for s in range(72))  # type: ignore[union-attr]
    cur = indicators.bollinger(closes[72:]).width  # type: ignore[union-attr]
    squeezed, _ = indicators.bollinger_squeeze(closes)  # type: ignore[misc]
    assert squeezed == (cur <= widths[7])


def test_volume_profile_puts_each_bar_in_the_bin_of_its_close() -> None:
    bars = [indicators.Bar(0, 100, 0, 5, 7), indicators.Bar(0, 100, 0, 99.9, 3), indicators.Bar(0, 100, 0, 100, 2)]
    lo, step, vols = indicators.volume_profile(bars, 10)  # type: ignore[misc]
    assert (lo, step) == (0, 10)
    assert vols[0] == 7 and vols[9] == 5  # the close at the max high falls into the last bin
    assert sum(vols) == 12
    assert indicators.volume_profile([], 10) is None


def test_pearson() -> None:
    xs = [1.0, 2.0, 3.0, 4.0]
    assert indicators.pearson(xs, [2.0, 4.0, 6.0, 8.0]) == pytest.approx(1.0)
    assert indicators.pearson(xs, [8.0, 6.0, 4.0, 2.0]) == pytest.approx(-1.0)
    assert indicators.pearson(xs, [1.0, 1.0, 1.0, 1.0]) == 0.0
