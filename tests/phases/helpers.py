"""Builders shared by the phase tests: candles, trades, budgets, the real trade tape."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from titan.core.marketdata.events import BUY, PERP, SELL, SPOT, candle_event, trade_event
from titan.phases.scavenger.tripwires import CandleBar
from titan.v1 import common_pb2, market_pb2, trading_pb2

H_NS = 3600 * 10**9
# A Sentinel that trades the simulator's basis within hours (BTCUSDT on venue `sim`): entries at any
# basis and carry, exits after two hours at the latest; the backtest and process tests start from it.
SENTINEL_SIM_PERMISSIVE: dict[str, object] = {
    "symbols": ["BTCUSDT"], "spotVenue": "sim", "perpVenue": "sim", "sampleIntervalMs": 10_000, "windowSize": 30,
    "minSamples": 10, "expandZ": 1.5, "contractZ": -9.0, "minConfidence": 0.0, "minBasisBps": "0",
    "minCarryApr": "0", "expectedHoldingHours": "8760", "spotTakerFeeBps": "5", "perpTakerFeeBps": "5",
    "exitOnFundingFlip": False, "maxHoldingHours": "2", "signalCooldownMs": 60_000, "targetFraction": "0.1",
    "clipFraction": "0.1", "blowoutBps": "10000", "maxSpreadBps": "50",
}
MS = 10**6
TRADES_CSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "binance-btcusdt-trades.csv"


def bar(o: float | str, h: float | str, lo: float | str, c: float | str, v: float | str = 1, t: int = 0) -> CandleBar:
    return CandleBar(t, Decimal(str(o)), Decimal(str(h)), Decimal(str(lo)), Decimal(str(c)), Decimal(str(v)))


def flat_bars(n: int, price: float = 100.0, spread: float = 1.0, start_ns: int = 0, tf_ns: int = H_NS) -> (
    list[CandleBar]
):
    return [bar(price, price + spread, price - spread, price, 10, start_ns + i * tf_ns) for i in range(n)]


def candle_events(bars: Sequence[CandleBar], symbol: str = "BTCUSDT", venue: str = "sim", tf: str = "1h",
                  tf_ns: int = H_NS) -> list[market_pb2.MarketEvent]:
    return [
        candle_event(venue, symbol, PERP, timeframe=tf, open_time_ns=b.open_ns, close_time_ns=b.open_ns + tf_ns,
                     open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume)
        for b in bars
    ]


def range_bars(end_ns: int, high: str = "39500", low: str = "38500", n: int = 50) -> list[CandleBar]:
    """``n`` hourly bars ending at ``end_ns``: an oscillating range whose max high is ``high`` and min
    low is ``low``, closing mid-range (a RANGE regime with a weak ADX)."""
    import math

    hi_d, lo_d = Decimal(high), Decimal(low)
    mid = (hi_d + lo_d) / 2
    amp = (hi_d - lo_d) / 4
    wick = (hi_d - lo_d) / 10
    out = []
    for i in range(n):
        o = end_ns - (n - i) * H_NS
        m = (mid + amp * Decimal(str(round(math.sin(i * 0.9), 6)))).quantize(Decimal("0.01"))
        h = hi_d if i == n // 2 - 5 else m + wick
        lo = lo_d if i == n // 2 + 5 else m - wick
        close = m + wick / 5
        out.append(CandleBar(o, m, max(h, close), min(lo, m), close, Decimal(100)))
    return out


def trade(price: str | Decimal, size: str | Decimal = "0.1", buy: bool = True, ts_ns: int = 0, symbol: str = "BTCUSDT",
          venue: str = "binance", instrument: common_pb2.InstrumentKind = SPOT) -> market_pb2.MarketEvent:
    return trade_event(venue, symbol, instrument, price=price, size=size, taker_side=BUY if buy else SELL, ts_ns=ts_ns)


def budget(notional: str = "1000", state: common_pb2.PhaseState = common_pb2.PHASE_STATE_ACTIVE,
           phase: str = "scavenger", expires_ns: int = 2**62, order_cap: str = "", leverage: str = "20",
           version: int = 1, weight: str = "1", symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
           ) -> trading_pb2.Budget:
    return trading_pb2.Budget(phase_id=phase, state=state, weight=weight, max_notional=notional,
                              symbols=list(symbols),
                              max_order_notional=order_cap, max_leverage=leverage, expires_at_ns=expires_ns,
                              version=version)


def tape() -> list[market_pb2.MarketEvent]:
    """The real Binance BTCUSDT trade tape (2,001 trades, 2021-01-08 00:00:00–00:00:46 UTC), read in place."""
    out = []
    with TRADES_CSV.open() as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            ts = dt.datetime.fromisoformat(row["timestamp"])
            ts_ns = (int(ts.timestamp()) * 1000 + ts.microsecond // 1000) * MS
            qty = Decimal(row["quantity"]).quantize(Decimal("1e-8"))
            out.append(trade_event("binance", "BTCUSDT", SPOT, price=row["price"], size=qty,
                                   taker_side=SELL if row["buyer_maker"] == "True" else BUY, ts_ns=ts_ns,
                                   trade_id=row["trade_id"], seq=i + 1))
    return out
