"""The backtest driver: the organism's own parts, in one process, on a simulated clock.

Nothing here decides anything: the Brain core (:class:`titan.operator.brain.BrainCore`, fed through
:func:`titan.operator.brain.feed.observe_event`), every phase (:class:`titan.phases.runtime.core.PhaseCore`
around the strategy the registry builds) and the execution :class:`titan.execution.engine.Engine`
(risk gate, orders, paper venue, funding, liquidation, expiry) are the ones the cluster and
`titan up` run. The driver only moves their inputs and outputs along a :class:`Scheduler`, with the
delays of the :class:`LatencyModel`, and records what execution and the Brain would publish.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from titan.backtest.config import BacktestConfig
from titan.backtest.organism import Organism, load_organism
from titan.backtest.record import Recorder
from titan.backtest.scheduler import Lane, Periodic, Scheduler
from titan.backtest.sources import DataFeed, open_data
from titan.core.clock import ManualClock
from titan.core.marketdata.events import MalformedEvent, kind_of, price_of, ts_of
from titan.core.money import MoneyError
from titan.execution.engine import Engine, EngineConfig, Update
from titan.execution.paper import PaperConfig
from titan.execution.routing import ack_update, phase_updates
from titan.operator.brain import BrainCore
from titan.operator.brain.feed import DecisionOutbox, observe_event
from titan.phases.runtime.core import PhaseCore
from titan.v1 import execution_pb2, market_pb2, trading_pb2

Progress = Callable[["RunStats"], None]


def phase_key(phase_id: str) -> bytes:
    """The HMAC key a phase signs with inside a backtest (signatures are checked as in live)."""
    return hashlib.sha256(b"titan-backtest\x1f" + phase_id.encode()).digest()


@dataclass
class RunStats:
    market_events: int = 0
    rejected_events: int = 0
    signals: int = 0
    first_ns: int = 0
    last_ns: int = 0
    brain_decisions: int = 0
    skipped_periodic: int = 0
    wall_s: float = 0.0
    span_ns: tuple[int, int] | None = None   # the data's first and last event time, when known up front
    problems: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.market_events / self.wall_s if self.wall_s > 0 else 0.0


class Backtest:
    """One run. ``run()`` drains the data and returns the :class:`Recorder` (the ledger)."""

    def __init__(self, config: BacktestConfig, organism: Organism | None = None) -> None:
        self.config = config
        self.organism = organism or load_organism(
            config.organism, params=config.params, only=config.phases, initial_equity=config.initial_equity)
        self.clock = ManualClock(0)
        self.latency = config.latency
        cadence = config.cadence
        self.scheduler = Scheduler(cadence.idle_after_ns)
        runs = self.organism.runs
        self.engine = Engine(
            self.clock, {run.phase_id: phase_key(run.phase_id) for run in runs},
            EngineConfig(venue="paper", paper=PaperConfig(starting_capital=self.organism.initial_equity)),
        )
        self.phases: dict[str, PhaseCore] = {
            run.phase_id: PhaseCore(run.kind.make_strategy(dict(run.params), run.phase_id, self.clock),
                                    run.phase_id, phase_key(run.phase_id), self.clock)
            for run in runs
        }
        self.brain = BrainCore()
        self.outbox = DecisionOutbox()
        self.recorder = Recorder(keep=config.keep_events)
        self.stats = RunStats()
        self._routes: dict[tuple[str, str, str], tuple[PhaseCore, ...]] = {}
        self.prices = PriceSampler()
        self.feed: DataFeed | None = None
        # Equity snapshots and Brain decisions run on their cadence (idle time coalesced); the engine's
        # tick and each phase's timer run at the first tick of their cadence at or after the time the
        # part itself says it has work (Engine.next_due_ns, Strategy.next_wakeup_ns).
        self._periodic = (
            Periodic("equity", Lane.EQUITY, cadence.equity_ns, self._equity),
            Periodic("brain", Lane.BRAIN, cadence.brain_ns, self._brain),
        )
        self._origin = 0
        self._engine_armed: int | None = None
        self._phase_armed: dict[str, int] = {}

    # --- the run ---------------------------------------------------------------------------------
    def run(self, events: Iterable[market_pb2.MarketEvent] | None = None,
            progress: Progress | None = None, progress_every: int = 50_000) -> Recorder:
        started = time.perf_counter()
        if events is None:
            self.feed = open_data(self.config)
            source = self.feed.events
            span = self.feed.span()
            if span is not None:
                self.stats.span_ns = (max(span[0], self.config.start_ns or span[0]),
                                      min(span[1], self.config.end_ns or span[1]))
        else:
            source = iter(events)
        scheduler = self.scheduler
        current = _next(source)
        if current is None:
            raise ValueError("the data holds no market events in the chosen window")
        first = ts_of(current)
        self.stats.first_ns = first
        self._origin = first
        self.clock.set(first)
        scheduler.mark_input(first)
        self._brain(first)  # budgets and the trading state exist before the first event
        for periodic in self._periodic:
            scheduler.every(periodic, first + periodic.every_ns)
        self._arm_engine(first)
        count = 0
        following = _next(source)
        while current is not None:
            ts = ts_of(current)
            after = ts_of(following) if following is not None else None
            scheduler.run_until(ts - 1, ts)
            scheduler.mark_input(ts)
            scheduler.run_periodic_at(ts, after)
            self._market(current, ts)
            count += 1
            if progress is not None and count % progress_every == 0:
                self._update_stats(started)
                progress(self.stats)
            current, following = following, (_next(source) if following is not None else None)
        end = scheduler.last_input_ns + self.config.cadence.idle_after_ns
        if self.config.end_ns is not None:
            end = min(max(end, scheduler.last_input_ns), self.config.end_ns)
        scheduler.run_until(end, None)
        self.clock.set(max(self.clock.now_ns(), end))
        closing = self.recorder.equity.get("total")
        if not closing or closing[-1].ts_ns != self.clock.now_ns():
            self._equity(self.clock.now_ns())  # the closing snapshot
        self._update_stats(started)
        return self.recorder

    def _update_stats(self, started: float) -> None:
        self.stats.wall_s = time.perf_counter() - started
        self.stats.last_ns = self.clock.now_ns()
        self.stats.skipped_periodic = self.scheduler.skipped

    # --- market data ------------------------------------------------------------------------------
    def _market(self, event: market_pb2.MarketEvent, ts: int) -> None:
        self.clock.set(ts)
        self.stats.market_events += 1
        try:
            kind = kind_of(event).value
        except MalformedEvent:
            self.stats.rejected_events += 1
            return
        self._emit(self.engine.on_market(event), ts)
        self._arm_engine(ts)
        self.prices.observe(event, kind, ts)
        for phase in self._subscribers(event.venue, event.symbol, kind):
            self._send(phase.feed(event), ts)
            self._arm_phase(phase, ts)

    def _subscribers(self, venue: str, symbol: str, kind: str) -> tuple[PhaseCore, ...]:
        key = (venue, symbol, kind)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = tuple(
                phase for phase in self.phases.values()
                if any(_matches(f, key) for f in phase.strategy.market_filters()))
        return found

    # --- signals and updates ----------------------------------------------------------------------
    def _send(self, signals: list[trading_pb2.Signal], ts: int) -> None:
        for signal in signals:
            self.stats.signals += 1
            self.scheduler.at(ts + self.latency.signal_ns, Lane.DELIVERY, functools.partial(self._decide, signal))

    def _decide(self, signal: trading_pb2.Signal, ts: int) -> None:
        self.clock.set(ts)
        decision = self.engine.on_signal(signal, ts)
        phase = self.phases.get(decision.ack.phase_id)
        if phase is not None:
            self._deliver(phase, [ack_update(decision.ack)], ts)
        self._emit(decision.updates, ts)
        self._arm_engine(ts)

    def _emit(self, updates: list[Update], ts: int) -> None:
        """Record what execution publishes, feed the Brain, and send each phase its own updates."""
        if not updates:
            return
        policy = self.organism.policy
        for event in self.recorder.updates(updates):
            try:
                observe_event(self.brain, event, policy)
            except MoneyError as exc:  # pragma: no cover - the engine writes valid decimals
                self.stats.problems.append(f"brain skipped event {event.event_id}: {exc}")
        for phase_id, messages in phase_updates(updates).items():
            phase = self.phases.get(phase_id)
            if phase is not None:
                self._deliver(phase, messages, ts)

    def _deliver(self, phase: PhaseCore, messages: list[execution_pb2.ExecutionUpdate], ts: int) -> None:
        def arrive(t: int) -> None:
            self.clock.set(t)
            for message in messages:
                self._send(phase.on_update(message), t)
            self._arm_phase(phase, t)

        self.scheduler.at(ts + self.latency.update_ns, Lane.DELIVERY, arrive)

    # --- timers -----------------------------------------------------------------------------------
    def _grid(self, at_least: int, every: int) -> int:
        """The first tick of a cadence (counted from the first event) at or after ``at_least``."""
        steps = -((self._origin - at_least) // every)
        return self._origin + steps * every

    def _arm_engine(self, now: int) -> None:
        due = self.engine.next_due_ns()
        at = self._grid(max(due, now + 1), self.config.cadence.engine_tick_ns)
        if self._engine_armed is None or at < self._engine_armed:
            self._engine_armed = at
            self.scheduler.at(at, Lane.ENGINE_TICK, self._engine_tick)

    def _engine_tick(self, ts: int) -> None:
        if self._engine_armed != ts:
            return  # superseded by an earlier arming
        self._engine_armed = None
        self.clock.set(ts)
        self._emit(self.engine.tick(), ts)
        if self.engine.next_due_ns() > ts:
            self._arm_engine(ts)

    def _arm_phase(self, phase: PhaseCore, now: int) -> None:
        due = phase.next_wakeup_ns()
        if due is None:
            return
        idle = self.config.cadence.idle_after_ns
        if due == 0 and idle and now - self.scheduler.last_input_ns > idle:
            return  # "every tick" over idle time: ticked again from its next input on
        at = self._grid(max(due, now + 1), self.config.cadence.phase_tick_ns)
        armed = self._phase_armed.get(phase.phase_id)
        if armed is None or at < armed:
            self._phase_armed[phase.phase_id] = at
            self.scheduler.at(at, Lane.PHASE_TIMER, functools.partial(self._phase_timer, phase))

    def _phase_timer(self, phase: PhaseCore, ts: int) -> None:
        if self._phase_armed.get(phase.phase_id) != ts:
            return
        del self._phase_armed[phase.phase_id]
        self.clock.set(ts)
        self._send(phase.on_time(), ts)
        self._arm_phase(phase, ts)

    # --- periodic work ----------------------------------------------------------------------------

    def _equity(self, ts: int) -> None:
        self.clock.set(ts)
        self._emit(list(self.engine.equity()), ts)

    def _brain(self, ts: int) -> None:
        self.clock.set(ts)
        self.stats.brain_decisions += 1
        decision = self.brain.decide(ts, self.organism.policy, self.organism.specs)
        output = self.outbox.plan(decision)
        for budget in output.budgets:
            self.engine.update_budget(budget)
            phase = self.phases.get(budget.phase_id)
            if phase is not None:
                phase.apply_budget(budget)
        if output.trading_state is not None:
            _, updates, _ = self.engine.set_trading_state(output.trading_state)
            for phase in self.phases.values():
                phase.apply_trading_state(output.trading_state)
            self._emit(updates, ts)
        for event in output.events:
            self.recorder.add(event)
        self.outbox.commit(output)

    @property
    def final_equity(self) -> Decimal:
        points = self.recorder.equity.get("total")
        return points[-1].equity if points else self.organism.initial_equity


class PriceSampler:
    """One price per instrument and ``every_ns`` (trades, candle closes, marks), for the report."""

    def __init__(self, every_ns: int = 60 * 10**9) -> None:
        self.every_ns = every_ns
        self.series: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
        self._next: dict[tuple[str, str, int], int] = {}

    def observe(self, event: market_pb2.MarketEvent, kind: str, ts: int) -> None:
        if kind not in ("trade", "candle", "mark"):
            return
        key = (event.venue, event.symbol, int(event.instrument))
        if ts < self._next.get(key, 0):
            return
        price = price_of(event)
        if price is not None:
            self.series.setdefault(key, []).append((ts, float(price)))
            self._next[key] = ts + self.every_ns


def _matches(pattern: tuple[str, str, str], key: tuple[str, str, str]) -> bool:
    return all(p == "*" or p == k for p, k in zip(pattern, key, strict=True))


def _next(source: Iterator[market_pb2.MarketEvent]) -> market_pb2.MarketEvent | None:
    return next(source, None)


__all__ = ["Backtest", "PriceSampler", "RunStats", "phase_key"]
