"""The pure parts of the phase runtime: what a strategy returns, the entry gate, and the tracker
that turns position updates into closed trades. No I/O here; the driver in ``runner.py`` wraps it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from titan.core.money import D_or
from titan.v1 import common_pb2, execution_pb2, market_pb2, trading_pb2


@dataclass(frozen=True)
class PhaseEvent:
    """Something a strategy saw or decided (trap sprung, aborted, fired, cool-down, ...)."""

    kind: str
    symbol: str
    ts_ns: int
    detail: tuple[tuple[str, str], ...] = ()

    def get(self, key: str, default: str = "") -> str:
        return dict(self.detail).get(key, default)


@dataclass
class StrategyOutput:
    signals: list[trading_pb2.Signal] = field(default_factory=list)
    events: list[PhaseEvent] = field(default_factory=list)

    def extend(self, other: StrategyOutput) -> StrategyOutput:
        self.signals.extend(other.signals)
        self.events.extend(other.events)
        return self

    def event(self, kind: str, symbol: str, ts_ns: int, **detail: object) -> PhaseEvent:
        ev = PhaseEvent(kind, symbol, ts_ns, tuple((k, str(v)) for k, v in detail.items()))
        self.events.append(ev)
        return ev


class Strategy(Protocol):
    """What the runtime drives. Every method is synchronous, deterministic and does no I/O."""

    phase_id: str

    def market_filters(self) -> list[tuple[str, str, str]]:
        """(venue, symbol, kind) triples to subscribe to; "*" is a wildcard."""
        ...

    def on_event(self, ev: market_pb2.MarketEvent) -> StrategyOutput: ...

    def on_time(self) -> StrategyOutput: ...

    def set_budget(self, budget: trading_pb2.Budget | None) -> None: ...

    def set_params(self, raw: Mapping[str, Any]) -> None:
        """Validate and apply new parameters; raise ValueError (the old ones stay) when invalid."""
        ...

    def on_ack(self, ack: trading_pb2.SignalAck) -> StrategyOutput: ...

    def on_trade_closed(self, symbol: str, pnl: Decimal) -> StrategyOutput: ...

    @property
    def state(self) -> str: ...

    def diagnostics(self) -> dict[str, float]: ...


# --- entry gate ------------------------------------------------------------------------------------
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
        weight = D_or(budget.weight, Decimal(0))
        notional = D_or(budget.max_notional, Decimal(0))
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


# --- closed trades from position updates ----------------------------------------------------------
@dataclass
class _Open:
    realized: Decimal
    fees: Decimal
    funding: Decimal


class TradeTracker:
    """Turns the phase's Position updates into closed trades: a trade opens when the quantity leaves
    zero and closes when it returns to zero (or flips sign); its PnL is the change of realized PnL
    minus fees plus funding over its life. Updates with an older version are ignored."""

    def __init__(self) -> None:
        self._qty: dict[tuple[str, str], Decimal] = {}
        self._open: dict[tuple[str, str], _Open] = {}
        self._version: dict[tuple[str, str], int] = {}
        self._last: dict[tuple[str, str], _Open] = {}

    def on_position(self, pos: trading_pb2.Position) -> list[tuple[str, Decimal]]:
        key = (pos.venue, pos.symbol)
        if pos.version and pos.version <= self._version.get(key, 0):
            return []
        self._version[key] = pos.version
        qty = D_or(pos.quantity, Decimal(0))
        realized = D_or(pos.realized_pnl, Decimal(0))
        fees = D_or(pos.fees, Decimal(0))
        funding = D_or(pos.funding, Decimal(0))
        prev = self._qty.get(key, Decimal(0))
        self._qty[key] = qty
        before = self._last.get(key, _Open(Decimal(0), Decimal(0), Decimal(0)))
        self._last[key] = _Open(realized, fees, funding)
        closed: list[tuple[str, Decimal]] = []
        if prev != 0 and (qty == 0 or (qty > 0) != (prev > 0)):
            start = self._open.pop(key, None)
            if start is not None:
                pnl = (realized - start.realized) - (fees - start.fees) + (funding - start.funding)
                closed.append((pos.symbol, pnl))
        if qty != 0 and key not in self._open:
            # From flat, the trade starts before the fill that opened it (its fee belongs to it);
            # after a flip, at this update.
            self._open[key] = before if prev == 0 else _Open(realized, fees, funding)
        return closed


def hello(phase_id: str, instance: str) -> execution_pb2.StreamRequest:
    return execution_pb2.StreamRequest(hello=execution_pb2.Hello(phase_id=phase_id, instance=instance))
