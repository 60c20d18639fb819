"""The phase runtime: the thin I/O shell every phase runs its pure strategy in.

* market data from NATS (``titan.md.<venue>.<symbol>.<kind>``, compact protobuf) or in-process via
  :meth:`PhaseRuntime.feed`;
* the phase's budget, the trading state and the phase parameters watched in NATS KV
  (:class:`titan.core.bus.state.StateStore`); parameters reload live, invalid ones are refused;
* the entry gate: no new entry leaves the phase while its budget is missing, expired, zero, Dormant,
  Throttled or Halted, or the trading state is not ACTIVE (checked at the moment of sending, so a
  Halted budget stops entries from the first update that carries it);
* every signal signed with the phase key and written on one gRPC stream to execution
  (:class:`SignalStream`: reconnect with backoff); acks and position updates flow back into the
  strategy (dispatch failures, closed trades for the kill condition);
* a clock tick for the strategy's timers, diagnostics on ``titan.diag.<phase>.v1`` at 1 Hz, and
  /metrics + /healthz over HTTP.

Every piece can be started on its own from a test: leave ``nats_url`` empty to drive market data,
budgets and parameters in-process; leave ``execution_target`` empty to collect signals in
:attr:`PhaseRuntime.outbox`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from titan.core.bus.connection import connect
from titan.core.bus.jetstream import ensure_bucket
from titan.core.bus.state import StateStore
from titan.core.catalog import DEFAULT, Catalog
from titan.core.clock import Clock, WallClock
from titan.core.marketdata.events import MalformedEvent, decode, kind_of
from titan.core.metrics import (
    BUS_REJECTS,
    PHASE_ACK_LATENCY,
    PHASE_ACKS,
    PHASE_ENTRIES_BLOCKED,
    PHASE_EVENTS,
    PHASE_MD_EVENTS,
    PHASE_PARAM_RELOADS,
    PHASE_SIGNALS,
    PHASE_STATE,
    PHASE_TRADES_CLOSED,
)
from titan.core.service import cancel_all, keep_running
from titan.core.signing import sign_signal
from titan.phases.runtime.core import (
    Strategy,
    StrategyOutput,
    TradeTracker,
    entry_block,
    is_entry,
    symbols_block,
)
from titan.phases.runtime.http import HttpEndpoint
from titan.phases.runtime.stream import SignalStream, StreamConfig
from titan.v1 import events_pb2, execution_pb2, market_pb2, trading_pb2

log = logging.getLogger("titan.phases.runtime")

_STATES = ("ACTIVE", "COOLDOWN", "BLOCKED")


@dataclass(frozen=True)
class RuntimeConfig:
    phase_id: str
    key: bytes                                   # the phase's HMAC key
    execution_target: str = ""                   # host:port; "" = keep signals in `outbox`
    nats_url: str = ""                           # "" = no NATS (in-process driving)
    catalog: Catalog = DEFAULT
    instance: str = ""
    http_host: str = "0.0.0.0"
    http_port: int | None = None                 # None = no HTTP endpoint, 0 = any free port
    diag_interval_s: float = 1.0
    tick_interval_s: float = 0.05
    min_backoff_s: float = 0.2
    max_backoff_s: float = 5.0


@dataclass
class RuntimeStats:
    market_events: int = 0
    rejected_events: int = 0
    signals_sent: int = 0
    entries_blocked: dict[str, int] = field(default_factory=dict)
    acks_accepted: int = 0
    acks_rejected: int = 0
    budget_updates: int = 0
    trading_state_updates: int = 0
    params_applied: int = 0
    params_rejected: int = 0
    diagnostics_published: int = 0
    strategy_errors: int = 0
    trades_closed: int = 0


class PhaseRuntime:
    def __init__(self, strategy: Strategy, config: RuntimeConfig, clock: Clock | None = None) -> None:
        if len(config.key) < 16:
            raise ValueError("the phase key must be at least 16 bytes")
        self.strategy = strategy
        self.config = config
        self.phase_id = config.phase_id
        self.clock = clock or WallClock()
        self.budget: trading_pb2.Budget | None = None
        self.trading_state: trading_pb2.TradingState | None = None
        self.stats = RuntimeStats()
        self.outbox: list[trading_pb2.Signal] = []
        self.tracker = TradeTracker()
        self.nc: Client | None = None
        self.store: StateStore | None = None
        self.stream: SignalStream | None = None
        self.http: HttpEndpoint | None = None
        self._subs: list[Subscription] = []
        self._filters: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._sent_at: dict[str, float] = {}
        self._running = False
        self._stopped = asyncio.Event()
        self._state = ""

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        self._running = True
        if cfg.nats_url:
            self.nc = await connect(cfg.nats_url, f"phase-{self.phase_id}")
            self.store = StateStore(self.nc.jetstream(), cfg.catalog)
            await self._load_initial_state()
            await self._resubscribe()
            self._spawn(keep_running(f"phase {self.phase_id}: budgets watcher", self._watch_budgets))
            self._spawn(keep_running(f"phase {self.phase_id}: trading_state watcher", self._watch_trading_state))
            self._spawn(keep_running(f"phase {self.phase_id}: params watcher", self._watch_params))
            self._spawn(self._diagnostics_loop())
        if cfg.execution_target:
            self.stream = SignalStream(
                StreamConfig(cfg.execution_target, self.phase_id, cfg.instance or f"{self.phase_id}-0",
                             cfg.min_backoff_s, cfg.max_backoff_s),
                self._on_update, self.clock,
            )
            self._spawn(self.stream.run())
        if cfg.http_port is not None:
            self.http = HttpEndpoint(self.health, cfg.http_host, cfg.http_port)
            await self.http.start()
        self._spawn(self._tick_loop())
        log.info("phase %s running", self.phase_id)

    async def stop(self) -> None:
        self._running = False
        if self.stream is not None:
            await self.stream.stop()
        await cancel_all(self._tasks)
        if self.http is not None:
            await self.http.stop()
        if self.nc is not None and not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception as err:
                log.debug("nats drain: %s", err)
        self._stopped.set()

    async def run_until_stopped(self) -> None:
        await self.start()
        await self._stopped.wait()

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    # --- health / state ------------------------------------------------------------------------------
    def entry_block(self) -> str | None:
        return entry_block(self.phase_id, self.budget, self.trading_state, self.clock.now_ns())

    def health(self) -> tuple[bool, dict[str, object]]:
        nats_ok = (self.nc is None and not self.config.nats_url) or bool(self.nc and self.nc.is_connected)
        stream_ok = self.stream is None or self.stream.connected.is_set()
        detail: dict[str, object] = {
            "phase": self.phase_id,
            "state": self.state,
            "nats_connected": nats_ok,
            "stream_connected": stream_ok,
            "entry_block": self.entry_block() or "",
        }
        return self._running and nats_ok, detail

    @property
    def state(self) -> str:
        """ACTIVE, COOLDOWN (the strategy's own pause) or BLOCKED (the entry gate is closed)."""
        st = self.strategy.state
        if st == "ACTIVE" and self.entry_block() is not None:
            return "BLOCKED"
        return st

    def _update_state_metric(self) -> None:
        st = self.state
        if st != self._state:
            for name in {*_STATES, st, self._state} - {""}:
                PHASE_STATE.labels(phase=self.phase_id, state=name).set(1 if name == st else 0)
            self._state = st

    # --- inputs (used by the NATS watchers and by in-process drivers) -------------------------------
    def feed(self, ev: market_pb2.MarketEvent) -> None:
        self.stats.market_events += 1
        kind = ev.WhichOneof("payload") or "empty"
        PHASE_MD_EVENTS.labels(phase=self.phase_id, kind=kind).inc()
        self._run(lambda: self.strategy.on_event(ev))

    def apply_budget(self, budget: trading_pb2.Budget) -> None:
        if budget.phase_id == self.phase_id:
            self._set_budget(budget)

    def remove_budget(self, phase_id: str) -> None:
        """The Brain deleted this phase's budget: no entries from now on (exits still go)."""
        if phase_id == self.phase_id and self.budget is not None:
            self._set_budget(None)

    def _set_budget(self, budget: trading_pb2.Budget | None) -> None:
        self.budget = budget
        self.stats.budget_updates += 1
        self.strategy.set_budget(budget)
        self._update_state_metric()

    def apply_trading_state(self, state: trading_pb2.TradingState) -> None:
        self.trading_state = state
        self.stats.trading_state_updates += 1
        self._update_state_metric()

    async def apply_params(self, raw: Mapping[str, Any]) -> bool:
        try:
            self.strategy.set_params(raw)
        except ValueError as err:  # pydantic's ValidationError is a ValueError
            self.stats.params_rejected += 1
            PHASE_PARAM_RELOADS.labels(phase=self.phase_id, result="invalid").inc()
            log.warning("phase %s: parameters refused: %s", self.phase_id, str(err).replace("\n", "; "))
            return False
        self.stats.params_applied += 1
        PHASE_PARAM_RELOADS.labels(phase=self.phase_id, result="applied").inc()
        if self.nc is not None:
            await self._resubscribe()
        return True

    # --- outputs ---------------------------------------------------------------------------------------
    def _run(self, step: Callable[[], StrategyOutput]) -> None:
        try:
            out = step()
        except Exception:  # a strategy bug never takes the process down
            self.stats.strategy_errors += 1
            log.exception("phase %s: strategy error", self.phase_id)
            return
        self._handle(out)

    def _handle(self, out: StrategyOutput) -> None:
        for ev in out.events:
            PHASE_EVENTS.labels(phase=self.phase_id, kind=ev.kind).inc()
            log.info("phase %s: %s %s %s", self.phase_id, ev.kind, ev.symbol, dict(ev.detail))
        for signal in out.signals:
            self._dispatch(signal)
        self._update_state_metric()

    def _dispatch(self, signal: trading_pb2.Signal) -> None:
        if is_entry(signal):
            reason = self.entry_block() or symbols_block(self.budget, signal)
            if reason is not None:
                self.stats.entries_blocked[reason] = self.stats.entries_blocked.get(reason, 0) + 1
                PHASE_ENTRIES_BLOCKED.labels(phase=self.phase_id, reason=reason).inc()
                log.info("phase %s: entry %s not sent: %s", self.phase_id, signal.signal_id, reason)
                return
        signal.phase_id = self.phase_id
        sign_signal(signal, self.config.key)
        PHASE_SIGNALS.labels(phase=self.phase_id, setup=signal.setup or "none").inc()
        self.stats.signals_sent += 1
        if self.stream is None:
            self.outbox.append(signal)
            return
        self._sent_at[signal.signal_id] = time.perf_counter()
        if len(self._sent_at) > 10_000:
            self._sent_at.pop(next(iter(self._sent_at)))
        self.stream.send(signal)

    async def _on_update(self, update: execution_pb2.ExecutionUpdate) -> None:
        body = update.WhichOneof("body")
        if body == "ack":
            ack = update.ack
            if ack.phase_id and ack.phase_id != self.phase_id:
                return
            started = self._sent_at.pop(ack.signal_id, None)
            if started is not None:
                PHASE_ACK_LATENCY.labels(phase=self.phase_id).observe(time.perf_counter() - started)
            if ack.accepted:
                self.stats.acks_accepted += 1
                PHASE_ACKS.labels(phase=self.phase_id, result="accepted").inc()
            else:
                self.stats.acks_rejected += 1
                PHASE_ACKS.labels(phase=self.phase_id, result=trading_pb2.RejectReason.Name(ack.reason)).inc()
            self._run(lambda: self.strategy.on_ack(ack))
        elif body == "position":
            pos = update.position
            if pos.phase_id and pos.phase_id != self.phase_id:
                return
            for symbol, pnl in self.tracker.on_position(pos):
                self.stats.trades_closed += 1
                PHASE_TRADES_CLOSED.labels(phase=self.phase_id, outcome="win" if pnl > 0 else "loss").inc()
                self._run(functools.partial(self.strategy.on_trade_closed, symbol, pnl))

    # --- loops ------------------------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while True:
            self._run(self.strategy.on_time)
            await asyncio.sleep(self.config.tick_interval_s)

    def diagnostics(self) -> events_pb2.PhaseDiagnostics:
        values = dict(self.strategy.diagnostics())
        values.update({
            "market_events": float(self.stats.market_events),
            "signals_sent": float(self.stats.signals_sent),
            "entries_blocked": float(sum(self.stats.entries_blocked.values())),
            "acks_accepted": float(self.stats.acks_accepted),
            "acks_rejected": float(self.stats.acks_rejected),
            "stream_connected": 1.0 if self.stream is not None and self.stream.connected.is_set() else 0.0,
            "budget_present": 0.0 if self.budget is None else 1.0,
        })
        notes = []
        block = self.entry_block()
        if block:
            notes.append(f"entries blocked: {block}")
        return events_pb2.PhaseDiagnostics(
            phase_id=self.phase_id, ts_ns=self.clock.now_ns(), state=self.state, values=values, notes=notes
        )

    async def _diagnostics_loop(self) -> None:
        subject = self.config.catalog.diag_subject(self.phase_id)
        while True:
            await asyncio.sleep(self.config.diag_interval_s)
            if self.nc is None or not self.nc.is_connected:
                continue
            try:
                await self.nc.publish(subject, self.diagnostics().SerializeToString(deterministic=True))
                self.stats.diagnostics_published += 1
            except Exception as err:
                log.debug("diagnostics publish: %s", err)

    async def _load_initial_state(self) -> None:
        assert self.store is not None and self.nc is not None
        js = self.nc.jetstream()
        for spec in self.config.catalog.buckets:  # idempotent: the phase may start before the Brain
            try:
                await ensure_bucket(js, spec)
            except Exception as err:
                log.warning("phase %s: bucket %s: %s: %s", self.phase_id, spec.name, type(err).__name__, err)
        try:
            budget = await self.store.get_budget(self.phase_id)
            if budget is not None:
                self.apply_budget(budget)
            state = await self.store.get_trading_state()
            if state is not None:
                self.apply_trading_state(state)
            params = await self.store.get_params(self.phase_id)
            if params is not None:
                await self.apply_params(params)
        except Exception as err:  # buckets missing: the watchers retry; entries stay blocked
            log.warning("phase %s: initial state: %s: %s", self.phase_id, type(err).__name__, err)

    async def _watch_budgets(self) -> None:
        assert self.store is not None
        async for phase_id, budget in self.store.watch_budgets():
            if budget is None:
                self.remove_budget(phase_id)
            else:
                self.apply_budget(budget)

    async def _watch_trading_state(self) -> None:
        assert self.store is not None
        async for state in self.store.watch_trading_state():
            self.apply_trading_state(state)

    async def _watch_params(self) -> None:
        assert self.store is not None
        last: dict[str, Any] | None = None
        async for params in self.store.watch_params(self.phase_id):
            if params != last:
                await self.apply_params(params)
                last = params

    # --- market data -----------------------------------------------------------------------------------
    async def _resubscribe(self) -> None:
        assert self.nc is not None
        cat = self.config.catalog
        filters = sorted({cat.md_filter(v, s, k) for v, s, k in self.strategy.market_filters()})
        if filters == self._filters:
            return
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception as err:
                log.debug("unsubscribe: %s", err)
        self._subs = [await self.nc.subscribe(f, cb=self._on_md) for f in filters]
        self._filters = filters

    async def _on_md(self, msg: Msg) -> None:
        try:
            ev = decode(msg.data)
            kind_of(ev)
        except MalformedEvent as err:
            self.stats.rejected_events += 1
            BUS_REJECTS.labels(consumer=f"phase:{self.phase_id}", reason=err.reason).inc()
            return
        self.feed(ev)
