"""Market state the execution core needs: per instrument the last trade, mark/index, top of book,
L2 depth (``titan.core.marketdata.book.OrderBook``) and funding. Pure: events in, no I/O.

Instruments are keyed by ``(venue, symbol, instrument kind)`` exactly as they appear on the legs of a
signal and on ``titan.v1.MarketEvent``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal

from titan.core.marketdata.book import OrderBook
from titan.core.money import to_decimal
from titan.v1 import market_pb2

InstrumentKey = tuple[str, str, int]  # (venue, symbol, InstrumentKind)

_ZERO = Decimal(0)
# A closed candle older than its own length (and at least this) when it arrives is history, not a
# price: a feed replaying its past (the simulator's prelude after a restart) must not value positions
# at, or fill resting orders in, a range of hours ago (paper venue assumption 16).
STALE_CANDLE_NS = 60 * 10**9


class InstrumentMarket:
    """What is known about one instrument's market. Prices are Decimal or None when unknown."""

    __slots__ = (
        "ask",
        "ask_size",
        "bid",
        "bid_size",
        "book",
        "candle_close_ns",
        "consumed",
        "funding_rate",
        "funding_time_ns",
        "index",
        "key",
        "last",
        "last_size",
        "mark",
        "next_funding_time_ns",
        "spent",
        "trade_ns",
        "updated_ns",
    )

    def __init__(self, key: InstrumentKey) -> None:
        self.key = key
        self.last: Decimal | None = None
        self.last_size: Decimal = _ZERO
        self.mark: Decimal | None = None
        self.index: Decimal | None = None
        self.bid: Decimal | None = None
        self.bid_size: Decimal = _ZERO
        self.ask: Decimal | None = None
        self.ask_size: Decimal = _ZERO
        self.book: OrderBook | None = None
        self.funding_rate: Decimal | None = None
        self.funding_time_ns = 0
        self.next_funding_time_ns = 0
        self.updated_ns = 0
        self.trade_ns = 0           # time of the last trade applied
        self.candle_close_ns = 0    # close time of the last candle applied
        # Displayed liquidity already taken by paper fills since the last book update, per price.
        # A paper order cannot consume the same displayed size twice.
        self.consumed: dict[Decimal, Decimal] = {}
        # Per side (index True: the asks a buy takes), how many of the book's best levels paper fills
        # have taken whole since the last book update: later walks start after them, so taking costs
        # what it reads, not everything taken before it in the same update.
        self.spent = [0, 0]

    # --- reading ---------------------------------------------------------------------------
    def best_bid(self) -> Decimal | None:
        if self.book is not None and self.book.synced:
            bb = self.book.best_bid()
            return bb[0] if bb else None
        return self.bid

    def best_ask(self) -> Decimal | None:
        if self.book is not None and self.book.synced:
            ba = self.book.best_ask()
            return ba[0] if ba else None
        return self.ask

    def mid(self) -> Decimal | None:
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return (bid + ask) / 2

    def reference_price(self) -> Decimal | None:
        """Mark price, else the book mid, else the last trade: the price exposure is valued at."""
        if self.mark is not None:
            return self.mark
        mid = self.mid()
        if mid is not None:
            return mid
        return self.last

    def levels(self, buy: bool) -> Iterator[tuple[Decimal, Decimal]] | None:
        """Displayed liquidity a taker of this side would hit (asks for a buy), best first, minus what
        paper fills already consumed, read lazily (a taker stops at its limit; consuming the level just
        read is fine, the book itself must not change during the walk);
        None when no book is known at all."""
        if self.book is not None and self.book.synced:
            if not self.consumed:
                return self.book.walk(asks=buy)
            return self._unconsumed(self.book.walk(asks=buy, skip=self.spent[buy]), buy)
        raw: Iterable[tuple[Decimal, Decimal]]
        if buy and self.ask is not None:
            raw = ((self.ask, self.ask_size),)
        elif not buy and self.bid is not None:
            raw = ((self.bid, self.bid_size),)
        else:
            return None
        if not self.consumed:
            return iter(raw)
        return self._unconsumed(raw, None)

    def _unconsumed(
        self, raw: Iterable[tuple[Decimal, Decimal]], side: bool | None
    ) -> Iterator[tuple[Decimal, Decimal]]:
        """``raw`` minus what was consumed; ``side``: a book side whose leading levels found taken
        whole are counted in ``spent`` (None: not a book walk)."""
        consumed = self.consumed
        index = -1 if side is None else int(side)
        leading = index >= 0
        for price, size in raw:
            left = size - consumed.get(price, _ZERO)
            if left > 0:
                leading = False
                yield price, left
            elif leading:
                self.spent[index] += 1

    def _fresh_liquidity(self) -> None:
        """A book update: what paper fills took is displayed again (paper venue assumption 6)."""
        self.consumed.clear()
        self.spent = [0, 0]

    def consume(self, price: Decimal, qty: Decimal) -> None:
        self.consumed[price] = self.consumed.get(price, _ZERO) + qty

    # --- updating --------------------------------------------------------------------------
    def apply(self, event: market_pb2.MarketEvent, now_ns: int) -> str | None:
        """Apply one event; returns the payload kind applied (or None if ignored)."""
        kind = event.WhichOneof("payload")
        if kind == "trade":
            self.last = to_decimal(event.trade.price)
            self.last_size = to_decimal(event.trade.size) if event.trade.size else _ZERO
            self.trade_ns = now_ns
        elif kind == "candle":
            # Candle-only data (a backtest on klines, a replayed candle file): a closed candle's close
            # is the last price, unless a trade after its close already told more (paper venue
            # assumption 16, docs/paper-venue.md).
            candle = event.candle
            if not candle.closed or candle.close_time_ns <= max(self.trade_ns, self.candle_close_ns):
                return None
            if now_ns - candle.close_time_ns > max(candle.close_time_ns - candle.open_time_ns, STALE_CANDLE_NS):
                return None  # history (a restarted feed's prelude): not a price now, nor a range to fill in
            self.last = to_decimal(candle.close)
            self.last_size = _ZERO
            self.candle_close_ns = candle.close_time_ns
        elif kind == "top":
            top = event.top
            self.bid = to_decimal(top.bid_price) if top.bid_price else None
            self.bid_size = to_decimal(top.bid_size) if top.bid_size else _ZERO
            self.ask = to_decimal(top.ask_price) if top.ask_price else None
            self.ask_size = to_decimal(top.ask_size) if top.ask_size else _ZERO
            self._fresh_liquidity()
        elif kind == "depth":
            if self.book is None:
                self.book = OrderBook(self.key[1])
            self.book.apply(event.depth)
            self._fresh_liquidity()
        elif kind == "mark":
            if event.mark.mark_price:
                self.mark = to_decimal(event.mark.mark_price)
            if event.mark.index_price:
                self.index = to_decimal(event.mark.index_price)
        elif kind == "funding":
            f = event.funding
            self.funding_rate = to_decimal(f.rate)
            self.funding_time_ns = f.funding_time_ns
            self.next_funding_time_ns = f.next_funding_time_ns
        else:
            return None
        self.updated_ns = now_ns
        return str(kind)


class MarketData:
    """All instruments' market state."""

    def __init__(self) -> None:
        self.instruments: dict[InstrumentKey, InstrumentMarket] = {}

    def get(self, key: InstrumentKey) -> InstrumentMarket | None:
        return self.instruments.get(key)

    def apply(self, event: market_pb2.MarketEvent, now_ns: int) -> tuple[InstrumentMarket, str | None]:
        key = (event.venue, event.symbol, int(event.instrument))
        im = self.instruments.get(key)
        if im is None:
            im = InstrumentMarket(key)
            self.instruments[key] = im
        return im, im.apply(event, now_ns)
