"""Control: the trading state (HALTED cancels every open order), budgets, phase keys, and flattening
(reduce-only market orders that bypass the gate: flattening only ever reduces)."""

from __future__ import annotations

from collections.abc import Callable

from titan.execution import enums
from titan.execution.engine import matching
from titan.execution.engine.lifecycle import finish, register, rest
from titan.execution.engine.outputs import Update
from titan.execution.engine.state import BUY, SELL, EngineState
from titan.execution.gate import BudgetView
from titan.execution.orders import ACCEPTED, CANCELED, NEW, REJECTED, SUBMITTED, ManagedOrder, client_order_id
from titan.v1 import trading_pb2

TradingMode = enums.TradingMode
OrderType = enums.OrderType
_TRADING = (TradingMode.TRADING_MODE_ACTIVE, TradingMode.TRADING_MODE_REDUCING)


def set_trading_state(
    state: EngineState, trading_state: trading_pb2.TradingState
) -> tuple[bool, list[Update], list[ManagedOrder]]:
    """Apply ``trading_state`` if newer (higher version) than the one in force. HALTED cancels every
    open order. Returns (applied, updates, orders an external venue must cancel)."""
    current = state.trading_state
    if current.mode != TradingMode.TRADING_MODE_UNSPECIFIED and trading_state.version <= current.version:
        return False, [], []
    state.trading_state = trading_pb2.TradingState()
    state.trading_state.CopyFrom(trading_state)
    state.gate.trading_mode = int(trading_state.mode)
    cancels: list[ManagedOrder] = []
    if trading_state.mode not in _TRADING:
        cancels = cancel_where(state, lambda order: True, "trading halted")
    state.outputs.tail.append(state.trading_state)
    return True, state.outputs.flush(), cancels


def update_budget(state: EngineState, budget: trading_pb2.Budget) -> str:
    """"applied", "stale" (not newer than the one in force) or "invalid"."""
    try:
        view = BudgetView(budget)
    except (ValueError, ArithmeticError):
        return "invalid"
    current = state.gate.budgets.get(view.phase_id)
    if current is not None and view.version <= current.version:
        return "stale"
    state.gate.budgets[view.phase_id] = view
    return "applied"


def remove_budget(state: EngineState, phase_id: str) -> bool:
    """The Brain deleted ``phase_id``'s budget: the gate lets that phase only reduce from now on."""
    return state.gate.budgets.pop(phase_id, None) is not None


def set_keys(state: EngineState, keys: dict[str, bytes]) -> None:
    state.gate.keys.clear()
    state.gate.keys.update(keys)


def flatten(
    state: EngineState, phase: str, symbol: str, tag: str
) -> tuple[list[str], list[Update], list[ManagedOrder], list[ManagedOrder]]:
    """Cancel open orders and close positions of ``phase`` ("" = all) in ``symbol`` ("" = all) with
    reduce-only market orders whose ids derive from ``tag``. Returns (client order ids, updates,
    submissions, cancels)."""
    now = state.clock.now_ns()

    def adding_in_scope(order: ManagedOrder) -> bool:
        return ((not phase or order.phase_id == phase) and (not symbol or order.symbol == symbol)
                and not order.reduce_only)

    cancels = cancel_where(state, adding_in_scope, "flatten")
    cids: list[str] = []
    submissions: list[ManagedOrder] = []
    targets = sorted(
        (p for p in state.portfolio if p.quantity != 0 and (not phase or p.phase_id == phase)
         and (not symbol or p.key[2] == symbol)),
        key=lambda p: p.key,
    )
    for leg, position in enumerate(targets):
        position_phase, venue, position_symbol, instrument = position.key
        cid = client_order_id(position_phase, f"flatten:{tag}", leg)
        if cid in state.orders:
            cids.append(cid)
            continue
        market = state.market.get((venue, position_symbol, instrument))
        reference = market.reference_price() if market is not None else None
        quantity = abs(position.quantity)
        order = ManagedOrder(
            client_order_id=cid, phase_id=position_phase, signal_id=f"flatten:{tag}", leg=leg, venue=venue,
            symbol=position_symbol, instrument=instrument, side=SELL if position.quantity > 0 else BUY,
            order_type=OrderType.ORDER_TYPE_MARKET, quantity=quantity,
            notional=quantity * (reference or position.average_entry), reduce_only=True, created_at_ns=now,
        )
        register(state, order)
        cids.append(cid)
        if state.external:
            order.transition(SUBMITTED, now, "flatten")
            submissions.append(order)
        elif market is None:
            order.transition(SUBMITTED, now, "flatten")
            order.transition(ACCEPTED, now)
            order.expires_at_ns = now + state.config.paper.market_remainder_ttl_ns
            rest(state, order)
        else:
            matching.place(state, order, market, None, now)
    return cids, state.outputs.flush(), submissions, cancels


def cancel_where(state: EngineState, predicate: Callable[[ManagedOrder], bool], reason: str) -> list[ManagedOrder]:
    """Cancel the open orders ``predicate`` selects; returns those an external venue must cancel."""
    now = state.clock.now_ns()
    out: list[ManagedOrder] = []
    for order in list(state.orders.values()):
        if order.is_open and predicate(order):
            if state.external and order.state != NEW:
                out.append(order)
            elif order.state == NEW:  # decided but never sent: it cannot be canceled, only refused
                finish(state, order, REJECTED, now, reason)
            else:
                finish(state, order, CANCELED, now, reason)
    return out
