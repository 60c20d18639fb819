"""Live parsing, offline: recorded Binance/Bybit websocket messages (hand-written from the venues'
documented formats) go through the tapped ccxt.pro exchange — the path live messages take."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any, ClassVar

import ccxt.pro as ccxtpro
import pytest
from prometheus_client import REGISTRY

from tests.util import wait_for
from titan.core.marketdata.book import OrderBook
from titan.core.marketdata.events import BUY, PERP, SELL, SPOT, MalformedEvent, kind_of
from titan.core.marketdata.live import LiveConfig, LiveFeed, LiveSource, ccxt_symbol, tap_exchange
from titan.core.marketdata.parsers import BinanceParser, BybitParser
from titan.v1.market_pb2 import MarketEvent

from .conftest import FIXTURES


def _messages(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


async def _feed(exchange_cls: type[Any], parser: Any, fixture: str) -> tuple[list[MarketEvent], Any]:
    events: list[MarketEvent] = []
    ex = tap_exchange(exchange_cls, parser, events.append)
    client = ex.client("wss://recorded.invalid/ws")  # never connected: messages are fed by hand
    for msg in _messages(fixture):
        ex.handle_message(client, msg)
    return events, ex


async def test_bybit_linear_messages() -> None:
    events, ex = await _feed(ccxtpro.bybit, BybitParser(), "bybit_linear.jsonl")
    try:
        kinds = [kind_of(e).value for e in events]
        assert kinds == ["depth", "depth", "trade", "trade", "top", "mark", "funding", "open_interest",
                         "top", "mark", "funding", "open_interest", "depth", "liquidation"]
        assert all((e.venue, e.symbol, e.instrument) == ("bybit", "BTCUSDT", PERP) for e in events)
        snap, delta = events[0].depth, events[1].depth
        assert snap.snapshot and not delta.snapshot
        assert (snap.update_id, delta.update_id, delta.prev_update_id) == (18521288, 18521289, 18521288)
        assert events[0].exchange_ts_ns == 1672304484978 * 10**6

        # book: "0" removes 16493.5; the last delta skips u=18521290, so the book detects a gap
        book = OrderBook()
        assert book.apply(snap) and book.apply(delta)
        assert book.best_bid() == (Decimal("16494"), Decimal("0.4"))
        assert Decimal("16493.5") not in dict(book.bids())
        assert book.best_ask() == (Decimal("16611"), Decimal("0.05"))
        # independent check: ccxt's own unified book after the same two messages... and the gap delta
        ccxt_book = ex.orderbooks["BTCUSDT"]
        assert not book.apply(events[12].depth) and book.gaps == 1
        assert [float(p) for p, _ in book.asks()] == [p for p, _ in ccxt_book["asks"]]

        t1, t2 = events[2].trade, events[3].trade
        assert (t1.price, t1.size, t1.taker_side) == ("16578.5", "0.001", BUY)
        assert (t2.price, t2.size, t2.taker_side) == ("16578", "0.25", SELL)
        assert t1.trade_id == "20f43950-d8dd-5b31-9112-a178eb6023af"
        assert events[2].exchange_ts_ns == 1672304486865 * 10**6
        ccxt_trades = [(t["price"], t["side"]) for t in ex.trades["BTCUSDT"]]
        assert ccxt_trades == [(float(t1.price), "buy"), (float(t2.price), "sell")]

        top, mark, funding, oi = (e for e in events[4:8])
        assert (top.top.bid_price, top.top.bid_size, top.top.ask_price) == ("17215.5", "84.489", "17216")
        assert (mark.mark.mark_price, mark.mark.index_price) == ("17217.33", "17227.36")
        assert funding.funding.rate == "-0.000212" and not funding.funding.settled
        assert funding.funding.next_funding_time_ns == 1673280000000 * 10**6
        assert (oi.open_interest.open_interest, oi.open_interest.open_interest_value) == ("68744.761", "1183601235.91")
        # deltas carry only changed fields; the rest comes from the snapshot
        top2, mark2, funding2, oi2 = (e for e in events[8:12])
        assert (top2.top.bid_price, top2.top.bid_size, top2.top.ask_size) == ("17216", "40.1", "83.02")
        assert (mark2.mark.mark_price, mark2.mark.index_price) == ("17218.1", "17226.9")
        assert ex.tickers["BTCUSDT"]["markPrice"] == float(mark2.mark.mark_price)
        assert funding2.funding.rate == "-0.0002" and oi2.open_interest.open_interest == "68700"

        liq = events[13].liquidation
        # Bybit reports the position side: "Buy" = a long was liquidated, i.e. a SELL order
        assert (liq.side, liq.price, liq.size) == (SELL, "95010.5", "0.12")
    finally:
        await ex.close()


async def test_binance_spot_messages() -> None:
    events, ex = await _feed(ccxtpro.binance, BinanceParser(), "binance_spot.jsonl")
    try:
        assert [kind_of(e).value for e in events] == ["trade", "trade", "depth", "depth", "depth"]
        assert all((e.venue, e.symbol, e.instrument) == ("binance", "BTCUSDT", SPOT) for e in events)
        t1, t2 = events[0], events[1]
        # m = buyer is the maker: the seller was the aggressor
        assert (t1.trade.taker_side, t2.trade.taker_side) == (SELL, BUY)
        assert (t1.trade.price, t1.trade.size, t1.trade.trade_id) == ("16541.86", "0.001", "12345")
        assert t1.exchange_ts_ns == 1672515782134 * 10**6  # trade time T, not event time E
        d1, d2, d3 = (e.depth for e in events[2:])
        assert (d1.update_id, d1.prev_update_id) == (160, 156)
        assert (d2.update_id, d2.prev_update_id) == (165, 160)
        assert (d3.update_id, d3.prev_update_id) == (172, 169)  # 166..169 missing
        assert [(lv.price, lv.size) for lv in d1.bids] == [("16541.86", "1.5"), ("16541", "0")]
        # with a REST snapshot at 158 the first diff (157..160) applies, the second follows, the third is a gap
        book = OrderBook()
        book.apply(events[2].depth.__class__(snapshot=True, update_id=158, bids=[], asks=[]))
        assert book.apply(d1) and book.apply(d2) and not book.apply(d3)
        assert book.gaps == 1
    finally:
        await ex.close()


async def test_binance_usdm_mark_and_liquidation() -> None:
    events, ex = await _feed(ccxtpro.binanceusdm, BinanceParser(instrument=PERP, venue="binanceusdm"),
                             "binance_usdm.jsonl")
    try:
        assert [kind_of(e).value for e in events] == ["mark", "funding", "liquidation", "depth"]
        assert (events[0].mark.mark_price, events[0].mark.index_price) == ("11794.15", "11784.62659091")
        assert events[1].funding.rate == "0.00038167"
        assert events[1].funding.next_funding_time_ns == 1562306400000 * 10**6
        assert (events[2].liquidation.side, events[2].liquidation.size) == (SELL, "0.014")
        assert events[3].depth.prev_update_id == 149  # futures send `pu`
    finally:
        await ex.close()


def test_malformed_messages_are_rejected_with_a_reason() -> None:
    bybit = BybitParser()
    assert bybit.parse({"op": "pong", "success": True}, 1) == []
    with pytest.raises(MalformedEvent) as err:
        bybit.parse({"topic": "publicTrade.BTCUSDT", "ts": 1, "data": [{"T": 1, "s": "BTCUSDT", "S": "Up",
                                                                        "v": "1", "p": "2"}]}, 1)
    assert err.value.reason == "bad_side"
    with pytest.raises(MalformedEvent) as err:
        bybit.parse({"topic": "orderbook.50.X", "type": "delta", "ts": 1,
                     "data": {"s": "X", "b": [["1", "NaN"]], "a": [], "u": 2}}, 1)
    assert err.value.reason == "bad_decimal"
    with pytest.raises(MalformedEvent) as err:
        BinanceParser().parse({"e": "trade", "s": "X", "t": 1, "p": "1", "q": "1", "T": 1}, 1)
    assert err.value.reason == "bad_shape"


def test_ccxt_symbols() -> None:
    assert ccxt_symbol("BTCUSDT", SPOT) == "BTC/USDT"
    assert ccxt_symbol("ETHUSDT", PERP) == "ETH/USDT:USDT"
    with pytest.raises(ValueError):
        ccxt_symbol("BTC", SPOT)


class _RecordedVenue:
    """A stand-in venue class for LiveSource: replays recorded messages through handle_message
    when watched, fails the first watch (to exercise reconnects), then idles like a quiet feed."""

    messages: ClassVar[list[dict[str, Any]]] = []
    fail_first = True

    def __init__(self, config: dict[str, Any]) -> None:
        self.sent = False
        self.unwatched = 0

    def handle_message(self, client: Any, message: Any) -> None:
        return None

    async def _watch(self) -> None:
        if type(self).fail_first:
            type(self).fail_first = False
            raise ConnectionError("connection reset by peer")
        if not self.sent:
            self.sent = True
            for msg in self.messages:
                self.handle_message(None, msg)
        await asyncio.sleep(3600)

    async def watch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        await self._watch()
        return {}

    async def un_watch_order_book(self, symbol: str) -> None:
        self.unwatched += 1

    async def close(self) -> None:
        return None


async def test_live_source_stream_reconnects_and_counts_gaps() -> None:
    _RecordedVenue.messages = [
        m for m in _messages("bybit_linear.jsonl") if str(m.get("topic", "")).startswith("orderbook")
    ]
    cfg = LiveConfig(feeds=(LiveFeed("bybit", ("BTCUSDT",), ("book",)),), backoff_initial_s=0.01)
    src = LiveSource(cfg, exchange_factory=lambda venue: _RecordedVenue)
    reconnects = REGISTRY.get_sample_value("titan_md_reconnects_total", {"venue": "bybit"}) or 0.0
    got: list[MarketEvent] = []

    async def consume() -> None:
        async for ev in src.stream():
            got.append(ev)

    task = asyncio.create_task(consume())
    try:
        await wait_for(lambda: len(got) == 3, timeout=10)
        assert [e.seq for e in got] == [1, 2, 3]
        assert src.gaps == 1  # u 18521289 -> 18521291
        assert REGISTRY.get_sample_value("titan_md_reconnects_total", {"venue": "bybit"}) >= reconnects + 1
        assert REGISTRY.get_sample_value("titan_md_gaps_total", {"venue": "bybit", "symbol": "BTCUSDT"}) >= 1
        lag = REGISTRY.get_sample_value("titan_md_lag_seconds", {"venue": "bybit", "symbol": "BTCUSDT"})
        assert lag is not None and lag > 0  # receive time (now) minus the recorded exchange time
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not src._tasks
