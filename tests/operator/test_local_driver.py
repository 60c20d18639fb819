"""The local driver: the Brain core driven from the sample YAML files on a real NATS JetStream."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from tests.util import wait_for
from titan.core.bus import StateStore, decode_event, new_event_id, publish_event
from titan.core.catalog import Catalog, EventKind
from titan.core.clock import NS_PER_S, ManualClock
from titan.operator.local import LocalBrain, ManifestError, load_manifests
from titan.v1 import common_pb2, events_pb2, trading_pb2

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"
T0 = 20_400 * 86_400 * NS_PER_S + 3600 * NS_PER_S


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    folder = tmp_path / "organism"
    shutil.copytree(SAMPLES, folder)
    return folder


async def _equity(js: JetStreamContext, catalog: Catalog, equity: str, ts: int) -> None:
    await publish_event(js, catalog, events_pb2.Event(
        event_id=new_event_id("equity", "total", ts), source="execution", ts_ns=ts,
        equity=trading_pb2.EquitySnapshot(scope="total", equity=equity, ts_ns=ts)))


async def _last_event(js: JetStreamContext, catalog: Catalog, kind: EventKind) -> events_pb2.Event:
    msg = await js.get_last_msg(catalog.events_stream.name, catalog.event_subject("brain", kind))
    return decode_event(msg.data)


def test_manifests_need_one_brain(manifests: Path) -> None:
    m = load_manifests([manifests])
    assert m.brain_name == "titan" and sorted(m.phases) == ["ai-quant", "hunter", "scavenger", "sentinel"]
    (manifests / "titanbrain.yaml").unlink()
    with pytest.raises(ManifestError):
        load_manifests([manifests])


async def test_local_driver_end_to_end(
    manifests: Path, tmp_path: Path, bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog,
) -> None:
    clock = ManualClock(T0)
    state_dir = tmp_path / "state"
    brain = LocalBrain(bus_nc, catalog, [manifests], clock, state_dir=state_dir)
    store = StateStore(bus_js, catalog)
    await brain.start()
    try:
        d = await brain.step()
        assert d.phases["scavenger"].weight == 1 and d.phases["hunter"].state.value == "Dormant"
        budget = await store.get_budget("scavenger")
        assert budget is not None and budget.weight == "1" and budget.state == common_pb2.PHASE_STATE_ACTIVE
        assert await store.get_params("sentinel") == {"minBasisBps": 10, "maxBasisBps": 200}
        assert (state_dir / "brain-status.json").exists()
        alloc = await _last_event(bus_js, catalog, EventKind.ALLOCATION)
        assert alloc.source == "brain" and alloc.allocation.phase_id in d.phases

        # equity from execution moves the weights
        await _equity(bus_js, catalog, "10000", T0 + NS_PER_S)
        await wait_for(lambda: brain.runtime.events_seen >= 1, timeout=20)
        clock.advance(2 * NS_PER_S)
        d = await brain.step()
        assert (d.phases["scavenger"].weight, d.phases["hunter"].weight) == (Decimal("0.2"), Decimal("0.8"))
        hunter = await store.get_budget("hunter")
        assert hunter is not None and hunter.weight == "0.8" and hunter.max_notional == "40000"

        # the kill switch is an edit of the TitanBrain file
        brain_file = manifests / "titanbrain.yaml"
        brain_file.write_text(brain_file.read_text().replace("tradingState: Active", "tradingState: Halted"))
        clock.advance(NS_PER_S)
        await brain.reload(force=True)
        d = await brain.step()
        ts = await store.get_trading_state()
        assert ts is not None and ts.mode == common_pb2.TRADING_MODE_HALTED
        assert {p.state.value for p in d.phases.values()} == {"Halted"}
        brain_file.write_text(brain_file.read_text().replace("tradingState: Halted", "tradingState: Active"))
        await brain.reload(force=True)
        clock.advance(NS_PER_S)
        assert (await brain.step()).trading_mode.value == "ACTIVE"

        # a 20% loss trips the HARD breaker: HALTED in KV and a breaker event on JetStream
        await _equity(bus_js, catalog, "8000", T0 + 5 * NS_PER_S)
        await wait_for(lambda: brain.runtime.events_seen >= 2, timeout=20)
        clock.advance(2 * NS_PER_S)
        d = await brain.step()
        assert d.hard_tripped
        ts = await store.get_trading_state()
        assert ts is not None and ts.mode == common_pb2.TRADING_MODE_HALTED and "HARD" in ts.reason
        breaker = await _last_event(bus_js, catalog, EventKind.BREAKER)
        assert breaker.breaker.tripped and breaker.breaker.kind == events_pb2.BREAKER_KIND_HARD
        assert breaker.breaker.drawdown == "0.2"
    finally:
        await brain.close()

    # a restart keeps the HARD breaker (persisted core state) until a manual reset
    again = LocalBrain(bus_nc, catalog, [manifests], clock, state_dir=state_dir)
    await again.start()
    try:
        clock.advance(NS_PER_S)
        assert (await again.step()).hard_tripped
        brain_file = manifests / "titanbrain.yaml"
        brain_file.write_text(brain_file.read_text().replace("  account: main", "  account: main\n"
                                                                                "  breakerResetToken: ops-1"))
        await again.reload(force=True)
        clock.advance(NS_PER_S)
        d = await again.step()
        assert not d.hard_tripped and d.trading_mode.value == "ACTIVE"
    finally:
        await again.close()


async def test_a_bad_file_keeps_the_last_good_policy(
    manifests: Path, tmp_path: Path, bus_nc: Client, catalog: Catalog, bus_js: JetStreamContext,
) -> None:
    brain = LocalBrain(bus_nc, catalog, [manifests], ManualClock(T0), state_dir=tmp_path / "s2")
    await brain.start()
    try:
        await brain.step()
        (manifests / "titanbrain.yaml").write_text("apiVersion: [unclosed")
        await brain.reload(force=True)
        assert brain.problems and brain.brain_name == "titan"
        bad_phase = manifests / "titanphase-hunter.yaml"
        bad_phase.write_text(bad_phase.read_text().replace("maxLeverage: 5", "maxLeverage: 500"))
        shutil.copy(SAMPLES / "titanbrain.yaml", manifests / "titanbrain.yaml")
        await brain.reload(force=True)
        assert any("hunter" in p for p in brain.problems)
        assert "hunter" not in {p.phase_id for p in brain.phases}
    finally:
        await brain.close()
