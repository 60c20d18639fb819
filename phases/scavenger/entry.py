"""The executor's steps for a confirmed trap that passed its vetoes ("bite"), as pure functions: the
order's tier, limit, stop and target (:func:`entry_plan`), its size under the budget
(:func:`position_size`) and the entry Signal (:func:`entry_signal`). A step that refuses returns a
:class:`Veto`, the reason TRAP_ABORTED reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from titan.core.money import to_decimal_or, to_wire
from titan.phases.scavenger import sizing, tripwires
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.state import PendingTrap, SymbolState
from titan.phases.scavenger.tripwires import Direction, Tripwire
from titan.v1 import common_pb2, trading_pb2


@dataclass(frozen=True)
class Veto:
    """Why a confirmed trap is not traded (TRAP_ABORTED's reason) and what the event shows with it."""

    reason: str
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """How a trap would be entered: the order tier and prices, and the reward/risk they give."""

    plan: sizing.OrderPlan
    reference: Decimal
    limit: Decimal | None
    stop: Decimal
    target: Decimal
    reward_risk: Decimal
    velocity: float


@dataclass(frozen=True)
class Sized:
    """The entry's notional, its leverage and the margin behind it."""

    size: Decimal
    leverage: Decimal
    margin: Decimal


def entry_plan(params: ScavengerParams, market: SymbolState, trap: Tripwire) -> Entry | Veto:
    """The order tier from the velocity, its limit price, and a stop and target on the right sides."""
    long = trap.direction is Direction.LONG
    ref = market.perp if market.perp is not None else market.price
    assert ref is not None
    velocity = market.velocity.velocity()
    extreme, moderate = sizing.velocity_thresholds(
        params.extreme_velocity_threshold, params.moderate_velocity_threshold, trap.vol_regime if trap.atr else "",
        params.high_vol_velocity_factor, params.low_vol_velocity_factor)
    plan = sizing.plan_order(velocity, ref, long, extreme, moderate, params.aggressive_limit_markup,
                             params.passive_limit_markup)
    limit = market.quantize(plan.limit_price) if plan.limit_price is not None else None
    entry = limit if limit is not None else ref
    sign = 1 if long else -1
    stop = trap.stop if trap.stop is not None else ref * (1 - sign * params.stop_loss_percent)
    target = trap.target if trap.target is not None else ref * (1 + sign * params.target_percent)
    stop, target = market.quantize(stop), market.quantize(target)
    risk, reward = abs(entry - stop), abs(target - entry)
    if risk <= 0 or reward <= 0 or (long and not stop < entry < target) or (not long and not target < entry < stop):
        return Veto("BAD_STOP_TARGET", {"stop": to_wire(stop), "target": to_wire(target), "entry": to_wire(entry)})
    return Entry(plan, ref, limit, stop, target, reward / risk, velocity)


def position_size(params: ScavengerParams, equity: Decimal, budget: trading_pb2.Budget | None, trap: Tripwire,
                  entry: Entry) -> Sized | Veto:
    """Quarter-Kelly margin x volatility multiplier x leverage, capped by the budget."""
    if equity <= 0:
        return Veto("NO_BUDGET")
    assert budget is not None
    leverage = min(trap.leverage, params.max_leverage)
    budget_lev = to_decimal_or(budget.max_leverage, Decimal(0))
    if budget_lev > 0:
        leverage = min(leverage, budget_lev)
    mult = params.high_vol_size_multiplier if trap.vol_regime == tripwires.HIGH_VOL else params.low_vol_size_multiplier
    margin = sizing.kelly_margin(equity, Decimal(str(trap.confidence)), entry.reward_risk,
                                 params.max_position_size_percent)
    size = sizing.notional(margin * mult, leverage)
    cap = to_decimal_or(budget.max_order_notional, Decimal(0))
    if cap > 0:
        size = min(size, cap)
    size = min(size, equity).quantize(sizing.CENT)
    if size <= 0:
        return Veto("ZERO_SIZE")
    return Sized(size, leverage, margin)


def entry_signal(params: ScavengerParams, phase_id: str, signal_id: str, market: SymbolState, pending: PendingTrap,
                 entry: Entry, sized: Sized, now: int, accel: float) -> trading_pb2.Signal:
    """The signed-to-be entry signal, with everything that led to it in its metadata."""
    trap, burst = pending.trap, pending.burst
    long = trap.direction is Direction.LONG
    slippage = params.max_slippage_bps_perp_leads if market.lead_lag.leader == "B" else params.max_slippage_bps
    leg = trading_pb2.Leg(
        venue=params.order_venue or params.venue, symbol=market.symbol, instrument=common_pb2.INSTRUMENT_KIND_PERP,
        side=common_pb2.SIDE_BUY if long else common_pb2.SIDE_SELL, size_quote=to_wire(sized.size),
        order_type=entry.plan.order_type, limit_price=to_wire(entry.limit) if entry.limit is not None else "",
    )
    meta = {
        "trap_id": trap.id,
        "trap_type": trap.trap_type.value,
        "direction": trap.direction.value,
        "trigger_price": to_wire(trap.trigger),
        "reference_price": to_wire(entry.reference),
        "order_tier": entry.plan.tier,
        "velocity": f"{entry.velocity:.8g}",
        "acceleration": f"{accel:.8g}",
        "micro_cvd": to_wire(burst.micro_cvd),
        "burst_trades": str(burst.count),
        "burst_volume": to_wire(burst.volume),
        "burst_quality": to_wire(burst.quality.quantize(Decimal("0.0001"))),
        "macro_cvd_60s": to_wire(market.cvd.cvd(60)),
        "cascade": to_wire(trap.cascade),
        "atr": f"{trap.atr:.8g}",
        "volatility_regime": trap.vol_regime,
        "adx": f"{trap.adx:.4f}",
        "trend": trap.trend,
        "margin": to_wire(sized.margin),
        "reward_risk": to_wire(entry.reward_risk.quantize(Decimal("0.0001"))),
        "lead": "perp" if market.lead_lag.leader == "B" else "trigger_feed",
    }
    if market.book_imbalance is not None:
        meta["order_book_imbalance"] = f"{market.book_imbalance:.4f}"
    return trading_pb2.Signal(
        phase_id=phase_id, signal_id=signal_id, intent=trading_pb2.INTENT_OPEN, legs=[leg],
        stop_price=to_wire(entry.stop), target_prices=[to_wire(entry.target)], confidence=trap.confidence,
        leverage=to_wire(sized.leverage), ttl_ms=params.ttl_ms, created_at_ns=now, max_slippage_bps=slippage,
        setup=trap.setup, metadata=meta,
    )
