"""Helpers around the one market event model, ``titan.v1.MarketEvent``.

The protobuf message *is* the in-process event too: these functions build and read it.
Prices and sizes are decimal strings on the message; the accessors return :class:`~decimal.Decimal`.
Timestamps are integer nanoseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from google.protobuf.message import DecodeError

from titan.core.catalog import Catalog, MarketKind
from titan.core.money import MoneyError, to_decimal, to_wire
from titan.v1.common_pb2 import InstrumentKind, Side
from titan.v1.market_pb2 import (
    BookDepth,
    BookLevel,
    BookTop,
    Candle,
    Funding,
    Liquidation,
    MarketEvent,
    MarkPrice,
    OpenInterest,
    Trade,
)

SPOT: InstrumentKind = InstrumentKind.INSTRUMENT_KIND_SPOT
PERP: InstrumentKind = InstrumentKind.INSTRUMENT_KIND_PERP
BUY: Side = Side.SIDE_BUY
SELL: Side = Side.SIDE_SELL

Money = str | Decimal
LevelLike = tuple[Money, Money] | BookLevel

# oneof field name -> subject kind token
_KIND_BY_FIELD: dict[str, MarketKind] = {
    "trade": MarketKind.TRADE,
    "top": MarketKind.TOP,
    "depth": MarketKind.DEPTH,
    "funding": MarketKind.FUNDING,
    "mark": MarketKind.MARK,
    "open_interest": MarketKind.OPEN_INTEREST,
    "liquidation": MarketKind.LIQUIDATION,
    "candle": MarketKind.CANDLE,
}


class MalformedEvent(ValueError):
    """Bytes or fields that do not make a valid MarketEvent; ``reason`` is a metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _m(value: Money) -> str:
    """Canonical decimal string for a price/size given as string or Decimal."""
    return to_wire(value) if isinstance(value, Decimal) else to_wire(to_decimal(value))


def _head(
    venue: str, symbol: str, instrument: InstrumentKind, exchange_ts_ns: int, receive_ts_ns: int | None, seq: int
) -> MarketEvent:
    return MarketEvent(
        venue=venue,
        symbol=symbol,
        instrument=instrument,
        exchange_ts_ns=exchange_ts_ns,
        receive_ts_ns=exchange_ts_ns if receive_ts_ns is None else receive_ts_ns,
        seq=seq,
    )


# --- constructors ------------------------------------------------------------------------------
def trade_event(
    venue: str,
    symbol: str,
    instrument: InstrumentKind,
    *,
    price: Money,
    size: Money,
    taker_side: Side,
    ts_ns: int,
    receive_ts_ns: int | None = None,
    trade_id: str = "",
    seq: int = 0,
) -> MarketEvent:
    ev = _head(venue, symbol, instrument, ts_ns, receive_ts_ns, seq)
    ev.trade.CopyFrom(Trade(price=_m(price), size=_m(size), taker_side=taker_side, trade_id=trade_id))
    return ev


def top_event(
    venue: str,
    symbol: str,
    instrument: InstrumentKind,
    *,
    bid_price: Money,
    bid_size: Money,
    ask_price: Money,
    ask_size: Money,
    ts_ns: int,
    receive_ts_ns: int | None = None,
    seq: int = 0,
) -> MarketEvent:
    ev = _head(venue, symbol, instrument, ts_ns, receive_ts_ns, seq)
    ev.top.CopyFrom(
        BookTop(bid_price=_m(bid_price), bid_size=_m(bid_size), ask_price=_m(ask_price), ask_size=_m(ask_size))
    )
    return ev


def _levels(levels: Iterable[LevelLike]) -> list[BookLevel]:
    out: list[BookLevel] = []
    for lv in levels:
        if isinstance(lv, BookLevel):
            out.append(BookLevel(price=_m(lv.price), size=_m(lv.size)))
        else:
            out.append(BookLevel(price=_m(lv[0]), size=_m(lv[1])))
    return out


def depth_event(
    venue: str,
    symbol: str,
    instrument: InstrumentKind,
    *,
    bids: Iterable[LevelLike],
    asks: Iterable[LevelLike],
    snapshot: bool,
    ts_ns: int,
    receive_ts_ns: int | None = None,
    update_id: int = 0,
    prev_update_id: int = 0,
    seq: int = 0,
) -> MarketEvent:
    """L2 depth. Levels are (price, size); bids best (highest) first, asks best (lowest) first."""
    ev = _head(venue, symbol, instrument, ts_ns, receive_ts_ns, seq)
    ev.depth.CopyFrom(
        BookDepth(
            snapshot=snapshot,
            bids=_levels(bids),
            asks=_levels(asks),
            update_id=update_id,
            prev_update_id=prev_update_id,
        )
    )
    return ev


def funding_event(
    venue: str,
    symbol: str,
    *,
    rate: Money,
    funding_time_ns: int,
    next_funding_time_ns: int,
    settled: bool,
    ts_ns: int,
    receive_ts_ns: int | None = None,
    seq: int = 0,
) -> MarketEvent:
    ev = _head(venue, symbol, PERP, ts_ns, receive_ts_ns, seq)
    ev.funding.CopyFrom(
        Funding(
            rate=_m(rate),
            funding_time_ns=funding_time_ns,
            next_funding_time_ns=next_funding_time_ns,
            settled=settled,
        )
    )
    return ev


def mark_event(
    venue: str,
    symbol: str,
    *,
    mark_price: Money,
    index_price: Money | None,
    ts_ns: int,
    receive_ts_ns: int | None = None,
    seq: int = 0,
) -> MarketEvent:
    ev = _head(venue, symbol, PERP, ts_ns, receive_ts_ns, seq)
    ev.mark.CopyFrom(MarkPrice(mark_price=_m(mark_price), index_price="" if index_price is None else _m(index_price)))
    return ev


def open_interest_event(
    venue: str,
    symbol: str,
    *,
    open_interest: Money,
    open_interest_value: Money | None = None,
    ts_ns: int,
    receive_ts_ns: int | None = None,
    seq: int = 0,
) -> MarketEvent:
    ev = _head(venue, symbol, PERP, ts_ns, receive_ts_ns, seq)
    ev.open_interest.CopyFrom(
        OpenInterest(
            open_interest=_m(open_interest),
            open_interest_value="" if open_interest_value is None else _m(open_interest_value),
        )
    )
    return ev


def liquidation_event(
    venue: str,
    symbol: str,
    *,
    side: Side,
    price: Money,
    size: Money,
    ts_ns: int,
    receive_ts_ns: int | None = None,
    seq: int = 0,
) -> MarketEvent:
    """``side`` is the liquidation order's side: SELL means a long was liquidated."""
    ev = _head(venue, symbol, PERP, ts_ns, receive_ts_ns, seq)
    ev.liquidation.CopyFrom(Liquidation(side=side, price=_m(price), size=_m(size)))
    return ev


def candle_event(
    venue: str,
    symbol: str,
    instrument: InstrumentKind,
    *,
    timeframe: str,
    open_time_ns: int,
    close_time_ns: int,
    open: Money,
    high: Money,
    low: Money,
    close: Money,
    volume: Money,
    trade_count: int = 0,
    closed: bool = True,
    ts_ns: int | None = None,
    receive_ts_ns: int | None = None,
    seq: int = 0,
) -> MarketEvent:
    """A candle; its event time defaults to the close time (when it became known)."""
    ev = _head(venue, symbol, instrument, close_time_ns if ts_ns is None else ts_ns, receive_ts_ns, seq)
    ev.candle.CopyFrom(
        Candle(
            timeframe=timeframe,
            open_time_ns=open_time_ns,
            close_time_ns=close_time_ns,
            open=_m(open),
            high=_m(high),
            low=_m(low),
            close=_m(close),
            volume=_m(volume),
            trade_count=trade_count,
            closed=closed,
        )
    )
    return ev


# --- accessors ---------------------------------------------------------------------------------
def kind_of(ev: MarketEvent) -> MarketKind:
    """The payload kind (also the subject's `<kind>` token); raises MalformedEvent when empty."""
    field = ev.WhichOneof("payload")
    if field is None:
        raise MalformedEvent("empty_payload")
    return _KIND_BY_FIELD[field]


def ts_of(ev: MarketEvent) -> int:
    """Event time in ns: exchange time, falling back to receive time."""
    return ev.exchange_ts_ns or ev.receive_ts_ns


def price_of(ev: MarketEvent) -> Decimal | None:
    """A representative price: trade price, mid of top, mark, liquidation price or candle close.

    Depth, funding and open interest carry no single price and give ``None``."""
    field = ev.WhichOneof("payload")
    if field == "trade":
        return to_decimal(ev.trade.price)
    if field == "top":
        bid, ask = ev.top.bid_price, ev.top.ask_price
        if bid and ask:
            return (to_decimal(bid) + to_decimal(ask)) / 2
        return to_decimal(bid) if bid else (to_decimal(ask) if ask else None)
    if field == "mark":
        return to_decimal(ev.mark.mark_price) if ev.mark.mark_price else None
    if field == "candle":
        return to_decimal(ev.candle.close)
    if field == "liquidation":
        return to_decimal(ev.liquidation.price)
    return None


def size_of(ev: MarketEvent) -> Decimal | None:
    field = ev.WhichOneof("payload")
    if field == "trade":
        return to_decimal(ev.trade.size)
    if field == "liquidation":
        return to_decimal(ev.liquidation.size)
    if field == "candle":
        return to_decimal(ev.candle.volume)
    return None


def levels(depth_levels: Sequence[BookLevel]) -> list[tuple[Decimal, Decimal]]:
    return [(to_decimal(lv.price), to_decimal(lv.size)) for lv in depth_levels]


def stream_key(ev: MarketEvent) -> tuple[str, str, int]:
    """(venue, symbol, instrument): one logical instrument stream."""
    return (ev.venue, ev.symbol, int(ev.instrument))


def subject_of(catalog: Catalog, ev: MarketEvent) -> str:
    """The NATS subject of this event: ``titan.md.<venue>.<symbol>.<kind>``.

    Spot and perp of one symbol on one venue share a subject; ``instrument`` tells them apart."""
    return catalog.md_subject(ev.venue, ev.symbol, kind_of(ev))


def validate(ev: MarketEvent) -> MarketEvent:
    """Check the fields a consumer relies on; raise MalformedEvent with a reason code otherwise."""
    if not ev.venue or not ev.symbol:
        raise MalformedEvent("missing_instrument")
    if ts_of(ev) <= 0:
        raise MalformedEvent("missing_timestamp")
    kind = kind_of(ev)
    try:
        if kind is MarketKind.TRADE:
            if to_decimal(ev.trade.price) <= 0 or to_decimal(ev.trade.size) <= 0:
                raise MalformedEvent("non_positive")
            if ev.trade.taker_side not in (Side.SIDE_BUY, Side.SIDE_SELL):
                raise MalformedEvent("missing_side")
        elif kind is MarketKind.CANDLE:
            c = ev.candle
            lo, hi = to_decimal(c.low), to_decimal(c.high)
            if not (lo <= to_decimal(c.open) <= hi and lo <= to_decimal(c.close) <= hi) or to_decimal(c.volume) < 0:
                raise MalformedEvent("inconsistent_candle")
            if c.close_time_ns <= c.open_time_ns:
                raise MalformedEvent("inconsistent_candle")
        elif kind is MarketKind.DEPTH:
            for lv in (*ev.depth.bids, *ev.depth.asks):
                if to_decimal(lv.price) <= 0 or to_decimal(lv.size) < 0:
                    raise MalformedEvent("bad_level")
        elif kind is MarketKind.TOP:
            _validate_top(ev.top)
        elif kind is MarketKind.MARK:
            if not ev.mark.mark_price or to_decimal(ev.mark.mark_price) <= 0:
                raise MalformedEvent("non_positive", "mark_price")
            if ev.mark.index_price and to_decimal(ev.mark.index_price) <= 0:
                raise MalformedEvent("non_positive", "index_price")
        else:
            price = price_of(ev)
            if price is not None and price <= 0:
                raise MalformedEvent("non_positive")
            if kind is MarketKind.FUNDING:
                to_decimal(ev.funding.rate)
    except MoneyError as err:
        raise MalformedEvent("bad_decimal", str(err)) from None
    return ev


def _validate_top(top: BookTop) -> None:
    """At least one side priced; every price given is positive, every size given is not negative."""
    if not top.bid_price and not top.ask_price:
        raise MalformedEvent("non_positive", "no bid or ask price")
    for price in (top.bid_price, top.ask_price):
        if price and to_decimal(price) <= 0:
            raise MalformedEvent("non_positive", "book price")
    for size in (top.bid_size, top.ask_size):
        if size and to_decimal(size) < 0:
            raise MalformedEvent("bad_level", "book size")


def encode(ev: MarketEvent) -> bytes:
    """Compact protobuf bytes (the NATS payload and the record format of Titan's files)."""
    return ev.SerializeToString()


def decode(data: bytes) -> MarketEvent:
    """Parse and validate protobuf bytes; raise MalformedEvent (reason code) when they are not an event."""
    ev = MarketEvent()
    try:
        ev.ParseFromString(data)
    except DecodeError as err:
        raise MalformedEvent("undecodable", str(err)) from None
    return validate(ev)
