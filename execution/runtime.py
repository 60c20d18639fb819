"""Wiring of the execution process: settings -> keys, engine, NATS (events, KV, market data),
recovery from the ledger, gRPC server, CPU pinning, GC freeze, metrics endpoint.

Start-up order (nothing is accepted before recovery is complete):
 1. pin CPUs (``TITAN_EXECUTION_CPUS``), export them;
 2. load the phase keys (``<phase>.key`` files in ``TITAN_HMAC_KEYS_DIR``, or ``TITAN_PHASE_KEY_<PHASE>``);
    take the ledger's lease (``lease.py``): a second execution on the same ledger stops here;
 3. connect NATS, ensure streams/buckets; open the outbox and publish what an earlier process
    journaled there and JetStream never acknowledged (titan.execution.outbox);
 4. wait until the ledger writer has consumed every event already on the stream, then rebuild positions
    (the newest snapshot plus the fills recorded after it), open orders, recent fill ids and recently
    decided signal ids from the ledger; restore the newest trading state (KV or ledger) and the
    budgets from KV;
 5. start publishing, watching KV and market data, the gRPC server; mark health SERVING; freeze the GC;
    take a ledger snapshot, then one every ``snapshot_interval_s``;
 6. watch what entries depend on (``health.py``): the ledger writer's heartbeat, the publisher's
    backlog, the lease; past ``TITAN_DEGRADED_GRACE_MS`` without them, entries are refused.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from titan.core.clock import WallClock
from titan.core.config import Mode, Settings
from titan.core.money import to_decimal
from titan.core.signing import load_keys
from titan.core.tasks import STOP_STEP_S, cancel_all, keep_running, shutdown_step
from titan.execution import pinning
from titan.execution.dependencies import Dependency
from titan.execution.engine import Engine, EngineConfig
from titan.execution.gate import GateConfig
from titan.execution.health import DependencyMonitor
from titan.execution.lease import LeaseHeld, LedgerLease
from titan.execution.orders import ManagedOrder
from titan.execution.outbox import Outbox, outbox_dir
from titan.execution.paper import PaperConfig
from titan.execution.publisher import JetStreamPublisher, MemorySink
from titan.execution.service import (
    ControlGuard,
    ExecutionServicer,
    mark_serving,
    periodic,
    set_mode_metric,
    start_grpc,
)
from titan.v1 import trading_pb2

log = logging.getLogger("titan.execution")
NS_PER_MS = 1_000_000
PUBLISHER_STOP_S = 10.0  # the publisher's flush at a stop, on top of its step's STOP_STEP_S


def load_phase_keys(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, bytes]:
    """Per-phase HMAC keys: files ``<phase>.key`` in ``hmac_keys_dir`` (a mounted Secret), plus
    ``TITAN_PHASE_KEY_<PHASE>`` variables (``-`` in a phase id spelled ``_``). Keys shorter than 16
    bytes are refused."""
    keys: dict[str, bytes] = {}
    if settings.hmac_keys_dir is not None:
        keys.update(load_keys(settings.hmac_keys_dir))
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if name.startswith("TITAN_PHASE_KEY_") and value:
            phase = name.removeprefix("TITAN_PHASE_KEY_").lower().replace("_", "-")
            raw = value.encode()
            if len(raw) < 16:
                raise ValueError(f"{name} is shorter than 16 bytes")
            keys[phase] = raw
    return keys


@dataclass
class RuntimeOptions:
    tick_interval_s: float = 0.2
    health_interval_s: float = 0.25  # how often the dependencies are sampled (log, metric, /healthz)
    equity_interval_s: float = 10.0
    ledger_wait_s: float = 30.0
    snapshot_interval_s: float = 300.0  # ledger position snapshots (after start, then this often)
    metrics: bool = True
    freeze_gc: bool = True
    gc_freeze_interval_s: float = 1.0  # then freeze what the last interval allocated (0: only at start)
    keys: dict[str, bytes] | None = None
    engine: EngineConfig | None = None
    live_venue: Any = None  # a prepared LiveVenue (tests point one at recorded payloads)
    extra: dict[str, Any] = field(default_factory=dict)


class ExecutionRuntime:
    def __init__(self, settings: Settings, options: RuntimeOptions | None = None) -> None:
        self.settings = settings
        self.options = options or RuntimeOptions()
        self.catalog = settings.catalog
        self.nc: Any = None
        self.js: Any = None
        self.store: Any = None  # the KV buckets (budgets, trading state, heartbeats), with NATS
        self.server: Any = None
        self.port = 0
        self.cpus: list[int] = []
        self.engine: Engine | None = None
        self.servicer: ExecutionServicer | None = None
        self.sink: Any = None
        self.live: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._sub: Any = None
        self._startup_updates: list[Any] = []
        self.ledger: Any = None  # open while running when a ledger is configured (snapshots)
        self.lease: LedgerLease | None = None  # held while running when a ledger is configured
        self.monitor: DependencyMonitor | None = None

    # ------------------------------------------------------------------------------------------
    async def start(self) -> int:
        """Pin, take the ledger's lease, build the engine, connect the bus (replaying the outbox,
        then recovering), start the background tasks, and serve: the gRPC port."""
        st = self.settings
        self.cpus = pinning.pin(st.cpus)
        keys = self.options.keys if self.options.keys is not None else load_phase_keys(st)
        if not keys:
            log.warning("no phase keys loaded: every signal will be rejected (UNKNOWN_PHASE)")
        live = st.mode is Mode.LIVE
        if st.pg_dsn:
            await self._take_lease()
        config = self.options.engine or self._engine_config(live)
        engine = self.engine = Engine(WallClock(), dict(keys), config)
        control = ControlGuard(st.control_key.get_secret_value().encode(), st.replay_window_ms * NS_PER_MS)
        submit = None
        if live:
            from titan.execution.live import LiveVenue

            self.live = self.options.live_venue or LiveVenue.from_settings(st)
            submit = self._submit_live
        servicer = self.servicer = ExecutionServicer(
            engine, MemorySink(keep=False), control, cpus=self.cpus, mode=str(st.mode.value), submit=submit
        )
        await self._open_sink(engine, servicer)
        if self.live is not None:
            await self.live.start(engine, servicer.emit)
            await self.live.reconcile()  # the venue's view of every open order, before serving
        await self._start_tasks(servicer)
        if self.options.metrics and st.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(st.metrics_port)
        set_mode_metric(engine.trading_state.mode)
        self.server, self.port, health = await start_grpc(servicer, st.execution_host, st.execution_port)
        self._watch_dependencies(engine)
        servicer.ready.set()
        await mark_serving(health)
        if self.options.freeze_gc:
            pinning.freeze_gc()
            if self.options.gc_freeze_interval_s > 0:
                self._tasks.append(asyncio.create_task(
                    periodic(self.options.gc_freeze_interval_s, pinning.freeze_young), name="gc-freeze"))
        log.info("execution serving on %s:%d (mode %s, venue %s)", st.execution_host, self.port, st.mode, config.venue)
        return self.port

    def _engine_config(self, live: bool) -> EngineConfig:
        """The engine's configuration from the settings: the venue (paper unless live), the gate's
        replay window and degraded-mode grace, the paper venue's capital."""
        st = self.settings
        return EngineConfig(
            venue=st.venue if live else "paper",
            gate=GateConfig(replay_window_ns=st.replay_window_ms * NS_PER_MS,
                            dependency_grace_ns=st.degraded_grace_ms * NS_PER_MS),
            paper=PaperConfig(starting_capital=st.paper_capital),
        )

    async def _open_sink(self, engine: Engine, servicer: ExecutionServicer) -> None:
        """Where the engine's events go: with NATS, JetStream through the outbox (its backlog
        published again first, then the engine recovered from the ledger and the bus); without, memory
        only. Either way the updates reach the phases once stored."""
        st = self.settings
        if st.nats_url:
            from titan.core.bus import StateStore, connect, ensure_jetstream

            self.nc = await connect(st.nats_url, "execution")
            self.js = self.nc.jetstream()
            await ensure_jetstream(self.js, self.catalog)
            outbox = Outbox.open(outbox_dir(st), fsync=st.outbox_fsync)
            self.sink = JetStreamPublisher(self.js, self.catalog, on_published=servicer.forward, outbox=outbox)
            await self.sink.replay(outbox.take_backlog())  # before recovery: the ledger then has them too
            self.store = StateStore(self.js, self.catalog, client=self.nc)
            await self._recover(engine, self.store)
        else:
            self.sink = MemorySink(on_published=servicer.forward, keep=False)
        servicer.sink = self.sink
        await self.sink.start()
        if self._startup_updates:
            self.sink.submit(self._startup_updates)

    async def _start_tasks(self, servicer: ExecutionServicer) -> None:
        """The background work: market data, budget and trading-state watches (with NATS), the
        tick, ledger snapshots (with a ledger) and equity."""
        if self.nc is not None:
            self._sub = await self.nc.subscribe(self.catalog.md_all, cb=self._on_md)
            self._tasks.append(asyncio.create_task(
                keep_running("budget watch", functools.partial(self._watch_budgets, self.store)),
                name="watch-budgets"))
            self._tasks.append(asyncio.create_task(
                keep_running("trading state watch", functools.partial(self._watch_state, self.store)),
                name="watch-trading-state"))
        self._tasks.append(asyncio.create_task(periodic(self.options.tick_interval_s, servicer.tick), name="tick"))
        if self.ledger is not None:
            self._tasks.append(asyncio.create_task(self._snapshots(), name="ledger-snapshots"))
        self._tasks.append(
            asyncio.create_task(periodic(self.options.equity_interval_s, servicer.publish_equity), name="equity")
        )

    # --- the ledger's lease and what entries depend on ----------------------------------------
    async def _take_lease(self) -> None:
        self.lease = LedgerLease(self.settings.pg_dsn)
        await self.lease.acquire(self.options.ledger_wait_s)

    def _watch_dependencies(self, engine: Engine) -> None:
        """Watch the ledger (its writer's heartbeat, with NATS and a ledger), the bus (the publisher's
        backlog, with NATS), the outbox (the publisher's journal, with NATS) and the lease; sample them
        every ``health_interval_s``."""
        monitor = self.monitor = DependencyMonitor(engine.gate.dependencies, engine.clock)
        if self.nc is not None:
            monitor.watch(Dependency.BUS)
            if isinstance(self.sink, JetStreamPublisher) and self.sink.outbox is not None:
                monitor.watch(Dependency.OUTBOX)
                self.sink.on_journal = monitor.journal
                monitor.journal(self.sink.journal_problem)
            if self.settings.pg_dsn:
                monitor.watch(Dependency.LEDGER)
                self._tasks.append(asyncio.create_task(keep_running(
                    "ledger heartbeat watch", functools.partial(self._watch_ledger_heartbeat, self.store)),
                    name="watch-ledger-heartbeat"))
        if self.lease is not None:
            monitor.watch(Dependency.LEASE)
            self._tasks.append(asyncio.create_task(keep_running(
                "ledger lease", functools.partial(self.lease.keep, monitor.lease_confirmed, monitor.lease_lost)),
                name="ledger-lease"))
        self._tasks.append(asyncio.create_task(
            periodic(self.options.health_interval_s, self._sample_dependencies), name="dependencies"))
        self._sample_dependencies()

    async def _watch_ledger_heartbeat(self, store: Any) -> None:
        """Feed the writer's heartbeats to the monitor (the store, given the client, opens the watch
        again after a NATS reconnect, as it does the budget and trading-state watches)."""
        assert self.monitor is not None
        async for heartbeat in store.watch_ledger_heartbeat():
            self.monitor.ledger_heartbeat(heartbeat)

    def _sample_dependencies(self) -> None:
        assert self.monitor is not None
        if self.sink is not None and self.nc is not None:
            self.monitor.backlog(self.sink)
        self.monitor.sample()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``/healthz``: starting until serving, then ok or degraded with the reason (health.py)."""
        if self.monitor is None:
            return False, {"status": "starting"}
        return self.monitor.health()

    async def _on_md(self, msg: Any) -> None:
        assert self.servicer is not None
        self.servicer.on_market_bytes(msg.data)

    async def _watch_budgets(self, store: Any) -> None:
        assert self.engine is not None
        async for phase_id, budget in store.watch_budgets():
            if budget is None:
                self.engine.remove_budget(phase_id)
            else:
                self.engine.update_budget(budget)

    async def _watch_state(self, store: Any) -> None:
        assert self.engine is not None and self.servicer is not None
        async for state in store.watch_trading_state():
            applied, updates, cancels = self.engine.set_trading_state(state)
            if applied:
                set_mode_metric(state.mode)
                self.servicer.emit(updates, [], cancels)

    async def _recover(self, engine: Engine, store: Any) -> None:
        st = self.settings
        kv_state = await store.get_trading_state()
        budgets = await store.budgets()
        ledger_state = None
        if st.pg_dsn:
            from titan.core.ledger import Ledger

            await self._wait_for_ledger()
            self.ledger = await Ledger.open(st.pg_dsn, max_size=2)
            ledger_state = await self._restore(engine, self.ledger, time.time_ns())
        for state in sorted(
            (s for s in (kv_state, ledger_state) if s is not None), key=lambda s: s.version
        ):
            engine.set_trading_state(state)
        for budget in budgets.values():
            engine.update_budget(budget)

    async def _restore(self, engine: Engine, ledger: Any, now: int) -> Any:
        """Rebuild the engine from the newest snapshot and what the ledger recorded after it (every
        filter in SQL); returns the ledger's newest trading state."""
        day = 86_400 * 10**9
        snapshot = await ledger.latest_snapshot()
        upto = await ledger.cursor()
        fills = await ledger.fills_after(snapshot.cursor, upto)
        funding = await ledger.funding_after(snapshot.cursor, upto)
        positions = await ledger.positions(include_flat=True)
        open_orders = await ledger.open_orders()
        recent = await ledger.orders(since_ns=now - day, limit=10_000_000)
        incomplete = await ledger.fill_totals(since_ns=now - day)
        decisions = await ledger.decisions_since(now - engine.config.dedup_horizon_ns)
        unit_signals = await ledger.unit_signals(now - day)
        settled = await ledger.funding_payments(since_ns=now - 2 * day)
        fill_ids = await ledger.fill_ids_since(now - day) if engine.external else set()
        ledger_state = await ledger.latest_trading_state()
        midnight = now - now % day
        day_starts: dict[str, Any] = {}
        phases = {p.phase_id for p in positions} | {p.phase_id for p in snapshot.positions} | {
            f.phase_id for f in fills}
        for phase in phases:
            series = await ledger.equity_series(phase, since_ns=midnight - day)
            before = [e for e in series if e.ts_ns < midnight]
            if before or series:
                day_starts[phase] = (before[-1] if before else series[0]).equity
        decided = [
            (d.ack.phase_id, d.ack.signal_id, d.ack.acked_at_ns, d.ack.accepted, tuple(d.ack.client_order_ids))
            for d in reversed(decisions)
        ]
        corrected = engine.restore(positions, open_orders, fills, decided, funding, recent,
                                   base=snapshot.positions, incomplete=incomplete)
        engine.settled_funding.update((p.venue, p.symbol, p.funding_time_ns) for p in settled)
        engine.fill_ids.update(fill_ids)
        for phase, equity in day_starts.items():  # today's losses survive a restart
            engine.portfolio.set_day_start(phase, to_decimal(equity), now)
        if corrected:
            log.warning("repairing %d ledger rows left incomplete by a crash", len(corrected))
            self._startup_updates.extend(corrected)
        # hedged units a crash left with one leg: hedged or unwound before any new signal
        hedge_steps = engine.recover_hedges(unit_signals, recent)
        if hedge_steps:
            log.warning("settling hedged units left with an orphan leg: %d updates", len(hedge_steps))
            self._startup_updates.extend(hedge_steps)
        log.info(
            "recovered %d positions, %d open orders, %d recent signal ids from the ledger: a snapshot of %d"
            " positions (%d fills) and %d fills recorded after it",
            len(engine.portfolio.positions), len(open_orders), len(decided), len(snapshot.positions),
            snapshot.fills_folded, len(fills),
        )
        return ledger_state

    async def _snapshots(self) -> None:
        """Fold what the ledger recorded into a new snapshot now and every ``snapshot_interval_s``."""
        from titan.execution import snapshots

        while True:
            try:
                await snapshots.take(self.ledger, time.time_ns())
            except Exception as exc:  # the next round tries again; recovery replays more meanwhile
                log.warning("ledger snapshot failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.options.snapshot_interval_s)

    async def _wait_for_ledger(self) -> None:
        """Wait until the ledger writer consumed every event on the stream (bounded)."""
        spec = self.catalog.ledger_consumer
        deadline = time.monotonic() + self.options.ledger_wait_s
        while True:
            try:
                info = await self.js.consumer_info(spec.stream, spec.durable)
                if not info.num_pending and not info.num_ack_pending:
                    return
            except Exception as exc:
                log.warning("ledger consumer not readable (%s)", exc)
            if time.monotonic() > deadline:
                log.warning("ledger writer has not caught up after %.0fs; recovering from what it has",
                            self.options.ledger_wait_s)
                return
            await asyncio.sleep(0.05)

    def _submit_live(self, submissions: list[ManagedOrder], cancels: list[ManagedOrder]) -> None:
        if self.live is not None:
            self.live.dispatch(submissions, cancels)

    # ------------------------------------------------------------------------------------------
    async def stop(self, grace: float = 1.0) -> None:
        """Stop in order: background tasks, the gRPC server (streams get ``grace``), the publisher
        (what is queued goes to JetStream or stays journaled), the live venue, the ledger, the lease,
        NATS. Each step has a time limit (:func:`shutdown_step`), so SIGTERM always ends the process."""
        await cancel_all(self._tasks)
        if self.server is not None:
            await shutdown_step("the gRPC server", self.server.stop(grace), grace + STOP_STEP_S)
        if self.sink is not None:
            await shutdown_step("the publisher", self.sink.stop(PUBLISHER_STOP_S), PUBLISHER_STOP_S + STOP_STEP_S)
        if self.live is not None:
            await shutdown_step("the live venue", self.live.close())
        if self.ledger is not None:
            await shutdown_step("the ledger's pool", self.ledger.close())
        if self.lease is not None:
            await shutdown_step("the ledger's lease", self.lease.release())
        if self._sub is not None:
            await shutdown_step("the market-data subscription", self._sub.unsubscribe())
        if self.nc is not None:
            await shutdown_step("draining NATS", self.nc.drain())


def trading_state(mode: int, version: int, reason: str = "", set_by: str = "") -> trading_pb2.TradingState:
    return trading_pb2.TradingState(mode=mode, version=version, reason=reason, set_by=set_by,  # type: ignore[arg-type]
                                    ts_ns=time.time_ns())


async def serve(settings: Settings, stop: asyncio.Event, options: RuntimeOptions | None = None) -> None:
    """Serve until ``stop`` is set, then shut down in order (stream, events flushed, NATS drained)."""
    await serve_runtime(ExecutionRuntime(settings, options), stop)


async def serve_runtime(rt: ExecutionRuntime, stop: asyncio.Event) -> None:
    try:
        await rt.start()
    except BaseException:
        await rt.stop()
        raise
    print(f"execution listening on {rt.settings.execution_host}:{rt.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await rt.stop()


def main(settings: Settings) -> int:
    """`titan execution run` / `python -m titan.execution`: serve until SIGTERM/SIGINT."""
    from titan.core.service import run_service

    # The runtime exports its own metrics (after pinning); the harness adds /healthz, logging, uvloop.
    rt = ExecutionRuntime(settings)
    try:
        return run_service("execution", settings, lambda stop: serve_runtime(rt, stop), metrics=False,
                           health=rt.health)
    except (LeaseHeld, ConnectionError) as exc:  # one line, no traceback: the cause is outside
        print(f"execution: {exc}", file=sys.stderr, flush=True)
        return 1
