"""The Scavenger in its runtime against a real NATS JetStream and a real gRPC execution stub:
market data over NATS → trap → signed signal on the stream; a Halted budget stops new entries from the
first update that carries it; parameters reload from KV; diagnostics at 1 Hz."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats
import pytest

from titan.core.bus.jetstream import ensure_jetstream
from titan.core.bus.state import StateStore
from titan.core.catalog import Catalog
from titan.core.clock import WallClock
from titan.core.marketdata.events import encode, subject_of
from titan.core.signing import verify_signal
from titan.phases.runtime.entry_gate import EntryBlock
from titan.phases.runtime.runner import PhaseRuntime, RuntimeConfig
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.strategy import ScavengerStrategy
from titan.phases.scavenger.tripwires import TrapType
from titan.v1 import common_pb2, events_pb2, market_pb2, trading_pb2

from ..util import wait_for
from .exec_server import ExecServer, TinyExecution
from .helpers import H_NS, budget, candle_events, range_bars, trade

KEY = b"scavenger-nats-test-key-012345"
SYM = "BTCUSDT"
PARAMS = {"symbols": [SYM], "venue": "sim", "trap_cooldown_ms": 0, "symbol_cooldown_ms": 0}


@pytest.fixture(scope="module")
async def env(nats_url: str, catalog: Catalog) -> AsyncIterator[tuple[nats.NATS, StateStore]]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_jetstream(js, catalog)
    yield nc, StateStore(js, catalog)
    await nc.close()


async def _publish(nc: nats.NATS, catalog: Catalog, events: list[market_pb2.MarketEvent]) -> None:
    for ev in events:
        await nc.publish(subject_of(catalog, ev), encode(ev))
    await nc.flush()


async def _burst(nc: nats.NATS, catalog: Catalog, price: str = "39500.5") -> None:
    t0 = time.time_ns()
    await _publish(nc, catalog, [trade(price, "0.01", ts_ns=t0 + i * 10**6) for i in range(60)])


async def test_scavenger_runtime_over_nats(env: tuple[nats.NATS, StateStore], catalog: Catalog, nats_url: str) -> None:
    nc, store = env
    far = time.time_ns() + 3600 * 10**9
    await store.put_budget(budget("1000", order_cap="300", expires_ns=far, version=1))
    await store.put_trading_state(trading_pb2.TradingState(mode=common_pb2.TRADING_MODE_ACTIVE, version=1))
    await store.put_params("scavenger", PARAMS)

    servicer = TinyExecution({"scavenger": KEY})
    server = ExecServer(servicer)
    target = await server.start()
    strat = ScavengerStrategy(ScavengerParams(symbols=[SYM]), clock=_wall())
    rt = PhaseRuntime(strat, RuntimeConfig("scavenger", KEY, execution_target=target, nats_url=nats_url,
                                           catalog=catalog, diag_interval_s=0.2))
    diags: list[events_pb2.PhaseDiagnostics] = []

    async def on_diag(msg: nats.aio.msg.Msg) -> None:
        d = events_pb2.PhaseDiagnostics()
        d.ParseFromString(msg.data)
        diags.append(d)

    sub = await nc.subscribe(catalog.diag_subject("scavenger"), cb=on_diag)
    await rt.start()
    try:
        # Initial state came from KV, including the parameters.
        assert rt.budget is not None and rt.entry_block() is None
        assert strat.params.venue == "sim" and strat.params.trap_cooldown_ms == 0
        await wait_for(lambda: rt.stream is not None and rt.stream.connected.is_set())

        # Hourly candles over NATS place a breakout tripwire at 39,500.
        now = time.time_ns()
        await _publish(nc, catalog, candle_events(range_bars(now - now % H_NS, "39500", "38500"), venue="sim"))
        await wait_for(lambda: any(t.trap_type is TrapType.BREAKOUT for t in strat.tripwires(SYM)))

        # A burst at the trigger → sprung → confirmed 200 ms later → signed signal on the stream.
        await _burst(nc, catalog)
        await wait_for(lambda: len(servicer.signals) == 1)
        sig = servicer.signals[0]
        assert verify_signal(sig, KEY) and sig.setup == "trap.breakout" and sig.legs[0].size_quote == "300"
        await wait_for(lambda: rt.stats.acks_accepted == 1)

        # Halted: the first budget update that carries it stops the next entry.
        await store.put_budget(budget("1000", state=common_pb2.PHASE_STATE_HALTED, expires_ns=far, version=2))
        await wait_for(lambda: rt.budget is not None and rt.budget.version == 2)
        await _burst(nc, catalog)
        await wait_for(lambda: rt.stats.entries_blocked.get(EntryBlock.HALTED) == 1)
        assert len(servicer.signals) == 1 and rt.state == "BLOCKED"

        # Parameters reload from KV; invalid ones are refused and the previous ones stay.
        await store.put_params("scavenger", {**PARAMS, "min_trades_in_window": 20})
        await wait_for(lambda: strat.params.min_trades_in_window == 20)
        await store.put_params("scavenger", {**PARAMS, "min_trades_in_window": 0})
        await wait_for(lambda: rt.stats.params_rejected == 1)
        assert strat.params.min_trades_in_window == 20

        # Back to Active: entries flow again.
        await store.put_budget(budget("1000", order_cap="300", expires_ns=far, version=3))
        await wait_for(lambda: rt.budget is not None and rt.budget.version == 3)
        await _burst(nc, catalog)
        await wait_for(lambda: len(servicer.signals) == 2)

        # Diagnostics at (here) 5 Hz on the catalog's diag subject.
        await wait_for(lambda: diags and diags[-1].values["signals_sent"] == 2)
        last = diags[-1]
        assert last.phase_id == "scavenger" and last.values["tripwires"] >= 1 and last.state == "ACTIVE"
        assert last.values["entries_blocked"] == 1 and last.values["stream_connected"] == 1
        # A malformed market-data message is counted, not fatal.
        await nc.publish(catalog.md_subject("sim", SYM, "trade"), b"\x00garbage")
        await wait_for(lambda: rt.stats.rejected_events == 1)
        assert rt.health()[0]

        # The Brain deletes the budget (its TitanPhase is gone): no entries from then on.
        await store.delete_budget("scavenger")
        await wait_for(lambda: rt.budget is None)
        assert rt.entry_block() == EntryBlock.NO_BUDGET and rt.state == "BLOCKED"
        await _burst(nc, catalog)  # sprung and confirmed, then no size without a budget
        await wait_for(lambda: strat.counters.get("aborted_no_budget") == 1)
        assert len(servicer.signals) == 2
    finally:
        await sub.unsubscribe()
        await rt.stop()
        await server.stop()


def _wall() -> WallClock:
    return WallClock()


async def test_runtime_without_budget_sends_nothing(env: tuple[nats.NATS, StateStore], catalog: Catalog,
                                                    nats_url: str) -> None:
    _nc, store = env
    assert await store.get_budget("scavenger-b") is None
    strat = ScavengerStrategy(ScavengerParams(symbols=["ETHUSDT"], venue="sim"), clock=_wall())
    rt = PhaseRuntime(strat, RuntimeConfig("scavenger-b", KEY, nats_url=nats_url, catalog=catalog))
    strat.phase_id = "scavenger-b"
    await rt.start()
    try:
        assert rt.budget is None and rt.entry_block() == EntryBlock.NO_BUDGET
        assert rt.state == "BLOCKED" and rt.health()[0]
    finally:
        await rt.stop()
    await asyncio.sleep(0)
