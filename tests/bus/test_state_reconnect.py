"""KV watches survive a NATS server restart: the server forgets a watch's consumer when it restarts,
so a store given its client opens the watch again after the reconnect (current values once more,
then every later put). Without that, a halt put after a restart would never reach execution."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.util import wait_for
from titan.core.bus import StateStore, connect, ensure_jetstream
from titan.core.catalog import Catalog
from titan.core.infra.nats import NatsServer
from titan.v1 import common_pb2, trading_pb2

pytestmark = pytest.mark.timeout(120)
MODE = common_pb2.TradingMode


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    nats = NatsServer(tmp_path / "nats")
    nats.start()
    yield nats
    nats.stop()


async def test_watches_open_again_after_the_server_restarts(server: NatsServer) -> None:
    nc = await connect(server.url, "titan-test-kv-restart")
    catalog = Catalog(namespace=f"kv{uuid.uuid4().hex[:8]}")
    try:
        js = nc.jetstream()
        await ensure_jetstream(js, catalog)
        store = await StateStore.open(js, catalog, client=nc)
        states: list[int] = []
        budgets: list[tuple[str, int | None]] = []

        async def watch_states() -> None:
            async for state in store.watch_trading_state():
                states.append(state.version)

        async def watch_budgets() -> None:
            async for phase, budget in store.watch_budgets():
                budgets.append((phase, None if budget is None else budget.version))

        tasks = [asyncio.create_task(watch_states()), asyncio.create_task(watch_budgets())]
        await store.put_trading_state(trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=1))
        await store.put_budget(trading_pb2.Budget(phase_id="hunter", version=1))
        await store.put_budget(trading_pb2.Budget(phase_id="scavenger", version=1))
        await wait_for(lambda: states == [1] and len(budgets) == 2, timeout=10)

        pid = server.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: not nc.is_connected, timeout=10)
        server.start()
        await wait_for(lambda: nc.is_connected, timeout=30)

        await store.put_trading_state(trading_pb2.TradingState(mode=MODE.TRADING_MODE_HALTED, version=2))
        await store.delete_budget("scavenger")
        await store.put_budget(trading_pb2.Budget(phase_id="hunter", version=2))
        await wait_for(lambda: states[-1:] == [2], timeout=15)
        await wait_for(lambda: budgets[-2:] == [("scavenger", None), ("hunter", 2)]
                       or budgets[-2:] == [("hunter", 2), ("scavenger", None)], timeout=15)
        assert states[0] == 1 and set(states) == {1, 2}  # the current value may come once more, nothing else
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await nc.close()


async def test_a_watch_closed_by_its_reader_ends_without_reopening(nats_url: str) -> None:
    nc = await connect(nats_url, "titan-test-kv-close")
    catalog = Catalog(namespace=f"kv{uuid.uuid4().hex[:8]}")
    try:
        js = nc.jetstream()
        await ensure_jetstream(js, catalog)
        store = await StateStore.open(js, catalog, client=nc)
        await store.put_trading_state(trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=7))
        async with contextlib.aclosing(store.watch_trading_state()) as watch:
            first = await asyncio.wait_for(anext(watch), 10)
        assert first.version == 7
        with pytest.raises(StopAsyncIteration):
            await anext(watch)
    finally:
        await nc.close()
