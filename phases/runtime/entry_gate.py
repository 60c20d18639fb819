"""The entry gate: why a phase must not send a new entry now (its budget, its state, the organism's
trading state, the symbols its budget allows), as reason codes; fails closed."""

from __future__ import annotations

from decimal import Decimal

from titan.core.money import to_decimal_or
from titan.v1 import common_pb2, trading_pb2


class EntryBlock:
    """Reason codes of the entry gate (metric labels)."""

    NO_BUDGET = "no_budget"
    EXPIRED = "budget_expired"
    ZERO = "budget_zero"
    THROTTLED = "throttled"
    HALTED = "halted"
    DORMANT = "dormant"
    UNSPECIFIED = "budget_state_unknown"
    TRADING_HALTED = "trading_halted"
    TRADING_REDUCING = "trading_reducing"
    TRADING_UNKNOWN = "trading_state_unknown"
    WRONG_PHASE = "budget_wrong_phase"
    SYMBOL_NOT_ALLOWED = "symbol_not_allowed"


def entry_block(
    phase_id: str,
    budget: trading_pb2.Budget | None,
    trading_state: trading_pb2.TradingState | None,
    now_ns: int,
) -> str | None:
    """Why a new entry must not be sent now, or None when it may.

    Fails closed: no budget, a budget for another phase, an expired one, a zero weight or notional,
    a Dormant/Throttled/Halted/unspecified state, or a trading state other than ACTIVE all block.
    A missing trading state blocks too (execution treats unknown as HALTED)."""
    if budget is None:
        return EntryBlock.NO_BUDGET
    if budget.phase_id != phase_id:
        return EntryBlock.WRONG_PHASE
    if budget.expires_at_ns and now_ns >= budget.expires_at_ns:
        return EntryBlock.EXPIRED
    if budget.expires_at_ns == 0:
        return EntryBlock.EXPIRED  # a budget without an expiry is malformed: fail closed
    st = budget.state
    if st == common_pb2.PHASE_STATE_HALTED:
        return EntryBlock.HALTED
    if st == common_pb2.PHASE_STATE_THROTTLED:
        return EntryBlock.THROTTLED
    if st == common_pb2.PHASE_STATE_DORMANT:
        return EntryBlock.DORMANT
    if st != common_pb2.PHASE_STATE_ACTIVE:
        return EntryBlock.UNSPECIFIED
    try:
        weight = to_decimal_or(budget.weight, Decimal(0))
        notional = to_decimal_or(budget.max_notional, Decimal(0))
    except ValueError:
        return EntryBlock.ZERO
    if weight <= 0 or notional <= 0:
        return EntryBlock.ZERO
    if trading_state is None or trading_state.mode == common_pb2.TRADING_MODE_UNSPECIFIED:
        return EntryBlock.TRADING_UNKNOWN
    if trading_state.mode == common_pb2.TRADING_MODE_HALTED:
        return EntryBlock.TRADING_HALTED
    if trading_state.mode == common_pb2.TRADING_MODE_REDUCING:
        return EntryBlock.TRADING_REDUCING
    return None


def is_entry(signal: trading_pb2.Signal) -> bool:
    return signal.intent == trading_pb2.INTENT_OPEN


def symbols_block(budget: trading_pb2.Budget | None, signal: trading_pb2.Signal) -> str | None:
    """An entry whose symbol the budget does not allow (its list empty = none) is not sent either."""
    allowed = set(budget.symbols) if budget is not None else set()
    if any(leg.symbol not in allowed for leg in signal.legs):
        return EntryBlock.SYMBOL_NOT_ALLOWED
    return None
