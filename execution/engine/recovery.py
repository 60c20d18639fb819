"""Rebuild the engine from the ledger before serving.

Positions are replayed from the recorded fills and funding payments (in time order) on top of a
snapshot of them (``base``: positions folded from every fill and payment recorded before it; empty:
replay everything) and checked against the recorded position rows: the fills are the truth, so a
position row that lags its fills (a crash between the two events) is corrected, and the corrected
position is returned for publishing. An order row whose filled quantity exceeds its recorded fills
(a crash between the order and its fill events) gets the missing fill rebuilt from the order's average price and fees
(``<client order id>-r<version>``), also returned for publishing. Open orders are restored; client
order ids of recorded orders and fills, and recently decided signals, are remembered so a re-sent
signal never executes twice."""

from __future__ import annotations

from collections.abc import Iterable

from titan.core.ledger.snapshots import FillTotals
from titan.core.money import CONTEXT, to_decimal, to_decimal_or
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
    *,
    base: Iterable[trading_pb2.Position] = (),
    incomplete: Iterable[tuple[trading_pb2.Order, FillTotals]] | None = None,
) -> list[Update]:
    """``fills``/``funding``: those recorded after the snapshot ``base`` (in time order).
    ``incomplete``: the orders whose recorded fills may not cover their filled quantity, each with
    what all its recorded fills add up to (the ledger finds them when ``fills`` are not all of
    them); None: every order of ``known_orders`` checked against ``fills``."""
    rows = {(p.phase_id, p.venue, p.symbol, int(p.instrument)): p for p in positions}
    known = list(known_orders)
    replayed = {_key(p): Position.from_proto(p) for p in base}
    repaired = missing_fills(known, list(fills)) if incomplete is None else fills_to_repair(incomplete)
    corrected = _replay_fills(state, replayed, list(fills), repaired)
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


def _key(p: trading_pb2.Position | trading_pb2.Fill) -> PositionKey:
    return (p.phase_id, p.venue, p.symbol, int(p.instrument))


def fold(
    base: Iterable[trading_pb2.Position],
    fills: Iterable[trading_pb2.Fill],
    funding: Iterable[trading_pb2.FundingPayment] = (),
) -> dict[PositionKey, Position]:
    """Positions folded from a snapshot and the fills (in the order given), then the funding
    payments, recorded after it: the next snapshot."""
    positions = {_key(p): Position.from_proto(p) for p in base}
    fold_into(positions, fills, funding)
    return positions


def fold_into(
    positions: dict[PositionKey, Position],
    fills: Iterable[trading_pb2.Fill],
    funding: Iterable[trading_pb2.FundingPayment] = (),
) -> None:
    for fill in fills:
        key = _key(fill)
        position = positions.get(key)
        if position is None:
            position = positions[key] = Position(key)
        position.apply_fill(
            fill.side == BUY, to_decimal(fill.quantity), to_decimal(fill.price), to_decimal(fill.fee), fill.ts_ns
        )
    for payment in funding:
        _apply_funding(positions, payment)


def snapshot_position(position: Position) -> trading_pb2.Position:
    """What a snapshot keeps of a position (its exact average entry, also when flat)."""
    phase, venue, symbol, instrument = position.key
    return trading_pb2.Position(
        phase_id=phase, venue=venue, symbol=symbol, instrument=instrument,  # type: ignore[arg-type]
        quantity=fmt(position.quantity), average_entry_price=fmt(position.average_entry),
        realized_pnl=fmt(position.realized), fees=fmt(position.fees), funding=fmt(position.funding),
        ts_ns=position.updated_ns, version=position.version,
    )


def _replay_fills(
    state: EngineState, replayed: dict[PositionKey, Position], fills: list[trading_pb2.Fill],
    repaired: list[trading_pb2.Fill],
) -> list[Update]:
    if repaired:
        fills = sorted([*fills, *repaired], key=lambda f: (f.ts_ns, f.venue, f.fill_id))
    repaired_ids = {id(f) for f in repaired}
    corrected: list[Update] = []
    for fill in fills:
        key = (fill.phase_id, fill.venue, fill.symbol, int(fill.instrument))
        position = replayed.get(key)
        if position is None:
            position = replayed[key] = Position(key)
        realized = position.apply_fill(
            fill.side == BUY, to_decimal(fill.quantity), to_decimal(fill.price), to_decimal(fill.fee), fill.ts_ns
        )
        if id(fill) in repaired_ids:
            fill.realized_pnl = fmt(realized)
            corrected.append(fill)
        if state.external:
            state.fill_ids.add((fill.venue, fill.fill_id))
        state.known_cids.add(fill.client_order_id)
    return corrected


def _replay_funding(
    state: EngineState, replayed: dict[PositionKey, Position], funding: Iterable[trading_pb2.FundingPayment]
) -> None:
    for payment in funding:
        if _apply_funding(replayed, payment):
            state.settled_funding.add((payment.venue, payment.symbol, payment.funding_time_ns))


def _apply_funding(positions: dict[PositionKey, Position], payment: trading_pb2.FundingPayment) -> bool:
    position = positions.get((payment.phase_id, payment.venue, payment.symbol, PERP))
    if position is None:
        return False
    position.apply_funding(to_decimal(payment.amount), payment.funding_time_ns)
    return True


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


def fill_totals(fills: Iterable[trading_pb2.Fill]) -> dict[str, FillTotals]:
    """What the given fills of each order add up to."""
    totals: dict[str, FillTotals] = {}
    for fill in fills:
        quantity, price = to_decimal(fill.quantity), to_decimal(fill.price)
        held = totals.get(fill.client_order_id)
        if held is None:
            totals[fill.client_order_id] = FillTotals(quantity, quantity * price, to_decimal(fill.fee))
        else:
            totals[fill.client_order_id] = FillTotals(held.quantity + quantity, held.notional + quantity * price,
                                                      held.fees + to_decimal(fill.fee))
    return totals


_NONE = FillTotals(ZERO, ZERO, ZERO)


def missing_fills(orders: list[trading_pb2.Order], fills: list[trading_pb2.Fill]) -> list[trading_pb2.Fill]:
    """Fills an order row implies beyond its recorded fills (a crash between the two events)."""
    totals = fill_totals(fills)
    return fills_to_repair((order, totals.get(order.client_order_id, _NONE)) for order in orders)


def fills_to_repair(orders: Iterable[tuple[trading_pb2.Order, FillTotals]]) -> list[trading_pb2.Fill]:
    """The fill each order row implies beyond what its recorded fills add up to (none if they
    cover its filled quantity)."""
    out: list[trading_pb2.Fill] = []
    for order, have in orders:
        cid = order.client_order_id
        filled = to_decimal_or(order.filled_quantity, ZERO)
        if filled <= have.quantity:
            continue
        missing = filled - have.quantity
        price = CONTEXT.divide(to_decimal_or(order.average_price, ZERO) * filled - have.notional, missing)
        out.append(trading_pb2.Fill(
            venue=order.venue, fill_id=f"{cid}-r{order.version}", client_order_id=cid,
            phase_id=order.phase_id, symbol=order.symbol, instrument=order.instrument, side=order.side,
            price=fmt(price), quantity=fmt(missing), fee=fmt(to_decimal_or(order.fees, ZERO) - have.fees),
            maker=False, ts_ns=order.updated_at_ns,
        ))
    return out
