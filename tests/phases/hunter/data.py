"""Candles for the Hunter's tests: hand-made bars and the real BTC perp month (read in place)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from titan.core.marketdata.candles import CandleAggregator, timeframe_ns
from titan.phases.hunter.bars import Bar, bar_of
from titan.phases.hunter.strategy import candle_of

MONTH = Path(__file__).resolve().parents[4] / "shared" / "data" / "btc-perp-2022-01_1m.csv"
MINUTE = 60 * 10**9
T0 = 1_641_000_000 * 10**9 - (1_641_000_000 * 10**9) % (86_400 * 10**9)   # 2022-01-01 00:00 UTC


def bar(i: int, o: float, h: float, lo: float, c: float, v: float = 1.0, tf_ns: int = 15 * MINUTE,
        start: int = T0) -> Bar:
    """The i-th bar of a hand-made series."""
    return Bar(start + i * tf_ns, start + (i + 1) * tf_ns, Decimal(str(o)), Decimal(str(h)), Decimal(str(lo)),
               Decimal(str(c)), Decimal(str(v)))


def hl(i: int, high: float, low: float, *, up: bool = True, **kw: int) -> Bar:
    """A bar given by its high and low, closing near the top (up) or the bottom."""
    rng = high - low
    o, c = (low + rng * 0.25, high - rng * 0.25) if up else (high - rng * 0.25, low + rng * 0.25)
    return bar(i, o, high, low, c, **kw)


@lru_cache(maxsize=1)
def month_1m() -> tuple[Bar, ...]:
    out = []
    with MONTH.open() as fh:
        for row in csv.DictReader(fh):
            ts = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
            open_ns = int(ts.timestamp()) * 10**9
            out.append(Bar(open_ns, open_ns + MINUTE, Decimal(row["open"]), Decimal(row["high"]), Decimal(row["low"]),
                           Decimal(row["close"]), Decimal(row["volume"])))
    return tuple(out)


@lru_cache(maxsize=4)
def month(timeframe: str) -> tuple[Bar, ...]:
    """The month's 1m candles rolled up with CandleAggregator (closed buckets only)."""
    if timeframe == "1m":
        return month_1m()
    agg = CandleAggregator(timeframe)
    assert timeframe_ns(timeframe) % MINUTE == 0
    out = []
    for b in month_1m():
        for closed in agg.on_event(candle_of("BTCUSDT", "binance", b, "1m")):
            out.append(bar_of(closed.candle))
    return tuple(out)
