"""Time: expire working orders, ask an external venue to cancel orders past their time, settle
funding whose time has passed, roll the day, forget old signal ids and terminal orders; and say
when the next of these is due."""

from __future__ import annotations

from titan.execution.engine import funding, hedge
from titan.execution.engine.lifecycle import finish
from titan.execution.engine.outputs import Update
from titan.execution.engine.signals import prune_seen
from titan.execution.engine.state import NS_PER_DAY, EngineState
from titan.execution.orders import EXPIRED, ManagedOrder


def tick(state: EngineState) -> list[Update]:
    now = state.clock.now_ns()
    for order in state.expiries.due(state.working, now):
        finish(state, order, EXPIRED, now, "expired")
    if state.external:  # a venue order past its time is canceled at the venue, not expired here
        for order in state.orders.values():
            cid = order.client_order_id
            if (order.is_open and order.expires_at_ns and now >= order.expires_at_ns
                    and cid not in state.cancel_requested):
                state.cancel_requested.add(cid)
                state.cancels.append(order)
    else:
        funding.settle_due(state, now)
    hedge.on_tick(state, now)
    state.portfolio.roll_day(now)
    prune_seen(state, now)
    horizon = now - state.config.order_retention_ns
    while state.terminal and state.terminal[0][0] <= horizon:
        _, cid = state.terminal.popleft()
        retained = state.orders.get(cid)
        if retained is not None and retained.is_terminal:
            del state.orders[cid]
    return state.outputs.flush()


def next_due_ns(state: EngineState) -> int:
    """The earliest time :func:`tick` has work to do: a working order's expiry, an announced funding
    time that has not settled, or the next UTC midnight (the day roll)."""
    now = state.clock.now_ns()
    due = now - now % NS_PER_DAY + NS_PER_DAY
    expiry = state.expiries.next_ns(state.working)
    if expiry is not None:
        due = min(due, expiry)
    if state.external:
        for order in state.orders.values():
            if order.is_open and order.expires_at_ns and order.client_order_id not in state.cancel_requested:
                due = min(due, order.expires_at_ns)
        return hedge.next_due_ns(state, due)
    return funding.next_due_ns(state, hedge.next_due_ns(state, due))


def take_cancels(state: EngineState) -> list[ManagedOrder]:
    """External venue orders :func:`tick` found past their expiry: the caller cancels them."""
    out, state.cancels = state.cancels, []
    return out
