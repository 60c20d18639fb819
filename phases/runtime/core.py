"""The pure core of the phase runtime: :class:`PhaseCore` drives a strategy (:mod:`.contract`) with
market events, timer ticks and execution updates, gates its entries (:mod:`.entry_gate`), counts
its closed trades (:mod:`.trades`) and signs what it sends. No I/O here: the live driver in
``runner.py`` and the backtest driver both wrap a PhaseCore."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from titan.core.clock import Clock
from titan.core.signing import sign_signal
from titan.phases.runtime.contract import PhaseEvent, Strategy, StrategyOutput
from titan.phases.runtime.entry_gate import EntryBlock, entry_block, is_entry, symbols_block
from titan.phases.runtime.metrics import PhaseMetrics
from titan.phases.runtime.trades import TradeTracker
from titan.v1 import events_pb2, execution_pb2, market_pb2, trading_pb2

log = logging.getLogger("titan.phases.runtime")


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
