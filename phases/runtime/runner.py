"""The phase runtime: the thin I/O shell every phase runs its pure strategy in.

* market data from NATS (``titan.md.<venue>.<symbol>.<kind>``, compact protobuf) or in-process via
  :meth:`PhaseRuntime.feed`;
* the phase's budget, the trading state and the phase parameters watched in NATS KV
  (:class:`titan.core.bus.state.StateStore`); parameters reload live, invalid ones are refused;
* the entry gate: no new entry leaves the phase while its budget is missing, expired, zero, Dormant,
  Throttled or Halted, or the trading state is not ACTIVE (checked at the moment of sending, so a
  Halted budget stops entries from the first update that carries it);
* every signal signed with the phase key and written on one gRPC stream to execution
  (:class:`SignalStream`: reconnect with backoff); acks and the phase's order, fill and position
  updates flow back into the strategy (dispatch failures, hedges, closed trades for the kill condition);
* a clock tick for the strategy's timers, diagnostics on ``titan.diag.<phase>.v1`` at 1 Hz, and
  /metrics + /healthz over HTTP.

Everything that decides is in :class:`titan.phases.runtime.core.PhaseCore` (the backtest driver runs
the same one); this module only moves bytes and time. Every piece can be started on its own from a
test: leave ``nats_url`` empty to drive market data, budgets and parameters in-process; leave
``execution_target`` empty to collect signals in :attr:`PhaseRuntime.outbox`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
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
from titan.core.metrics import BUS_REJECTS, PHASE_ACK_LATENCY, PHASE_MD_EVENTS
from titan.core.tasks import cancel_all, keep_running, shutdown_step
from titan.phases.runtime.contract import Strategy
from titan.phases.runtime.core import PhaseCore, RuntimeStats
from titan.phases.runtime.http import HttpEndpoint
from titan.phases.runtime.stream import SignalStream, StreamConfig
from titan.phases.runtime.trades import TradeTracker
from titan.v1 import events_pb2, execution_pb2, market_pb2, trading_pb2

log = logging.getLogger("titan.phases.runtime")

__all__ = ["PhaseRuntime", "RuntimeConfig", "RuntimeStats"]


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


class PhaseRuntime:
    def __init__(self, strategy: Strategy, config: RuntimeConfig, clock: Clock | None = None) -> None:
        self.clock = clock or WallClock()
        self.core = PhaseCore(strategy, config.phase_id, config.key, self.clock)
        self.config = config
        self.phase_id = config.phase_id
        self.outbox: list[trading_pb2.Signal] = []
        self.nc: Client | None = None
        self.store: StateStore | None = None
        self.stream: SignalStream | None = None
        self.http: HttpEndpoint | None = None
        self._subs: list[Subscription] = []
        self._filters: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._sent_at: dict[str, float] = {}
        self._md_counters: dict[str, Any] = {}
        self._running = False
        self._stopped = asyncio.Event()

    # --- the core's state, read through --------------------------------------------------------------
    @property
    def strategy(self) -> Strategy:
        return self.core.strategy

    @property
    def budget(self) -> trading_pb2.Budget | None:
        return self.core.budget

    @property
    def trading_state(self) -> trading_pb2.TradingState | None:
        return self.core.trading_state

    @property
    def stats(self) -> RuntimeStats:
        return self.core.stats

    @property
    def tracker(self) -> TradeTracker:
        return self.core.tracker

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        self._running = True
        if cfg.nats_url:
            self.nc = await connect(cfg.nats_url, f"phase-{self.phase_id}")
            self.store = StateStore(self.nc.jetstream(), cfg.catalog, client=self.nc)  # reopens watches on reconnect
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
        """Stop in order, each step with a time limit (``core/tasks.py``): the stream to execution,
        the background tasks, the HTTP endpoint, NATS."""
        self._running = False
        if self.stream is not None:
            await shutdown_step("the stream to execution", self.stream.stop())
        await cancel_all(self._tasks)
        if self.http is not None:
            await shutdown_step("the HTTP endpoint", self.http.stop())
        if self.nc is not None and not self.nc.is_closed:
            await shutdown_step("draining NATS", self.nc.drain())
        self._stopped.set()

    async def run_until_stopped(self) -> None:
        await self.start()
        await self._stopped.wait()

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    # --- health / state ------------------------------------------------------------------------------
    def entry_block(self) -> str | None:
        return self.core.entry_block()

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
        return self.core.state

    # --- inputs (used by the NATS watchers and by in-process drivers) -------------------------------
    def feed(self, ev: market_pb2.MarketEvent) -> None:
        kind = ev.WhichOneof("payload") or "empty"
        counter = self._md_counters.get(kind)
        if counter is None:
            counter = self._md_counters[kind] = PHASE_MD_EVENTS.labels(phase=self.phase_id, kind=kind)
        counter.inc()
        self._send(self.core.feed(ev))

    def apply_budget(self, budget: trading_pb2.Budget) -> None:
        self.core.apply_budget(budget)

    def remove_budget(self, phase_id: str) -> None:
        """The Brain deleted this phase's budget: no entries from now on (exits still go)."""
        self.core.remove_budget(phase_id)

    def apply_trading_state(self, state: trading_pb2.TradingState) -> None:
        self.core.apply_trading_state(state)

    async def apply_params(self, raw: Mapping[str, Any]) -> bool:
        applied = self.core.apply_params(raw)
        if applied and self.nc is not None:
            await self._resubscribe()  # the symbols may have changed
        return applied

    # --- outputs ---------------------------------------------------------------------------------------
    def _send(self, signals: list[trading_pb2.Signal]) -> None:
        """Signals the core released (gated, signed): onto the stream, or into ``outbox`` without one."""
        for signal in signals:
            if self.stream is None:
                self.outbox.append(signal)
                continue
            self._sent_at[signal.signal_id] = time.perf_counter()
            if len(self._sent_at) > 10_000:
                self._sent_at.pop(next(iter(self._sent_at)))
            self.stream.send(signal)

    async def _on_update(self, update: execution_pb2.ExecutionUpdate) -> None:
        if update.WhichOneof("body") == "ack":
            started = self._sent_at.pop(update.ack.signal_id, None)
            if started is not None:
                PHASE_ACK_LATENCY.labels(phase=self.phase_id).observe(time.perf_counter() - started)
        self._send(self.core.on_update(update))

    # --- loops ------------------------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while True:
            self._send(self.core.on_time())
            await asyncio.sleep(self.config.tick_interval_s)

    def diagnostics(self) -> events_pb2.PhaseDiagnostics:
        diag = self.core.diagnostics()
        diag.values["stream_connected"] = 1.0 if self.stream is not None and self.stream.connected.is_set() else 0.0
        return diag

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
