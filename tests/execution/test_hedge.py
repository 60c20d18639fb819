"""Hedged units in the engine: a two-leg spot/perp signal executed as one unit. Each path — both
legs fill, the second leg rejected by the venue, the second leg partly filled, the price beyond
the slippage bound, a closing unit — ends with 0 net exposure, every step an order in the output."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.execution.helpers import (
    BUY,
    CLOSE,
    PERP,
    SELL,
    SPOT,
    T0,
    OrderState,
    OrderType,
    RejectReason,
    budget,
    fills_of,
    leg,
    make_engine,
    orders_of,
    signal,
    top,
)
from titan.core.metrics import HEDGE_UNITS
from titan.core.signing import sign_signal
from titan.execution.engine import Engine
from titan.v1 import events_pb2, trading_pb2

SENTINEL_KEY = b"sentinel-test-key-0123456789abcd"
MS = 1_000_000


def desk(perp_bid_size: str = "10") -> tuple[Engine, object]:
    engine, clock = make_engine(book=False)
    engine.set_keys({"sentinel": SENTINEL_KEY})
    assert engine.update_budget(budget("sentinel")) == "applied"
    engine.on_market(top("49990", "10", "50000", "10", instrument=SPOT))
    engine.on_market(top("50050", perp_bid_size, "50060", "10", instrument=PERP))
    return engine, clock


def unit(clock: object, policy: str = "complete", perp_leg: trading_pb2.Leg | None = None,
         intent: int = trading_pb2.INTENT_OPEN, deadline_ms: int = 2_000, slippage_bps: int = 20,
         size: str = "5000") -> trading_pb2.Signal:
    spot_side, perp_side = (BUY, SELL) if intent == trading_pb2.INTENT_OPEN else (SELL, BUY)
    legs = [leg(side=spot_side, size=size, instrument=SPOT),
            perp_leg or leg(side=perp_side, size=size, instrument=PERP)]
    sig = signal(clock, *legs, phase="sentinel", key=None, intent=intent, max_slippage_bps=slippage_bps,  # type: ignore[arg-type]
                 leverage="2")
    sig.metadata["hedge"] = policy
    sig.metadata["hedge_deadline_ms"] = str(deadline_ms)
    sign_signal(sig, SENTINEL_KEY)
    return sig


def exposure(engine: Engine) -> tuple[Decimal, Decimal]:
    spot = engine.portfolio.quantity(("sentinel", "bybit", "BTCUSDT", SPOT))
    perp = engine.portfolio.quantity(("sentinel", "bybit", "BTCUSDT", PERP))
    return spot, perp


def decision_detail(updates: list[object]) -> str:
    (d,) = [u for u in updates if isinstance(u, events_pb2.SignalDecision)]
    return d.ack.detail


def outcome_count(outcome: str) -> float:
    return HEDGE_UNITS.labels(outcome=outcome)._value.get()  # type: ignore[attr-defined]


def test_both_legs_fill_with_equal_base_quantity() -> None:
    engine, clock = desk()
    before = outcome_count("hedged")
    d = engine.on_signal(unit(clock))
    assert d.ack.accepted, d.ack.detail
    spot_fill, perp_fill = fills_of(d.updates)
    assert spot_fill.quantity == perp_fill.quantity               # equal base quantity, not equal notional
    spot, perp = exposure(engine)
    assert spot > 0 and spot + perp == 0
    assert decision_detail(d.updates) == "hedge hedged"
    assert outcome_count("hedged") == before + 1
    assert not engine.hedges


@pytest.mark.parametrize("policy", ["complete", "unwind"])
def test_second_leg_rejected_by_the_venue(policy: str) -> None:
    engine, clock = desk()
    # a post-only sell at the bid would take liquidity: the paper venue rejects it
    crossing = leg(side=SELL, size="5000", instrument=PERP, order_type=OrderType.ORDER_TYPE_POST_ONLY, limit="50040")
    d = engine.on_signal(unit(clock, policy, crossing))
    assert d.ack.accepted
    orders = {o.leg: o for o in orders_of(d.updates)}
    assert orders[1].state == OrderState.ORDER_STATE_REJECTED
    step = orders[2]
    spot, perp = exposure(engine)
    assert spot + perp == 0
    if policy == "complete":
        assert step.instrument == PERP and step.side == SELL and step.state == OrderState.ORDER_STATE_FILLED
        assert Decimal(step.average_price) >= Decimal("50040") * (1 - Decimal("0.002"))  # within the bound
        assert spot > 0 and decision_detail(d.updates) == "hedge completed"
    else:
        assert step.instrument == SPOT and step.side == SELL and step.reduce_only
        assert spot == 0 and decision_detail(d.updates) == "hedge unwound"
    assert len(fills_of(d.updates)) == 2   # leg 0 and the step: each an event


def test_second_leg_partly_filled_completes_when_liquidity_returns_before_the_deadline() -> None:
    engine, clock = desk(perp_bid_size="0.04")
    d = engine.on_signal(unit(clock, "complete"))
    orders = {o.leg: o for o in orders_of(d.updates)}
    assert orders[1].state == OrderState.ORDER_STATE_PARTIALLY_FILLED
    assert decision_detail(d.updates).startswith("hedge pending")
    assert engine.next_due_ns() <= T0 + 2_000 * MS                    # the deadline is a timer
    clock.advance(1_000 * MS)  # type: ignore[attr-defined]
    assert not [o for o in orders_of(engine.tick()) if o.leg >= 2]    # before the deadline: nothing
    assert engine.hedges
    updates = engine.on_market(top("50049", "10", "50060", "10", instrument=PERP))  # inside the bound
    assert [o.state for o in orders_of(updates) if o.leg == 1] == [OrderState.ORDER_STATE_FILLED]
    (outcome,) = [u for u in updates if isinstance(u, trading_pb2.HedgeOutcome)]  # settled by that fill
    assert outcome.result == trading_pb2.HEDGE_RESULT_HEDGED and updates[-1] is outcome
    assert not engine.hedges                                             # no tick needed
    clock.advance(1_000 * MS)  # type: ignore[attr-defined]
    assert not [o for o in orders_of(engine.tick()) if o.leg >= 2]
    spot, perp = exposure(engine)
    assert spot > 0 and spot + perp == 0


def test_second_leg_partly_filled_without_liquidity_by_the_deadline_unwinds_the_excess() -> None:
    engine, clock = desk(perp_bid_size="0.04")
    d = engine.on_signal(unit(clock, "complete"))
    spot_qty = Decimal(orders_of(d.updates)[0].quantity)
    clock.advance(2_000 * MS)  # type: ignore[attr-defined]
    updates = engine.tick()
    leg1 = [o for o in orders_of(updates) if o.leg == 1]
    assert leg1 and leg1[-1].state == OrderState.ORDER_STATE_CANCELED and "deadline" in leg1[-1].reason
    steps = {o.leg: o for o in orders_of(updates) if o.leg >= 2}
    assert steps[2].instrument == PERP and steps[2].order_type == OrderType.ORDER_TYPE_IOC   # re-quote at the bound
    assert steps[2].filled_quantity in ("", "0")                                        # the book was taken
    unwind = steps[3]
    assert (unwind.instrument, unwind.side, unwind.reduce_only) == (SPOT, SELL, True)
    assert Decimal(unwind.filled_quantity) == spot_qty - Decimal("0.04")
    assert exposure(engine) == (Decimal("0.04"), Decimal("-0.04"))


def test_second_leg_partial_and_the_price_beyond_the_slippage_bound_unwinds() -> None:
    engine, clock = desk(perp_bid_size="0.04")
    before = outcome_count("unwound")
    d = engine.on_signal(unit(clock, "complete", slippage_bps=20))
    assert decision_detail(d.updates).startswith("hedge pending")
    engine.on_market(top("49800", "10", "49810", "10", instrument=PERP))   # -50 bps: beyond the 20 bps bound
    clock.advance(2_000 * MS)  # type: ignore[attr-defined]
    updates = engine.tick()
    steps = [o for o in orders_of(updates) if o.leg >= 2]
    assert steps and all(o.instrument == SPOT and o.side == SELL and o.reduce_only for o in steps)
    spot, perp = exposure(engine)
    assert perp == Decimal("-0.04") and spot + perp == 0                  # only the hedged part is kept
    assert outcome_count("unwound") == before + 1


def test_closing_unit_always_completes_the_hedge() -> None:
    engine, clock = desk()
    engine.on_signal(unit(clock))
    spot, perp = exposure(engine)
    assert spot > 0 and spot + perp == 0
    crossing = leg(side=BUY, size="", instrument=PERP, order_type=OrderType.ORDER_TYPE_POST_ONLY, limit="50060")
    clock.advance(10 * MS)  # type: ignore[attr-defined]
    close = unit(clock, "unwind", crossing, intent=CLOSE)
    close.legs[0].size_quote = ""
    close.signature = b""
    sign_signal(close, SENTINEL_KEY)
    d = engine.on_signal(close)
    assert d.ack.accepted, d.ack.detail
    orders = {o.leg: o for o in orders_of(d.updates)}
    assert orders[1].state == OrderState.ORDER_STATE_REJECTED        # the perp buy-back was refused by the venue
    assert (orders[2].instrument, orders[2].side, orders[2].reduce_only) == (PERP, BUY, True)
    assert exposure(engine) == (0, 0) and decision_detail(d.updates) == "hedge completed"


def test_malformed_units_and_blocked_entries() -> None:
    engine, clock = desk()
    bad = unit(clock, "sometimes")
    assert engine.on_signal(bad).ack.reason == RejectReason.REJECT_REASON_MALFORMED
    same_side = unit(clock)
    same_side.legs[1].side = BUY
    same_side.signature = b""
    sign_signal(same_side, SENTINEL_KEY)
    assert engine.on_signal(same_side).ack.reason == RejectReason.REJECT_REASON_MALFORMED
    # a reverse carry needs a spot short: refused by the gate as a whole, nothing half-executed
    reverse = signal(clock, leg(side=SELL, size="5000", instrument=SPOT), leg(side=BUY, size="5000", instrument=PERP),
                     phase="sentinel", key=SENTINEL_KEY)
    d = engine.on_signal(reverse)
    assert d.ack.reason == RejectReason.REJECT_REASON_MALFORMED and "short" in d.ack.detail and not orders_of(d.updates)
    # while a unit is being settled, the phase may not add exposure
    engine2, clock2 = desk(perp_bid_size="0.04")
    assert engine2.on_signal(unit(clock2)).ack.accepted
    clock2.advance(MS)  # type: ignore[attr-defined]
    blocked = engine2.on_signal(unit(clock2))
    assert blocked.ack.reason == RejectReason.REJECT_REASON_PHASE_BLOCKED


def test_recovery_finds_the_orphan_leg_and_unwinds_it_before_new_entries() -> None:
    """The engine dies with leg 0 filled and leg 1 still working: a new engine restored from the
    recorded events finds the orphan, cancels the twin's remainder and unwinds the excess as soon
    as there is a market; new entries of the phase wait until it is settled."""
    engine, clock = desk(perp_bid_size="0.04")
    sig = unit(clock, "complete")
    d = engine.on_signal(sig)
    recorded = d.updates
    orders = {o.client_order_id: o for o in orders_of(recorded)}
    fills = fills_of(recorded)
    positions = [u for u in recorded if isinstance(u, trading_pb2.Position)]
    decided = [("sentinel", sig.signal_id, T0, True, tuple(d.ack.client_order_ids))]
    # ... killed here. A new process on the recorded events, no market data yet:
    clock2 = type(clock)(T0 + 5_000 * MS)  # type: ignore[call-arg]
    restored = Engine(clock2, {"sentinel": SENTINEL_KEY})
    restored.set_trading_state(engine.trading_state)
    restored.update_budget(budget("sentinel"))
    open_orders = [o for o in orders.values()
                   if o.state in (OrderState.ORDER_STATE_ACCEPTED, OrderState.ORDER_STATE_PARTIALLY_FILLED)]
    restored.restore(positions, open_orders, fills, decided, (), list(orders.values()))
    steps = restored.recover_hedges([sig], list(orders.values()))
    leg1 = [o for o in orders_of(steps) if o.leg == 1]
    assert leg1 and leg1[-1].state == OrderState.ORDER_STATE_CANCELED
    unwind = [o for o in orders_of(steps) if o.leg >= 2]
    assert unwind and unwind[-1].instrument == SPOT and unwind[-1].reduce_only
    assert restored.hedges  # not settled until the unwind fills
    clock2.advance(MS)
    restored.on_market(top("50050", "10", "50060", "10", instrument=PERP))   # market data again
    thin = restored.on_market(top("49990", "0.01", "50000", "10", instrument=SPOT))  # the unwind fills in part
    assert [(f.client_order_id, f.quantity) for f in fills_of(thin)] == [(unwind[-1].client_order_id, "0.01")]
    assert restored.on_signal(unit(clock2)).ack.reason == RejectReason.REJECT_REASON_PHASE_BLOCKED  # until settled
    clock2.advance(MS)
    filled = restored.on_market(top("49990", "10", "50000", "10", instrument=SPOT))
    (rest,) = fills_of(filled)
    assert rest.client_order_id == unwind[-1].client_order_id
    assert Decimal(rest.quantity) + Decimal("0.01") == Decimal(unwind[-1].quantity)  # the rest of it
    (outcome,) = [u for u in filled if isinstance(u, trading_pb2.HedgeOutcome)]  # settled by that fill
    assert outcome.result == trading_pb2.HEDGE_RESULT_UNWOUND
    spot = restored.portfolio.quantity(("sentinel", "bybit", "BTCUSDT", SPOT))
    perp = restored.portfolio.quantity(("sentinel", "bybit", "BTCUSDT", PERP))
    assert (spot, perp) == (Decimal("0.04"), Decimal("-0.04"))   # 0 orphan exposure
    assert not restored.hedges
    clock2.advance(MS)
    assert restored.on_signal(unit(clock2)).ack.accepted   # settled: entries again
