"""The Brain operator run in-thread by kopf's KopfRunner against kmock's Kubernetes emulator (a real
local HTTP server; the operator's login handler points kopf at it) and a real NATS JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import kmock
import pytest
from kopf.testing import KopfRunner
from nats.js import JetStreamContext

from tests.operator.kube_helpers import (
    BRAINS_URL,
    DEPLOY_URL,
    NS,
    PHASES_URL,
    Emulator,
    declare_resources,
    free_port,
    kget,
    sample,
)
from tests.operator.scenarios import restart_waits_for_a_flat_book
from tests.util import wait_for
from titan.core.bus import StateStore, new_event_id, publish_event
from titan.core.catalog import Catalog
from titan.core.clock import WallClock
from titan.operator.kopf_app import OperatorConfig, build_registry
from titan.operator.kube import Kube, KubeTarget
from titan.v1 import common_pb2, events_pb2, trading_pb2

pytestmark = pytest.mark.timeout(240)

async def _merge_patch(emu: kmock.KubernetesEmulator, url: str, patch: dict[str, Any]) -> None:
    resp = await emu.patch(url, json=patch, headers={"Content-Type": "application/merge-patch+json"})
    assert resp.status == 200, await resp.text()


async def _publish_equity(js: JetStreamContext, catalog: Catalog, scope: str, equity: str,
                          exposure: str = "0") -> None:
    ts = WallClock().now_ns()
    event = events_pb2.Event(
        event_id=new_event_id("equity", scope, ts), source="execution", ts_ns=ts,
        equity=trading_pb2.EquitySnapshot(scope=scope, equity=equity, exposure=exposure, ts_ns=ts))
    await publish_event(js, catalog, event)


@pytest.fixture(scope="module")
async def emulator() -> AsyncIterator[kmock.KubernetesEmulator]:
    async with Emulator() as emu, kmock.Server(emu):
        declare_resources(emu)
        yield emu


@pytest.fixture(scope="module")
def liveness_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def operator(
    emulator: kmock.KubernetesEmulator, nats_url: str, catalog: Catalog, bus_js: JetStreamContext,
    liveness_port: int,
) -> AsyncIterator[KopfRunner]:
    for name in ("titanbrain.yaml", "titanphase-scavenger.yaml", "titanphase-hunter.yaml",
                 "titanphase-sentinel.yaml", "titanphase-ai-quant.yaml"):
        doc = sample(name)
        url = BRAINS_URL if doc["kind"] == "TitanBrain" else PHASES_URL
        resp = await emulator.post(url, json=doc)
        assert resp.status in (200, 201), await resp.text()
    config = OperatorConfig(nats_url=nats_url, catalog_namespace=catalog.namespace, interval_s=1.0,
                            kube_server=str(emulator.url).rstrip("/"))
    runner = KopfRunner(
        ["run", "--standalone", "--all-namespaces", f"--liveness=http://127.0.0.1:{liveness_port}/healthz"],
        registry=build_registry(config), timeout=60,
    )
    runner.__enter__()
    try:
        yield runner
    finally:
        # Leave the runner from a worker thread: the emulator serves kopf from this event loop.
        await asyncio.to_thread(runner.__exit__, None, None, None)
    assert runner.exception is None, runner.exception


@pytest.fixture(scope="module")
def store(bus_js: JetStreamContext, catalog: Catalog) -> StateStore:
    return StateStore(bus_js, catalog)


def _phase_ready(obj: dict[str, Any] | None) -> bool:
    return bool(obj and obj.get("status", {}).get("allocation", {}).get("weight") is not None)


async def test_creating_the_crs_yields_status_with_allocations(
    operator: KopfRunner, emulator: kmock.KubernetesEmulator, store: StateStore,
) -> None:
    for name in ("scavenger", "hunter", "sentinel", "ai-quant"):
        await wait_for(lambda n=name: _get_ready(emulator, n), timeout=60)
    sc = await kget(emulator, f"{PHASES_URL}/scavenger")
    hu = await kget(emulator, f"{PHASES_URL}/hunter")
    ai = await kget(emulator, f"{PHASES_URL}/ai-quant")
    assert sc and hu and ai
    # initialEquity 1000: everything to Scavenger at 10x (tier 20x capped by the global 10x)
    assert sc["status"]["state"] == "Active"
    assert sc["status"]["allocation"] == {**sc["status"]["allocation"], "weight": "1", "notional": "1000",
                                          "maxLeverage": "10"}
    assert hu["status"]["state"] == "Dormant" and hu["status"]["allocation"]["weight"] == "0"
    assert ai["status"]["state"] == "Active" and ai["status"]["allocation"]["weight"] == "0"
    brain = await wait_for(lambda: _brain_with_status(emulator), timeout=30)
    assert brain["status"]["equity"] == "1000" and brain["status"]["tradingMode"] == "ACTIVE"
    assert brain["status"]["riskState"] == "normal" and brain["status"]["breaker"]["state"] == "ok"
    assert "breakers" in brain["status"]["core"]

    # budgets and the trading state are in NATS KV; params too
    budget = await wait_for(lambda: store.get_budget("scavenger"), timeout=30)
    assert budget.weight == "1" and budget.state == common_pb2.PHASE_STATE_ACTIVE
    assert list(budget.symbols) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert budget.expires_at_ns > budget.issued_at_ns
    hunter_budget = await store.get_budget("hunter")
    assert hunter_budget is not None and hunter_budget.weight == "0"
    assert hunter_budget.state == common_pb2.PHASE_STATE_DORMANT
    ts = await store.get_trading_state()
    assert ts is not None and ts.mode == common_pb2.TRADING_MODE_ACTIVE
    assert await store.get_params("hunter") == {"timeframe": "15m", "minContextScore": 70}

    # Deployments: adopted children; the Dormant phase has 0 replicas
    dep_h = await wait_for(lambda: kget(emulator, f"{DEPLOY_URL}/titan-phase-hunter"), timeout=30)
    dep_s = await wait_for(lambda: kget(emulator, f"{DEPLOY_URL}/titan-phase-scavenger"), timeout=30)
    assert dep_h["spec"]["replicas"] == 0
    assert dep_s["spec"]["replicas"] == 1
    owner = dep_h["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("TitanPhase", "hunter", "uid-hunter")
    env = {e["name"]: e.get("value") for e in dep_s["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TITAN_PHASE_ID"] == "scavenger"

    # Kubernetes Events on state changes
    events = await wait_for(lambda: _events(emulator, "StateChanged"), timeout=30)
    assert {e["involvedObject"]["name"] for e in events} >= {"scavenger", "hunter"}


async def _get_ready(emu: kmock.KubernetesEmulator, name: str) -> bool:
    return _phase_ready(await kget(emu, f"{PHASES_URL}/{name}"))


async def _brain_with_status(emu: kmock.KubernetesEmulator) -> dict[str, Any] | None:
    brain = await kget(emu, f"{BRAINS_URL}/titan")
    return brain if brain and brain.get("status", {}).get("equity") else None


async def _events(emu: kmock.KubernetesEmulator, reason: str) -> list[dict[str, Any]]:
    data = await kget(emu, f"/api/v1/namespaces/{NS}/events")
    return [e for e in (data or {}).get("items", []) if e.get("reason") == reason]


async def test_budgets_are_reissued_before_they_expire(operator: KopfRunner, store: StateStore) -> None:
    first = await wait_for(lambda: store.get_budget("scavenger"), timeout=60)

    async def newer() -> Any:
        b = await store.get_budget("scavenger")
        return b if b is not None and b.version > first.version else None

    second = await wait_for(newer, timeout=30)  # the timer re-issues every second here
    assert second.issued_at_ns > first.issued_at_ns and second.expires_at_ns > first.expires_at_ns
    assert second.issued_at_ns < first.expires_at_ns  # re-issued while the first was still valid


async def test_liveness_endpoint(operator: KopfRunner, liveness_port: int) -> None:
    async def probe() -> dict[str, Any] | None:
        try:
            async with aiohttp.ClientSession() as http, http.get(
                    f"http://127.0.0.1:{liveness_port}/healthz") as resp:
                return await resp.json() if resp.status == 200 else None
        except aiohttp.ClientError:
            return None

    body = await wait_for(probe, timeout=30)
    assert "lastDecisionAgeSeconds" in body


async def test_equity_change_moves_weights_and_publishes_new_budgets(
    operator: KopfRunner, emulator: kmock.KubernetesEmulator, store: StateStore,
    bus_js: JetStreamContext, catalog: Catalog,
) -> None:
    await wait_for(lambda: _get_ready(emulator, "hunter"), timeout=60)
    before = await store.get_budget("hunter")
    assert before is not None
    await _publish_equity(bus_js, catalog, "total", "10000")

    async def hunter_budget() -> Any:
        b = await store.get_budget("hunter")
        return b if b is not None and b.weight == "0.8" else None

    after = await wait_for(hunter_budget, timeout=60)
    assert after.version > before.version and after.state == common_pb2.PHASE_STATE_ACTIVE
    assert after.max_leverage == "5"  # tier 5x at 10 000, phase cap 5x
    assert after.max_notional == "40000"  # 8 000 x 5
    # budgets are written one phase after the other: wait for the scavenger's too
    scav = await wait_for(lambda: _budget_with_weight(store, "scavenger", "0.2"), timeout=30)
    assert scav.version == after.version

    async def hunter_status() -> Any:
        obj = await kget(emulator, f"{PHASES_URL}/hunter")
        st = (obj or {}).get("status", {})
        return st if st.get("state") == "Active" and st.get("allocation", {}).get("weight") == "0.8" else None

    status = await wait_for(hunter_status, timeout=60)
    assert status["allocation"]["notional"] == "8000"
    # the phase is no longer Dormant: its Deployment scales up
    async def scaled() -> bool:
        dep = await kget(emulator, f"{DEPLOY_URL}/titan-phase-hunter")
        return bool(dep and dep["spec"]["replicas"] == 1)

    await wait_for(scaled, timeout=60)


async def _budget_with_weight(store: StateStore, phase: str, weight: str) -> Any:
    b = await store.get_budget(phase)
    return b if b is not None and b.weight == weight else None


async def test_params_change_is_published_without_restarting_the_pod(
    operator: KopfRunner, emulator: kmock.KubernetesEmulator, store: StateStore,
) -> None:
    dep = await wait_for(lambda: kget(emulator, f"{DEPLOY_URL}/titan-phase-scavenger"), timeout=60)
    template_before = dep["spec"]["template"]
    await _merge_patch(emulator, f"{PHASES_URL}/scavenger", {"spec": {"params": {"imbalanceThreshold": 0.45}}})

    async def params() -> Any:
        p = await store.get_params("scavenger")
        return p if p and p.get("imbalanceThreshold") == 0.45 else None

    await wait_for(params, timeout=60)
    dep = await kget(emulator, f"{DEPLOY_URL}/titan-phase-scavenger")
    assert dep is not None and dep["spec"]["template"] == template_before


async def test_a_dormant_phase_holding_positions_keeps_its_pod(
    operator: KopfRunner, emulator: kmock.KubernetesEmulator, bus_js: JetStreamContext, catalog: Catalog,
) -> None:
    async def replicas(name: str) -> int | None:
        dep = await kget(emulator, f"{DEPLOY_URL}/titan-phase-{name}")
        return None if dep is None else int(dep["spec"]["replicas"])

    await wait_for(lambda: _get_ready(emulator, "sentinel"), timeout=60)
    sentinel = await kget(emulator, f"{PHASES_URL}/sentinel")
    assert sentinel is not None and sentinel["status"]["state"] == "Dormant"  # below 25 000
    assert await wait_for(lambda: _eq(replicas("sentinel"), 0), timeout=30)
    await _publish_equity(bus_js, catalog, "sentinel", "0", exposure="500")
    assert await wait_for(lambda: _eq(replicas("sentinel"), 1), timeout=60)
    still = await kget(emulator, f"{PHASES_URL}/sentinel")
    assert still is not None and still["status"]["state"] == "Dormant"  # may only reduce
    await _publish_equity(bus_js, catalog, "sentinel", "0", exposure="0")  # flat again -> 0 replicas
    assert await wait_for(lambda: _eq(replicas("sentinel"), 0), timeout=60)


async def _eq(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


@pytest.fixture(scope="module")
def kube(emulator: kmock.KubernetesEmulator) -> Iterator[Kube]:
    client = Kube.connect(KubeTarget(server=str(emulator.url)))
    yield client
    client.close()


async def test_a_new_image_waits_until_the_book_is_flat(
    operator: KopfRunner, emulator: kmock.KubernetesEmulator, kube: Kube, bus_js: JetStreamContext,
    catalog: Catalog,
) -> None:
    """Deployment scale, restart deferral and Events, read through the official client. The API
    server refuses the first RestartDeferred Event: the warning is posted again on the next pass."""
    await wait_for(lambda: _get_ready(emulator, "sentinel"), timeout=60)
    assert isinstance(emulator, Emulator)
    emulator.refuse_events = {"RestartDeferred": 1}
    await restart_waits_for_a_flat_book(kube, NS, bus_js, catalog)
    assert emulator.refuse_events == {"RestartDeferred": 0}  # the refusal was hit, and the retry got through


async def test_kill_switch_halts_every_phase_and_execution(
    operator: KopfRunner, emulator: kmock.KubernetesEmulator, store: StateStore,
) -> None:
    await wait_for(lambda: _get_ready(emulator, "scavenger"), timeout=60)
    await _merge_patch(emulator, f"{BRAINS_URL}/titan", {"spec": {"tradingState": "Halted"}})

    async def halted_state() -> Any:
        ts = await store.get_trading_state()
        return ts if ts is not None and ts.mode == common_pb2.TRADING_MODE_HALTED else None

    ts = await wait_for(halted_state, timeout=60)
    assert "kill switch" in ts.reason

    async def all_halted() -> bool:
        for name in ("scavenger", "hunter", "sentinel", "ai-quant"):
            obj = await kget(emulator, f"{PHASES_URL}/{name}")
            if (obj or {}).get("status", {}).get("state") != "Halted":
                return False
        return True

    await wait_for(all_halted, timeout=60)
    for name in ("scavenger", "hunter", "sentinel", "ai-quant"):
        budget = await store.get_budget(name)
        assert budget is not None and budget.state == common_pb2.PHASE_STATE_HALTED
        assert budget.max_notional == "0"
    brain = await kget(emulator, f"{BRAINS_URL}/titan")
    assert brain is not None and brain["status"]["tradingMode"] == "HALTED"
    assert brain["status"]["riskState"] == "halted"
    warnings = await _events(emulator, "StateChanged")
    assert any(e["type"] == "Warning" and "-> Halted" in e["message"] for e in warnings)

    # switching back re-activates
    await _merge_patch(emulator, f"{BRAINS_URL}/titan", {"spec": {"tradingState": "Active"}})

    async def active_again() -> Any:
        ts = await store.get_trading_state()
        return ts if ts is not None and ts.mode == common_pb2.TRADING_MODE_ACTIVE else None

    await wait_for(active_again, timeout=60)


async def test_a_20_percent_loss_trips_the_hard_breaker(
    operator: KopfRunner, emulator: kmock.KubernetesEmulator, store: StateStore,
    bus_js: JetStreamContext, catalog: Catalog,
) -> None:
    """Runs last: it leaves the organism halted. Day start is the first reported equity (10 000)."""
    await _publish_equity(bus_js, catalog, "total", "8000")

    async def tripped() -> Any:
        brain = await kget(emulator, f"{BRAINS_URL}/titan")
        st = (brain or {}).get("status", {})
        return st if st.get("breaker", {}).get("state") == "hard" else None

    status = await wait_for(tripped, timeout=60)
    assert status["tradingMode"] == "HALTED" and status["drawdown"] == "0.2"
    assert status["core"]["breakers"]["hardTripped"] is True
    ts = await store.get_trading_state()
    assert ts is not None and ts.mode == common_pb2.TRADING_MODE_HALTED and "HARD" in ts.reason
    events = await wait_for(lambda: _events(emulator, "HardBreakerTripped"), timeout=30)
    assert events[0]["type"] == "Warning" and "daily drawdown" in events[0]["message"]
