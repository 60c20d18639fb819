"""Quarter-Kelly sizing and the velocity-based order type (the executor's arithmetic)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from titan.core.money import CONTEXT
from titan.v1 import trading_pb2

CENT = Decimal("0.01")
UNIT_STEP = Decimal("0.00000001")


def kelly_margin(
    equity: Decimal,
    confidence: Decimal,
    reward_risk: Decimal,
    max_position_pct: Decimal = Decimal("0.5"),
    fraction: Decimal = Decimal("0.25"),
) -> Decimal:
    """Quarter-Kelly margin in quote currency, rounded to cents.

    W = confidence (0..1), R = reward/risk; Kelly = W - (1 - W)/R; size = equity · max(0, ¼·Kelly),
    capped at equity · ``max_position_pct``. Zero for equity ≤ 0, confidence ∉ (0, 1] or R ≤ 0.
    Example: equity 1000, W 0.9, R 3 → Kelly 0.8667 → 21.67% → 216.67."""
    if equity <= 0 or not (0 < confidence <= 1) or reward_risk <= 0 or max_position_pct <= 0:
        return Decimal(0)
    with_ctx = CONTEXT
    kelly = with_ctx.subtract(confidence, with_ctx.divide(1 - confidence, reward_risk))
    share = max(Decimal(0), fraction * kelly)
    size = min(equity * share, equity * max_position_pct)
    return size.quantize(CENT, rounding=ROUND_HALF_UP)


def notional(margin: Decimal, leverage: Decimal) -> Decimal:
    return (margin * leverage).quantize(CENT, rounding=ROUND_HALF_UP) if leverage > 0 else Decimal(0)


def units(notional_quote: Decimal, price: Decimal) -> Decimal:
    """Base units for a notional at a price, rounded to 8 dp (0 for a non-positive price)."""
    if price <= 0:
        return Decimal(0)
    return (notional_quote / price).quantize(UNIT_STEP, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class OrderPlan:
    order_type: trading_pb2.OrderType
    limit_price: Decimal | None
    tier: str                   # "market" | "aggressive_limit" | "limit"


def velocity_thresholds(extreme: float, moderate: float, vol_regime: str, high_factor: float = 1.5,
                        low_factor: float = 0.8) -> tuple[float, float]:
    """Thresholds scaled ×1.5 in HIGH_VOL and ×0.8 in LOW_VOL (unchanged when the regime is unknown)."""
    if vol_regime == "HIGH_VOL":
        return extreme * high_factor, moderate * high_factor
    if vol_regime == "LOW_VOL":
        return extreme * low_factor, moderate * low_factor
    return extreme, moderate


def order_tier(velocity: float, extreme: float, moderate: float) -> str:
    """|v| > extreme → market; |v| > moderate → aggressive limit; else limit (strict '>')."""
    v = abs(velocity)
    if v > extreme:
        return "market"
    if v > moderate:
        return "aggressive_limit"
    return "limit"


def plan_order(
    velocity: float,
    price: Decimal,
    long: bool,
    extreme: float,
    moderate: float,
    aggressive_markup: Decimal,
    passive_markup: Decimal,
) -> OrderPlan:
    """MARKET (no limit) for a fast move, else LIMIT at price·(1 ± markup): + for LONG, - for SHORT."""
    tier = order_tier(velocity, extreme, moderate)
    if tier == "market":
        return OrderPlan(trading_pb2.ORDER_TYPE_MARKET, None, tier)
    markup = aggressive_markup if tier == "aggressive_limit" else passive_markup
    factor = 1 + markup if long else 1 - markup
    return OrderPlan(trading_pb2.ORDER_TYPE_LIMIT, price * factor, tier)
