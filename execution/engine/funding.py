"""Perpetuals: liquidation at the mark price when the margin is gone, and funding settlement (once
per venue, symbol and funding time) into every position of the instrument held at the funding time."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from titan.execution import enums
from titan.execution.engine.lifecycle import apply_paper_fill, register
from titan.execution.engine.state import BUY, PERP, SELL, EngineState
from titan.execution.market import InstrumentMarket
from titan.execution.numbers import fmt
from titan.execution.orders import SUBMITTED, ManagedOrder
from titan.execution.paper import Fill
from titan.v1 import trading_pb2

OrderType = enums.OrderType


def check_liquidations(state: EngineState, market: InstrumentMarket, now: int) -> None:
    mark = market.mark
    if mark is None:
        return
    for position in list(state.portfolio.on_instrument(*market.key)):
        if not position.is_perp or position.quantity == 0:
            continue
        if not state.paper.should_liquidate(position.quantity, position.average_entry, position.leverage, mark):
            continue
        phase, venue, symbol, instrument = position.key
        digest = hashlib.sha256(f"{phase}\x1f{venue}\x1f{symbol}\x1f{now}".encode()).hexdigest()[:28]
        order = ManagedOrder(
            client_order_id=f"L{digest}-0",
            phase_id=phase,
            signal_id=f"liquidation:{now}",
            leg=0,
            venue=venue,
            symbol=symbol,
            instrument=instrument,
            side=SELL if position.quantity > 0 else BUY,
            order_type=OrderType.ORDER_TYPE_MARKET,
            quantity=abs(position.quantity),
            notional=abs(position.quantity) * mark,
            reduce_only=True,
            created_at_ns=now,
        )
        register(state, order)
        order.transition(SUBMITTED, now, "liquidation at mark price")
        apply_paper_fill(state, order, Fill(mark, order.quantity, False), now, f"{order.client_order_id}-1",
                         mark)


def settle(state: EngineState, market: InstrumentMarket, funding_time_ns: int, rate: Decimal, now: int) -> None:
    venue, symbol, instrument = market.key
    if instrument != PERP:
        return
    mark = market.reference_price()
    if mark is None or (venue, symbol, funding_time_ns) in state.settled_funding:
        return
    state.settled_funding.add((venue, symbol, funding_time_ns))
    for position in state.portfolio.on_instrument(venue, symbol, instrument):
        if position.quantity == 0 or funding_time_ns < position.held_since_ns:
            continue  # not held at the funding time (a replayed past settlement pays nothing)
        amount = state.paper.funding_amount(position.quantity, mark, rate)
        position.apply_funding(amount, now)
        state.outputs.touch_position(position)
        state.outputs.events.append(
            trading_pb2.FundingPayment(
                venue=venue,
                symbol=symbol,
                phase_id=position.phase_id,
                rate=fmt(rate),
                position_quantity=fmt(position.quantity),
                mark_price=fmt(mark),
                amount=fmt(amount),
                funding_time_ns=funding_time_ns,
            )
        )


def settle_due(state: EngineState, now: int) -> None:
    """Settle every announced funding whose time has passed (paper venue)."""
    for market in list(state.market.instruments.values()):
        if market.funding_rate is not None and market.funding_time_ns and now >= market.funding_time_ns:
            settle(state, market, market.funding_time_ns, market.funding_rate, now)


def next_due_ns(state: EngineState, due: int) -> int:
    for market in state.market.instruments.values():
        if (market.funding_rate is not None and market.funding_time_ns
                and (market.key[0], market.key[1], market.funding_time_ns) not in state.settled_funding):
            due = min(due, market.funding_time_ns)
    return due
