"""A hedged unit's outcome reaches the Sentinel end to end over real gRPC and NATS: a real execution
service (JetStream publisher, KV watchers, market data on core NATS) and a Sentinel PhaseRuntime on
its own stream. One unit fills both legs (hedged); in the other the venue refuses the perp leg (a
crossing post-only) and the spot leg is given back (unwound). The phase learns each outcome on its
stream, after the unit's orders, fills and positions; the outcome is on the bus as an event too."""

from __future__ import annotations

import time

from tests.execution.helpers import BUY, KEYS, MODE, PERP, SELL, SPOT, OrderType, budget, leg, signal, top
from titan.core.bus import StateStore
from titan.core.catalog import Catalog
from titan.core.clock import WallClock
from titan.core.config import Settings
from titan.core.signing import sign_signal
from titan.execution.runtime import ExecutionRuntime, RuntimeOptions
from titan.phases.runtime.runner import PhaseRuntime, RuntimeConfig
from titan.phases.sentinel.params import SentinelParams
from titan.phases.sentinel.strategy import SentinelStrategy
from titan.v1 import trading_pb2

from ..util import stored_events, wait_for

PHASE = "sentinel"
KEY = b"sentinel-test-key-0123456789abcd"


def hedged_unit(clock: WallClock, policy: str, perp_leg: trading_pb2.Leg) -> trading_pb2.Signal:
    sig = signal(clock, leg(side=BUY, size="5000", instrument=SPOT), perp_leg, phase=PHASE, key=None,  # type: ignore[arg-type]
                 max_slippage_bps=20, leverage="2")
    sig.metadata["hedge"] = policy
    sig.metadata["hedge_deadline_ms"] = "2000"
    sign_signal(sig, KEY)
    return sig


async def test_the_sentinel_receives_each_units_outcome_on_its_stream(
    nats_url: str, catalog: Catalog, bus_nc, bus_js,
) -> None:
    settings = Settings(nats_url=nats_url, pg_dsn="", namespace=catalog.namespace, execution_port=0,
                        metrics_port=0, control_key="control-key-0123456789abcdef")
    execution = ExecutionRuntime(settings, RuntimeOptions(keys={**KEYS, PHASE: KEY}, metrics=False,
                                                          freeze_gc=False, tick_interval_s=0.05))
    await execution.start()
    engine = execution.engine
    assert engine is not None
    store = StateStore(bus_js, catalog)
    clock = WallClock()
    strategy = SentinelStrategy(SentinelParams(symbols=["BTCUSDT"], spot_venue="bybit", perp_venue="bybit"),
                                clock=clock)
    phase = PhaseRuntime(strategy, RuntimeConfig(PHASE, KEY, execution_target=f"127.0.0.1:{execution.port}",
                                                 nats_url=nats_url, catalog=catalog, min_backoff_s=0.05,
                                                 max_backoff_s=0.2))
    await phase.start()
    try:
        await store.put_trading_state(trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=1))
        await store.put_budget(budget(phase=PHASE, version=1, expires_at_ns=time.time_ns() + 10**12))
        for instrument in (SPOT, PERP):
            ev = top("49990", "10", "50000", "10", instrument=instrument)
            await bus_nc.publish(catalog.md_subject("bybit", "BTCUSDT", "top"), ev.SerializeToString())
        await wait_for(lambda: phase.state == "ACTIVE" and PHASE in engine.gate.budgets
                       and engine.market.get(("bybit", "BTCUSDT", PERP)) is not None
                       and engine.market.get(("bybit", "BTCUSDT", SPOT)) is not None, timeout=15)
        assert phase.stream is not None
        await wait_for(phase.stream.connected.is_set, timeout=15)

        hedged = hedged_unit(clock, "complete", leg(side=SELL, size="5000", instrument=PERP))
        phase.stream.send(hedged)
        await wait_for(lambda: strategy.counters.get("units_hedged") == 1, timeout=15)
        assert strategy.symbols["BTCUSDT"].holding and phase.stats.positions >= 2

        crossing = leg(
            side=SELL, size="5000", instrument=PERP, order_type=OrderType.ORDER_TYPE_POST_ONLY, limit="49990"
        )
        refused = hedged_unit(clock, "unwind", crossing)
        phase.stream.send(refused)
        await wait_for(lambda: strategy.counters.get("units_unwound") == 1, timeout=15)
        assert phase.stats.hedge_outcomes == 2 and phase.stats.strategy_errors == 0
        spot = engine.portfolio.quantity((PHASE, "bybit", "BTCUSDT", SPOT))
        perp = engine.portfolio.quantity((PHASE, "bybit", "BTCUSDT", PERP))
        assert spot + perp == 0 and strategy.symbols["BTCUSDT"].spot_quantity == spot   # only the hedged unit held

        outcomes = await _outcomes_in_jetstream(bus_js, catalog)
        assert {o.signal_id: o.result for o in outcomes} == {
            hedged.signal_id: trading_pb2.HEDGE_RESULT_HEDGED, refused.signal_id: trading_pb2.HEDGE_RESULT_UNWOUND}
    finally:
        await phase.stop()
        await execution.stop()


async def _outcomes_in_jetstream(js, catalog: Catalog) -> list[trading_pb2.HedgeOutcome]:
    return [e.hedge for e in await stored_events(js, catalog, "hedge")]
