"""Closed candles as the Hunter's detectors see them: exact prices, UTC open/close times."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from titan.core.money import to_decimal
from titan.v1 import market_pb2


@dataclass(frozen=True)
class Bar:
    """One closed candle ``[open_ns, close_ns)``; it is known at ``close_ns``."""

    open_ns: int
    close_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    @property
    def bullish(self) -> bool:
        return self.close > self.open

    @property
    def bearish(self) -> bool:
        return self.close < self.open


def bar_of(candle: market_pb2.Candle) -> Bar:
    """A Bar from a candle event; ValueError when its prices are inconsistent (high < low, close outside)."""
    bar = Bar(
        candle.open_time_ns,
        candle.close_time_ns,
        to_decimal(candle.open),
        to_decimal(candle.high),
        to_decimal(candle.low),
        to_decimal(candle.close),
        to_decimal(candle.volume or "0"),
    )
    if not (bar.low <= bar.open <= bar.high and bar.low <= bar.close <= bar.high) or bar.close_ns <= bar.open_ns:
        raise ValueError(f"inconsistent candle at {bar.open_ns}: o={bar.open} h={bar.high} l={bar.low} c={bar.close}")
    return bar
