"""Order bookkeeping shared by every path that creates, fills or closes an order: registering it
with the gate's open-order book, resting it on its instrument, booking a fill into the order and
its position, and the bookkeeping of a terminal state."""

from __future__ import annotations

from decimal import Decimal

from titan.execution.engine.state import PERP, ZERO, EngineState
from titan.execution.numbers import fmt
from titan.execution.orders import CANCELED, ManagedOrder
from titan.execution.paper import Fill
from titan.execution.portfolio import Position
from titan.v1 import trading_pb2


def register(state: EngineState, order: ManagedOrder) -> None:
    """A new order exists: it counts for the gate's open-order and notional rules from now on."""
    state.orders[order.client_order_id] = order
    adding = ZERO if order.reduce_only else order.notional
    if adding:
        state.adding_left[order.client_order_id] = adding
    state.open_book.opened(order.phase_id, order.symbol, adding)
    state.outputs.touch(order)


def rest(state: EngineState, order: ManagedOrder) -> None:
    """The order waits on its instrument for market data to fill it (or for its expiry)."""
    key = (order.venue, order.symbol, order.instrument)
    work = state.working.setdefault(key, {})
    if order.expires_at_ns and order.client_order_id not in work:
        state.expiries.add(order)
    if work is state.walking:  # a market event walks these orders now: joins them when it is done
        state.walk_rested.append(order)
    else:
        work[order.client_order_id] = order
    state.outputs.touch(order)


def finish(state: EngineState, order: ManagedOrder, order_state: int, now: int, reason: str) -> None:
    order.transition(order_state, now, reason)
    state.outputs.touch(order)
    closed(state, order, now)


def closed(state: EngineState, order: ManagedOrder, now: int) -> None:
    """Bookkeeping when an order reaches a terminal state."""
    state.open_book.closed(order.phase_id, order.symbol)
    left = state.adding_left.pop(order.client_order_id, None)
    if left:
        state.open_book.reduced(order.phase_id, left)
    work = state.working.get((order.venue, order.symbol, order.instrument))
    if work is not None and work is state.walking:  # leaves them when the market event's walk is done
        state.walk_closed.append(order.client_order_id)
    elif work:
        work.pop(order.client_order_id, None)
    state.terminal.append((now, order.client_order_id))
    state.metrics.order_closed(order.venue, order.state)


def apply_paper_fill(state: EngineState, order: ManagedOrder, fill: Fill, now: int, fill_id: str,
                     reference: Decimal | None) -> None:
    """A paper venue fill: a reduce-only order is clipped to what is left of its position.
    ``reference``: the instrument's reference price (:func:`reference_price`), read once by the
    caller for every fill of one matching (nothing a fill does moves it)."""
    qty = fill.quantity
    if order.reduce_only:
        key = (order.phase_id, order.venue, order.symbol, order.instrument)
        position_qty = state.portfolio.quantity(key)
        room = abs(position_qty) if position_qty != 0 and (position_qty > 0) != order.is_buy else ZERO
        if qty > room:
            qty = room
        if qty <= 0:
            finish(state, order, CANCELED, now, "reduce-only: no position left to reduce")
            return
    fee = state.paper.fee(order.venue, qty * fill.price, fill.maker)
    book_fill(state, order, qty, fill.price, fee, fill.maker, now, fill_id, reference)


def reference_price(state: EngineState, order: ManagedOrder) -> Decimal | None:
    """The price the order's instrument is valued at now (None: no market data for it)."""
    instrument = state.market.get((order.venue, order.symbol, order.instrument))
    return instrument.reference_price() if instrument is not None else None


def next_fill_id(order: ManagedOrder) -> str:
    return f"{order.client_order_id}-{order.fill_seq + 1}"


def book_fill(
    state: EngineState, order: ManagedOrder, qty: Decimal, price: Decimal, fee: Decimal, maker: bool, now: int,
    fill_id: str, reference: Decimal | None,
) -> None:
    """Book a fill into the order and its position and queue the Fill event; the position is marked
    at ``reference`` (:func:`reference_price`), else at the fill's price."""
    position = _position_of(state, order)
    _book(state, order, position, qty, price, fee, maker, now, fill_id)
    _after_fills(state, order, position, price if reference is None else reference, 1, now)


def take_fills(state: EngineState, order: ManagedOrder, fills: list[Fill], now: int,
               reference: Decimal | None) -> None:
    """Book the fills of one walk of the book by a taker (:meth:`PaperVenue.take`) in order, until
    the order closes: what :func:`apply_paper_fill` does for each, with what the fills share done
    once (finding the position and the fee schedule, marking the position, counting the fills, and
    putting the order and its position among the outputs)."""
    if order.reduce_only or not fills:  # clipped to the position fill by fill
        for fill in fills:
            apply_paper_fill(state, order, fill, now, next_fill_id(order), reference)
            if not order.is_open:
                return
        return
    position = _position_of(state, order)
    fees = state.paper.fee_schedule(order.venue)
    booked = 0
    for price, qty, maker in fills:
        booked += 1
        _book(state, order, position, qty, price, fees.fee(qty * price, maker), maker, now, next_fill_id(order))
        if not order.is_open:
            break
    _after_fills(state, order, position, price if reference is None else reference, booked, now)


def _position_of(state: EngineState, order: ManagedOrder) -> Position:
    """The position an order's fills go to; a perp entry sets its leverage."""
    position = state.portfolio.position((order.phase_id, order.venue, order.symbol, order.instrument))
    if not order.reduce_only and order.instrument == PERP:
        position.leverage = order.leverage
    return position


def _book(
    state: EngineState, order: ManagedOrder, position: Position, qty: Decimal, price: Decimal, fee: Decimal,
    maker: bool, now: int, fill_id: str,
) -> None:
    """One fill into the order, its position and the gate's open notional, and its Fill event."""
    order.apply_fill(qty, price, fee, now)
    realized = position.apply_fill(order.is_buy, qty, price, fee, now)
    left = state.adding_left.get(order.client_order_id)
    if left is not None:
        used = order.notional * qty / order.quantity
        state.adding_left[order.client_order_id] = left - used
        state.open_book.reduced(order.phase_id, used)
    state.outputs.events.append(
        trading_pb2.Fill(
            venue=order.venue,
            fill_id=fill_id,
            client_order_id=order.client_order_id,
            phase_id=order.phase_id,
            symbol=order.symbol,
            instrument=order.instrument,  # type: ignore[arg-type]
            side=order.side,  # type: ignore[arg-type]
            price=fmt(price),
            quantity=fmt(qty),
            fee=fmt(fee),
            maker=maker,
            realized_pnl=fmt(realized),
            ts_ns=now,
        )
    )
    if state.external:  # venue fill ids are remembered to book each once; paper ids are unique by construction
        state.fill_ids.add((order.venue, fill_id))


def _after_fills(state: EngineState, order: ManagedOrder, position: Position, mark: Decimal, fills: int,
                 now: int) -> None:
    """After an order's fills: its position marked at ``mark``, both among the outputs, the fills
    counted, and the bookkeeping of a closed order."""
    position.mark = mark
    state.metrics.fill(order.phase_id, order.venue, fills)
    state.outputs.touch(order)
    state.outputs.touch_position(position)
    if not order.is_open:
        closed(state, order, now)
