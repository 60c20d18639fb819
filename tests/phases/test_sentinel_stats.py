"""Sentinel basis statistics (reference §3.3): Welford window with removal, z-score, percentile,
depth-weighted basis and impact cost, the per-symbol signal."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.phases.sentinel.stats import (
    Action,
    BasisStats,
    RollingStats,
    basis,
    depth_weighted_basis,
    impact_cost,
    vwap_for_quote,
)

# Basis samples: relative price differences, which carry no more than 10 decimals (a double cannot
# even square a subnormal, so a finer grid would test the float format, not the statistics).
finite = st.floats(min_value=-0.05, max_value=0.05, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 10))


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=150), st.integers(min_value=2, max_value=40))
def test_z_equals_a_direct_computation_over_the_window_for_any_sequence(xs: list[float], size: int) -> None:
    w = RollingStats(size)
    for x in xs:
        w.add(x)
    window = xs[-size:]
    assert list(w.values) == window
    mean = statistics.fmean(window)
    assert w.mean == pytest.approx(mean, abs=1e-12)
    sd = statistics.stdev(window) if len(window) > 1 else 0.0
    assert w.std == pytest.approx(sd, rel=1e-6, abs=1e-9)
    x = xs[-1]
    direct = 0.0 if sd == 0 or w.std == 0 else (x - mean) / sd
    assert w.zscore(x) == pytest.approx(direct, rel=1e-5, abs=1e-6)
    assert w.percentile(x) == pytest.approx(100.0 * sum(1 for v in window if v < x) / len(window))


def test_window_wraps_and_clears() -> None:
    w = RollingStats(3)
    for x in (1.0, 2.0, 3.0, 10.0):
        w.add(x)
    assert list(w.values) == [2.0, 3.0, 10.0]
    assert w.mean == pytest.approx(5.0)
    assert w.std == pytest.approx(statistics.stdev([2.0, 3.0, 10.0]))
    w.clear()
    assert len(w) == 0 and w.std == 0.0 and w.percentile(1.0) == 50.0
    w.add(4.0)
    assert w.zscore(4.0) == 0.0  # sigma 0 -> z 0
    with pytest.raises(ValueError):
        w.add(math.nan)


def test_basis_signs_and_zero_spot() -> None:
    assert basis(Decimal(100), Decimal(101)) == pytest.approx(0.01)   # contango
    assert basis(Decimal(100), Decimal(99)) == pytest.approx(-0.01)   # backwardation
    assert basis(Decimal(0), Decimal(99)) == 0.0


def test_depth_weighted_basis_and_impact_cost_from_books() -> None:
    spot_asks = [(Decimal(100), Decimal(1)), (Decimal(101), Decimal(10))]
    perp_bids = [(Decimal(102), Decimal(1)), (Decimal(101), Decimal(10))]
    # 150 quote: spot buys 1 @100 then 50/101 @101; perp sells 1 @102 then 48/101 @101
    spot_vwap = vwap_for_quote(spot_asks, Decimal(150))
    assert spot_vwap is not None and float(spot_vwap) == pytest.approx(150 / (1 + 50 / 101))
    dw = depth_weighted_basis(spot_asks, perp_bids, Decimal(150))
    perp_vwap = 150 / (1 + 48 / 101)
    assert dw == pytest.approx((perp_vwap - float(spot_vwap)) / float(spot_vwap))
    assert depth_weighted_basis(spot_asks, perp_bids, Decimal(10_000)) is None  # not enough depth
    bids = [(Decimal(99), Decimal(5))]
    assert impact_cost(bids, spot_asks, Decimal(150)) == pytest.approx((float(spot_vwap) - 99.5) / 99.5)
    assert impact_cost([], spot_asks, Decimal(150)) is None


levels = st.lists(st.tuples(st.integers(1, 50), st.integers(1, 100)), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.integers(-300, 300), levels, levels, st.integers(1, 20))
def test_depth_weighted_basis_has_the_sign_of_the_simple_basis(offset_bps: int, spot_steps: list[tuple[int, int]],
                                                               perp_steps: list[tuple[int, int]], size: int) -> None:
    """Books one tick wide around the two mids: the executable spread has the sign of the mid basis
    whenever the basis exceeds what walking the books costs."""
    spot_mid = Decimal(10_000)
    perp_mid = spot_mid * (1 + Decimal(offset_bps) / 10_000)
    asks, price = [], spot_mid
    for step, qty in spot_steps:
        price += Decimal(step) / 100
        asks.append((price, Decimal(qty)))
    bids, price = [], perp_mid
    for step, qty in perp_steps:
        price -= Decimal(step) / 100
        bids.append((price, Decimal(qty)))
    dw = depth_weighted_basis(asks, bids, Decimal(size) * spot_mid / 100)
    simple = basis(spot_mid, perp_mid)
    if dw is None:
        return
    walk = float((asks[-1][0] - spot_mid) / spot_mid + (perp_mid - bids[-1][0]) / spot_mid)
    if abs(simple) > walk:
        assert math.copysign(1, dw) == math.copysign(1, simple)
    else:
        assert dw <= simple  # buying spot and selling the perp never beats the mids


def test_signal_hold_expand_contract_and_per_symbol_isolation() -> None:
    btc = BasisStats("BTCUSDT", window=60, min_samples=10, expand_z=2.0, contract_z=0.0)
    eth = BasisStats("ETHUSDT", window=60, min_samples=10, expand_z=2.0, contract_z=0.0)
    for i in range(9):
        sig = btc.add(0.001 * (i % 3), i)
        assert sig.action == Action.HOLD  # fewer than min_samples
    for i in range(30):
        btc.add(0.001 * (i % 3), 100 + i)
    assert btc.add(0.01, 200).action == Action.EXPAND
    assert btc.add(-0.001, 201).action == Action.CONTRACT
    assert btc.add(0.0015, 202).action == Action.HOLD
    assert len(eth.window) == 0 and eth.last is None
    sig = btc.last
    assert sig is not None and 0 <= sig.confidence <= 1 and sig.samples == 42
