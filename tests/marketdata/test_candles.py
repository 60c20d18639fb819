"""Candle aggregation: the real BTC 1m month against a direct pandas resample, and properties."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.core.marketdata.candles import CandleAggregator, floor_ns, timeframe_ns
from titan.core.marketdata.events import BUY, SELL, SPOT, trade_event
from titan.core.marketdata.files import read_file
from titan.v1.market_pb2 import MarketEvent

from .conftest import BTC_1M, TRADES

MIN = 60 * 10**9


def test_timeframes() -> None:
    assert timeframe_ns("1m") == MIN
    assert timeframe_ns("5m") == 5 * MIN
    assert timeframe_ns("15m") == 15 * MIN
    assert timeframe_ns("1h") == 60 * MIN
    assert timeframe_ns("4h") == 240 * MIN
    assert timeframe_ns("1d") == 1440 * MIN
    for bad in ("7m", "0m", "1w", "h", "5 m", "-1m"):
        with pytest.raises(ValueError):
            timeframe_ns(bad)


def _aggregate(events: list[MarketEvent], tf: str) -> list[MarketEvent]:
    agg = CandleAggregator(tf)
    out: list[MarketEvent] = []
    for ev in events:
        out.extend(agg.on_event(ev))
    return out + agg.flush()


def _frame(candles: list[MarketEvent]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "open": [float(c.candle.open) for c in candles],
            "high": [float(c.candle.high) for c in candles],
            "low": [float(c.candle.low) for c in candles],
            "close": [float(c.candle.close) for c in candles],
            "volume": [float(c.candle.volume) for c in candles],
        },
        index=pd.to_datetime([c.candle.open_time_ns for c in candles], unit="ns"),
    )


@pytest.fixture(scope="module")
def btc_1m(data_dir: Path) -> list[MarketEvent]:
    events = list(read_file(BTC_1M))
    assert len(events) == 45_031
    return events


@pytest.mark.parametrize("tf", ["5m", "1h", "4h", "1d"])
def test_btc_month_matches_pandas_resample(btc_1m: list[MarketEvent], tf: str) -> None:
    got = _aggregate(btc_1m, tf)
    raw = pd.read_csv(BTC_1M, parse_dates=["timestamp"]).set_index("timestamp")
    rule = {"5m": "5min", "1h": "1h", "4h": "4h", "1d": "1D"}[tf]
    want = (
        raw.resample(rule, label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    frame = _frame(got)
    assert list(frame.index) == list(want.index)
    for col in ("open", "high", "low", "close"):
        assert (frame[col].to_numpy() == want[col].to_numpy()).all(), col
    assert frame["volume"].to_numpy() == pytest.approx(want["volume"].to_numpy(), rel=1e-12)
    # boundaries: UTC aligned, open inclusive / close exclusive, only the last (partial) one is open
    tf_ns = timeframe_ns(tf)
    for c in got:
        assert c.candle.open_time_ns % tf_ns == 0
        assert c.candle.close_time_ns == c.candle.open_time_ns + tf_ns
        assert c.candle.timeframe == tf
    assert all(c.candle.closed for c in got[:-1])
    assert not got[-1].candle.closed  # the month ends at 05:31, inside the last bucket


def test_finer_candle_closing_the_bucket_emits_at_once(btc_1m: list[MarketEvent]) -> None:
    agg = CandleAggregator("1h")
    emitted_at: list[int] = []
    for ev in btc_1m[:200]:
        for c in agg.on_event(ev):
            emitted_at.append(ev.candle.close_time_ns)
            assert c.exchange_ts_ns == c.candle.close_time_ns == ev.candle.close_time_ns
    # the first bucket 23:00-00:00 (partial, starts 23:01) closes with the 23:59 candle
    assert emitted_at[0] % timeframe_ns("1h") == 0
    assert len(emitted_at) == 3


def test_trade_tape_to_1m_matches_pandas(data_dir: Path) -> None:
    trades = list(read_file(TRADES))
    got = _aggregate(trades, "1m")
    raw = pd.read_csv(TRADES)
    raw["timestamp"] = pd.to_datetime(raw["timestamp"], utc=True).dt.tz_localize(None)
    want = raw.set_index("timestamp").resample("1min").agg(
        {"price": ["first", "max", "min", "last", "count"], "quantity": "sum"}
    ).dropna()
    assert len(got) == len(want) == 1
    c = got[0].candle
    row = want.iloc[0]
    assert float(c.open) == row[("price", "first")]
    assert float(c.high) == row[("price", "max")]
    assert float(c.low) == row[("price", "min")]
    assert float(c.close) == row[("price", "last")]
    assert c.trade_count == row[("price", "count")] == 2001
    assert float(c.volume) == pytest.approx(row[("quantity", "sum")], rel=1e-12)


def test_boundary_trade_opens_the_next_candle() -> None:
    t0 = 1_700_000_040 * 10**9  # a minute boundary
    assert t0 % MIN == 0
    agg = CandleAggregator("1m")
    mk = lambda ts, p: trade_event("x", "BTCUSDT", SPOT, price=p, size="1", taker_side=BUY, ts_ns=ts)  # noqa: E731
    assert agg.on_event(mk(t0 - 1, "100")) == []
    out = agg.on_event(mk(t0, "101"))  # exactly on the boundary: belongs to the new candle
    assert len(out) == 1 and out[0].candle.close == "100" and out[0].candle.close_time_ns == t0
    assert agg.on_event(mk(t0 - 5, "99")) == [] and agg.late == 1  # late trade is dropped
    assert agg.on_time(t0 + MIN - 1) == []
    closed = agg.on_time(t0 + MIN)
    assert closed[0].candle.open == "101" and closed[0].candle.trade_count == 1


trade_lists = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3 * 3600 * 10**9),
        st.integers(min_value=1, max_value=10_000),
        st.integers(min_value=1, max_value=500),
    ),
    min_size=1,
    max_size=200,
)


@settings(max_examples=60, deadline=None)
@given(trade_lists)
def test_trades_to_5m_equals_trades_to_1m_to_5m(rows: list[tuple[int, int, int]]) -> None:
    base = 1_650_000_000 * 10**9
    events = [
        trade_event(
            "x", "ETHUSDT", SPOT, price=Decimal(p) / 10, size=Decimal(q) / 100,
            taker_side=BUY if p % 2 else SELL, ts_ns=base + t,
        )
        for t, p, q in sorted(rows)
    ]
    direct = _aggregate(events, "5m")
    minutes = _aggregate(events, "1m")
    for m in minutes:  # the input ended: treat the last, unclosed minute as complete
        m.candle.closed = True
    via_1m = _aggregate(minutes, "5m")
    key = lambda c: (c.open_time_ns, c.open, c.high, c.low, c.close, c.volume, c.trade_count)  # noqa: E731
    assert [key(c.candle) for c in direct] == [key(c.candle) for c in via_1m]
    # total volume is conserved
    assert sum(Decimal(c.candle.volume) for c in direct) == sum(Decimal(e.trade.size) for e in events)
    # buckets are aligned, distinct and increasing
    opens = [c.candle.open_time_ns for c in direct]
    assert opens == sorted(set(opens))
    for c in direct:
        assert floor_ns(c.candle.open_time_ns, 5 * MIN) == c.candle.open_time_ns
