"""The Sentinel's decisions as pure functions: what an entry earns after costs, how large it may be,
when a held position must close, and the local market regime.

A cash-and-carry position is long spot and short the perp in equal base quantity. It earns the
basis it sold (perp rich over spot) as the spread converges, plus the funding the short perp
receives; it pays both legs' fees and slippage on the way in and out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from titan.core.money import CONTEXT
from titan.phases.sentinel.params import SentinelParams

_ZERO = Decimal(0)
_BPS = Decimal(10_000)
_HOURS_PER_YEAR = Decimal(24 * 365)


class Regime:
    STABLE = "STABLE"
    VOLATILE = "VOLATILE"
    CRASH = "CRASH"


class ExitReason:
    CONVERGENCE = "convergence"
    FUNDING_FLIP = "funding_flip"
    MAX_HOLDING = "max_holding"
    BASIS_BLOWOUT = "basis_blowout"
    REGIME_CRASH = "regime_crash"


class EntryBlock:
    """Why an EXPAND was not sent (event detail and metric label)."""

    REVERSE_CARRY = "reverse_carry_needs_spot_short"
    BASIS_TOO_SMALL = "basis_below_min"
    BASIS_DISLOCATED = "basis_above_max"
    CARRY_TOO_LOW = "carry_below_threshold"
    FUNDING_UNKNOWN = "funding_interval_unknown"
    AT_TARGET = "at_target"
    SPREAD_WIDE = "spot_spread_wide"
    CRASH = "regime_crash"
    NO_DEPTH = "no_depth"
    RESIDUAL = "unit_failed_residual"   # a hedged unit failed: its residual delta is fixed first


@dataclass(frozen=True)
class Carry:
    """The annualised economics of an entry at the executable basis ``basis``."""

    basis: Decimal              # fraction
    expected_capture: Decimal   # basis expected to be earned by convergence (fraction)
    round_trip_cost: Decimal    # fees + slippage, both legs, in and out (fraction of notional)
    basis_apr: Decimal
    funding_apr: Decimal
    total_apr: Decimal


def round_trip_cost(p: SentinelParams) -> Decimal:
    """Both legs' taker fees, in and out, plus the expected slippage on all four fills."""
    fees = 2 * (p.spot_taker_fee_bps + p.perp_taker_fee_bps)
    return (fees + 4 * p.expected_slippage_bps) / _BPS


def carry(p: SentinelParams, basis: Decimal, window_mean: Decimal, funding_apr: Decimal) -> Carry:
    """Expected annualised carry of entering now: the basis above its window mean (what convergence
    gives back) minus the round-trip cost, spread over the expected holding time, plus funding."""
    capture = max(_ZERO, basis - window_mean)
    cost = round_trip_cost(p)
    per_year = CONTEXT.divide(_HOURS_PER_YEAR, p.expected_holding_hours)
    basis_apr = (capture - cost) * per_year
    return Carry(basis, capture, cost, basis_apr, funding_apr, basis_apr + funding_apr)


def entry_block(p: SentinelParams, basis: Decimal, c: Carry | None) -> str | None:
    """Why an entry at the executable ``basis`` with carry ``c`` must not be sent (None: it may).
    A rich spot (the reverse carry) is refused before this, by the strategy."""
    bps = basis * _BPS
    if bps <= 0 or bps < p.min_basis_bps:  # nothing left to sell once both spreads are crossed
        return EntryBlock.BASIS_TOO_SMALL
    if bps > p.max_basis_bps:
        return EntryBlock.BASIS_DISLOCATED
    if c is None:
        return EntryBlock.FUNDING_UNKNOWN
    if c.total_apr < p.min_carry_apr:
        return EntryBlock.CARRY_TOO_LOW
    return None


def clip_notional(p: SentinelParams, budget_notional: Decimal, held_notional: Decimal, regime: str) -> Decimal:
    """Notional of one EXPAND: a clip of the budget (smaller when VOLATILE, none in CRASH), never
    beyond the per-symbol target. Both legs count against the budget, so each leg gets half."""
    if regime == Regime.CRASH or budget_notional <= 0:
        return _ZERO
    clip = budget_notional * p.clip_fraction / 2
    if regime == Regime.VOLATILE:
        clip *= p.volatile_clip_factor
    room = budget_notional * p.target_fraction / 2 - held_notional
    return max(_ZERO, min(clip, room))


@dataclass(frozen=True)
class Holding:
    """A held hedged position of one symbol as the strategy sees it."""

    spot_quantity: Decimal
    perp_quantity: Decimal       # signed: < 0 short
    entry_basis: float
    opened_ns: int


def exit_reason(
    p: SentinelParams,
    holding: Holding,
    basis: float,
    zscore: float | None,
    negative_funding_streak: int,
    regime: str,
    now_ns: int,
    funding_apr: Decimal | None = None,
) -> str | None:
    """Why a held position must close now, most urgent first; None to keep it. Convergence (the
    basis back at or below its mean and below the entry) closes only when the funding the short
    perp still expects does not clear ``min_carry_apr`` on its own: a converged position that keeps
    earning funding is kept (closing it would pay the exit costs and give up the carry)."""
    if regime == Regime.CRASH:
        return ExitReason.REGIME_CRASH
    blowout = float(p.blowout_bps / _BPS)
    if abs(basis - holding.entry_basis) > blowout:
        return ExitReason.BASIS_BLOWOUT
    if p.exit_on_funding_flip and negative_funding_streak >= p.funding_flip_periods:
        return ExitReason.FUNDING_FLIP
    held_ns = now_ns - holding.opened_ns
    if held_ns >= int(p.max_holding_hours * 3600) * 1_000_000_000:
        return ExitReason.MAX_HOLDING
    converged = zscore is not None and zscore <= p.contract_z and basis < holding.entry_basis
    if converged and (funding_apr is None or funding_apr < p.min_carry_apr):
        return ExitReason.CONVERGENCE
    return None


def regime(spot_prices: Sequence[float], crash_drop: float, volatile_return_sd: float) -> str:
    """CRASH when spot fell more than ``crash_drop`` from the window's high to the last price,
    VOLATILE when the sample-to-sample return deviation exceeds ``volatile_return_sd``."""
    if len(spot_prices) < 2:
        return Regime.STABLE
    high = max(spot_prices)
    if high > 0 and (high - spot_prices[-1]) / high > crash_drop:
        return Regime.CRASH
    rets = [b / a - 1 for a, b in itertools.pairwise(spot_prices) if a > 0]
    if len(rets) >= 2:
        m = sum(rets) / len(rets)
        sd = math.sqrt(sum((r - m) ** 2 for r in rets) / (len(rets) - 1))
        if sd > volatile_return_sd:
            return Regime.VOLATILE
    return Regime.STABLE
