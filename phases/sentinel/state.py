"""What the Sentinel knows of each symbol: the spot and perp quotes (book or top of book), the basis
statistics and funding, both legs' positions and PnL, the perp's recent ranges, and the signal in
flight."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from titan.core.marketdata.book import OrderBook
from titan.core.money import to_decimal_or
from titan.phases.sentinel import carry
from titan.phases.sentinel.funding import FundingState
from titan.phases.sentinel.stats import BasisSignal, BasisStats, Level
from titan.v1 import market_pb2

_ZERO = Decimal(0)
_TWO = Decimal(2)


class Quote:
    """Best prices of one instrument, from its book when there is one, else its top of book."""

    def __init__(self) -> None:
        self.book = OrderBook()
        self.bid: Decimal | None = None
        self.ask: Decimal | None = None
        self.updated_ns = 0

    def on_top(self, top: market_pb2.BookTop, ts: int) -> None:
        bid, ask = to_decimal_or(top.bid_price, _ZERO), to_decimal_or(top.ask_price, _ZERO)
        if bid > 0 and ask > 0 and ask >= bid:
            self.bid, self.ask, self.updated_ns = bid, ask, ts

    def on_depth(self, depth: market_pb2.BookDepth, ts: int) -> None:
        if self.book.apply(depth):
            b, a = self.book.best_bid(), self.book.best_ask()
            if b and a and a[0] >= b[0]:
                self.bid, self.ask, self.updated_ns = b[0], a[0], ts

    @property
    def mid(self) -> Decimal | None:
        return None if self.bid is None or self.ask is None else (self.bid + self.ask) / _TWO

    def levels(self, asks: bool) -> list[Level]:
        side = self.book.asks(50) if asks else self.book.bids(50)
        if side:
            return side
        return []


@dataclass
class SymbolState:
    """One symbol's quotes, basis statistics, funding, positions and the signal in flight."""

    symbol: str
    stats: BasisStats
    funding: FundingState = field(default_factory=FundingState)
    spot: Quote = field(default_factory=Quote)
    perp: Quote = field(default_factory=Quote)
    mark: Decimal | None = None
    spot_quantity: Decimal = _ZERO
    perp_quantity: Decimal = _ZERO
    perp_entry: Decimal = _ZERO
    perp_leverage: Decimal = Decimal(1)
    pnl: dict[int, Decimal] = field(default_factory=dict)      # instrument -> realized+unrealized+funding-fees
    entry_basis: float | None = None
    opened_ns: int = 0
    spot_history: deque[float] = field(default_factory=deque)
    ranges: deque[float] = field(default_factory=deque)     # true ranges of the perp per sample
    range_high: Decimal | None = None
    range_low: Decimal | None = None
    last_close: Decimal | None = None
    inflight: str = ""            # signal id awaiting its ack and orders
    inflight_until_ns: int = 0
    open_orders: dict[str, set[str]] = field(default_factory=dict)  # signal id -> open client order ids
    last_signal_ns: int = -(2**62)
    last: BasisSignal | None = None
    regime: str = carry.Regime.STABLE
    residual: Decimal = _ZERO     # net delta a failed unit left; entries wait until positions fix it

    @property
    def holding(self) -> bool:
        return self.spot_quantity > 0 or self.perp_quantity < 0

    def atr(self) -> Decimal:
        if not self.ranges:
            return _ZERO
        return Decimal(str(sum(self.ranges) / len(self.ranges)))
