"""The execution process wiring with real NATS: budgets and the trading state follow NATS KV (newer
version wins, also against the RPC), market data arrives on core NATS, equity snapshots are
published periodically."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from tests.execution.helpers import KEYS, MODE, PERP, budget, leg, mark, signal, top
from tests.util import wait_for
from titan.core.bus import StateStore, decode_event, unpack
from titan.core.config import Settings
from titan.execution.runtime import ExecutionRuntime, RuntimeOptions
from titan.v1 import trading_pb2


class Wall:
    def now_ns(self) -> int:
        return time.time_ns()


@pytest.fixture(scope="module")
async def runtime(nats_url, catalog, bus_js):
    settings = Settings(nats_url=nats_url, pg_dsn="", namespace=catalog.namespace, execution_port=0,
                        metrics_port=0, control_key="control-key-0123456789abcdef")
    rt = ExecutionRuntime(settings, RuntimeOptions(keys=dict(KEYS), metrics=False, freeze_gc=False,
                                                   equity_interval_s=0.2, tick_interval_s=0.05))
    await rt.start()
    yield rt
    await rt.stop()


async def test_kv_drives_trading_state_and_budgets(runtime, bus_js, catalog):
    store = StateStore(bus_js, catalog)
    engine = runtime.engine
    await store.put_trading_state(trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=10))
    await wait_for(lambda: engine.trading_state.mode == MODE.TRADING_MODE_ACTIVE)
    await store.put_budget(budget(version=3, max_notional="12345", expires_at_ns=time.time_ns() + 10**12))
    await wait_for(lambda: "hunter" in engine.gate.budgets and engine.gate.budgets["hunter"].version == 3)
    assert engine.gate.budgets["hunter"].max_notional == 12345
    # an older version in KV changes nothing
    await store.put_budget(budget(version=2, max_notional="1"))
    await store.put_trading_state(trading_pb2.TradingState(mode=MODE.TRADING_MODE_HALTED, version=11))
    await wait_for(lambda: engine.trading_state.mode == MODE.TRADING_MODE_HALTED)
    assert engine.gate.budgets["hunter"].max_notional == 12345
    assert REGISTRY.get_sample_value("titan_trading_state", {"state": "halted"}) == 1.0
    await store.put_trading_state(trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=12))
    await wait_for(lambda: engine.trading_state.mode == MODE.TRADING_MODE_ACTIVE)
    # the Brain deletes the budget (the TitanPhase is gone): the gate lets the phase only reduce
    await store.delete_budget("hunter")
    await wait_for(lambda: "hunter" not in engine.gate.budgets)
    await store.put_budget(budget(version=4, max_notional="12345", expires_at_ns=time.time_ns() + 10**12))
    await wait_for(lambda: "hunter" in engine.gate.budgets and engine.gate.budgets["hunter"].version == 4)


async def test_market_data_from_nats_and_equity_snapshots(runtime, bus_nc, bus_js, catalog):
    engine = runtime.engine
    for ev in (top("50000", "10", "50000", "10"), mark("50000")):
        await bus_nc.publish(catalog.md_subject("bybit", "BTCUSDT", "top"), ev.SerializeToString())
    await bus_nc.publish(catalog.md_subject("bybit", "BTCUSDT", "top"), b"\xff\x00 not a market event")
    await wait_for(lambda: (m := engine.market.get(("bybit", "BTCUSDT", PERP))) is not None and m.mark is not None)
    assert REGISTRY.get_sample_value("titan_bus_rejects_total",
                                     {"consumer": "execution-md", "reason": "undecodable"}) >= 1
    d = engine.on_signal(signal(Wall(), leg(size="5000")))
    assert d.ack.accepted, d.ack.detail
    runtime.servicer.emit(d.updates)
    sub = await bus_js.subscribe(catalog.event_filter("execution", "*"), ordered_consumer=True)
    try:
        scopes: set[str] = set()
        while "total" not in scopes:  # the snapshots of one publish travel as one batch
            msg = await sub.next_msg(timeout=5)
            scopes |= {ev.equity.scope for ev in unpack(decode_event(msg.data)) if ev.WhichOneof("body") == "equity"}
        assert "hunter" in scopes
    finally:
        await sub.unsubscribe()
    assert REGISTRY.get_sample_value("titan_equity_quote", {"scope": "total"}) is not None
