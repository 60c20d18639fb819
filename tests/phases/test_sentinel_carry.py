"""Sentinel funding edge, entry economics, sizing, exits, regime, hedge monitor and risk limits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from titan.phases.sentinel import carry, hedge_monitor
from titan.phases.sentinel.funding import YEAR_NS, FundingState
from titan.phases.sentinel.params import SentinelParams

H = 3600 * 10**9


@pytest.mark.parametrize("hours", [8, 4, 1])
def test_funding_interval_is_the_venues_own(hours: int) -> None:
    f = FundingState()
    f.on_funding(Decimal("0.0001"), 10 * H, 10 * H + hours * H, settled=True)
    assert f.interval_ns == hours * H
    assert f.periods_per_year == Decimal(YEAR_NS) / Decimal(hours * H)
    assert f.expected_apr() == Decimal("0.0001") * Decimal(YEAR_NS) / Decimal(hours * H)


def test_funding_interval_from_settlement_spacing_and_prediction_first() -> None:
    f = FundingState()
    f.on_funding(Decimal("0.0002"), 4 * H, 0, settled=True)
    assert f.interval_ns is None and f.expected_apr() is None  # not annualisable yet
    f.on_funding(Decimal("0.0004"), 8 * H, 0, settled=True)
    assert f.interval_ns == 4 * H
    assert f.expected_rate() == Decimal("0.0003")           # mean of the settled rates
    f.on_funding(Decimal("-0.0001"), 12 * H, 12 * H, settled=False)
    assert f.expected_rate() == Decimal("-0.0001")          # the venue's prediction wins
    f.on_funding(Decimal("-0.0001"), 12 * H, 16 * H, settled=True)
    f.on_funding(Decimal("-0.0002"), 16 * H, 20 * H, settled=True)
    assert f.negative_streak() == 2
    f.on_funding(Decimal("-0.0002"), 16 * H, 20 * H, settled=True)  # a repeat counts once
    assert len(f.settled) == 4
    assert f.negative_streak(since_ns=16 * H) == 1   # only what was settled while holding counts


def test_round_trip_cost_and_carry() -> None:
    p = SentinelParams(spot_taker_fee_bps=Decimal(10), perp_taker_fee_bps=Decimal(5), expected_slippage_bps=Decimal(2),
                       expected_holding_hours=Decimal(24 * 365))
    assert carry.round_trip_cost(p) == Decimal("0.0038")
    c = carry.carry(p, Decimal("0.0060"), Decimal("0.0010"), Decimal("0.05"))
    assert c.expected_capture == Decimal("0.0050")
    assert c.basis_apr == Decimal("0.0012")   # (50 - 38) bps over one year
    assert c.total_apr == Decimal("0.0512")


def test_entry_blocks() -> None:
    p = SentinelParams(min_basis_bps=Decimal(10), max_basis_bps=Decimal(200), min_carry_apr=Decimal("0.1"))
    good = carry.Carry(Decimal("0.002"), Decimal("0.002"), Decimal(0), Decimal("0.2"), Decimal(0), Decimal("0.2"))
    assert carry.entry_block(p, Decimal("-0.002"), good) == carry.EntryBlock.BASIS_TOO_SMALL  # spreads eat the basis
    assert (
        carry.entry_block(SentinelParams(min_basis_bps=Decimal(0)), Decimal(0), good)
        == carry.EntryBlock.BASIS_TOO_SMALL
    )
    assert carry.entry_block(p, Decimal("0.0005"), good) == carry.EntryBlock.BASIS_TOO_SMALL
    assert carry.entry_block(p, Decimal("0.03"), good) == carry.EntryBlock.BASIS_DISLOCATED
    assert carry.entry_block(p, Decimal("0.002"), None) == carry.EntryBlock.FUNDING_UNKNOWN
    low = carry.Carry(Decimal("0.002"), Decimal("0.002"), Decimal(0), Decimal("0.05"), Decimal(0), Decimal("0.05"))
    assert carry.entry_block(p, Decimal("0.002"), low) == carry.EntryBlock.CARRY_TOO_LOW
    assert carry.entry_block(p, Decimal("0.002"), good) is None


def test_clip_sizing_respects_target_regime_and_budget() -> None:
    p = SentinelParams(
        target_fraction=Decimal("0.5"), clip_fraction=Decimal("0.1"), volatile_clip_factor=Decimal("0.5")
    )
    assert carry.clip_notional(p, Decimal(100_000), Decimal(0), carry.Regime.STABLE) == Decimal(5_000)      # per leg
    assert carry.clip_notional(p, Decimal(100_000), Decimal(0), carry.Regime.VOLATILE) == Decimal(2_500)
    assert carry.clip_notional(p, Decimal(100_000), Decimal(0), carry.Regime.CRASH) == 0
    # up to the target
    assert carry.clip_notional(p, Decimal(100_000), Decimal(23_000), carry.Regime.STABLE) == Decimal(2_000)
    assert carry.clip_notional(p, Decimal(100_000), Decimal(25_000), carry.Regime.STABLE) == 0  # at target: no EXPAND
    assert carry.clip_notional(p, Decimal(0), Decimal(0), carry.Regime.STABLE) == 0


def _hold(entry: float = 0.002, opened: int = 0) -> carry.Holding:
    return carry.Holding(Decimal(1), Decimal(-1), entry, opened)


def test_exit_reasons_in_order_of_urgency() -> None:
    p = SentinelParams(blowout_bps=Decimal(50), max_holding_hours=Decimal(24), funding_flip_periods=2, contract_z=0.0)
    now = 10 * H
    assert carry.exit_reason(p, _hold(), 0.002, 1.0, 0, carry.Regime.CRASH, now) == carry.ExitReason.REGIME_CRASH
    assert carry.exit_reason(p, _hold(), 0.0080, 1.0, 0, carry.Regime.STABLE, now) == carry.ExitReason.BASIS_BLOWOUT
    assert carry.exit_reason(p, _hold(), -0.0040, 1.0, 0, carry.Regime.STABLE, now) == carry.ExitReason.BASIS_BLOWOUT
    assert carry.exit_reason(p, _hold(), 0.002, 1.0, 2, carry.Regime.STABLE, now) == carry.ExitReason.FUNDING_FLIP
    assert (
        carry.exit_reason(p, _hold(opened=0), 0.002, 1.0, 1, carry.Regime.STABLE, 24 * H)
        == carry.ExitReason.MAX_HOLDING
    )
    assert carry.exit_reason(p, _hold(), 0.0005, -0.1, 0, carry.Regime.STABLE, now) == carry.ExitReason.CONVERGENCE
    # converged, but the funding alone still clears the carry threshold: keep collecting it
    assert carry.exit_reason(p, _hold(), 0.0005, -0.1, 0, carry.Regime.STABLE, now, Decimal("0.2")) is None
    assert (
        carry.exit_reason(p, _hold(), 0.0005, -0.1, 0, carry.Regime.STABLE, now, Decimal("0.05"))
        == carry.ExitReason.CONVERGENCE
    )
    # z low, basis not below entry
    assert carry.exit_reason(p, _hold(), 0.0025, -0.1, 0, carry.Regime.STABLE, now) is None
    assert carry.exit_reason(p, _hold(), 0.0015, 0.5, 0, carry.Regime.STABLE, now) is None
    assert carry.exit_reason(p, _hold(), 0.0005, None, 0, carry.Regime.STABLE, now) is None  # too few samples for a z


def test_regime_from_spot_samples() -> None:
    assert carry.regime([100.0] * 10, 0.05, 0.004) == carry.Regime.STABLE
    assert carry.regime([100.0, 101.0, 94.0], 0.05, 0.004) == carry.Regime.CRASH
    assert carry.regime([100.0, 101.0, 100.0, 101.0, 100.0], 0.05, 0.004) == carry.Regime.VOLATILE


def test_rebalance_brings_net_delta_back_within_tolerance() -> None:
    tol = Decimal("0.02")
    assert hedge_monitor.rebalance(Decimal(1), Decimal(-1), tol) is None
    assert hedge_monitor.rebalance(Decimal("1.01"), Decimal(-1), tol) is None  # 1 % of the hedge
    rebalance = hedge_monitor.Rebalance
    assert hedge_monitor.rebalance(Decimal("1.10"), Decimal(-1), tol) == rebalance("spot", True, Decimal("0.10"))
    assert hedge_monitor.rebalance(Decimal(1), Decimal("-1.2"), tol) == rebalance("perp", False, Decimal("0.2"))
    # a naked perp is bought back
    assert hedge_monitor.rebalance(Decimal(0), Decimal(-1), tol) == rebalance("perp", False, Decimal(1))
    assert hedge_monitor.rebalance(Decimal(1), Decimal(0), tol) == hedge_monitor.Rebalance("spot", True, Decimal(1))
    for spot, perp in ((Decimal("1.10"), Decimal(-1)), (Decimal(1), Decimal("-1.2")), (Decimal(0), Decimal(-1))):
        fix = hedge_monitor.rebalance(spot, perp, tol)
        assert fix is not None
        if fix.instrument == "spot":
            spot -= fix.quantity
        else:
            perp += fix.quantity
        assert hedge_monitor.net_delta(spot, perp) == 0


def test_liquidation_distance_and_leverage_for_atrs() -> None:
    liq = hedge_monitor.short_liquidation_price(Decimal(100), Decimal(2), Decimal("0.005"))
    assert liq == Decimal("149.5")
    assert hedge_monitor.liquidation_distance_atrs(liq, Decimal(100), Decimal(5)) == Decimal("9.9")
    assert hedge_monitor.liquidation_distance_atrs(liq, Decimal(100), Decimal(0)) is None
    lev = hedge_monitor.max_leverage_for(Decimal(100), Decimal(5), Decimal(8), Decimal("0.005"), Decimal(3))
    assert lev == Decimal("2.46")  # 1 / (8*5/100 + 0.005) = 2.469.. rounded down
    dist = hedge_monitor.liquidation_distance_atrs(
        hedge_monitor.short_liquidation_price(Decimal(100), lev, Decimal("0.005")), Decimal(100), Decimal(5)
    )
    assert dist is not None and dist >= 8
    assert hedge_monitor.max_leverage_for(
        Decimal(100), Decimal("0.01"), Decimal(8), Decimal("0.005"), Decimal(3)
    ) == Decimal(3)  # capped


def test_risk_limits_are_blocks_with_reason_codes() -> None:
    limits = hedge_monitor.RiskLimits(Decimal("0.02"), Decimal("0.05"), Decimal(3), Decimal("0.05"), Decimal("0.10"))
    ok = hedge_monitor.evaluate_risk(limits, Decimal(100), Decimal(20_000), Decimal(10_000), Decimal(0))
    assert (
        ok.within_limits and not ok.critical and ok.delta_ratio == Decimal("0.01") and ok.gross_leverage == Decimal(2)
    )
    warn = hedge_monitor.evaluate_risk(limits, Decimal(-300), Decimal(20_000), Decimal(10_000), Decimal("0.06"))
    assert (
        warn.violations == (hedge_monitor.RiskCode.WARNING_DELTA, hedge_monitor.RiskCode.WARNING_DRAWDOWN)
        and not warn.critical
    )
    crit = hedge_monitor.evaluate_risk(limits, Decimal(600), Decimal(40_000), Decimal(10_000), Decimal("0.2"))
    assert crit.violations == (
        hedge_monitor.RiskCode.CRITICAL_DELTA,
        hedge_monitor.RiskCode.CRITICAL_DRAWDOWN,
        hedge_monitor.RiskCode.MAX_LEVERAGE,
    )
    assert crit.critical
    assert hedge_monitor.evaluate_risk(
        limits, Decimal(0), Decimal(30_000), Decimal(10_000), Decimal(0)
    ).within_limits  # 3.0 vs 3.0 passes
    zero = hedge_monitor.evaluate_risk(limits, Decimal(1), Decimal(0), Decimal(0), Decimal(0))
    assert hedge_monitor.RiskCode.CRITICAL_DELTA in zero.violations   # zero equity carries no delta
    assert hedge_monitor.evaluate_risk(limits, Decimal(0), Decimal(0), Decimal(0), Decimal(0)).within_limits


def test_params_accept_the_sample_and_refuse_inconsistency() -> None:
    p = SentinelParams.model_validate({"minBasisBps": 10, "maxBasisBps": 200})
    assert p.min_basis_bps == 10 and p.max_basis_bps == 200
    with pytest.raises(ValueError):
        SentinelParams.model_validate({"minBasisBps": 300, "maxBasisBps": 200})
    with pytest.raises(ValueError):
        SentinelParams.model_validate({"nope": 1})
    with pytest.raises(ValueError):
        SentinelParams.model_validate({"contractZ": 3, "expandZ": 2})
