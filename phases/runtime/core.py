"""The pure parts of the phase runtime: what a strategy returns, the entry gate, the tracker that
turns fills and position updates into closed trades, and :class:`PhaseCore`, which drives a strategy with them.
No I/O here: the live driver in ``runner.py`` and the backtest driver both wrap a PhaseCore."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from titan.core.clock import Clock
from titan.core.money import to_decimal_or
from titan.core.signing import sign_signal
from titan.phases.runtime.metrics import PhaseMetrics
from titan.v1 import common_pb2, events_pb2, execution_pb2, market_pb2, trading_pb2

log = logging.getLogger("titan.phases.runtime")


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
    """What the runtime drives. Every method is synchronous, deterministic and does no I/O.

    Feedback from execution arrives only for the phase's own orders and positions, in the order
    execution produced it: ``on_ack`` for each signal, then ``on_order`` (order snapshots), ``on_fill``
    and ``on_position`` (the position after the fills), ``on_hedge(outcome)`` when a hedged unit (a
    two-leg signal executed as one) has settled (optional: only a phase that sends hedged units needs
    it), and ``on_trade_closed`` once a position returned to flat (for a hedged unit's legs: once
    both did, as one trade). :class:`StrategyBase` gives no-op defaults."""

    phase_id: str

    def market_filters(self) -> list[tuple[str, str, str]]:
        """(venue, symbol, kind) triples to subscribe to; "*" is a wildcard."""
        ...

    def on_event(self, ev: market_pb2.MarketEvent) -> StrategyOutput: ...

    def on_time(self) -> StrategyOutput: ...

    def next_wakeup_ns(self) -> int | None:
        """The earliest time :meth:`on_time` has work to do (0: at every tick), or None when nothing
        is pending until the next input. Live runners tick on their cadence regardless; the backtest
        driver calls :meth:`on_time` only at the first tick at or after this time."""
        ...

    def set_budget(self, budget: trading_pb2.Budget | None) -> None: ...

    def set_params(self, raw: Mapping[str, Any]) -> None:
        """Validate and apply new parameters; raise ValueError (the old ones stay) when invalid."""
        ...

    def on_ack(self, ack: trading_pb2.SignalAck) -> StrategyOutput: ...

    def on_order(self, order: trading_pb2.Order) -> StrategyOutput: ...

    def on_fill(self, fill: trading_pb2.Fill) -> StrategyOutput: ...

    def on_position(self, position: trading_pb2.Position) -> StrategyOutput: ...

    def on_trade_closed(self, symbol: str, pnl: Decimal) -> StrategyOutput: ...

    @property
    def state(self) -> str: ...

    def diagnostics(self) -> dict[str, float]: ...


class StrategyBase:
    """No-op defaults for the feedback a strategy may ignore; a phase overrides what it uses."""

    def on_time(self) -> StrategyOutput:
        return StrategyOutput()

    def next_wakeup_ns(self) -> int | None:
        """No timers unless the phase has its own ``on_time``; then every tick, unless it says better."""
        return None if type(self).on_time is StrategyBase.on_time else 0

    def on_ack(self, ack: trading_pb2.SignalAck) -> StrategyOutput:
        return StrategyOutput()

    def on_order(self, order: trading_pb2.Order) -> StrategyOutput:
        return StrategyOutput()

    def on_fill(self, fill: trading_pb2.Fill) -> StrategyOutput:
        return StrategyOutput()

    def on_position(self, position: trading_pb2.Position) -> StrategyOutput:
        return StrategyOutput()

    def on_hedge(self, outcome: trading_pb2.HedgeOutcome) -> StrategyOutput:
        return StrategyOutput()

    def on_trade_closed(self, symbol: str, pnl: Decimal) -> StrategyOutput:
        return StrategyOutput()

    @property
    def state(self) -> str:
        return "ACTIVE"

    def diagnostics(self) -> dict[str, float]:
        return {}


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


# --- closed trades from position updates ----------------------------------------------------------
@dataclass(frozen=True)
class _Totals:
    """A position's cumulative realized PnL, fees and funding at one update."""

    realized: Decimal
    fees: Decimal
    funding: Decimal

    def since(self, start: _Totals) -> Decimal:
        """A trade's PnL between two updates: realized minus fees plus funding."""
        return (self.realized - start.realized) - (self.fees - start.fees) + (self.funding - start.funding)


_ZERO_TOTALS = _Totals(Decimal(0), Decimal(0), Decimal(0))
PositionKey = tuple[str, str, int]  # (venue, symbol, instrument kind)


@dataclass(frozen=True)
class _OpenTrade:
    start: _Totals
    opened_by: str  # the signal whose fill opened it ("": unknown)
    long: bool


@dataclass(frozen=True)
class ClosedTrade:
    symbol: str
    pnl: Decimal


def _position_key(pos: trading_pb2.Position | trading_pb2.Fill) -> PositionKey:
    """A position is one instrument: spot and perp of the same symbol and venue are two."""
    return (pos.venue, pos.symbol, int(pos.instrument))


def signal_of(client_order_id: str) -> str:
    """The signal part of a client order id (``<signal part>-<leg>``); every leg and hedge step of one
    signal shares it."""
    return client_order_id.rpartition("-")[0] or client_order_id


_SPOT, _PERP = int(common_pb2.INSTRUMENT_KIND_SPOT), int(common_pb2.INSTRUMENT_KIND_PERP)
_HEDGE_PAIR = {_SPOT: _PERP, _PERP: _SPOT}  # the instrument of a hedged leg's partner


class TradeTracker:
    """Turns the phase's fills and Position updates into closed trades, as the backtest's
    ``closed_trades`` counts them: a trade opens when an instrument's quantity leaves zero and closes
    when it returns to zero (or flips sign); its PnL is the change of realized PnL minus fees plus
    funding over its life. The spot and the perp position of one symbol on opposite sides that the
    same signal opened (a hedged unit's legs) are one trade: the leg that closes first waits for the
    other, and the trade closes with it, with both legs' PnL. The opening signal is that of the last
    fill seen before the position left zero (execution sends an order's fills before the position
    they make). Updates with an older version are ignored."""

    def __init__(self) -> None:
        self._qty: dict[PositionKey, Decimal] = {}
        self._open: dict[PositionKey, _OpenTrade] = {}
        self._version: dict[PositionKey, int] = {}
        self._last: dict[PositionKey, _Totals] = {}
        self._last_signal: dict[PositionKey, str] = {}
        self._waiting: dict[PositionKey, Decimal] = {}  # open hedge leg -> PnL of its partner, closed first

    def is_stale(self, pos: trading_pb2.Position) -> bool:
        """An update older than (or the same as) one already seen."""
        return bool(pos.version) and pos.version <= self._version.get(_position_key(pos), 0)

    def on_fill(self, fill: trading_pb2.Fill) -> None:
        """Remember which signal last traded the instrument: it opens the position the next update shows."""
        self._last_signal[_position_key(fill)] = signal_of(fill.client_order_id)

    def on_position(self, pos: trading_pb2.Position) -> list[ClosedTrade]:
        key = _position_key(pos)
        if self.is_stale(pos):
            return []
        self._version[key] = pos.version
        qty = to_decimal_or(pos.quantity, Decimal(0))
        now = _Totals(
            to_decimal_or(pos.realized_pnl, Decimal(0)),
            to_decimal_or(pos.fees, Decimal(0)),
            to_decimal_or(pos.funding, Decimal(0)),
        )
        prev = self._qty.get(key, Decimal(0))
        self._qty[key] = qty
        before = self._last.get(key, _ZERO_TOTALS)
        self._last[key] = now
        closed: list[ClosedTrade] = []
        if prev != 0 and (qty == 0 or (qty > 0) != (prev > 0)):
            trade = self._open.pop(key, None)
            if trade is not None:
                closed.extend(self._close(key, trade, now.since(trade.start)))
        if qty != 0 and key not in self._open:
            # From flat, the trade starts before the fill that opened it (its fee belongs to it);
            # after a flip, at this update.
            self._open[key] = _OpenTrade(before if prev == 0 else now, self._last_signal.get(key, ""), qty > 0)
        return closed

    def _close(self, key: PositionKey, trade: _OpenTrade, pnl: Decimal) -> list[ClosedTrade]:
        """The trade, or nothing while its hedge partner is still open (it then closes both)."""
        symbol = key[1]
        partner_pnl = self._waiting.pop(key, None)
        if partner_pnl is not None:
            return [ClosedTrade(symbol, partner_pnl + pnl)]
        partner = self._partner(key, trade)
        if partner is None:
            return [ClosedTrade(symbol, pnl)]
        self._waiting[partner] = pnl
        return []

    def _partner(self, key: PositionKey, trade: _OpenTrade) -> PositionKey | None:
        """The other leg of the hedged unit that opened ``trade``, when it is still open."""
        other_kind = _HEDGE_PAIR.get(key[2])
        if not trade.opened_by or other_kind is None:
            return None
        for other, held in self._open.items():
            if (other[1] == key[1] and other[2] == other_kind and held.opened_by == trade.opened_by
                    and held.long != trade.long and other not in self._waiting):
                return other
        return None


def hello(phase_id: str, instance: str) -> execution_pb2.StreamRequest:
    return execution_pb2.StreamRequest(hello=execution_pb2.Hello(phase_id=phase_id, instance=instance))


# --- the phase core --------------------------------------------------------------------------------
@dataclass
class RuntimeStats:
    market_events: int = 0
    rejected_events: int = 0
    signals_sent: int = 0
    entries_blocked: dict[str, int] = field(default_factory=dict)
    acks_accepted: int = 0
    acks_rejected: int = 0
    orders: int = 0
    fills: int = 0
    positions: int = 0
    stale_positions: int = 0
    foreign_updates: int = 0
    hedge_outcomes: int = 0
    budget_updates: int = 0
    trading_state_updates: int = 0
    params_applied: int = 0
    params_rejected: int = 0
    diagnostics_published: int = 0
    strategy_errors: int = 0
    trades_closed: int = 0


class PhaseCore:
    """One phase, I/O-free: market events, timer ticks, execution updates, budgets, the trading state
    and parameters go in; the signals to send come out, entry-gated, with ``phase_id`` set and signed.

    A strategy exception never escapes (counted in ``stats.strategy_errors`` and logged). The events
    of the last call are in :attr:`events`; each is also logged and counted here. Updates of another
    phase are dropped (``stats.foreign_updates``)."""

    def __init__(self, strategy: Strategy, phase_id: str, key: bytes, clock: Clock) -> None:
        if len(key) < 16:
            raise ValueError("the phase key must be at least 16 bytes")
        self.strategy = strategy
        self.phase_id = phase_id
        self.clock = clock
        self.budget: trading_pb2.Budget | None = None
        self.trading_state: trading_pb2.TradingState | None = None
        self.stats = RuntimeStats()
        self.tracker = TradeTracker()
        self.events: list[PhaseEvent] = []
        self.metrics = PhaseMetrics(phase_id)
        self._key = key
        self._block: str | None = EntryBlock.NO_BUDGET  # the gate's reason apart from the expiry (see entry_block)

    # --- inputs ------------------------------------------------------------------------------------
    def feed(self, ev: market_pb2.MarketEvent) -> list[trading_pb2.Signal]:
        self.stats.market_events += 1
        return self._step([self._run(self.strategy.on_event, ev)])

    def on_time(self) -> list[trading_pb2.Signal]:
        return self._step([self._run(self.strategy.on_time)])

    def next_wakeup_ns(self) -> int | None:
        """When the strategy's timers are next due (see :meth:`Strategy.next_wakeup_ns`); a strategy
        without the method, or one that fails, is ticked every time (0)."""
        wake = getattr(self.strategy, "next_wakeup_ns", None)
        if wake is None:
            return 0
        try:
            due = wake()
        except Exception:
            self._strategy_error()
            return 0
        return None if due is None else int(due)

    def on_update(self, update: execution_pb2.ExecutionUpdate) -> list[trading_pb2.Signal]:
        """An ack, order, fill, position or hedged unit's outcome from execution, delivered to the
        strategy when it is this phase's; a position that returns to flat also closes a trade
        (``on_trade_closed``)."""
        body = update.WhichOneof("body")
        if body == "ack":
            return self._step(self._on_ack(update.ack))
        if body == "order" and self._own(update.order.phase_id):
            self.stats.orders += 1
            return self._step([self._run(self.strategy.on_order, update.order)])
        if body == "fill" and self._own(update.fill.phase_id):
            self.stats.fills += 1
            self.tracker.on_fill(update.fill)
            return self._step([self._run(self.strategy.on_fill, update.fill)])
        if body == "position" and self._own(update.position.phase_id):
            return self._step(self._on_position(update.position))
        if body == "hedge" and self._own(update.hedge.phase_id):
            self.stats.hedge_outcomes += 1
            on_hedge = getattr(self.strategy, "on_hedge", None)  # only phases that send hedged units need it
            return self._step([] if on_hedge is None else [self._run(on_hedge, update.hedge)])
        return self._step([])

    def apply_budget(self, budget: trading_pb2.Budget) -> None:
        if budget.phase_id == self.phase_id:
            self._set_budget(budget)

    def remove_budget(self, phase_id: str) -> None:
        """The Brain deleted this phase's budget: no entries from now on (exits still go)."""
        if phase_id == self.phase_id and self.budget is not None:
            self._set_budget(None)

    def apply_trading_state(self, state: trading_pb2.TradingState) -> None:
        self.trading_state = state
        self.stats.trading_state_updates += 1
        self._gate_changed()

    def apply_params(self, raw: Mapping[str, Any]) -> bool:
        """Validate and apply parameters; False (the old ones stay) when the strategy refuses them."""
        try:
            self.strategy.set_params(raw)
        except ValueError as err:  # pydantic's ValidationError is a ValueError
            self.stats.params_rejected += 1
            self.metrics.params("invalid")
            log.warning("phase %s: parameters refused: %s", self.phase_id, str(err).replace("\n", "; "))
            return False
        except Exception:
            self._strategy_error()
            return False
        self.stats.params_applied += 1
        self.metrics.params("applied")
        return True

    # --- state -------------------------------------------------------------------------------------
    def entry_block(self) -> str | None:
        """:func:`entry_block` at the clock's now. Everything but the expiry is decided when the budget
        or the trading state changes (parsing the budget on every event would dominate a backtest)."""
        block, budget = self._block, self.budget
        if budget is None or block == EntryBlock.WRONG_PHASE:
            return block
        if budget.expires_at_ns and self.clock.now_ns() >= budget.expires_at_ns:
            return EntryBlock.EXPIRED
        return block

    @property
    def state(self) -> str:
        """ACTIVE, COOLDOWN (the strategy's own pause) or BLOCKED (the entry gate is closed)."""
        try:
            st = self.strategy.state
        except Exception:
            self._strategy_error()
            st = "UNKNOWN"
        if st == "ACTIVE" and self.entry_block() is not None:
            return "BLOCKED"
        return st

    def diagnostics(self) -> events_pb2.PhaseDiagnostics:
        try:
            values = dict(self.strategy.diagnostics())
        except Exception:
            self._strategy_error()
            values = {}
        stats = self.stats
        values.update({
            "market_events": float(stats.market_events),
            "signals_sent": float(stats.signals_sent),
            "entries_blocked": float(sum(stats.entries_blocked.values())),
            "acks_accepted": float(stats.acks_accepted),
            "acks_rejected": float(stats.acks_rejected),
            "fills": float(stats.fills),
            "trades_closed": float(stats.trades_closed),
            "strategy_errors": float(stats.strategy_errors),
            "budget_present": 0.0 if self.budget is None else 1.0,
        })
        block = self.entry_block()
        notes = [f"entries blocked: {block}"] if block else []
        return events_pb2.PhaseDiagnostics(
            phase_id=self.phase_id, ts_ns=self.clock.now_ns(), state=self.state, values=values, notes=notes
        )

    # --- internals ---------------------------------------------------------------------------------
    def _own(self, phase_id: str) -> bool:
        if phase_id == self.phase_id:
            return True
        self.stats.foreign_updates += 1
        return False

    def _on_ack(self, ack: trading_pb2.SignalAck) -> list[StrategyOutput | None]:
        if ack.phase_id and ack.phase_id != self.phase_id:
            self.stats.foreign_updates += 1
            return []
        if ack.accepted:
            self.stats.acks_accepted += 1
            self.metrics.ack("accepted")
        else:
            self.stats.acks_rejected += 1
            self.metrics.ack(trading_pb2.RejectReason.Name(ack.reason))
        return [self._run(self.strategy.on_ack, ack)]

    def _on_position(self, pos: trading_pb2.Position) -> list[StrategyOutput | None]:
        if self.tracker.is_stale(pos):
            self.stats.stale_positions += 1
            return []
        self.stats.positions += 1
        outputs = [self._run(self.strategy.on_position, pos)]
        for trade in self.tracker.on_position(pos):
            self.stats.trades_closed += 1
            self.metrics.trade_closed("win" if trade.pnl > 0 else "loss")
            outputs.append(self._run(self.strategy.on_trade_closed, trade.symbol, trade.pnl))
        return outputs

    def _set_budget(self, budget: trading_pb2.Budget | None) -> None:
        self.budget = budget
        self.stats.budget_updates += 1
        try:
            self.strategy.set_budget(budget)
        except Exception:
            self._strategy_error()
        self._gate_changed()

    def _gate_changed(self) -> None:
        # Decided as of the earliest time: an expiry is the one reason that depends on the clock.
        self._block = entry_block(self.phase_id, self.budget, self.trading_state, -(2**63))
        self.metrics.state(self.state)

    def _run(self, step: Callable[..., StrategyOutput], *args: Any) -> StrategyOutput | None:
        try:
            return step(*args)
        except Exception:  # a strategy bug never takes the phase down
            self._strategy_error()
            return None

    def _strategy_error(self) -> None:
        self.stats.strategy_errors += 1
        log.exception("phase %s: strategy error", self.phase_id)

    def _step(self, outputs: list[StrategyOutput | None]) -> list[trading_pb2.Signal]:
        """Log and count the events of this call, gate and sign its signals."""
        events: list[PhaseEvent] = []
        sent: list[trading_pb2.Signal] = []
        for out in outputs:
            if out is None:
                continue
            for ev in out.events:
                events.append(ev)
                self.metrics.event(ev.kind)
                log.info("phase %s: %s %s %s", self.phase_id, ev.kind, ev.symbol, dict(ev.detail))
            for signal in out.signals:
                if self._release(signal):
                    sent.append(signal)
        self.events = events
        self.metrics.state(self.state)
        return sent

    def _release(self, signal: trading_pb2.Signal) -> bool:
        """Gate an entry (checked now, so a Halted budget stops it at once), then set the phase and sign."""
        if is_entry(signal):
            reason = self.entry_block() or symbols_block(self.budget, signal)
            if reason is not None:
                self.stats.entries_blocked[reason] = self.stats.entries_blocked.get(reason, 0) + 1
                self.metrics.entry_blocked(reason)
                log.info("phase %s: entry %s not sent: %s", self.phase_id, signal.signal_id, reason)
                return False
        signal.phase_id = self.phase_id
        sign_signal(signal, self._key)
        self.metrics.signal(signal.setup)
        self.stats.signals_sent += 1
        return True
