"""The hedge monitor: net delta per symbol, the rebalance that brings it back within tolerance, the
perp's distance to liquidation in ATRs, and the portfolio risk limits of reference §3.7 as blocks
with reason codes. Pure functions over Decimals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from titan.core.money import CONTEXT

_ZERO = Decimal(0)
_ONE = Decimal(1)


class RiskCode:
    """Reason codes of the risk limits (metric labels). WARNING_* block entries; CRITICAL_* also
    force the position down."""

    WARNING_DELTA = "warning_delta"
    CRITICAL_DELTA = "critical_delta"
    WARNING_DRAWDOWN = "warning_drawdown"
    CRITICAL_DRAWDOWN = "critical_drawdown"
    MAX_LEVERAGE = "max_leverage"
    LIQUIDATION_DISTANCE = "liquidation_distance"


@dataclass(frozen=True)
class Rebalance:
    """One reducing order that brings a symbol's net delta back to zero."""

    instrument: str    # "spot" | "perp"
    sell: bool
    quantity: Decimal  # base


def net_delta(spot_quantity: Decimal, perp_quantity: Decimal) -> Decimal:
    """Base quantity left unhedged: spot (>= 0) plus the signed perp (< 0 short)."""
    return spot_quantity + perp_quantity


def rebalance(spot_quantity: Decimal, perp_quantity: Decimal, tolerance: Decimal) -> Rebalance | None:
    """The reducing order that removes the net delta when it exceeds ``tolerance`` of the hedged
    size; None within tolerance. Too much spot sells spot; too much short perp buys the perp back
    (both only reduce, so neither needs a budget or margin)."""
    delta = net_delta(spot_quantity, perp_quantity)
    hedged = max(spot_quantity, -perp_quantity, _ZERO)
    if delta == 0 or (hedged > 0 and abs(delta) <= tolerance * hedged):
        return None
    if delta > 0:
        return Rebalance("spot", True, min(delta, spot_quantity)) if spot_quantity > 0 else None
    return Rebalance("perp", False, min(-delta, -perp_quantity)) if perp_quantity < 0 else None


def short_liquidation_price(entry: Decimal, leverage: Decimal, maintenance_margin_rate: Decimal) -> Decimal:
    """Isolated short: entry * (1 + 1/leverage - mmr) (the paper venue's rule)."""
    return entry * (_ONE + CONTEXT.divide(_ONE, leverage) - maintenance_margin_rate)


def liquidation_distance_atrs(liquidation: Decimal, mark: Decimal, atr: Decimal) -> Decimal | None:
    """How many ATRs the mark may rise before a short is liquidated (None without an ATR)."""
    if atr <= 0:
        return None
    return CONTEXT.divide(liquidation - mark, atr)


def max_leverage_for(price: Decimal, atr: Decimal, atrs: Decimal, maintenance_margin_rate: Decimal,
                     cap: Decimal) -> Decimal:
    """The highest leverage (<= ``cap``, >= 1) whose short liquidation price is ``atrs`` ATRs above
    ``price``: 1/leverage >= atrs*atr/price + mmr."""
    if price <= 0:
        return _ONE
    need = atrs * CONTEXT.divide(atr, price) + maintenance_margin_rate
    if need <= 0:
        return cap
    lev = CONTEXT.divide(_ONE, need)
    return max(_ONE, min(cap, lev.quantize(Decimal("0.01"), rounding=ROUND_DOWN)))


@dataclass(frozen=True)
class RiskLimits:
    max_delta_ratio: Decimal
    critical_delta_ratio: Decimal
    max_gross_leverage: Decimal
    daily_drawdown_limit: Decimal
    critical_drawdown: Decimal


@dataclass(frozen=True)
class RiskReport:
    violations: tuple[str, ...]
    delta_ratio: Decimal
    gross_leverage: Decimal
    drawdown: Decimal

    @property
    def within_limits(self) -> bool:
        return not self.violations

    @property
    def critical(self) -> bool:
        return any(v.startswith("critical") for v in self.violations)


def evaluate_risk(limits: RiskLimits, delta_usd: Decimal, gross_usd: Decimal, equity: Decimal,
                  drawdown: Decimal) -> RiskReport:
    """Every limit the portfolio breaks, all at once. Zero equity cannot carry any exposure: any
    delta or gross exposure then breaks the limits (fail closed)."""
    if equity > 0:
        delta_ratio = CONTEXT.divide(abs(delta_usd), equity)
        leverage = CONTEXT.divide(gross_usd, equity)
    else:
        delta_ratio = Decimal("Infinity") if delta_usd else _ZERO
        leverage = Decimal("Infinity") if gross_usd else _ZERO
    out: list[str] = []
    if delta_ratio > limits.critical_delta_ratio:
        out.append(RiskCode.CRITICAL_DELTA)
    elif delta_ratio > limits.max_delta_ratio:
        out.append(RiskCode.WARNING_DELTA)
    if drawdown > limits.critical_drawdown:
        out.append(RiskCode.CRITICAL_DRAWDOWN)
    elif drawdown > limits.daily_drawdown_limit:
        out.append(RiskCode.WARNING_DRAWDOWN)
    if leverage > limits.max_gross_leverage:
        out.append(RiskCode.MAX_LEVERAGE)
    return RiskReport(tuple(out), delta_ratio, leverage, drawdown)
