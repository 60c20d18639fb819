"""Sentinel funding edge, entry economics, sizing, exits, regime, hedge monitor and risk limits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from titan.phases.sentinel import carry as cy
from titan.phases.sentinel import hedge_monitor as hm
from titan.phases.sentinel.funding import YEAR_NS, FundingState
from titan.phases.sentinel.params import SentinelParams

H = 3600 * 10**9
D = Decimal


@pytest.mark.parametrize("hours", [8, 4, 1])
def test_funding_interval_is_the_venues_own(hours: int) -> None:
    f = FundingState()
    f.on_funding(D("0.0001"), 10 * H, 10 * H + hours * H, settled=True)
    assert f.interval_ns == hours * H
    assert f.periods_per_year == D(YEAR_NS) / D(hours * H)
    assert f.expected_apr() == D("0.0001") * D(YEAR_NS) / D(hours * H)


def test_funding_interval_from_settlement_spacing_and_prediction_first() -> None:
    f = FundingState()
    f.on_funding(D("0.0002"), 4 * H, 0, settled=True)
    assert f.interval_ns is None and f.expected_apr() is None  # not annualisable yet
    f.on_funding(D("0.0004"), 8 * H, 0, settled=True)
    assert f.interval_ns == 4 * H
    assert f.expected_rate() == D("0.0003")           # mean of the settled rates
    f.on_funding(D("-0.0001"), 12 * H, 12 * H, settled=False)
    assert f.expected_rate() == D("-0.0001")          # the venue's prediction wins
    f.on_funding(D("-0.0001"), 12 * H, 16 * H, settled=True)
    f.on_funding(D("-0.0002"), 16 * H, 20 * H, settled=True)
    assert f.negative_streak() == 2
    f.on_funding(D("-0.0002"), 16 * H, 20 * H, settled=True)  # a repeat counts once
    assert len(f.settled) == 4
    assert f.negative_streak(since_ns=16 * H) == 1   # only what was settled while holding counts


def test_round_trip_cost_and_carry() -> None:
    p = SentinelParams(spot_taker_fee_bps=D(10), perp_taker_fee_bps=D(5), expected_slippage_bps=D(2),
                       expected_holding_hours=D(24 * 365))
    assert cy.round_trip_cost(p) == D("0.0038")
    c = cy.carry(p, D("0.0060"), D("0.0010"), D("0.05"))
    assert c.expected_capture == D("0.0050")
    assert c.basis_apr == D("0.0012")   # (50 - 38) bps over one year
    assert c.total_apr == D("0.0512")


def test_entry_blocks() -> None:
    p = SentinelParams(min_basis_bps=D(10), max_basis_bps=D(200), min_carry_apr=D("0.1"))
    good = cy.Carry(D("0.002"), D("0.002"), D(0), D("0.2"), D(0), D("0.2"))
    assert cy.entry_block(p, D("-0.002"), good) == cy.EntryBlock.BASIS_TOO_SMALL   # spreads eat the basis
    assert cy.entry_block(SentinelParams(min_basis_bps=D(0)), D(0), good) == cy.EntryBlock.BASIS_TOO_SMALL
    assert cy.entry_block(p, D("0.0005"), good) == cy.EntryBlock.BASIS_TOO_SMALL
    assert cy.entry_block(p, D("0.03"), good) == cy.EntryBlock.BASIS_DISLOCATED
    assert cy.entry_block(p, D("0.002"), None) == cy.EntryBlock.FUNDING_UNKNOWN
    low = cy.Carry(D("0.002"), D("0.002"), D(0), D("0.05"), D(0), D("0.05"))
    assert cy.entry_block(p, D("0.002"), low) == cy.EntryBlock.CARRY_TOO_LOW
    assert cy.entry_block(p, D("0.002"), good) is None


def test_clip_sizing_respects_target_regime_and_budget() -> None:
    p = SentinelParams(target_fraction=D("0.5"), clip_fraction=D("0.1"), volatile_clip_factor=D("0.5"))
    assert cy.clip_notional(p, D(100_000), D(0), cy.Regime.STABLE) == D(5_000)      # per leg
    assert cy.clip_notional(p, D(100_000), D(0), cy.Regime.VOLATILE) == D(2_500)
    assert cy.clip_notional(p, D(100_000), D(0), cy.Regime.CRASH) == 0
    assert cy.clip_notional(p, D(100_000), D(23_000), cy.Regime.STABLE) == D(2_000)  # up to the target
    assert cy.clip_notional(p, D(100_000), D(25_000), cy.Regime.STABLE) == 0         # at target: no EXPAND
    assert cy.clip_notional(p, D(0), D(0), cy.Regime.STABLE) == 0


def _hold(entry: float = 0.002, opened: int = 0) -> cy.Holding:
    return cy.Holding(D(1), D(-1), entry, opened)


def test_exit_reasons_in_order_of_urgency() -> None:
    p = SentinelParams(blowout_bps=D(50), max_holding_hours=D(24), funding_flip_periods=2, contract_z=0.0)
    now = 10 * H
    assert cy.exit_reason(p, _hold(), 0.002, 1.0, 0, cy.Regime.CRASH, now) == cy.ExitReason.REGIME_CRASH
    assert cy.exit_reason(p, _hold(), 0.0080, 1.0, 0, cy.Regime.STABLE, now) == cy.ExitReason.BASIS_BLOWOUT
    assert cy.exit_reason(p, _hold(), -0.0040, 1.0, 0, cy.Regime.STABLE, now) == cy.ExitReason.BASIS_BLOWOUT
    assert cy.exit_reason(p, _hold(), 0.002, 1.0, 2, cy.Regime.STABLE, now) == cy.ExitReason.FUNDING_FLIP
    assert cy.exit_reason(p, _hold(opened=0), 0.002, 1.0, 1, cy.Regime.STABLE, 24 * H) == cy.ExitReason.MAX_HOLDING
    assert cy.exit_reason(p, _hold(), 0.0005, -0.1, 0, cy.Regime.STABLE, now) == cy.ExitReason.CONVERGENCE
    # converged, but the funding alone still clears the carry threshold: keep collecting it
    assert cy.exit_reason(p, _hold(), 0.0005, -0.1, 0, cy.Regime.STABLE, now, D("0.2")) is None
    assert cy.exit_reason(p, _hold(), 0.0005, -0.1, 0, cy.Regime.STABLE, now, D("0.05")) == cy.ExitReason.CONVERGENCE
    assert cy.exit_reason(p, _hold(), 0.0025, -0.1, 0, cy.Regime.STABLE, now) is None  # z low, basis not below entry
    assert cy.exit_reason(p, _hold(), 0.0015, 0.5, 0, cy.Regime.STABLE, now) is None
    assert cy.exit_reason(p, _hold(), 0.0005, None, 0, cy.Regime.STABLE, now) is None  # too few samples for a z


def test_regime_from_spot_samples() -> None:
    assert cy.regime([100.0] * 10, 0.05, 0.004) == cy.Regime.STABLE
    assert cy.regime([100.0, 101.0, 94.0], 0.05, 0.004) == cy.Regime.CRASH
    assert cy.regime([100.0, 101.0, 100.0, 101.0, 100.0], 0.05, 0.004) == cy.Regime.VOLATILE


def test_rebalance_brings_net_delta_back_within_tolerance() -> None:
    tol = D("0.02")
    assert hm.rebalance(D(1), D(-1), tol) is None
    assert hm.rebalance(D("1.01"), D(-1), tol) is None                          # 1 % of the hedge
    assert hm.rebalance(D("1.10"), D(-1), tol) == hm.Rebalance("spot", True, D("0.10"))
    assert hm.rebalance(D(1), D("-1.2"), tol) == hm.Rebalance("perp", False, D("0.2"))
    assert hm.rebalance(D(0), D(-1), tol) == hm.Rebalance("perp", False, D(1))  # a naked perp is bought back
    assert hm.rebalance(D(1), D(0), tol) == hm.Rebalance("spot", True, D(1))
    for spot, perp in ((D("1.10"), D(-1)), (D(1), D("-1.2")), (D(0), D(-1))):
        fix = hm.rebalance(spot, perp, tol)
        assert fix is not None
        if fix.instrument == "spot":
            spot -= fix.quantity
        else:
            perp += fix.quantity
        assert hm.net_delta(spot, perp) == 0


def test_liquidation_distance_and_leverage_for_atrs() -> None:
    liq = hm.short_liquidation_price(D(100), D(2), D("0.005"))
    assert liq == D("149.5")
    assert hm.liquidation_distance_atrs(liq, D(100), D(5)) == D("9.9")
    assert hm.liquidation_distance_atrs(liq, D(100), D(0)) is None
    lev = hm.max_leverage_for(D(100), D(5), D(8), D("0.005"), D(3))
    assert lev == D("2.46")   # 1 / (8*5/100 + 0.005) = 2.469.. rounded down
    dist = hm.liquidation_distance_atrs(hm.short_liquidation_price(D(100), lev, D("0.005")), D(100), D(5))
    assert dist is not None and dist >= 8
    assert hm.max_leverage_for(D(100), D("0.01"), D(8), D("0.005"), D(3)) == D(3)  # capped


def test_risk_limits_are_blocks_with_reason_codes() -> None:
    limits = hm.RiskLimits(D("0.02"), D("0.05"), D(3), D("0.05"), D("0.10"))
    ok = hm.evaluate_risk(limits, D(100), D(20_000), D(10_000), D(0))
    assert ok.within_limits and not ok.critical and ok.delta_ratio == D("0.01") and ok.gross_leverage == D(2)
    warn = hm.evaluate_risk(limits, D(-300), D(20_000), D(10_000), D("0.06"))
    assert warn.violations == (hm.RiskCode.WARNING_DELTA, hm.RiskCode.WARNING_DRAWDOWN) and not warn.critical
    crit = hm.evaluate_risk(limits, D(600), D(40_000), D(10_000), D("0.2"))
    assert crit.violations == (hm.RiskCode.CRITICAL_DELTA, hm.RiskCode.CRITICAL_DRAWDOWN, hm.RiskCode.MAX_LEVERAGE)
    assert crit.critical
    assert hm.evaluate_risk(limits, D(0), D(30_000), D(10_000), D(0)).within_limits  # 3.0 vs 3.0 passes
    zero = hm.evaluate_risk(limits, D(1), D(0), D(0), D(0))
    assert hm.RiskCode.CRITICAL_DELTA in zero.violations   # zero equity carries no delta
    assert hm.evaluate_risk(limits, D(0), D(0), D(0), D(0)).within_limits


def test_params_accept_the_sample_and_refuse_inconsistency() -> None:
    p = SentinelParams.model_validate({"minBasisBps": 10, "maxBasisBps": 200})
    assert p.min_basis_bps == 10 and p.max_basis_bps == 200
    with pytest.raises(ValueError):
        SentinelParams.model_validate({"minBasisBps": 300, "maxBasisBps": 200})
    with pytest.raises(ValueError):
        SentinelParams.model_validate({"nope": 1})
    with pytest.raises(ValueError):
        SentinelParams.model_validate({"contractZ": 3, "expandZ": 2})
