"""Unit and property tests of the Brain's pure core."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.core.clock import NS_PER_S
from titan.operator.brain import (
    BandEdges,
    BrainCore,
    BrainPolicy,
    PhaseKind,
    PhaseSpec,
    PhaseStateName,
    PolicyError,
    RiskState,
    TradingModeName,
    TradingOverride,
    allocate,
    band_level,
    base_weights,
    parse_brain_spec,
    parse_phase_spec,
    tier_cap,
)
from titan.operator.brain.breakers import BreakerKind
from titan.operator.brain.performance import modifier_for, sharpe
from titan.operator.brain.policy import DEFAULT_TIERS, PerformancePolicy
from titan.v1 import common_pb2

BANDS = BandEdges()
DAY = 86_400 * NS_PER_S
T0 = 20_000 * DAY + 3600 * NS_PER_S  # 1970+20000 days, 01:00 UTC
S, H, SE = PhaseKind.SCAVENGER, PhaseKind.HUNTER, PhaseKind.SENTINEL

PHASES = (
    PhaseSpec("scavenger", S, symbols=("BTCUSDT",)),
    PhaseSpec("hunter", H, symbols=("BTCUSDT", "ETHUSDT")),
    PhaseSpec("sentinel", SE, symbols=("BTCUSDT",)),
    PhaseSpec("ai-quant", PhaseKind.AI_QUANT),
)

equities = st.decimals(min_value=0, max_value=10_000_000, places=2, allow_nan=False, allow_infinity=False)


def weights_at(e: float | int, prev: int = 0) -> dict[PhaseKind, float]:
    level = band_level(Decimal(e), prev, BANDS)
    return base_weights(Decimal(e), level, BANDS)


# --- bands, ramps, hysteresis --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("equity", "w1", "w2", "w3"),
    [
        (1000, 1.0, 0.0, 0.0),
        (1499.99, 1.0, 0.0, 0.0),
        (1500, 0.996, 0.004, 0.0),
        (2500, 0.924, 0.076, 0.0),
        (3250, 0.600, 0.400, 0.0),
        (4000, 0.276, 0.724, 0.0),
        (5000, 0.2, 0.8, 0.0),
        (24_999, 0.2, 0.8, 0.0),
        (25_000, 0.2, 0.762, 0.038),
        (37_500, 0.2, 0.55, 0.25),
        (50_000, 0.2, 0.338, 0.462),
        (1_000_000, 0.2, 0.3, 0.5),
    ],
)
def test_band_table_matches_the_original_defaults(equity: float, w1: float, w2: float, w3: float) -> None:
    w = weights_at(equity)
    assert w[S] == pytest.approx(w1, abs=0.005)
    assert w[H] == pytest.approx(w2, abs=0.005)
    assert w[SE] == pytest.approx(w3, abs=0.005)


def test_band_edges_exact() -> None:
    assert band_level(Decimal("1499.99"), 0, BANDS) == 0
    assert band_level(Decimal(1500), 0, BANDS) == 1
    assert band_level(Decimal("24999.99"), 1, BANDS) == 1
    assert band_level(Decimal(25_000), 1, BANDS) == 2
    # the Hunter ramp ends exactly at fullP2: no jump there (the original jumped 0.796 -> 0.8)
    below = weights_at(Decimal("4999.99"))[H]
    assert weights_at(5000)[H] == 0.8
    assert 0.8 - below < 1e-5


def test_hysteresis_leaves_a_band_only_below_0_9_of_its_edge() -> None:
    # entered Hunter band at 1 500; falling to 1 351 keeps it, 1 349.99 leaves it
    assert band_level(Decimal(1351), 1, BANDS) == 1
    assert band_level(Decimal(1350), 1, BANDS) == 1
    assert band_level(Decimal("1349.99"), 1, BANDS) == 0
    assert weights_at(1400, prev=1)[H] > 0
    assert weights_at(1400, prev=0)[H] == 0
    # Sentinel: left only below 22 500
    assert band_level(Decimal(22_500), 2, BANDS) == 2
    assert band_level(Decimal("22499.99"), 2, BANDS) == 1
    assert weights_at(23_000, prev=2)[SE] > 0
    assert weights_at(23_000, prev=1)[SE] == 0
    # and a fresh start at 1 400 does not enter
    assert band_level(Decimal(1400), 0, BANDS) == 0


def test_hysteresis_in_the_core_keeps_hunter_active_until_below_0_9x() -> None:
    core, policy = BrainCore(), BrainPolicy()
    for i, (equity, hunter_state) in enumerate(
        [(1000, "Dormant"), (1600, "Active"), (1400, "Active"), (1351, "Active"), (1340, "Dormant"), (1450, "Dormant")]
    ):
        core.observe_equity("total", Decimal(equity), T0 + i * NS_PER_S)
        d = core.decide(T0 + i * NS_PER_S, policy, PHASES)
        assert d.phases["hunter"].state.value == hunter_state, equity


def test_steepness_scales_with_the_band_width() -> None:
    micro = BandEdges(start_p2=Decimal(75), full_p2=Decimal(150), start_p3=Decimal(300))
    # same shape as the default bands, just rescaled: mid-band is ~40/60, no jump at fullP2
    w_mid = base_weights(Decimal("112.5"), 1, micro)
    assert w_mid[H] == pytest.approx(0.402, abs=0.002)
    assert base_weights(Decimal("149.99"), 1, micro)[H] == pytest.approx(0.8, abs=1e-4)
    w_p3 = base_weights(Decimal(450), 2, micro)
    assert w_p3[SE] == pytest.approx(0.25, abs=1e-9)


def test_bands_must_not_overlap() -> None:
    with pytest.raises(PolicyError):
        BandEdges(start_p2=Decimal(1500), full_p2=Decimal(24_000), start_p3=Decimal(25_000))
    with pytest.raises(PolicyError):
        BandEdges(start_p2=Decimal(5000), full_p2=Decimal(1500))


@given(equities, st.integers(min_value=0, max_value=2))
def test_base_weights_sum_to_one_and_are_non_negative(e: Decimal, prev: int) -> None:
    w = base_weights(e, band_level(e, prev, BANDS), BANDS)
    assert all(v >= 0 for v in w.values())
    assert sum(w.values()) == pytest.approx(1.0, abs=1e-12)


@given(equities, equities)
def test_monotone_on_a_rising_path(a: Decimal, b: Decimal) -> None:
    """Rising equity never gives Scavenger more or Sentinel less (fresh state, no tilt)."""
    lo, hi = min(a, b), max(a, b)
    w_lo, w_hi = weights_at(lo), weights_at(hi, prev=band_level(lo, 0, BANDS))
    assert w_hi[S] <= w_lo[S] + 1e-12
    assert w_hi[SE] >= w_lo[SE] - 1e-12


@given(
    equities,
    st.lists(st.booleans(), min_size=3, max_size=3),
    st.lists(st.decimals(min_value="0.5", max_value="1.2", places=3), min_size=3, max_size=3),
)
def test_allocate_exact_sum_and_zero_for_ineligible(e: Decimal, enabled: list[bool], mods: list[Decimal]) -> None:
    phases = [
        PhaseSpec("scavenger", S, enabled=enabled[0]),
        PhaseSpec("hunter", H, enabled=enabled[1]),
        PhaseSpec("sentinel", SE, enabled=enabled[2]),
        PhaseSpec("ai-quant", PhaseKind.AI_QUANT),
    ]
    level = band_level(e, 0, BANDS)
    w = allocate(e, level, BANDS, phases, dict(zip(["scavenger", "hunter", "sentinel"], mods, strict=True)))
    assert all(isinstance(v, Decimal) and v >= 0 for v in w.values())
    assert w["ai-quant"] == 0
    total = sum(w.values(), Decimal(0))
    assert total in (Decimal(0), Decimal(1))  # exact, not approximately
    for p in phases[:3]:
        if not p.enabled:
            assert w[p.phase_id] == 0
    if enabled[0]:  # Scavenger always has a positive base weight, so something trades
        assert total == 1


@given(equities, st.decimals(min_value="0.5", max_value="1.2", places=3),
       st.decimals(min_value="0.5", max_value="1.2", places=3))
def test_tilt_is_monotone_in_the_modifier(e: Decimal, m_lo: Decimal, m_hi: Decimal) -> None:
    m_lo, m_hi = min(m_lo, m_hi), max(m_lo, m_hi)
    level = band_level(e, 0, BANDS)
    lo = allocate(e, level, BANDS, PHASES, {"hunter": m_lo})
    hi = allocate(e, level, BANDS, PHASES, {"hunter": m_hi})
    assert hi["hunter"] >= lo["hunter"] - Decimal("0.000002")


def test_disabled_phase_weight_goes_to_the_others() -> None:
    phases = [PhaseSpec("scavenger", S), PhaseSpec("hunter", H, enabled=False)]
    w = allocate(Decimal(10_000), 1, BANDS, phases)
    assert w == {"scavenger": Decimal(1), "hunter": Decimal(0)}


def test_two_phases_of_one_kind_share_its_weight() -> None:
    phases = [PhaseSpec("scavenger", S), PhaseSpec("hunter-btc", H), PhaseSpec("hunter-eth", H)]
    w = allocate(Decimal(10_000), 1, BANDS, phases)
    assert w["hunter-btc"] == w["hunter-eth"] == Decimal("0.4")
    assert w["scavenger"] == Decimal("0.2")


def test_capital_band_override() -> None:
    phases = [PhaseSpec("scavenger", S, band_max=Decimal(5000)), PhaseSpec("hunter", H)]
    assert allocate(Decimal(10_000), 1, BANDS, phases) == {"scavenger": Decimal(0), "hunter": Decimal(1)}
    assert allocate(Decimal(4000), 1, BANDS, phases)["scavenger"] > 0


# --- leverage tiers --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("equity", "cap"),
    [(0, 20), (1499.99, 20), (1500, 10), (4999, 10), (5000, 5), (24_999, 5), (25_000, 3), (49_999, 3),
     (50_000, 2), (10**9, 2)],
)
def test_tier_caps(equity: float, cap: int) -> None:
    assert tier_cap(Decimal(str(equity)), DEFAULT_TIERS) == cap


def test_leverage_is_tier_times_risk_capped_by_global_and_phase() -> None:
    phases = [PhaseSpec("scavenger", S, max_leverage=Decimal(8)), PhaseSpec("hunter", H)]
    core = BrainCore()
    core.observe_equity("total", Decimal(1000), T0)
    d = core.decide(T0, BrainPolicy(), phases)
    assert d.tier_leverage == 20
    assert d.phases["scavenger"].max_leverage == 8   # phase cap
    d = core.decide(T0, BrainPolicy(max_leverage=Decimal(6)), [PhaseSpec("scavenger", S)])
    assert d.phases["scavenger"].max_leverage == 6   # global cap
    # cautious halves: 10% daily drawdown >= 0.5 x 15%
    core.observe_equity("total", Decimal(900), T0 + 1)
    d = core.decide(T0 + 1, BrainPolicy(), [PhaseSpec("scavenger", S)])
    assert d.risk_state is RiskState.CAUTIOUS
    assert d.phases["scavenger"].max_leverage == 10  # 20 x 0.5
    assert d.phases["scavenger"].max_orders_per_minute == 5


@given(equities)
@settings(max_examples=200)
def test_leverage_never_above_caps(e: Decimal) -> None:
    core = BrainCore()
    core.observe_equity("total", e, T0)
    policy = BrainPolicy(max_leverage=Decimal(7))
    d = core.decide(T0, policy, PHASES)
    for p in d.phases.values():
        assert 0 <= p.max_leverage <= min(Decimal(7), tier_cap(e, DEFAULT_TIERS))
        assert p.max_notional <= p.notional * p.max_leverage
        assert p.max_order_notional <= p.max_notional
        assert p.notional <= e


# --- decisions, budgets, zero weight ----------------------------------------------------------------

def test_decision_budgets_and_zero_weight_blocks() -> None:
    core = BrainCore()
    core.observe_equity("total", Decimal(1000), T0)
    d = core.decide(T0, BrainPolicy(), PHASES)
    assert d.trading_mode is TradingModeName.ACTIVE and d.risk_state is RiskState.NORMAL
    sc, hu, se, ai = (d.phases[k] for k in ("scavenger", "hunter", "sentinel", "ai-quant"))
    assert sc.state is PhaseStateName.ACTIVE and sc.weight == 1 and sc.notional == 1000
    assert sc.max_leverage == 10  # tier 20x, global cap 10x
    assert sc.max_notional == 10_000 and sc.max_order_notional == 2500
    assert sc.max_daily_loss == 150
    for blocked in (hu, se):
        assert blocked.weight == 0 and blocked.state is PhaseStateName.DORMANT
        assert blocked.max_notional == 0 and blocked.max_leverage == 0 and blocked.replicas == 0
    assert ai.state is PhaseStateName.ACTIVE and ai.weight == 0 and ai.max_notional == 0 and ai.replicas == 1
    b = d.budget("hunter")
    assert b.state == common_pb2.PHASE_STATE_DORMANT and b.weight == "0" and b.max_notional == "0"
    b = d.budget("scavenger")
    assert (b.weight, b.max_notional, b.max_leverage) == ("1", "10000", "10")
    assert list(b.symbols) == ["BTCUSDT"]
    assert b.expires_at_ns == T0 + 30 * NS_PER_S and b.issued_at_ns == T0
    assert d.trading_state().mode == common_pb2.TRADING_MODE_ACTIVE


def test_budget_versions_increase() -> None:
    core = BrainCore()
    versions = [core.decide(T0 + i, BrainPolicy(), PHASES).budget_version for i in range(5)]
    assert versions == sorted(set(versions))
    restored = BrainCore.from_dict(core.to_dict())
    assert restored.decide(T0, BrainPolicy(), PHASES).budget_version > versions[-1]


def test_dormant_phase_with_exposure_keeps_its_pod() -> None:
    core = BrainCore()
    core.observe_equity("total", Decimal(1000), T0)
    core.observe_equity("hunter", Decimal(0), T0, exposure=Decimal(250))
    d = core.decide(T0, BrainPolicy(), PHASES)
    assert d.phases["hunter"].state is PhaseStateName.DORMANT
    assert d.phases["hunter"].replicas == 1
    assert d.phases["sentinel"].replicas == 0


def test_state_changes_are_reported_once() -> None:
    core = BrainCore()
    d1 = core.decide(T0, BrainPolicy(), PHASES)
    assert {c[0] for c in d1.state_changes} == {"scavenger", "hunter", "sentinel", "ai-quant"}
    assert core.decide(T0 + 1, BrainPolicy(), PHASES).state_changes == ()
    d3 = core.decide(T0 + 2, BrainPolicy(trading_state=TradingOverride.HALTED), PHASES)
    assert ("scavenger", "Active", "Halted") in d3.state_changes


# --- kill switch --------------------------------------------------------------------------------------

def test_kill_switch_halts_every_phase() -> None:
    core = BrainCore()
    core.observe_equity("total", Decimal(100_000), T0)
    d = core.decide(T0, BrainPolicy(trading_state=TradingOverride.HALTED), PHASES)
    assert d.trading_mode is TradingModeName.HALTED and d.risk_state is RiskState.HALTED
    assert {p.state for p in d.phases.values()} == {PhaseStateName.HALTED}
    assert all(p.max_leverage == 0 and p.max_notional == 0 for p in d.phases.values())
    assert d.trading_state().mode == common_pb2.TRADING_MODE_HALTED
    # Reducing throttles the trading phases
    d = core.decide(T0 + 1, BrainPolicy(trading_state=TradingOverride.REDUCING), PHASES)
    assert d.trading_mode is TradingModeName.REDUCING
    assert d.phases["hunter"].state is PhaseStateName.THROTTLED
    # and back
    d = core.decide(T0 + 2, BrainPolicy(), PHASES)
    assert d.trading_mode is TradingModeName.ACTIVE and d.phases["hunter"].state is PhaseStateName.ACTIVE


# --- breakers and the UTC day ------------------------------------------------------------------------

def test_hard_breaker_on_daily_drawdown_stays_until_manual_reset() -> None:
    core, policy = BrainCore(), BrainPolicy()
    core.observe_equity("total", Decimal(10_000), T0)
    assert core.decide(T0, policy, PHASES).trading_mode is TradingModeName.ACTIVE
    core.observe_equity("total", Decimal("8500.01"), T0 + NS_PER_S)  # 14.9999%
    d = core.decide(T0 + NS_PER_S, policy, PHASES)
    assert not d.hard_tripped and d.risk_state is RiskState.CAUTIOUS
    core.observe_equity("total", Decimal(8500), T0 + 2 * NS_PER_S)   # exactly 15%
    d = core.decide(T0 + 2 * NS_PER_S, policy, PHASES)
    assert d.hard_tripped and d.trading_mode is TradingModeName.HALTED
    (change,) = d.breaker_changes
    assert change.kind is BreakerKind.HARD and change.tripped and change.drawdown == Decimal("0.15")
    # recovering equity or a new UTC day does not clear it
    core.observe_equity("total", Decimal(10_000), T0 + DAY)
    d = core.decide(T0 + DAY, policy, PHASES)
    assert d.hard_tripped and d.breaker_changes == ()
    # survives a restart through the persisted state
    core = BrainCore.from_dict(core.to_dict())
    core.observe_equity("total", Decimal(10_000), T0 + DAY + 1)
    assert core.decide(T0 + DAY + 1, policy, PHASES).hard_tripped
    # manual reset with a token
    reset = BrainPolicy(breaker_reset_token="ops-1")
    d = core.decide(T0 + DAY + 2, reset, PHASES)
    assert not d.hard_tripped and d.trading_mode is TradingModeName.ACTIVE
    assert [(c.kind, c.tripped) for c in d.breaker_changes] == [(BreakerKind.HARD, False)]
    # the same token does not reset a later trip
    core.observe_equity("total", Decimal(100), T0 + DAY + 3)
    d = core.decide(T0 + DAY + 3, reset, PHASES)
    assert d.hard_tripped and d.breaker_changes[0].tripped
    assert core.decide(T0 + DAY + 4, reset, PHASES).hard_tripped


def test_hard_breaker_on_drawdown_from_peak() -> None:
    core, policy = BrainCore(), BrainPolicy(max_daily_drawdown=Decimal("0.5"), max_drawdown=Decimal("0.2"))
    core.observe_equity("total", Decimal(10_000), T0)
    core.decide(T0, policy, PHASES)
    for day in range(1, 5):  # lose 7% a day: never 50% in a day, but > 20% from the peak on day 4
        eq = Decimal(10_000) * (Decimal("0.93") ** day)
        core.observe_equity("total", eq, T0 + day * DAY)
        d = core.decide(T0 + day * DAY, policy, PHASES)
    assert d.hard_tripped and "peak" in d.breaker_changes[0].reason


def test_hard_breaker_on_the_equity_floor() -> None:
    core, policy = BrainCore(), BrainPolicy()
    core.observe_equity("total", Decimal("150"), T0)
    assert not core.decide(T0, policy, PHASES).hard_tripped
    core.observe_equity("total", Decimal("149.99"), T0 + DAY)  # new day: hardly any daily drawdown
    d = core.decide(T0 + DAY, policy, PHASES)
    assert d.daily_drawdown < Decimal("0.001") and d.hard_tripped and "floor" in d.breaker_changes[0].reason


def test_daily_start_equity_rolls_at_utc_midnight() -> None:
    core, policy = BrainCore(), BrainPolicy()
    midnight = 20_001 * DAY
    core.observe_equity("total", Decimal(10_000), midnight - 3600 * NS_PER_S)
    core.decide(midnight - 3600 * NS_PER_S, policy, PHASES)
    core.observe_equity("total", Decimal(9000), midnight - NS_PER_S)   # -10% yesterday
    d = core.decide(midnight - NS_PER_S, policy, PHASES)
    assert d.day_start_equity == 10_000 and d.daily_drawdown == Decimal("0.1")
    # at 00:00 UTC the day starts at the last equity seen: 9 000
    d = core.decide(midnight, policy, PHASES)
    assert d.day_start_equity == 9000 and d.daily_drawdown == 0
    # so a further 10% today (8 100) is a 10% daily drawdown, not 19% -> no HARD trip
    core.observe_equity("total", Decimal(8100), midnight + NS_PER_S)
    d = core.decide(midnight + NS_PER_S, policy, PHASES)
    assert d.daily_drawdown == Decimal("0.1") and not d.hard_tripped


def test_phase_pnl_today_rolls_too() -> None:
    core = BrainCore()
    midnight = 20_001 * DAY
    core.observe_equity("scavenger", Decimal(0), midnight - 10, realized=Decimal(50))
    core.observe_equity("scavenger", Decimal(0), midnight - 5, realized=Decimal(80))
    d = core.decide(midnight - 1, BrainPolicy(), PHASES)
    assert d.phases["scavenger"].pnl_today == 30
    core.observe_equity("scavenger", Decimal(0), midnight + 5, realized=Decimal(70), unrealized=Decimal(-5))
    d = core.decide(midnight + 6, BrainPolicy(), PHASES)
    assert d.phases["scavenger"].pnl_today == -15
    assert d.phases["scavenger"].pnl_realized == 70


def test_soft_breaker_after_three_losses_within_an_hour_and_cooldown() -> None:
    core, policy = BrainCore(), BrainPolicy()
    core.observe_equity("total", Decimal(10_000), T0)
    core.decide(T0, policy, PHASES)
    minute = 60 * NS_PER_S
    core.observe_trade("hunter", Decimal(-10), T0 + minute, policy)
    core.observe_trade("hunter", Decimal(5), T0 + 2 * minute, policy)      # a win ends the streak
    core.observe_trade("hunter", Decimal(-10), T0 + 3 * minute, policy)
    core.observe_trade("scavenger", Decimal(-1), T0 + 4 * minute, policy)
    d = core.decide(T0 + 4 * minute, policy, PHASES)
    assert not d.soft_active and d.breaker_changes == ()
    core.observe_trade("hunter", Decimal(-3), T0 + 5 * minute, policy)     # third loss in a row
    d = core.decide(T0 + 5 * minute, policy, PHASES)
    assert d.soft_active and d.risk_state is RiskState.CAUTIOUS
    assert [(c.kind, c.tripped) for c in d.breaker_changes] == [(BreakerKind.SOFT, True)]
    assert d.trading_mode is TradingModeName.ACTIVE
    assert d.phases["scavenger"].state is PhaseStateName.THROTTLED
    # still paused 29 minutes later, released at 30
    assert core.decide(T0 + 34 * minute, policy, PHASES).soft_active
    d = core.decide(T0 + 35 * minute, policy, PHASES)
    assert not d.soft_active and [(c.kind, c.tripped) for c in d.breaker_changes] == [(BreakerKind.SOFT, False)]
    assert d.phases["scavenger"].state is PhaseStateName.ACTIVE


def test_soft_breaker_ignores_losses_spread_over_more_than_the_window() -> None:
    core, policy = BrainCore(), BrainPolicy()
    for i in range(3):
        core.observe_trade("hunter", Decimal(-1), T0 + i * 40 * 60 * NS_PER_S, policy)  # 0, 40, 80 min
    assert not core.decide(T0 + 80 * 60 * NS_PER_S, policy, PHASES).soft_active


def test_stale_equity_is_cautious() -> None:
    core, policy = BrainCore(), BrainPolicy()
    core.observe_equity("total", Decimal(10_000), T0)
    assert core.decide(T0 + 299 * NS_PER_S, policy, PHASES).risk_state is RiskState.NORMAL
    d = core.decide(T0 + 301 * NS_PER_S, policy, PHASES)
    assert d.risk_state is RiskState.CAUTIOUS and "stale" in d.trading_reason


@given(st.lists(st.tuples(st.decimals(min_value=1, max_value=1_000_000, places=2),
                          st.integers(min_value=0, max_value=DAY)), min_size=1, max_size=30))
@settings(max_examples=100)
def test_hard_breaker_trips_iff_a_limit_was_crossed(path: list[tuple[Decimal, int]]) -> None:
    """Replaying any equity path: a HARD trip happens exactly when a limit is crossed, and once
    tripped it stays tripped (no reset token)."""
    core, policy = BrainCore(), BrainPolicy()
    ts = T0
    tripped = False
    for equity, dt in path:
        ts += dt
        core.observe_equity("total", equity, ts)
        d = core.decide(ts, policy, PHASES)
        crossed = (d.daily_drawdown >= Decimal("0.15") or d.peak_drawdown >= Decimal("0.30")
                   or equity < 150)
        tripped = tripped or crossed
        assert d.hard_tripped == tripped
        assert (d.trading_mode is TradingModeName.HALTED) == tripped
        weights = [p.weight for p in d.phases.values()]
        assert sum(weights, Decimal(0)) == 1 and min(weights) >= 0


# --- performance tilt -------------------------------------------------------------------------------

def test_sharpe_and_modifier() -> None:
    assert sharpe([1.0]) == 0.0
    assert sharpe([2.0, 2.0]) == 3.0 and sharpe([-1.0, -1.0]) == -3.0
    p = PerformancePolicy()
    assert modifier_for(10.0, p) == Decimal("1.2")
    assert modifier_for(-10.0, p) == Decimal("0.5")
    assert modifier_for(0.0, p) == 1
    assert modifier_for(1.0, p) == Decimal("1.1")


@given(st.floats(min_value=-50, max_value=50), st.floats(min_value=-50, max_value=50))
def test_modifier_monotone_and_bounded(a: float, b: float) -> None:
    p = PerformancePolicy()
    lo, hi = sorted((a, b))
    assert Decimal("0.5") <= modifier_for(lo, p) <= modifier_for(hi, p) <= Decimal("1.2")


def test_performance_tilt_is_applied_to_the_allocation() -> None:
    policy = BrainPolicy()
    core = BrainCore()
    core.observe_equity("total", Decimal(10_000), T0)
    base = core.decide(T0, policy, PHASES).phases
    assert base["scavenger"].weight == Decimal("0.2") and base["scavenger"].modifier == 1
    for i in range(12):  # Scavenger loses steadily: Sharpe < 0 -> modifier 0.5
        core.observe_trade("scavenger", Decimal(-1 - (i % 3)), T0 + i * 3 * 3600 * NS_PER_S, policy)
    t = T0 + 40 * 3600 * NS_PER_S
    core.observe_equity("total", Decimal(10_000), t)
    tilted = core.decide(t, policy, PHASES).phases
    assert tilted["scavenger"].modifier == Decimal("0.5")
    assert tilted["scavenger"].weight == Decimal("0.111111")  # 0.1 / (0.1 + 0.8)
    assert tilted["scavenger"].weight + tilted["hunter"].weight == 1
    # trades age out of the 7-day window -> neutral again
    later = T0 + 8 * DAY
    core.observe_equity("total", Decimal(10_000), later)
    assert core.decide(later, policy, PHASES).phases["scavenger"].weight == Decimal("0.2")


# --- spec parsing ------------------------------------------------------------------------------------

def test_parse_specs() -> None:
    policy = parse_brain_spec({
        "tradingState": "Halted",
        "riskPolicy": {"maxDailyDrawdown": 0.1, "minEquity": 200, "maxLeverage": 5},
        "bandEdges": {"startP2": 75, "fullP2": 150, "startP3": 300},
        "leverageTiers": [{"below": 150, "maxLeverage": 10}, {"maxLeverage": 3}],
    })
    assert policy.trading_state is TradingOverride.HALTED
    assert policy.max_daily_drawdown == Decimal("0.1") and policy.min_equity == 200
    assert policy.bands.start_p3 == 300 and policy.tiers[-1].below is None
    assert parse_brain_spec(None) == BrainPolicy()
    phase = parse_phase_spec("hunter", {"phase": "hunter", "symbols": ["BTCUSDT"], "maxLeverage": 3,
                                        "capitalBand": {"minEquity": 1000}, "params": {"x": 1}})
    assert phase.kind is H and phase.max_leverage == 3 and phase.band_min == 1000 and phase.params == {"x": 1}


@pytest.mark.parametrize(
    "spec",
    [
        {"tradingState": "Off"},
        {"riskPolicy": {"maxDailyDrawdown": 1.5}},
        {"riskPolicy": {"maxLeverage": -1}},
        {"riskPolicy": {"consecutiveLosses": 0}},
        {"bandEdges": {"startP2": 6000}},
        {"leverageTiers": [{"below": 5000, "maxLeverage": 5}, {"below": 1000, "maxLeverage": 3}, {"maxLeverage": 2}]},
        {"leverageTiers": [{"below": 5000, "maxLeverage": 5}]},
        {"riskPolicy": {"minEquity": "lots"}},
    ],
)
def test_bad_brain_specs_are_rejected(spec: dict[str, object]) -> None:
    with pytest.raises(PolicyError):
        parse_brain_spec(spec)


@pytest.mark.parametrize(
    "spec",
    [{"phase": "gambler"}, {"phase": "hunter", "maxLeverage": 500},
     {"phase": "hunter", "capitalBand": {"minEquity": 10, "maxEquity": 5}}, {"phase": "hunter", "symbols": "BTC"}],
)
def test_bad_phase_specs_are_rejected(spec: dict[str, object]) -> None:
    with pytest.raises(PolicyError):
        parse_phase_spec("x", spec)


def test_initial_equity_placeholder_is_not_a_baseline() -> None:
    """spec.initialEquity is used until execution reports equity, but never as the day start."""
    core, policy = BrainCore(), BrainPolicy()
    d = core.decide(T0, policy, PHASES)
    assert d.equity == 1000 and d.phases["scavenger"].notional == 1000
    core.observe_equity("total", Decimal(10_000), T0 + 1)
    core.decide(T0 + 1, policy, PHASES)
    core.observe_equity("total", Decimal(8000), T0 + 2)   # -20% from the first real equity
    d = core.decide(T0 + 2, policy, PHASES)
    assert d.day_start_equity == 10_000 and d.hard_tripped


def test_restart_keeps_equity_and_open_exposure() -> None:
    """A restarted Brain must not fall back to spec.initialEquity (and scale Dormant phases that
    still hold positions to zero) before execution reports again."""
    core, policy = BrainCore(), BrainPolicy()
    core.observe_equity("total", Decimal(30_000), T0)
    core.observe_equity("hunter", Decimal(12_000), T0, realized=Decimal(40), exposure=Decimal(900))
    before = core.decide(T0, policy, PHASES)
    assert before.band_level == 2
    restored = BrainCore.from_dict(core.to_dict())
    after = restored.decide(T0 + NS_PER_S, policy, PHASES)
    assert after.equity == 30_000 and after.band_level == 2
    assert after.phases["hunter"].weight == before.phases["hunter"].weight
    assert after.phases["hunter"].pnl_realized == 40 and after.phases["hunter"].equity == 12_000
    # disabling the phase makes it Dormant, but its pod stays while it holds exposure
    phases = [PhaseSpec("hunter", H, enabled=False), *[p for p in PHASES if p.phase_id != "hunter"]]
    d = restored.decide(T0 + 2 * NS_PER_S, policy, phases)
    assert d.phases["hunter"].state is PhaseStateName.DORMANT and d.phases["hunter"].replicas == 1
