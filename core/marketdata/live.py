"""Live public market data (no API keys) through ccxt's websocket layer (``ccxt.pro``).

ccxt owns the connections: subscribe messages, pings, the Binance REST snapshot + diff sync. Titan
taps every raw message ccxt receives (``handle_message``) and runs it through its own parsers
(:mod:`titan.core.marketdata.parsers`) *before* ccxt handles it, so the events keep the venue's
sequence ids, exact decimal strings and timestamps. The same parsing path is used offline: tests feed
recorded messages to the tapped exchange's ``handle_message``.

Per feed, watcher tasks keep each subscription alive (``watch_trades``, ``watch_order_book``,
``watch_ticker``, ``watch_liquidations``); an error counts a reconnect and retries with exponential
backoff. Depth deltas are checked against the previous update id: a gap counts in
``titan_md_gaps_total`` and resubscribes the book, which brings a fresh snapshot (Bybit sends one on
subscribe; for Binance, whose snapshot comes over REST, the source publishes ccxt's freshly synced
book as a snapshot event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from titan.core.metrics import BUS_REJECTS, MD_GAPS, MD_RECONNECTS
from titan.v1.common_pb2 import InstrumentKind
from titan.v1.market_pb2 import MarketEvent

from .events import PERP, SPOT, MalformedEvent, depth_event, kind_of
from .gateway import observe
from .parsers import BinanceParser, BybitParser

log = logging.getLogger("titan.marketdata.live")

Sink = Callable[[MarketEvent], None]
Parser = BybitParser | BinanceParser

CHANNELS = ("trades", "book", "ticker", "liquidations")


@dataclass(frozen=True)
class LiveFeed:
    """One venue connection: which symbols (Titan spelling, e.g. "BTCUSDT") and which channels."""

    venue: str                       # "binance" (spot) or "bybit" (linear perps)
    symbols: tuple[str, ...]
    channels: tuple[str, ...] = ("trades", "book")
    book_depth: int = 50

    @property
    def instrument(self) -> InstrumentKind:
        return PERP if self.venue in ("bybit", "binanceusdm") else SPOT


@dataclass(frozen=True)
class LiveConfig:
    feeds: tuple[LiveFeed, ...]
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    queue_size: int = 100_000

    @staticmethod
    def default(symbols: Sequence[str] | None = None) -> LiveConfig:
        """Binance spot trades + book and Bybit linear trades, book, tickers, liquidations."""
        syms = tuple(symbols or ("BTCUSDT", "ETHUSDT"))
        return LiveConfig(
            feeds=(
                LiveFeed("binance", syms, ("trades", "book"), book_depth=1000),
                LiveFeed("bybit", syms, CHANNELS, book_depth=50),
            )
        )


def ccxt_symbol(symbol: str, instrument: InstrumentKind) -> str:
    """Titan "BTCUSDT" -> ccxt "BTC/USDT" (spot) or "BTC/USDT:USDT" (linear perp)."""
    for quote in ("USDT", "USDC", "USD"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            base = symbol[: -len(quote)]
            return f"{base}/{quote}:{quote}" if instrument == PERP else f"{base}/{quote}"
    raise ValueError(f"cannot map {symbol!r} to a ccxt symbol")


def parser_for(venue: str, instrument: InstrumentKind) -> Parser:
    if venue == "bybit":
        return BybitParser(instrument=instrument)
    if venue in ("binance", "binanceusdm"):
        return BinanceParser(instrument=instrument, venue="binance" if venue == "binance" else venue)
    raise ValueError(f"no parser for venue {venue!r}")


class DepthSequencer:
    """Tracks update ids of depth events per symbol; reports gaps (a delta not following the last id)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def check(self, ev: MarketEvent) -> bool:
        d = ev.depth
        if d.snapshot:
            self.last[ev.symbol] = d.update_id
            return True
        last = self.last.get(ev.symbol)
        if last is None or d.update_id <= last:
            return True  # before the first snapshot / stale: the book ignores it, not a gap
        if d.prev_update_id and d.prev_update_id > last:
            self.last.pop(ev.symbol, None)
            return False
        self.last[ev.symbol] = d.update_id
        return True


def tap_exchange(exchange_cls: type[Any], parser: Parser, sink: Sink, config: dict[str, Any] | None = None) -> Any:
    """An instance of a ccxt.pro exchange whose raw messages also go through ``parser`` into ``sink``."""

    class Tapped(exchange_cls):  # type: ignore[misc]
        def handle_message(self, client: Any, message: Any) -> Any:
            recv = time.time_ns()
            if isinstance(message, dict):
                try:
                    events = parser.parse(message, recv)
                except MalformedEvent as err:
                    BUS_REJECTS.labels("md-live", err.reason).inc()
                    log.warning("malformed %s message: %s", parser.venue, err)
                    events = []
                for ev in events:
                    sink(ev)
            return super().handle_message(client, message)

    Tapped.__name__ = f"Tapped{exchange_cls.__name__}"
    return Tapped(config or {"enableRateLimit": True, "newUpdates": True})


class LiveSource:
    """Live public feeds as a :class:`~titan.core.marketdata.source.Source`."""

    name = "live"

    def __init__(self, config: LiveConfig, *, exchange_factory: Callable[[str], type[Any]] | None = None) -> None:
        self.config = config
        self._factory = exchange_factory or _ccxt_class
        self._queue: asyncio.Queue[MarketEvent] = asyncio.Queue(maxsize=config.queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._exchanges: list[Any] = []
        self._seq: dict[tuple[str, str, int], int] = {}
        self._depth = DepthSequencer()
        self._resync: dict[tuple[str, str], asyncio.Event] = {}
        self.dropped = 0
        self.gaps = 0

    # --- the sink every parsed event goes through ------------------------------------------------
    def emit(self, ev: MarketEvent) -> None:
        if ev.HasField("depth") and not self._depth.check(ev):
            self.gaps += 1
            MD_GAPS.labels(ev.venue, ev.symbol).inc()
            resync = self._resync.get((ev.venue, ev.symbol))
            if resync is not None:
                resync.set()
        key = (ev.venue, ev.symbol, int(ev.instrument))
        n = self._seq.get(key, 0) + 1
        self._seq[key] = n
        ev.seq = n
        observe(self.name, ev, kind_of(ev).value)
        try:
            self._queue.put_nowait(ev)
        except asyncio.QueueFull:
            self.dropped += 1  # the consumer is too slow: the gap shows in seq

    # --- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self._tasks:
            return
        for feed in self.config.feeds:
            parser = parser_for(feed.venue, feed.instrument)
            ex = tap_exchange(self._factory(feed.venue), parser, self.emit)
            self._exchanges.append(ex)
            for sym in feed.symbols:
                for channel in feed.channels:
                    if channel == "ticker" and feed.instrument != PERP:
                        continue
                    if channel == "liquidations" and feed.venue != "bybit":
                        continue
                    self._tasks.append(asyncio.create_task(self._watch(ex, feed, sym, channel)))

    async def _watch(self, ex: Any, feed: LiveFeed, symbol: str, channel: str) -> None:
        cfg = self.config
        market = ccxt_symbol(symbol, feed.instrument)
        backoff = cfg.backoff_initial_s
        resync = self._resync.setdefault((parser_for(feed.venue, feed.instrument).venue, symbol), asyncio.Event())
        first_book = True
        while True:
            try:
                if channel == "trades":
                    await ex.watch_trades(market)
                elif channel == "ticker":
                    await ex.watch_ticker(market)
                elif channel == "liquidations":
                    await ex.watch_liquidations(market)
                else:
                    book = await ex.watch_order_book(market, feed.book_depth)
                    if feed.venue != "bybit" and first_book:
                        self._emit_ccxt_snapshot(feed, symbol, book)
                    first_book = False
                    if resync.is_set():
                        resync.clear()
                        MD_RECONNECTS.labels(feed.venue).inc()
                        with contextlib.suppress(Exception):
                            await ex.un_watch_order_book(market)
                        first_book = True
                        continue
                backoff = cfg.backoff_initial_s
            except asyncio.CancelledError:
                raise
            except Exception as err:  # network errors, venue errors, ccxt sync errors: retry
                MD_RECONNECTS.labels(feed.venue).inc()
                log.warning("%s %s %s: %s: %s; retrying in %.0fs", feed.venue, symbol, channel,
                            type(err).__name__, err, backoff)
                first_book = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, cfg.backoff_max_s)

    def _emit_ccxt_snapshot(self, feed: LiveFeed, symbol: str, book: Any) -> None:
        """Binance's snapshot arrives over REST inside ccxt: publish ccxt's synced book as one."""
        ts_ms = book.get("timestamp") or int(time.time() * 1000)
        nonce = int(book.get("nonce") or 0)
        self.emit(
            depth_event(
                feed.venue, symbol, feed.instrument,
                bids=[(str(p), str(q)) for p, q, *_ in book["bids"][: feed.book_depth]],
                asks=[(str(p), str(q)) for p, q, *_ in book["asks"][: feed.book_depth]],
                snapshot=True, ts_ns=int(ts_ms) * 1_000_000, receive_ts_ns=time.time_ns(), update_id=nonce,
            )
        )

    async def stream(self) -> AsyncIterator[MarketEvent]:
        self.start()
        try:
            while True:
                yield await self._queue.get()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        for ex in self._exchanges:
            with contextlib.suppress(Exception):
                await ex.close()
        self._exchanges.clear()


def _ccxt_class(venue: str) -> type[Any]:
    import ccxt.pro as ccxtpro

    cls: type[Any] = getattr(ccxtpro, venue)
    return cls
