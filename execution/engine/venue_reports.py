"""External venue reports (live): a report moves its order through the state machine; a fill is
booked once per (venue, fill id). Unknown orders, duplicate fills and illegal transitions are
ignored."""

from __future__ import annotations

from titan.execution.engine.lifecycle import book_fill, finish, reference_price
from titan.execution.engine.outputs import Update
from titan.execution.engine.state import EngineState, VenueReport
from titan.execution.orders import (
    ACCEPTED,
    CANCELED,
    EXPIRED,
    NEW,
    REJECTED,
    SUBMITTED,
    IllegalTransition,
)

_CLOSING = {"rejected": REJECTED, "canceled": CANCELED, "expired": EXPIRED}


def on_venue_report(state: EngineState, report: VenueReport) -> list[Update]:
    now = state.clock.now_ns()
    order = state.orders.get(report.client_order_id)
    if order is None:
        return []
    try:
        if report.venue_order_id and not order.venue_order_id:
            order.venue_order_id = report.venue_order_id
            state.outputs.touch(order)
        if report.kind == "fill":
            if (order.venue, report.fill_id) in state.fill_ids or not report.fill_id:
                return state.outputs.flush()
            quantity = min(report.quantity, order.remaining)
            if quantity > 0:
                book_fill(state, order, quantity, report.price, report.fee, report.maker, report.ts_ns or now,
                          report.fill_id, reference_price(state, order))
        elif report.kind == "accepted":
            if order.state == SUBMITTED:
                order.transition(ACCEPTED, now)
                state.outputs.touch(order)
        elif report.kind in _CLOSING and order.is_open:
            closing = _CLOSING[report.kind]
            if closing == REJECTED and order.state not in (NEW, SUBMITTED):
                closing = CANCELED
            finish(state, order, closing, now, report.reason or report.kind)
    except IllegalTransition:
        pass
    return state.outputs.flush()
