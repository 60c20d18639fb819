"""The gateway publishes a replayed day on NATS; a subscriber receives every event, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from prometheus_client import REGISTRY

from tests.util import wait_for
from titan.core.catalog import Catalog
from titan.core.marketdata.events import BUY, SPOT, MalformedEvent, kind_of, subject_of, trade_event
from titan.core.marketdata.gateway import Gateway, subscribe
from titan.core.marketdata.replay import ReplaySource
from titan.v1.market_pb2 import MarketEvent

from .conftest import BTC_1M, BYBIT_BOOK, TRADES

DAY_START = 1_641_081_600 * 10**9  # 2022-01-02 00:00 UTC


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_replayed_day_arrives_complete_and_in_order(nats_url: str, catalog: Catalog, data_dir: Path) -> None:
    # one day of the BTC month, with the trade tape and the Bybit book merged in by time
    day_end = DAY_START + 86_400 * 10**9
    expected = [
        e for e in ReplaySource([BTC_1M, TRADES, BYBIT_BOOK]).events()
        if e.venue != "replay" or DAY_START <= e.exchange_ts_ns < day_end
    ]
    assert sum(1 for e in expected if e.venue == "replay") == 1440
    assert len(expected) == 1440 + 2001 + 50

    sub_nc = await nats.connect(nats_url)
    pub_nc = await nats.connect(nats_url)
    received: list[MarketEvent] = []
    subjects: list[str] = []

    async def on_event(ev: MarketEvent) -> None:
        received.append(ev)
        subjects.append(subject_of(catalog, ev))

    try:
        sub, tracker = await subscribe(sub_nc, catalog, on_event)
        await sub_nc.flush()
        before = _metric("titan_md_events_total", source="gateway", venue="bybit", kind="depth")
        gateway = Gateway(pub_nc, catalog)
        for ev in expected:
            assert await gateway.publish(ev)
        await pub_nc.flush()
        await wait_for(lambda: len(received) >= len(expected), timeout=30)
        assert [e.SerializeToString() for e in received] == [e.SerializeToString() for e in expected]
        stamps = [e.exchange_ts_ns for e in received]
        assert stamps == sorted(stamps)
        assert tracker.gaps == 0
        assert all(s.startswith(catalog.root + ".md.") for s in subjects)
        assert {s.rsplit(".", 1)[1] for s in subjects} == {"candle", "trade", "depth"}
        assert catalog.md_subject("bybit", "XRPUSDT", "depth") in subjects
        assert _metric("titan_md_events_total", source="gateway", venue="bybit", kind="depth") == before + 50
        assert _metric("titan_md_last_event_timestamp_seconds", venue="bybit", symbol="XRPUSDT") == (
            expected[-1].exchange_ts_ns / 1e9
        )
        await sub.unsubscribe()
    finally:
        await sub_nc.close()
        await pub_nc.close()


async def test_gateway_runs_a_source_and_drops_malformed(nats_url: str, catalog: Catalog, data_dir: Path) -> None:
    sub_nc = await nats.connect(nats_url)
    pub_nc = await nats.connect(nats_url)
    got: list[MarketEvent] = []

    async def on_event(ev: MarketEvent) -> None:
        got.append(ev)

    try:
        sub, tracker = await subscribe(sub_nc, catalog, on_event, venue="binance", kind="trade")
        await sub_nc.flush()
        gateway = Gateway(pub_nc, catalog)
        n = await gateway.run(ReplaySource([TRADES]))
        assert n == 2001
        await wait_for(lambda: len(got) == 2001, timeout=30)
        assert [e.trade.trade_id for e in got] == [e.trade.trade_id for e in ReplaySource([TRADES]).events()]
        assert tracker.gaps == 0 and all(kind_of(e) == "trade" for e in got)

        # malformed: a zero price is not published; garbage bytes on the subject are rejected by subscribers
        bad = trade_event("binance", "BTCUSDT", SPOT, price="1", size="1", taker_side=BUY, ts_ns=1)
        bad.trade.price = "0"
        assert not await gateway.publish(bad)
        assert gateway.rejected == 1
        rejects_before = _metric("titan_bus_rejects_total", consumer="md-subscriber", reason="undecodable")
        await pub_nc.publish(catalog.md_subject("binance", "BTCUSDT", "trade"), b"\xff\xff\xff")
        await pub_nc.flush()
        await wait_for(
            lambda: _metric("titan_bus_rejects_total", consumer="md-subscriber", reason="undecodable")
            > rejects_before
        )
        assert len(got) == 2001
        await sub.unsubscribe()
    finally:
        await sub_nc.close()
        await pub_nc.close()


def test_malformed_reason_codes() -> None:
    from titan.core.marketdata.events import decode

    with pytest.raises(MalformedEvent) as empty:
        decode(b"")
    assert empty.value.reason == "missing_instrument"
    with pytest.raises(MalformedEvent) as garbage:
        decode(b"\xff\xff")
    assert garbage.value.reason == "undecodable"
    no_payload = MarketEvent(venue="x", symbol="Y", exchange_ts_ns=1)
    with pytest.raises(MalformedEvent) as empty_payload:
        decode(no_payload.SerializeToString())
    assert empty_payload.value.reason == "empty_payload"


class _Endless:
    """A source that streams trades flat out and never awaits: a publish is its only pause."""

    def __init__(self) -> None:
        self.sent = 0
        self.stopped = False

    async def stream(self):  # type: ignore[no-untyped-def]
        while not self.stopped:
            self.sent += 1
            yield trade_event("binance", "BTCUSDT", SPOT, price="1", size="1", taker_side=BUY, ts_ns=self.sent)

    async def aclose(self) -> None:
        return None


async def test_a_gateway_publishing_flat_out_stops_when_cancelled(nats_url: str, catalog: Catalog) -> None:
    """A cancellation that lands while nats-py waits for a forced flush is swallowed there (a pending
    buffer of one byte forces one on every publish); the gateway still stops (SIGTERM cancels it)."""
    nc = await nats.connect(nats_url, pending_size=1)
    source = _Endless()
    run = asyncio.create_task(Gateway(nc, catalog).run(source))
    try:
        await wait_for(lambda: source.sent > 200, timeout=30)
        run.cancel()
        done, _ = await asyncio.wait({run}, timeout=10)
        assert run in done, f"the gateway went on publishing after its cancellation ({source.sent} sent)"
        assert run.cancelled()
    finally:
        source.stopped = True  # ends a runaway gateway (the failure above) before its connection closes
        await asyncio.wait({run}, timeout=10)
        await nc.close()
