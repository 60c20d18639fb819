"""An L2 order book maintained from snapshot + delta depth messages.

A snapshot replaces the book; a delta upserts levels, and a level with size "0" is deleted.
Sequence handling (when the venue provides ids): a delta whose ``prev_update_id`` is beyond the
book's last ``update_id`` is a gap — the book marks itself out of sync, counts the gap and ignores
deltas until the next snapshot. A delta whose ``update_id`` is not newer than the book is stale and
ignored (Binance's "drop events with u <= lastUpdateId").
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from decimal import Decimal
from itertools import islice

from titan.core.money import to_decimal
from titan.v1.market_pb2 import BookDepth, BookLevel


class _Side:
    """One side: price -> size, plus the prices kept sorted ascending."""

    __slots__ = ("prices", "sizes")

    def __init__(self) -> None:
        self.sizes: dict[Decimal, Decimal] = {}
        self.prices: list[Decimal] = []

    def clear(self) -> None:
        self.sizes.clear()
        self.prices.clear()

    def set(self, price: Decimal, size: Decimal) -> None:
        if size == 0:
            if self.sizes.pop(price, None) is not None:
                i = bisect_left(self.prices, price)
                del self.prices[i]
            return
        if price not in self.sizes:
            insort(self.prices, price)
        self.sizes[price] = size

    def load(self, levels: Iterable[BookLevel]) -> None:
        self.clear()
        for lv in levels:
            size = to_decimal(lv.size)
            if size != 0:
                self.sizes[to_decimal(lv.price)] = size
        self.prices = sorted(self.sizes)


class OrderBook:
    """L2 book for one instrument. Prices and sizes are Decimal."""

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        self._bids = _Side()
        self._asks = _Side()
        self.update_id = 0
        self.synced = False   # True after a snapshot, False again after a gap
        self.gaps = 0
        self.stale = 0
        self.updates = 0

    # --- maintenance -----------------------------------------------------------------------
    def apply(self, depth: BookDepth) -> bool:
        """Apply a snapshot or delta; returns False when the message was ignored (gap/stale/unsynced)."""
        if depth.snapshot:
            self._bids.load(depth.bids)
            self._asks.load(depth.asks)
            self.update_id = depth.update_id
            self.synced = True
            self.updates += 1
            return True
        if not self.synced:
            return False
        if depth.update_id and self.update_id:
            if depth.update_id <= self.update_id:
                self.stale += 1
                return False
            if depth.prev_update_id and depth.prev_update_id > self.update_id:
                self.gaps += 1
                self.synced = False
                return False
        for lv in depth.bids:
            self._bids.set(to_decimal(lv.price), to_decimal(lv.size))
        for lv in depth.asks:
            self._asks.set(to_decimal(lv.price), to_decimal(lv.size))
        if depth.update_id:
            self.update_id = depth.update_id
        self.updates += 1
        return True

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self.update_id = 0
        self.synced = False

    # --- reading ---------------------------------------------------------------------------
    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        if not self._bids.prices:
            return None
        p = self._bids.prices[-1]
        return p, self._bids.sizes[p]

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        if not self._asks.prices:
            return None
        p = self._asks.prices[0]
        return p, self._asks.sizes[p]

    def bids(self, n: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """Up to ``n`` bid levels, best (highest) first."""
        prices = self._bids.prices
        chosen = prices[::-1] if n is None else prices[: -n - 1 : -1] if n > 0 else []
        return [(p, self._bids.sizes[p]) for p in chosen]

    def asks(self, n: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """Up to ``n`` ask levels, best (lowest) first."""
        prices = self._asks.prices if n is None else self._asks.prices[: max(n, 0)]
        return [(p, self._asks.sizes[p]) for p in prices]

    def walk(self, asks: bool, skip: int = 0) -> Iterator[tuple[Decimal, Decimal]]:
        """The levels of one side best first, lazily (a taker stops at its limit: no list of the
        whole side is built), after the best ``skip`` ones. The book must not change while the walk
        is read."""
        side = self._asks if asks else self._bids
        sizes = side.sizes
        prices: Iterable[Decimal] = side.prices if asks else reversed(side.prices)
        if skip:
            prices = islice(prices, skip, None)
        for p in prices:
            yield p, sizes[p]

    def mid(self) -> Decimal | None:
        bb, ba = self.best_bid(), self.best_ask()
        if bb is None or ba is None:
            return None
        return (bb[0] + ba[0]) / 2

    def spread(self) -> Decimal | None:
        bb, ba = self.best_bid(), self.best_ask()
        if bb is None or ba is None:
            return None
        return ba[0] - bb[0]

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (a broken book)."""
        bb, ba = self.best_bid(), self.best_ask()
        return bb is not None and ba is not None and bb[0] >= ba[0]

    def depth(self) -> tuple[int, int]:
        return len(self._bids.prices), len(self._asks.prices)

    def size_at(self, price: Decimal) -> Decimal:
        return self._bids.sizes.get(price) or self._asks.sizes.get(price) or Decimal(0)
