"""Paper venue assumption 16 (docs/paper-venue.md): with candle data only, a closed candle's close is
the last price at its close time unless a trade after that close was seen; a resting limit fills whole
at its limit when a candle's range passes strictly through it; and a candle that closed longer ago
than its own length (a feed replaying its past) is history — no price, no fill."""

from __future__ import annotations

from decimal import Decimal

from tests.execution.helpers import PERP, T0, OrderType, fills_of, leg, make_engine, md, signal, trade
from titan.v1 import market_pb2

MINUTE = 60 * 10**9
KEY = ("bybit", "BTCUSDT", int(PERP))


def candle(close_ns: int, *, low: str = "49900", high: str = "50100", close: str = "50000",
           length_ns: int = MINUTE) -> market_pb2.MarketEvent:
    return md(candle=market_pb2.Candle(
        timeframe="1m", open_time_ns=close_ns - length_ns, close_time_ns=close_ns, open="50000", high=high, low=low,
        close=close, volume="1", trade_count=1, closed=True), exchange_ts_ns=close_ns)


def test_a_closed_candle_is_the_last_price_unless_a_later_trade_told_more() -> None:
    engine, clock = make_engine(book=False)
    clock.set(T0 + MINUTE)
    engine.on_market(candle(T0 + MINUTE, close="50010"))
    market = engine.market.get(KEY)
    assert market is not None and market.last == Decimal("50010")
    engine.on_market(trade("50020", exchange_ts_ns=T0 + MINUTE + 1))
    engine.on_market(candle(T0 + MINUTE, close="49000"))  # the same close again: nothing new
    assert market.last == Decimal("50020")


def test_a_resting_limit_fills_whole_when_a_candle_passes_through_it() -> None:
    engine, clock = make_engine(book=False)
    engine.on_market(trade("50000"))
    d = engine.on_signal(signal(clock, leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="49950", size="4995")))
    assert d.ack.accepted, d.ack.detail and not fills_of(d.updates)
    clock.advance(MINUTE)
    touching = engine.on_market(candle(clock.now_ns(), low="49950"))  # only touches: no fill
    assert not fills_of(touching)
    clock.advance(MINUTE)
    (fill,) = fills_of(engine.on_market(candle(clock.now_ns(), low="49940")))
    assert (fill.price, fill.quantity, fill.maker) == ("49950", "0.1", True)


def test_history_is_no_price_and_fills_nothing() -> None:
    engine, clock = make_engine(book=False)
    engine.on_market(trade("50000"))
    d = engine.on_signal(signal(clock, leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="49950", size="4995")))
    assert d.ack.accepted, d.ack.detail
    clock.advance(72 * 60 * MINUTE)
    hours_ago = clock.now_ns() - 70 * 60 * MINUTE
    out = engine.on_market(candle(hours_ago, low="40000", close="41000"))  # a prelude replayed after a restart
    assert not fills_of(out)
    market = engine.market.get(KEY)
    assert market is not None and market.last == Decimal("50000")
    hourly = candle(clock.now_ns() - 30 * MINUTE, low="40000", close="41000", length_ns=60 * MINUTE)
    assert fills_of(engine.on_market(hourly))  # within its own length of now: a price, and it fills
    assert market.last == Decimal("41000")
