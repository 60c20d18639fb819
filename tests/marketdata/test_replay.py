"""Replay of the real sample files: trade tape sides, merging by time, pacing, Titan's own files."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from titan.core.clock import ManualClock
from titan.core.marketdata.events import BUY, PERP, SELL, SPOT, kind_of, ts_of
from titan.core.marketdata.files import EventWriter, infer_meta, read_file, read_titan
from titan.core.marketdata.replay import ReplaySource
from titan.v1.market_pb2 import MarketEvent

from .conftest import BTC_1M, BYBIT_BOOK, DATA, TRADES


def test_trade_tape_taker_sides(data_dir: Path) -> None:
    events = list(read_file(TRADES))
    with TRADES.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(events) == len(rows) == 2001
    for ev, row in zip(events, rows, strict=True):
        assert ev.trade.trade_id == row["trade_id"]
        assert Decimal(ev.trade.price) == Decimal(row["price"])
        assert Decimal(ev.trade.size) == Decimal(row["quantity"])
        # buyer_maker True: the buyer's order rested, the seller was the aggressor
        assert ev.trade.taker_side == (SELL if row["buyer_maker"] == "True" else BUY)
    assert (events[0].trade.taker_side, events[1].trade.taker_side) == (SELL, BUY)
    assert events[0].exchange_ts_ns == 1_610_064_000_278_000_000  # 2021-01-08 00:00:00.278 UTC
    assert (events[0].venue, events[0].symbol, events[0].instrument) == ("binance", "BTCUSDT", SPOT)
    sells = sum(1 for r in rows if r["buyer_maker"] == "True")
    assert sum(1 for e in events if e.trade.taker_side == SELL) == sells
    assert 0 < sells < 2001


def test_inferred_metadata(data_dir: Path) -> None:
    assert infer_meta(BTC_1M).symbol == "BTCUSDT" and infer_meta(BTC_1M).instrument == PERP
    assert infer_meta(BTC_1M).timeframe == "1m"
    m = infer_meta(DATA / "xrp-usdt-perp-5m-futures.csv")
    assert (m.symbol, m.instrument, m.timeframe) == ("XRPUSDT", PERP, "5m")


def test_funding_and_mark_files(data_dir: Path) -> None:
    funding = list(read_file(DATA / "xrp-usdt-perp-8h-funding_rate.csv"))
    assert len(funding) == 91 and all(kind_of(e) == "funding" and e.funding.settled for e in funding)
    assert funding[0].funding.rate == "0.0001"
    assert funding[0].funding.funding_time_ns % (8 * 3600 * 10**9) == 0
    assert funding[0].funding.next_funding_time_ns - funding[0].funding.funding_time_ns == 8 * 3600 * 10**9
    marks = list(read_file(DATA / "xrp-usdt-perp-1h-mark.csv"))
    assert all(kind_of(e) == "mark" for e in marks)
    # a mark event is stamped at the close of its candle and carries the close
    assert marks[0].exchange_ts_ns % (3600 * 10**9) == 0 and marks[0].mark.mark_price == "1.21431"


def test_merge_several_files_by_time(data_dir: Path) -> None:
    files = [
        DATA / "xrp-usdt-perp-5m-futures.csv",
        DATA / "xrp-usdt-perp-1h-futures.csv",
        DATA / "xrp-usdt-perp-8h-funding_rate.csv",
        DATA / "xrp-usdt-perp-1h-mark.csv",
        TRADES,
        BYBIT_BOOK,
    ]
    clock = ManualClock()
    src = ReplaySource(files, clock=clock)
    events = list(src.events())
    assert len(events) == sum(sum(1 for _ in read_file(f)) for f in files)
    stamps = [ts_of(e) for e in events]
    assert stamps == sorted(stamps)
    assert clock.now_ns() == stamps[-1]
    assert src.out_of_order == 0
    kinds = {kind_of(e).value for e in events}
    assert kinds == {"candle", "funding", "mark", "trade", "depth"}
    # every stream gets consecutive sequence numbers where the file had none
    xrp_candles = [e.seq for e in events if e.symbol == "XRPUSDT" and kind_of(e) == "candle"]
    assert xrp_candles[:3] == [1, 2, 3]


def test_window(data_dir: Path) -> None:
    start = 1_641_081_600 * 10**9  # 2022-01-02 00:00 UTC
    src = ReplaySource([BTC_1M], start_ns=start, end_ns=start + 3600 * 10**9)
    events = list(src.events())
    # candle events are stamped at their close: the window holds the candles closing in it
    assert len(events) == 60 and events[0].exchange_ts_ns == start
    assert events[0].candle.open_time_ns == start - 60 * 10**9


async def test_paced_stream_uses_the_speedup(data_dir: Path) -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(dt: float) -> None:
        slept.append(dt)
        now[0] += dt

    src = ReplaySource([TRADES], speed=10.0, sleep=fake_sleep, monotonic=lambda: now[0])
    events = [ev async for ev in src.stream()]
    assert len(events) == 2001
    span_s = (ts_of(events[-1]) - ts_of(events[0])) / 1e9
    assert now[0] == pytest.approx(span_s / 10, rel=1e-6)

    flat = ReplaySource([TRADES])  # flat out: no waiting at all
    assert len([ev async for ev in flat.stream()]) == 2001


@pytest.mark.parametrize("suffix", [".tmd", ".tmd.gz", ".csv"])
def test_titan_files_round_trip(tmp_path: Path, suffix: str, data_dir: Path) -> None:
    src = ReplaySource([TRADES, BYBIT_BOOK, DATA / "xrp-usdt-perp-8h-funding_rate.csv",
                        DATA / "xrp-usdt-perp-1h-mark.csv", DATA / "xrp-usdt-perp-1h-futures.csv"])
    original: list[MarketEvent] = list(src.events())
    path = tmp_path / f"day{suffix}"
    with EventWriter(path) as w:
        for ev in original:
            w.write(ev)
    back = list(read_titan(path))
    assert back == original
    assert list(read_file(path)) == original  # recognised by name/header
