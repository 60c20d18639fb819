"""The SMA cross on backtesting.py (an independent implementation) and Titan side by side.

Used by tests/backtest/test_sma_crosscheck.py and bench/backtest.py. backtesting.py is a test and
bench dependency only. Both fill market orders at the close of the candle that crossed (its
``trade_on_close=True``); Titan fills that close moved by its spread model (paper venue assumption
5: 1 bp half spread + 2 bp slippage) one latency later, so prices agree within 3 bp.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from titan.backtest import Trade

TIMEFRAME_NS = 60 * 10**9
SPREAD_BPS = 3.0  # paper venue: half spread 1 bp + slippage 2 bp


@dataclass(frozen=True)
class RoundTrip:
    side: str           # "long" | "short"
    entry_bar_ns: int   # open time of the candle whose close the entry filled at
    exit_bar_ns: int
    entry_price: float
    exit_price: float


def load_candles(path: Path, start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """The candle CSV as backtesting.py wants it: Open/High/Low/Close/Volume by open time (UTC)."""
    df = pd.read_csv(path)
    time_col = "timestamp" if "timestamp" in df.columns else "date"
    df.index = pd.to_datetime(df.pop(time_col), utc=True).dt.tz_localize(None)
    df = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    if start is not None:
        df = df[df.index >= pd.Timestamp(start)]
    if end is not None:
        df = df[df.index < pd.Timestamp(end)]
    return df


def run_backtesting_py(candles: pd.DataFrame, fast: int, slow: int) -> tuple[list[RoundTrip], float]:
    """backtesting.py's own SMA cross example (close and reverse on each cross); (trades, seconds)."""
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(SMA, self.data.Close, fast)
            self.slow = self.I(SMA, self.data.Close, slow)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.position.close()
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()
                self.sell()

    bt = Backtest(candles, SmaCross, cash=10**12, commission=0.0, trade_on_close=True)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # open trades at the end and pandas deprecations in its stats
        stats = bt.run()
    seconds = time.perf_counter() - started
    trades = [
        RoundTrip("long" if row.Size > 0 else "short", pd.Timestamp(row.EntryTime).value,
                  pd.Timestamp(row.ExitTime).value, float(row.EntryPrice), float(row.ExitPrice))
        for row in stats._trades.itertuples()
    ]
    return trades, seconds


def titan_round_trips(trades: list[Trade]) -> list[RoundTrip]:
    """Titan's trades, each time mapped back to the candle whose close triggered it."""
    def bar(ts: int) -> int:
        return ts // TIMEFRAME_NS * TIMEFRAME_NS - TIMEFRAME_NS

    return [RoundTrip(t.side, bar(t.opened_ns), bar(t.closed_ns), float(t.entry_price), float(t.exit_price))
            for t in trades]


def compare(ours: list[RoundTrip], theirs: list[RoundTrip], last_bar_ns: int | None = None,
            tolerance_bps: float = SPREAD_BPS + 1e-6) -> dict[str, object]:
    """Same trades: the same sides and candles, prices within ``tolerance_bps``. backtesting.py acts
    on no cross of the data's last candle, so Titan's trades that end on it (``last_bar_ns``) are
    left out."""
    if last_bar_ns is not None:
        ours = [t for t in ours if t.exit_bar_ns < last_bar_ns]
    mismatches: list[str] = []
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if (a.side, a.entry_bar_ns, a.exit_bar_ns) != (b.side, b.entry_bar_ns, b.exit_bar_ns):
            mismatches.append(f"trade {i}: titan {a} vs backtesting.py {b}")
            continue
        for name, x, y in (("entry", a.entry_price, b.entry_price), ("exit", a.exit_price, b.exit_price)):
            if abs(x / y - 1) * 1e4 > tolerance_bps:
                mismatches.append(f"trade {i}: {name} price {x} vs {y}")
    if len(ours) != len(theirs):
        mismatches.append(f"{len(ours)} trades vs {len(theirs)}")
    return {"same_trades": not mismatches, "titan_trades": len(ours), "backtesting_py_trades": len(theirs),
            "mismatches": mismatches[:10]}
