"""Each reader on small files written here in the users' formats: Binance public data, freqtrade,
CSV with named columns; detection, overrides, merging in time order."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from titan.core.marketdata.events import BUY, PERP, SELL, SPOT, kind_of, ts_of
from titan.core.marketdata.files import FileFormat, open_file, read_file
from titan.core.marketdata.replay import ReplaySource
from titan.core.marketdata.source import open_source
from titan.core.marketdata.timestamps import parse_time_ns

from .filemakers import (
    KLINES_HEADER,
    MIN_MS,
    T0_MS,
    freqtrade_candles,
    kline_rows,
    write_frame,
    write_json,
    write_text,
    write_zip,
)

T0 = T0_MS * 10**6
MIN = 60 * 10**9
FRAME_COLUMNS = ["date", "open", "high", "low", "close", "volume"]


def test_parse_time_ns_by_magnitude() -> None:
    assert parse_time_ns("1570752011620") == 1_570_752_011_620_000_000  # ms
    assert parse_time_ns("1570752011") == 1_570_752_011_000_000_000  # s
    assert parse_time_ns("1570752011620123") == 1_570_752_011_620_123_000  # µs
    assert parse_time_ns("1570752011620123456") == 1_570_752_011_620_123_456  # ns
    assert parse_time_ns("1570752011.5") == 1_570_752_011_500_000_000
    assert parse_time_ns("2019-10-11 00:00:11.62") == 1_570_752_011_620_000_000
    assert parse_time_ns("2019-10-11T00:00:11.620Z") == 1_570_752_011_620_000_000


@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("micro", [False, True])
def test_binance_klines_zip(tmp_path: Path, header: bool, micro: bool) -> None:
    lines = ([KLINES_HEADER] if header else []) + kline_rows(3, micro=micro)
    path = write_zip(tmp_path / "BTCUSDT-1m-2024-01.zip", "BTCUSDT-1m-2024-01.csv", lines)
    f = open_file(path)
    d = f.detection
    # only USDⓈ-M files carry a header row: that tells futures from spot
    assert (d.format, d.venue, d.symbol, d.timeframe) == (FileFormat.BINANCE_KLINES, "binance", "BTCUSDT", "1m")
    assert d.instrument == (PERP if header else SPOT)
    events = list(f.events())
    assert len(events) == 3
    c = events[0].candle
    assert (c.open_time_ns, c.close_time_ns, c.timeframe) == (T0, T0 + MIN, "1m")
    assert (c.open, c.high, c.low, c.close, c.volume, c.trade_count) == ("100", "101.5", "99.25", "100.5", "12.5", 40)
    assert events[0].exchange_ts_ns == T0 + MIN  # a candle is known at its close


def test_binance_klines_unzipped_without_name_timeframe(tmp_path: Path) -> None:
    # the length comes from close_time when the name has no interval
    path = write_text(tmp_path / "klines.csv", kline_rows(2))
    events = list(read_file(path))
    assert [e.candle.timeframe for e in events] == ["1m", "1m"]
    assert events[1].candle.open_time_ns == T0 + MIN


def test_binance_trades_spot_and_futures(tmp_path: Path) -> None:
    t_us = T0_MS * 1000 + 123
    spot_agg = write_zip(tmp_path / "BTCUSDT-aggTrades-2025-01.zip", "BTCUSDT-aggTrades-2025-01.csv",
                         [f"1,42000.5,0.01,10,12,{t_us},True,True", f"2,42001,0.02,13,13,{t_us + 5},False,True"])
    f = open_file(spot_agg)
    assert (f.detection.format, f.detection.instrument) == (FileFormat.BINANCE_AGG_TRADES, SPOT)
    events = list(f.events())
    assert [e.trade.taker_side for e in events] == [SELL, BUY]  # buyer maker -> the taker sold
    assert events[0].exchange_ts_ns == t_us * 1000 and events[0].trade.trade_id == "1"
    assert events[1].trade.price == "42001"

    fut_agg = write_text(tmp_path / "BTCUSDT-aggTrades-2024-01.csv", [
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker",
        f"7,42000.5,0.5,1,2,{T0_MS},false"])
    f = open_file(fut_agg)
    assert (f.detection.format, f.detection.instrument) == (FileFormat.BINANCE_AGG_TRADES, PERP)
    assert [e.trade.taker_side for e in f.events()] == [BUY]

    spot_trades = write_text(tmp_path / "ETHUSDT-trades-2024-01.csv",
                             [f"55,2300.1,0.3,690.03,{T0_MS},False,True"])
    f = open_file(spot_trades)
    assert (f.detection.format, f.detection.symbol, f.detection.instrument) == (
        FileFormat.BINANCE_TRADES, "ETHUSDT", SPOT)
    fut_trades = write_zip(tmp_path / "um" / "ETHUSDT-trades-2024-01.zip", "ETHUSDT-trades-2024-01.csv",
                           ["id,price,qty,quote_qty,time,is_buyer_maker", f"9,2300.1,0.3,690.03,{T0_MS},true"])
    f = open_file(fut_trades)
    assert (f.detection.format, f.detection.instrument) == (FileFormat.BINANCE_TRADES, PERP)
    assert [(e.trade.trade_id, e.trade.taker_side) for e in f.events()] == [("9", SELL)]


def test_binance_funding_mark_and_premium(tmp_path: Path) -> None:
    funding = write_zip(tmp_path / "BTCUSDT-fundingRate-2024-01.zip", "BTCUSDT-fundingRate-2024-01.csv", [
        "calc_time,funding_interval_hours,last_funding_rate",
        f"{T0_MS + 2},8,0.00010000", f"{T0_MS + 8 * 3600_000},8,-0.00002500"])
    f = open_file(funding)
    assert (f.detection.format, f.detection.instrument) == (FileFormat.BINANCE_FUNDING, PERP)
    events = list(f.events())
    assert [kind_of(e).value for e in events] == ["funding", "funding"]
    assert events[0].funding.funding_time_ns == T0 and events[0].funding.settled
    assert events[0].funding.next_funding_time_ns == T0 + 8 * 3600 * 10**9
    assert Decimal(events[1].funding.rate) == Decimal("-0.000025")

    base = tmp_path / "data" / "futures" / "um" / "monthly"
    mark = write_zip(base / "markPriceKlines" / "BTCUSDT" / "1m" / "BTCUSDT-1m-2024-01.zip",
                     "BTCUSDT-1m-2024-01.csv", [KLINES_HEADER, *kline_rows(2)])
    f = open_file(mark)
    assert f.detection.format is FileFormat.BINANCE_MARK_KLINES
    marks = list(f.events())
    assert [(e.mark.mark_price, e.exchange_ts_ns) for e in marks] == [("100.5", T0 + MIN), ("101.5", T0 + 2 * MIN)]

    premium = write_zip(base / "premiumIndexKlines" / "BTCUSDT" / "1m" / "BTCUSDT-1m-2024-01.zip",
                        "BTCUSDT-1m-2024-01.csv",
                        [f"{T0_MS},-0.0001,0.0002,-0.0003,0.0000,0,{T0_MS + MIN_MS - 1},0,12,0,0,0"])
    f = open_file(premium)
    assert f.detection.format is FileFormat.BINANCE_PREMIUM_KLINES
    (ev,) = list(f.events())
    assert (ev.symbol, ev.instrument, ev.candle.low) == ("BTCUSDT-PREMIUM", PERP, "-0.0003")


@pytest.mark.parametrize("suffix", [".feather", ".parquet"])
def test_freqtrade_arrow_candles_and_futures(tmp_path: Path, suffix: str) -> None:
    data = tmp_path / "user_data" / "data" / "binance"
    spot = write_frame(data / f"BTC_USDT-5m{suffix}", freqtrade_candles(4), FRAME_COLUMNS)
    f = open_file(spot)
    d = f.detection
    assert (d.format, d.venue, d.symbol, d.instrument, d.timeframe) == (
        FileFormat.FREQTRADE_CANDLES, "binance", "BTCUSDT", SPOT, "5m")
    events = list(f.events())
    assert len(events) == 4
    assert events[1].candle.open_time_ns == T0 + 5 * MIN and events[1].candle.volume == "4.25"

    fut = write_frame(data / "futures" / f"BTC_USDT_USDT-1h-futures{suffix}",
                      freqtrade_candles(2, step_ms=60 * MIN_MS), FRAME_COLUMNS)
    assert (open_file(fut).detection.instrument, open_file(fut).detection.symbol) == (PERP, "BTCUSDT")
    mark = write_frame(data / "futures" / f"BTC_USDT_USDT-8h-mark{suffix}",
                       freqtrade_candles(2, step_ms=480 * MIN_MS), FRAME_COLUMNS)
    f = open_file(mark)
    assert f.detection.format is FileFormat.FREQTRADE_MARK
    assert [kind_of(e).value for e in f.events()] == ["mark", "mark"]
    rates = [[T0_MS + i * 8 * 3600_000, r, 0.0, 0.0, 0.0, 0.0] for i, r in enumerate((0.0001, 0.0002, 0.0003))]
    funding = write_frame(data / "futures" / f"BTC_USDT_USDT-8h-funding_rate{suffix}", rates, FRAME_COLUMNS)
    f = open_file(funding)
    assert f.detection.format is FileFormat.FREQTRADE_FUNDING
    assert [e.funding.rate for e in f.events()] == ["0.0001", "0.0002", "0.0003"]


def test_freqtrade_trades_feather(tmp_path: Path) -> None:
    rows = [[T0_MS + i, str(100 + i), None, "buy" if i % 2 else "sell", 42000.0 + i, 0.5, 21000.0 + i]
            for i in range(3)]
    import pandas as pd

    path = tmp_path / "BTC_USDT-trades.feather"
    pd.DataFrame(rows, columns=["timestamp", "id", "type", "side", "price", "amount", "cost"]).to_feather(path)
    f = open_file(path)
    assert (f.detection.format, f.detection.symbol) == (FileFormat.FREQTRADE_TRADES, "BTCUSDT")
    events = list(f.events())
    assert [(e.trade.trade_id, e.trade.taker_side, e.trade.price) for e in events] == [
        ("100", SELL, "42000"), ("101", BUY, "42001"), ("102", SELL, "42002")]


@pytest.mark.parametrize("name", ["ETH_USDT-5m.json", "ETH_USDT-5m.json.gz"])
def test_freqtrade_json_candles(tmp_path: Path, name: str) -> None:
    path = write_json(tmp_path / name, freqtrade_candles(3))  # type: ignore[arg-type]
    f = open_file(path)
    assert (f.detection.format, f.detection.symbol, f.detection.timeframe) == (
        FileFormat.FREQTRADE_CANDLES, "ETHUSDT", "5m")
    events = list(f.events())
    assert [e.candle.close for e in events] == ["10.5", "11.5", "12.5"]


def test_freqtrade_json_trades(tmp_path: Path) -> None:
    rows = [[T0_MS, "1", None, "buy", 10.5, 2.0, 21.0], [T0_MS + 7, "2", None, "sell", 10.4, 1.0, 10.4]]
    path = write_json(tmp_path / "SOL_USDT-trades.json", rows)  # type: ignore[arg-type]
    events = list(read_file(path))
    assert [(e.symbol, e.trade.taker_side, e.exchange_ts_ns) for e in events] == [
        ("SOLUSDT", BUY, T0), ("SOLUSDT", SELL, T0 + 7_000_000)]


def test_csv_candles_with_aliases_and_vol(tmp_path: Path) -> None:
    path = write_text(tmp_path / "mydata.csv", ["ts,o,h,l,c,vol",
                                                f"{T0_MS},1,2,0.5,1.5,7", f"{T0_MS + 3600_000},1.5,2,1,1.2,8"])
    f = open_file(path, symbol="adausdt", venue="kraken")
    d = f.detection
    assert (d.format, d.symbol, d.venue) == (FileFormat.CSV_CANDLES, "ADAUSDT", "kraken")
    events = list(f.events())
    assert [e.candle.volume for e in events] == ["7", "8"]  # `vol` is the volume, never 0
    assert events[0].candle.timeframe == "1h"  # from the row spacing


def test_overrides(tmp_path: Path) -> None:
    path = write_text(tmp_path / "rates.csv", ["date,open,high,low,close,volume",
                                               "2024-01-01 00:00:00,0.0001,0,0,0,0"])
    f = open_file(path, format="csv-funding", symbol="XRPUSDT", timeframe="8h", instrument="perp")
    (ev,) = list(f.events())
    assert (kind_of(ev).value, ev.symbol, ev.instrument, ev.funding.rate) == ("funding", "XRPUSDT", PERP, "0.0001")
    assert ev.funding.next_funding_time_ns - ev.funding.funding_time_ns == 8 * 3600 * 10**9
    with pytest.raises(ValueError, match="unknown format"):
        open_file(path, format="excel")


def test_replay_merges_the_formats_in_time_order(tmp_path: Path) -> None:
    klines = write_zip(tmp_path / "BTCUSDT-1m-2024-01.zip", "BTCUSDT-1m-2024-01.csv", kline_rows(5))
    trades = write_text(tmp_path / "BTCUSDT-trades-2024-01.csv",
                        [f"{i},42000,0.1,4200,{T0_MS + i * 45_000},true,true" for i in range(1, 6)])
    candles = write_json(tmp_path / "ETH_USDT-1m.json", freqtrade_candles(3, step_ms=MIN_MS))  # type: ignore[arg-type]
    src = open_source(f"replay:{klines},{trades},{candles}")
    assert isinstance(src, ReplaySource)
    events = list(src.events())
    assert len(events) == 5 + 5 + 3
    stamps = [ts_of(e) for e in events]
    assert stamps == sorted(stamps)
    assert {e.symbol for e in events} == {"BTCUSDT", "ETHUSDT"}
    assert [r.rows for r in src.reports] == [5, 5, 3]
