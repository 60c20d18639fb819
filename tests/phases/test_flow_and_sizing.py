"""Velocity, acceleration, CVD, burst windows, lead/lag; quarter-Kelly and the order type."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.phases.scavenger import sizing
from titan.phases.scavenger.flow import CVD, BurstCounter, LeadLag, Velocity
from titan.v1 import trading_pb2

S = 10**9
MS = 10**6


# --- velocity / acceleration ------------------------------------------------------------------
def test_velocity_over_the_last_five_seconds() -> None:
    v = Velocity()
    assert v.velocity() == 0
    v.record(0, 100.0)
    assert v.velocity() == 0  # one point
    v.record(2 * S, 101.0)
    assert v.velocity() == pytest.approx(0.01 / 2)
    v.record(8 * S, 101.0)  # window is [3 s, 8 s]: only this point... plus none older
    assert v.velocity() == 0
    v.record(10 * S, 102.01)
    assert v.velocity() == pytest.approx(0.01 / 2)


def test_velocity_history_is_pruned_to_ten_seconds_and_negative_moves_are_absolute() -> None:
    v = Velocity()
    for i in range(30):
        v.record(i * S, 100.0 - i)
    assert v.points[0][0] == 19 * S
    assert v.velocity() > 0


def test_velocity_zero_when_all_points_share_a_timestamp() -> None:
    v = Velocity()
    v.record(S, 100.0)
    v.record(S, 101.0)
    assert v.velocity() == 0


def test_acceleration_positive_when_the_move_speeds_up() -> None:
    v = Velocity()
    for ts, p in [(0, 100.0), (S, 100.1), (2 * S, 100.2), (3 * S, 100.6)]:
        v.record(ts, p)
    assert v.acceleration() > 0
    slowing = Velocity()
    for ts, p in [(0, 100.0), (S, 100.1), (2 * S, 100.6), (3 * S, 100.7)]:
        slowing.record(ts, p)
    assert slowing.acceleration() < 0


def test_acceleration_needs_four_distinct_timestamps() -> None:
    v = Velocity()
    for ts, p in [(0, 100.0), (S, 100.1), (S, 100.2), (2 * S, 100.9), (2 * S, 101.0)]:
        v.record(ts, p)
    assert v.acceleration() == 0  # only three distinct timestamps
    v.record(3 * S, 103.0)
    assert v.acceleration() > 0


# --- CVD -------------------------------------------------------------------------------------
def test_cvd_windows_are_inclusive_and_quantity_based() -> None:
    c = CVD()
    c.record(0, Decimal("1"), True)
    c.record(100 * S, Decimal("2"), False)
    c.record(200 * S, Decimal("5"), True)
    c.record(300 * S, Decimal("0.5"), True)
    assert c.cvd(100) == Decimal("5.5")       # [200 s, 300 s]
    assert c.cvd(100, 100) == Decimal("3")    # [100 s, 200 s]
    assert c.cvd(1000) == Decimal("4.5")
    c.record(700 * S, Decimal("1"), False)    # prunes everything before 100 s
    assert c.cvd(10_000) == Decimal("-2") + Decimal("5.5") - 1
    assert CVD().cvd(60) == 0


# --- burst windows ------------------------------------------------------------------------------
def _fill(counter: BurstCounter, n: int, start: int = 0, buy: bool = True) -> None:
    for i in range(n):
        assert counter.add(start + i * MS, Decimal("0.1"), buy, Decimal(100)) is None


def test_exactly_min_trades_in_the_window_pass() -> None:
    c = BurstCounter(100 * MS, 50)
    _fill(c, 50)
    closed, burst = c.close_due(100 * MS)
    assert closed and burst is not None and burst.count == 50
    assert burst.micro_cvd == Decimal("5.0") and burst.quality == 1


def test_one_trade_short_fails() -> None:
    c = BurstCounter(100 * MS, 50)
    _fill(c, 49)
    assert c.close_due(100 * MS) == (True, None)


def test_window_is_not_closed_before_its_end_and_resets_after() -> None:
    c = BurstCounter(100 * MS, 50)
    _fill(c, 60)
    assert c.close_due(99 * MS) == (False, None)
    burst = c.add(100 * MS, Decimal("0.1"), False, Decimal(101))  # closes [0, 100) and opens a new window
    assert burst is not None and burst.count == 60
    assert c.start_ns == 100 * MS and c.count == 1 and c.sell_volume == Decimal("0.1")
    assert c.close_due(200 * MS) == (True, None)  # the new window had one trade
    assert c.start_ns is None and c.count == 0


@given(st.integers(min_value=1, max_value=120), st.integers(min_value=1, max_value=120))
def test_burst_passes_iff_count_reaches_the_minimum(n: int, minimum: int) -> None:
    c = BurstCounter(100 * MS, minimum)
    for i in range(n):
        c.add(i * 100 * MS // max(n, 1), Decimal("1"), i % 3 != 0, Decimal(100))
    _closed, burst = c.close_due(10 * S)
    assert (burst is not None) == (n >= minimum)


def test_burst_quality() -> None:
    c = BurstCounter(100 * MS, 1)
    c.add(0, Decimal("3"), True, Decimal(1))
    c.add(1, Decimal("1"), False, Decimal(1))
    _c, burst = c.close_due(100 * MS)
    assert burst is not None and burst.micro_cvd == 2 and burst.volume == 4 and burst.quality == Decimal("0.5")


# --- lead/lag ------------------------------------------------------------------------------------
def test_lead_lag_detects_the_leading_feed() -> None:
    import math

    def path(k: int) -> float:
        return 100 + math.sin(k / 3) + 0.3 * math.sin(k * 1.7)

    ll = LeadLag()
    for k in range(120):  # 12 s of 100 ms buckets; B copies A one bucket later
        ll.record("A", k * 100 * MS, path(k))
        ll.record("B", k * 100 * MS, path(k - 1))
    assert ll.leader == "A"
    ll2 = LeadLag()
    for k in range(120):
        ll2.record("B", k * 100 * MS, path(k))
        ll2.record("A", k * 100 * MS, path(k - 1))
    assert ll2.leader == "B"


# --- quarter-Kelly ---------------------------------------------------------------------------------
def test_kelly_worked_example() -> None:
    assert sizing.kelly_margin(Decimal(1000), Decimal("0.9"), Decimal(3)) == Decimal("216.67")


@pytest.mark.parametrize(
    ("conf", "expected"),
    [("0.8", "183.33"), ("0.95", "233.33"), ("0.5", "83.33"), ("0.25", "0")],  # 0.25 → Kelly 0
)
def test_kelly_cases(conf: str, expected: str) -> None:
    assert sizing.kelly_margin(Decimal(1000), Decimal(conf), Decimal(3)) == Decimal(expected)


def test_kelly_negative_is_zero_and_invalid_inputs_give_zero() -> None:
    assert sizing.kelly_margin(Decimal(1000), Decimal("0.1"), Decimal(1)) == 0
    assert sizing.kelly_margin(Decimal(0), Decimal("0.9"), Decimal(3)) == 0
    assert sizing.kelly_margin(Decimal(-5), Decimal("0.9"), Decimal(3)) == 0
    assert sizing.kelly_margin(Decimal(1000), Decimal(0), Decimal(3)) == 0
    assert sizing.kelly_margin(Decimal(1000), Decimal("1.01"), Decimal(3)) == 0
    assert sizing.kelly_margin(Decimal(1000), Decimal("0.9"), Decimal(0)) == 0


def test_kelly_cap_at_max_position_percent() -> None:
    # W = 1, R large → Kelly 1 → quarter 25%; a 10% cap binds.
    assert sizing.kelly_margin(Decimal(1000), Decimal(1), Decimal(3), Decimal("0.1")) == Decimal("100.00")


@given(st.decimals(min_value=0, max_value=10**7, places=2), st.decimals(min_value=0, max_value=1, places=3),
       st.decimals(min_value=Decimal("0.1"), max_value=20, places=2))
def test_kelly_bounded_by_the_cap(equity: Decimal, conf: Decimal, r: Decimal) -> None:
    size = sizing.kelly_margin(equity, conf, r)
    assert 0 <= size <= (equity * Decimal("0.25")).quantize(Decimal("0.01")) + Decimal("0.01")
    assert size == size.quantize(Decimal("0.01"))


def test_leverage_and_units_helpers() -> None:
    assert sizing.notional(Decimal("216.67"), Decimal(5)) == Decimal("1083.35")
    assert sizing.notional(Decimal("216.67"), Decimal(0)) == 0
    assert sizing.units(Decimal(1000), Decimal(3)) == Decimal("333.33333333")
    assert sizing.units(Decimal(1000), Decimal(0)) == 0


# --- order type ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("v", "tier"),
    [(0.0, "limit"), (0.001, "limit"), (0.0010001, "aggressive_limit"), (0.005, "aggressive_limit"),
     (0.0050001, "market"), (-0.006, "market"), (-0.002, "aggressive_limit")],
)
def test_order_type_boundaries(v: float, tier: str) -> None:
    assert sizing.order_tier(v, 0.005, 0.001) == tier


@given(st.floats(min_value=-1, max_value=1, allow_nan=False), st.floats(min_value=-1, max_value=1, allow_nan=False))
def test_order_tier_is_monotonic_in_abs_velocity(a: float, b: float) -> None:
    rank = {"limit": 0, "aggressive_limit": 1, "market": 2}
    ta, tb = sizing.order_tier(a, 0.005, 0.001), sizing.order_tier(b, 0.005, 0.001)
    if abs(a) <= abs(b):
        assert rank[ta] <= rank[tb]
    assert sizing.order_tier(a, 0.005, 0.001) == ta  # deterministic
    assert sizing.order_tier(-a, 0.005, 0.001) == ta  # sign does not matter


def test_plan_order_prices_and_regime_scaling() -> None:
    long_aggr = sizing.plan_order(0.002, Decimal(100), True, 0.005, 0.001, Decimal("0.002"), Decimal("0.0001"))
    assert long_aggr.order_type == trading_pb2.ORDER_TYPE_LIMIT and long_aggr.limit_price == Decimal("100.2")
    short_passive = sizing.plan_order(0.0, Decimal(100), False, 0.005, 0.001, Decimal("0.002"), Decimal("0.0001"))
    assert short_passive.limit_price == Decimal("99.99")
    market = sizing.plan_order(0.01, Decimal(100), True, 0.005, 0.001, Decimal("0.002"), Decimal("0.0001"))
    assert market.order_type == trading_pb2.ORDER_TYPE_MARKET and market.limit_price is None
    assert sizing.velocity_thresholds(0.005, 0.001, "HIGH_VOL") == pytest.approx((0.0075, 0.0015))
    assert sizing.velocity_thresholds(0.005, 0.001, "LOW_VOL") == pytest.approx((0.004, 0.0008))
    assert sizing.velocity_thresholds(0.005, 0.001, "") == (0.005, 0.001)
