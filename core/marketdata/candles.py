"""Candles of any timeframe from trades or finer candles, aligned to UTC boundaries.

A candle covers ``[open_time_ns, close_time_ns)``: open inclusive, close exclusive. Boundaries are
multiples of the timeframe since the Unix epoch, so "1h" starts on the hour and "1d" at 00:00 UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from titan.core.money import to_decimal, to_wire
from titan.v1.common_pb2 import InstrumentKind
from titan.v1.market_pb2 import MarketEvent

from .events import candle_event

NS_PER_S = 1_000_000_000
DAY_NS = 86_400 * NS_PER_S
_UNITS = {"s": NS_PER_S, "m": 60 * NS_PER_S, "h": 3600 * NS_PER_S, "d": DAY_NS}
_TF = re.compile(r"^([1-9][0-9]*)([smhd])$")

STANDARD_TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")


@lru_cache(maxsize=64)
def timeframe_ns(tf: str) -> int:
    """Length of a timeframe such as "1m", "5m", "15m", "1h", "4h", "1d" in nanoseconds.

    Any ``<n><s|m|h|d>`` that divides a day (or is whole days) is accepted, so every bucket
    starts on a UTC boundary."""
    m = _TF.match(tf)
    if not m:
        raise ValueError(f"invalid timeframe: {tf!r}")
    ns = int(m.group(1)) * _UNITS[m.group(2)]
    if DAY_NS % ns != 0 and ns % DAY_NS != 0:
        raise ValueError(f"timeframe {tf!r} does not divide a UTC day")
    return ns


def floor_ns(ts_ns: int, tf_ns: int) -> int:
    """Start of the bucket containing ``ts_ns``."""
    return ts_ns - ts_ns % tf_ns


@dataclass
class _Bar:
    open_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    last_ts: int


class CandleAggregator:
    """Builds closed candles of one timeframe for one venue/symbol/instrument.

    Feed trade events, or closed candle events of a finer timeframe that divides this one, in time
    order. :meth:`on_event` returns the candles that closed because of the event: a trade closes the
    previous bucket when it falls into a later one; a finer candle that ends exactly on the bucket
    boundary closes it at once. Events older than the open bucket are late: dropped and counted in
    ``late``. Buckets without any input produce no candle. :meth:`flush` returns the open bucket as a
    candle with ``closed=False`` (the input ended before its close time).
    """

    def __init__(self, timeframe: str) -> None:
        self.timeframe = timeframe
        self.tf_ns = timeframe_ns(timeframe)
        self._bar: _Bar | None = None
        self._stream: tuple[str, str, InstrumentKind] | None = None
        self._seq = 0
        self.late = 0
        self.ignored = 0

    # --- input -----------------------------------------------------------------------------
    def on_event(self, ev: MarketEvent) -> list[MarketEvent]:
        field = ev.WhichOneof("payload")
        if field == "trade":
            return self._on_trade(ev)
        if field == "candle":
            return self._on_candle(ev)
        self.ignored += 1
        return []

    def on_time(self, now_ns: int) -> list[MarketEvent]:
        """Close the open bucket when the clock has passed its end (no later input needed)."""
        bar = self._bar
        if bar is not None and now_ns >= bar.open_ns + self.tf_ns:
            self._bar = None
            return [self._emit(bar, closed=True)]
        return []

    def flush(self) -> list[MarketEvent]:
        """The open bucket, if any, as a candle marked ``closed=False``; resets the aggregator."""
        bar = self._bar
        self._bar = None
        return [] if bar is None else [self._emit(bar, closed=False)]

    # --- internals -------------------------------------------------------------------------
    def _check_stream(self, ev: MarketEvent) -> None:
        key = (ev.venue, ev.symbol, ev.instrument)
        if self._stream is None:
            self._stream = key
        elif key != self._stream:
            raise ValueError(f"CandleAggregator is for {self._stream}, got an event for {key}")

    def _roll(self, bucket: int) -> tuple[list[MarketEvent], bool]:
        """Close the open bar if ``bucket`` is later; return (closed candles, accept input?)."""
        bar = self._bar
        if bar is None or bucket == bar.open_ns:
            return [], True
        if bucket < bar.open_ns:
            self.late += 1
            return [], False
        self._bar = None
        return [self._emit(bar, closed=True)], True

    def _on_trade(self, ev: MarketEvent) -> list[MarketEvent]:
        self._check_stream(ev)
        ts = ev.exchange_ts_ns
        out, ok = self._roll(floor_ns(ts, self.tf_ns))
        if not ok:
            return out
        price, size = to_decimal(ev.trade.price), to_decimal(ev.trade.size)
        bar = self._bar
        if bar is None:
            self._bar = _Bar(floor_ns(ts, self.tf_ns), price, price, price, price, size, 1, ts)
        else:
            if price > bar.high:
                bar.high = price
            if price < bar.low:
                bar.low = price
            bar.close = price
            bar.volume += size
            bar.trades += 1
            bar.last_ts = ts
        return out

    def _on_candle(self, ev: MarketEvent) -> list[MarketEvent]:
        c = ev.candle
        if not c.closed:
            self.ignored += 1
            return []
        self._check_stream(ev)
        span = c.close_time_ns - c.open_time_ns
        bucket = floor_ns(c.open_time_ns, self.tf_ns)
        if span <= 0 or span > self.tf_ns or floor_ns(c.close_time_ns - 1, self.tf_ns) != bucket:
            raise ValueError(f"a {c.timeframe} candle does not fit into {self.timeframe} buckets")
        out, ok = self._roll(bucket)
        if not ok:
            return out
        o, h, lo, cl, v = (
            to_decimal(c.open),
            to_decimal(c.high),
            to_decimal(c.low),
            to_decimal(c.close),
            to_decimal(c.volume),
        )
        bar = self._bar
        if bar is None:
            bar = self._bar = _Bar(bucket, o, h, lo, cl, v, int(c.trade_count), c.close_time_ns)
        else:
            if c.open_time_ns < bar.last_ts:
                self.late += 1
                return out
            if h > bar.high:
                bar.high = h
            if lo < bar.low:
                bar.low = lo
            bar.close = cl
            bar.volume += v
            bar.trades += int(c.trade_count)
            bar.last_ts = c.close_time_ns
        if c.close_time_ns == bucket + self.tf_ns:
            self._bar = None
            out.append(self._emit(bar, closed=True))
        return out

    def _emit(self, bar: _Bar, *, closed: bool) -> MarketEvent:
        assert self._stream is not None
        venue, symbol, instrument = self._stream
        self._seq += 1
        close_ns = bar.open_ns + self.tf_ns
        return candle_event(
            venue,
            symbol,
            instrument,
            timeframe=self.timeframe,
            open_time_ns=bar.open_ns,
            close_time_ns=close_ns,
            open=to_wire(bar.open),
            high=to_wire(bar.high),
            low=to_wire(bar.low),
            close=to_wire(bar.close),
            volume=to_wire(bar.volume),
            trade_count=bar.trades,
            closed=closed,
            ts_ns=close_ns if closed else bar.last_ts,
            seq=self._seq,
        )
