"""StateStore over real JetStream KV: round trips and watches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

import nats
import pytest
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from titan.core.bus import StateStore, canonical_json
from titan.core.catalog import Catalog
from titan.v1 import common_pb2, trading_pb2

from ..util import wait_for

T = TypeVar("T")


def budget(phase_id: str, version: int, weight: str = "0.25") -> trading_pb2.Budget:
    return trading_pb2.Budget(
        phase_id=phase_id, state=common_pb2.PHASE_STATE_ACTIVE, weight=weight, max_notional="1000",
        max_order_notional="100", max_leverage="3", max_orders_per_minute=10, max_open_orders_per_symbol=2,
        max_daily_loss="50", symbols=["BTCUSDT", "ETHUSDT"], issued_at_ns=1, expires_at_ns=2, version=version,
    )


class Collector(Generic[T]):
    """Runs an async iterator in the background and keeps what it yields."""

    def __init__(self, it: AsyncIterator[T]) -> None:
        self.items: list[T] = []
        self._it = it
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with contextlib.aclosing(self._it):  # type: ignore[type-var]
            async for item in self._it:
                self.items.append(item)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture(scope="module")
async def store(bus_js: JetStreamContext, catalog: Catalog) -> StateStore:
    return await StateStore.open(bus_js, catalog)


async def test_budgets_round_trip(store: StateStore) -> None:
    assert await store.get_budget("hunter") is None
    b = budget("hunter", 1)
    await store.put_budget(b)
    assert await store.get_budget("hunter") == b
    await store.put_budget(budget("scavenger", 1, "0.5"))
    assert await store.budgets() == {"hunter": b, "scavenger": budget("scavenger", 1, "0.5")}
    await store.delete_budget("scavenger")
    assert await store.get_budget("scavenger") is None
    assert set(await store.budgets()) == {"hunter"}
    with pytest.raises(ValueError):
        await store.put_budget(budget("bad.phase", 1))


async def test_watch_budgets_yields_current_values_then_updates(store: StateStore) -> None:
    await store.put_budget(budget("watched", 1))
    watch = Collector(store.watch_budgets())
    try:
        def versions(phase: str) -> list[int]:
            return [b.version for k, b in watch.items if k == phase and b is not None]

        await wait_for(lambda: versions("watched") == [1])
        await store.put_budget(budget("watched", 2, "0.75"))
        await store.put_budget(budget("other", 1))
        await wait_for(lambda: versions("watched") == [1, 2])
        await wait_for(lambda: versions("other") == [1])
        assert [b.weight for k, b in watch.items if k == "watched" and b is not None] == ["0.25", "0.75"]
        assert all(b is None or b.phase_id == k for k, b in watch.items)
    finally:
        await watch.close()


async def test_watch_budgets_reports_a_deleted_budget(store: StateStore) -> None:
    """A budget the Brain deletes (its TitanPhase is gone) reaches watchers as (phase, None)."""
    await store.put_budget(budget("doomed", 1))
    watch = Collector(store.watch_budgets())
    try:
        await wait_for(lambda: ("doomed", budget("doomed", 1)) in watch.items)
        await store.delete_budget("doomed")
        await wait_for(lambda: ("doomed", None) in watch.items)
        assert watch.items.index(("doomed", None)) > watch.items.index(("doomed", budget("doomed", 1)))
        await store.put_budget(budget("doomed", 2))  # funded again later
        await wait_for(lambda: ("doomed", budget("doomed", 2)) in watch.items)
    finally:
        await watch.close()
    # a new watcher does not see the deleted key's history, only what is stored now
    again = Collector(store.watch_budgets())
    try:
        await wait_for(lambda: ("doomed", budget("doomed", 2)) in again.items)
        assert ("doomed", None) not in again.items
    finally:
        await again.close()


async def test_trading_state_round_trip_and_watch(store: StateStore) -> None:
    s1 = trading_pb2.TradingState(mode=common_pb2.TRADING_MODE_ACTIVE, reason="start", set_by="cli", ts_ns=1,
                                  version=1)
    await store.put_trading_state(s1)
    assert await store.get_trading_state() == s1
    watch = Collector(store.watch_trading_state())
    try:
        await wait_for(lambda: watch.items == [s1])
        s2 = trading_pb2.TradingState(mode=common_pb2.TRADING_MODE_HALTED, reason="breaker", set_by="brain",
                                      ts_ns=2, version=2)
        await store.put_trading_state(s2)
        await wait_for(lambda: watch.items == [s1, s2])
        assert await store.get_trading_state() == s2
    finally:
        await watch.close()


async def test_params_round_trip_canonical_json_and_watch(store: StateStore, bus_js: JetStreamContext,
                                                          catalog: Catalog) -> None:
    assert await store.get_params("hunter") is None
    params = {"z": 1, "a": {"y": [1, 2], "b": "0.5"}, "name": "héllo"}
    await store.put_params("hunter", params)
    assert await store.get_params("hunter") == params
    raw = await (await bus_js.key_value(catalog.params_bucket.name)).get("hunter")
    assert raw.value == canonical_json(params).encode() == '{"a":{"b":"0.5","y":[1,2]},"name":"héllo","z":1}'.encode()
    with pytest.raises(ValueError):
        await store.put_params("hunter", {"x": float("nan")})

    watch = Collector(store.watch_params("hunter"))
    try:
        await wait_for(lambda: watch.items == [params])
        await store.put_params("other", {"ignored": True})
        await store.put_params("hunter", {"z": 2})
        await wait_for(lambda: watch.items == [params, {"z": 2}])
    finally:
        await watch.close()


async def test_watch_skips_and_counts_undecodable_values(store: StateStore, bus_js: JetStreamContext,
                                                         catalog: Catalog) -> None:
    label = {"consumer": f"kv:{catalog.params_bucket.name}", "reason": "decode"}
    before = REGISTRY.get_sample_value("titan_bus_rejects_total", label) or 0.0
    kv = await bus_js.key_value(catalog.params_bucket.name)
    watch = Collector(store.watch_params("mangled"))
    try:
        await kv.put("mangled", b"[not, json")
        await kv.put("mangled", b"[1, 2]")  # JSON, but not an object
        await store.put_params("mangled", {"ok": 1})
        await wait_for(lambda: watch.items == [{"ok": 1}])
        assert (REGISTRY.get_sample_value("titan_bus_rejects_total", label) or 0.0) == before + 2
    finally:
        await watch.close()
    await kv.put("mangled", b"{bad")
    with pytest.raises(ValueError):  # a direct read of a corrupt value fails loudly, never guesses
        await store.get_params("mangled")


async def test_a_watch_cancelled_while_it_subscribes_ends(nats_url: str, catalog: Catalog,
                                                          bus_js: JetStreamContext) -> None:
    """A stop that lands while the watch subscribes ends it. nats-py swallows a cancellation that
    arrives while a publish waits for a forced flush (here: every publish, with a one-byte pending
    buffer); a watch that ran on after it kept its service from stopping on SIGTERM. (``bus_js``
    made the buckets.)"""
    nc = await nats.connect(nats_url, pending_size=1)
    try:
        store = StateStore(nc.jetstream(), catalog, client=nc)
        await store.put_trading_state(trading_pb2.TradingState(mode=common_pb2.TRADING_MODE_ACTIVE, version=1))

        async def watch() -> None:
            async for _ in store.watch_trading_state():
                pass

        for turns in range(40):  # cancel at each point of the subscribe in turn
            task = asyncio.create_task(watch())
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            assert done, f"a watch cancelled after {turns} loop turns is still running 5 s later"
    finally:
        await nc.close()
