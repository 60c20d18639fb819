"""Rebuild the engine from the ledger before serving.

Positions are replayed from the recorded fills and funding payments (in time order) and checked
against the recorded position rows: the fills are the truth, so a position row that lags its fills
(a crash between the two events) is corrected, and the corrected position is returned for
publishing. An order row whose filled quantity exceeds its recorded fills (a crash between the order
and its fill events) gets the missing fill rebuilt from the order's average price and fees
(``<client order id>-r<version>``), also returned for publishing. Open orders are restored; client
order ids of recorded orders and fills, and recently decided signals, are remembered so a re-sent
signal never executes twice."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from titan.core.money import CONTEXT, D, D_or
from titan.execution import enums
from titan.execution.engine.lifecycle import register, rest
from titan.execution.engine.outputs import Update
from titan.execution.engine.signals import remember
from titan.execution.engine.state import BUY, PERP, ZERO, EngineState
from titan.execution.numbers import fmt
from titan.execution.orders import NEW, SUBMITTED, ManagedOrder
from titan.execution.portfolio import Position, PositionKey
from titan.v1 import trading_pb2

OrderType = enums.OrderType
DecidedSignal = tuple[str, str, int, bool, tuple[str, ...]]  # phase, signal id, decided at, accepted, cids


def restore(
    state: EngineState,
    positions: Iterable[trading_pb2.Position],
    open_orders: Iterable[trading_pb2.Order],
    fills: Iterable[trading_pb2.Fill] = (),
    decided: Iterable[DecidedSignal] = (),
    funding: Iterable[trading_pb2.FundingPayment] = (),
    known_orders: Iterable[trading_pb2.Order] = (),
) -> list[Update]:
    rows = {(p.phase_id, p.venue, p.symbol, int(p.instrument)): p for p in positions}
    known = list(known_orders)
    replayed, corrected = _replay_fills(state, list(fills), known)
    _replay_funding(state, replayed, funding)
    mmr = state.config.paper.maintenance_margin_rate
    for key in sorted(set(rows) | set(replayed)):
        row = rows.get(key)
        position = Position.from_proto(row) if row is not None else Position(key)
        truth = replayed.get(key)
        if truth is not None and (
            truth.quantity, truth.realized, truth.fees, truth.funding
        ) != (position.quantity, position.realized, position.fees, position.funding):
            position.quantity, position.average_entry = truth.quantity, truth.average_entry
            position.realized, position.fees, position.funding = truth.realized, truth.fees, truth.funding
            position.updated_ns = state.clock.now_ns()
            position.version += 1
            corrected.append(position.to_proto(mmr))
        state.portfolio.add(position)
    state.known_cids.update(o.client_order_id for o in known)
    for row_order in open_orders:
        _restore_open_order(state, ManagedOrder.from_proto(row_order))
    for phase, signal_id, decided_at, accepted, cids in decided:
        remember(state, phase, signal_id, decided_at, accepted, cids)
        state.known_cids.update(cids)
    state.portfolio.roll_day(state.clock.now_ns())
    state.outputs.clear()
    return corrected


def _replay_fills(
    state: EngineState, fills: list[trading_pb2.Fill], known: list[trading_pb2.Order]
) -> tuple[dict[PositionKey, Position], list[Update]]:
    replayed: dict[PositionKey, Position] = {}
    repaired = missing_fills(known, fills)
    if repaired:
        fills = sorted([*fills, *repaired], key=lambda f: (f.ts_ns, f.venue, f.fill_id))
    repaired_ids = {id(f) for f in repaired}
    corrected: list[Update] = []
    for fill in fills:
        key = (fill.phase_id, fill.venue, fill.symbol, int(fill.instrument))
        position = replayed.get(key)
        if position is None:
            position = replayed[key] = Position(key)
        realized = position.apply_fill(fill.side == BUY, D(fill.quantity), D(fill.price), D(fill.fee), fill.ts_ns)
        if id(fill) in repaired_ids:
            fill.realized_pnl = fmt(realized)
            corrected.append(fill)
        if state.external:
            state.fill_ids.add((fill.venue, fill.fill_id))
        state.known_cids.add(fill.client_order_id)
    return replayed, corrected


def _replay_funding(
    state: EngineState, replayed: dict[PositionKey, Position], funding: Iterable[trading_pb2.FundingPayment]
) -> None:
    for payment in funding:
        for key, position in replayed.items():
            if (key[0] == payment.phase_id and key[1] == payment.venue and key[2] == payment.symbol
                    and key[3] == PERP):
                position.apply_funding(D(payment.amount), payment.funding_time_ns)
                state.settled_funding.add((payment.venue, payment.symbol, payment.funding_time_ns))


def _restore_open_order(state: EngineState, order: ManagedOrder) -> None:
    if not order.is_open:
        return
    register(state, order)
    if order.state == NEW:
        order.state = SUBMITTED
    if not state.external:
        if order.order_type == OrderType.ORDER_TYPE_MARKET:
            order.price_cap = None
            order.expires_at_ns = state.clock.now_ns() + state.config.paper.market_remainder_ttl_ns
        rest(state, order)


def missing_fills(orders: list[trading_pb2.Order], fills: list[trading_pb2.Fill]) -> list[trading_pb2.Fill]:
    """Fills an order row implies beyond its recorded fills (a crash between the two events)."""
    quantity: dict[str, Decimal] = {}
    notional: dict[str, Decimal] = {}
    fees: dict[str, Decimal] = {}
    for fill in fills:
        cid = fill.client_order_id
        fill_qty, price = D(fill.quantity), D(fill.price)
        quantity[cid] = quantity.get(cid, ZERO) + fill_qty
        notional[cid] = notional.get(cid, ZERO) + fill_qty * price
        fees[cid] = fees.get(cid, ZERO) + D(fill.fee)
    out: list[trading_pb2.Fill] = []
    for order in orders:
        cid = order.client_order_id
        filled = D_or(order.filled_quantity, ZERO)
        have = quantity.get(cid, ZERO)
        if filled <= have:
            continue
        missing = filled - have
        price = CONTEXT.divide(D_or(order.average_price, ZERO) * filled - notional.get(cid, ZERO), missing)
        out.append(trading_pb2.Fill(
            venue=order.venue, fill_id=f"{cid}-r{order.version}", client_order_id=cid,
            phase_id=order.phase_id, symbol=order.symbol, instrument=order.instrument, side=order.side,
            price=fmt(price), quantity=fmt(missing), fee=fmt(D_or(order.fees, ZERO) - fees.get(cid, ZERO)),
            maker=False, ts_ns=order.updated_at_ns,
        ))
    return out
