"""The SMA cross agrees with backtesting.py (an independent implementation) on real candles."""

from __future__ import annotations

from pathlib import Path

from titan.backtest import BacktestConfig, run
from titan.backtest.examples import sma_organism
from titan.core.marketdata.timestamps import parse_time_ns

from .reference import compare, load_candles, run_backtesting_py, titan_round_trips

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "btc-perp-2022-01_1m.csv"


def test_two_days_of_btc_candles_give_the_same_trades_as_backtesting_py() -> None:
    end = "2022-01-03"
    candles = load_candles(DATA, end=end)
    theirs, _ = run_backtesting_py(candles, fast=10, slow=20)
    # The last candle before `end` closes at `end`: its event is at that time.
    result = run(BacktestConfig(data=(str(DATA),), end_ns=parse_time_ns(end) + 1),
                 organism=sma_organism({"fast": 10, "slow": 20}))
    ours = titan_round_trips(result.trades)
    verdict = compare(ours, theirs, last_bar_ns=candles.index[-1].value)
    assert len(theirs) > 100
    assert verdict["same_trades"], verdict["mismatches"]


def test_a_fill_costs_exactly_the_documented_spread_model() -> None:
    result = run(BacktestConfig(data=(str(DATA),), end_ns=parse_time_ns("2022-01-01T06:00")),
                 organism=sma_organism({"fast": 5, "slow": 12}))
    assert result.trades
    closes = {(t // 60_000_000_000): p for t, p in _closes(parse_time_ns("2022-01-01T06:00"))}
    for fill in result.fills:
        close = closes[fill.ts_ns // 60_000_000_000]
        factor = 1 + 3e-4 if fill.side == 1 else 1 - 3e-4  # buy pays 3 bp above the close, a sell 3 bp below
        assert abs(float(fill.price) - close * factor) < 1e-6


def _closes(end_ns: int) -> list[tuple[int, float]]:
    df = load_candles(DATA)
    return [(int(ts.value) + 60_000_000_000, float(c)) for ts, c in zip(df.index, df.Close, strict=True)
            if ts.value + 60_000_000_000 <= end_ns]
