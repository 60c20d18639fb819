"""The Scavenger's kill condition from what execution streams, end to end over real gRPC and NATS.

A real execution service (JetStream publisher, KV watchers, market data on core NATS) and a Scavenger
PhaseRuntime (budget and trading state from KV, its own gRPC stream). Each trade opens at one price
and is closed lower, so it loses; the phase learns that only from the order, fill and position
updates on its stream. After more than ``max_consecutive_losses`` losses in a row it is in its
cool-down. A Hunter trading at the same time on its own stream sends nothing to the Scavenger."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import grpc
import pytest
from prometheus_client import REGISTRY

from tests.execution.helpers import CLOSE, KEYS, MODE, OTHER_KEY, SELL, budget, leg, mark, signal, top, updates_of
from titan.core.bus import StateStore
from titan.core.catalog import Catalog
from titan.core.clock import WallClock
from titan.core.config import Settings
from titan.execution.runtime import ExecutionRuntime, RuntimeOptions
from titan.phases.runtime.runner import PhaseRuntime, RuntimeConfig
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.strategy import LOSS_COOLDOWN, ScavengerStrategy
from titan.v1 import execution_pb2, execution_pb2_grpc, trading_pb2

from ..util import stored_events, wait_for

PHASE = "scavenger"
LOSSES_ALLOWED = 2  # max_consecutive_losses: the third loss in a row starts the cool-down
PERP_KEY = ("bybit", "BTCUSDT", 2)


def _events(kind: str) -> float:
    return REGISTRY.get_sample_value("titan_phase_events_total", {"phase": PHASE, "kind": kind}) or 0.0


def _losses() -> float:
    return REGISTRY.get_sample_value("titan_phase_trades_closed_total", {"phase": PHASE, "outcome": "loss"}) or 0.0


@pytest.fixture
async def execution(nats_url: str, catalog: Catalog):
    settings = Settings(nats_url=nats_url, pg_dsn="", namespace=catalog.namespace, execution_port=0,
                        metrics_port=0, control_key="control-key-0123456789abcdef")
    rt = ExecutionRuntime(settings, RuntimeOptions(keys=dict(KEYS), metrics=False, freeze_gc=False,
                                                   tick_interval_s=0.05))
    await rt.start()
    yield rt
    await rt.stop()


async def test_losing_trades_streamed_by_execution_put_the_scavenger_in_cooldown(
    execution: ExecutionRuntime, nats_url: str, catalog: Catalog, bus_nc, bus_js,
) -> None:
    engine = execution.engine
    assert engine is not None
    store = StateStore(bus_js, catalog)
    clock = WallClock()
    params = ScavengerParams(symbols=["BTCUSDT"], venue="bybit", max_consecutive_losses=LOSSES_ALLOWED)
    strategy = ScavengerStrategy(params, clock=clock)
    phase = PhaseRuntime(strategy, RuntimeConfig(PHASE, OTHER_KEY, execution_target=f"127.0.0.1:{execution.port}",
                                                 nats_url=nats_url, catalog=catalog, min_backoff_s=0.05,
                                                 max_backoff_s=0.2))
    cooldowns, losses = _events(LOSS_COOLDOWN), _losses()

    async def set_price(price: str) -> None:
        """Publish a book top and a mark on NATS; wait until execution has them."""
        for ev in (top(price, "10", price, "10"), mark(price)):
            await bus_nc.publish(catalog.md_subject("bybit", "BTCUSDT", ev.WhichOneof("payload")),
                                 ev.SerializeToString())
        await wait_for(lambda: (m := engine.market.get(PERP_KEY)) is not None and m.mark == Decimal(price))

    await phase.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{execution.port}")
    hunter = execution_pb2_grpc.ExecutionStub(channel).StreamSignals()
    try:
        await store.put_trading_state(trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=1))
        for phase_id in (PHASE, "hunter"):
            await store.put_budget(budget(phase=phase_id, version=1, expires_at_ns=time.time_ns() + 10**12))
        await wait_for(lambda: phase.state == "ACTIVE" and {PHASE, "hunter"} <= set(engine.gate.budgets)
                       and engine.trading_state.mode == MODE.TRADING_MODE_ACTIVE, timeout=15)
        assert phase.stream is not None
        await wait_for(phase.stream.connected.is_set, timeout=15)

        for n in range(1, LOSSES_ALLOWED + 2):
            await set_price("50000")
            phase.stream.send(signal(clock, leg(size="1000"), phase=PHASE, key=OTHER_KEY))
            # The Hunter trades too, on its own stream: none of it may reach the Scavenger.
            await hunter.write(execution_pb2.StreamRequest(signal=signal(clock, leg(size="500"))))
            await wait_for(lambda n=n: phase.stats.positions == 2 * n - 1)
            assert strategy.streak.losses == n - 1
            await set_price("49900")
            phase.stream.send(signal(clock, leg(side=SELL, size=""), phase=PHASE, key=OTHER_KEY, intent=CLOSE))
            await wait_for(lambda n=n: phase.stats.trades_closed == n)
            assert phase.state == ("ACTIVE" if n <= LOSSES_ALLOWED else "COOLDOWN")

        stats = phase.stats
        assert (stats.acks_accepted, stats.fills, stats.positions) == (6, 6, 6)
        assert stats.orders >= 6  # a snapshot per order change: at least one per order
        assert stats.foreign_updates == 0 and stats.strategy_errors == 0
        assert strategy.state == "COOLDOWN" and strategy.streak.until_ns > clock.now_ns()
        assert _events(LOSS_COOLDOWN) == cooldowns + 1 and _losses() == losses + LOSSES_ALLOWED + 1
        assert phase.diagnostics().values["cooldown"] == 1.0
        assert not engine.positions(PHASE) or all(p.quantity == "0" for p in engine.positions(PHASE))

        # The Hunter's updates went to the Hunter's stream; every fill the Scavenger saw is in JetStream.
        hunter_positions = await _read_positions(hunter, LOSSES_ALLOWED + 1)
        assert {p.phase_id for p in hunter_positions} == {"hunter"}
        assert len(await _fills_in_jetstream(bus_js, catalog, PHASE)) == stats.fills
    finally:
        await hunter.done_writing()
        await channel.close()
        await phase.stop()


async def _read_positions(call, count: int) -> list[trading_pb2.Position]:
    positions: list[trading_pb2.Position] = []
    while len(positions) < count:
        msg = await asyncio.wait_for(updates_of(call).read(), 10)
        if msg.WhichOneof("body") == "position":
            positions.append(msg.position)
    return positions


async def _fills_in_jetstream(js, catalog: Catalog, phase_id: str) -> set[str]:
    return {e.fill.fill_id for e in await stored_events(js, catalog, "fill") if e.fill.phase_id == phase_id}
