"""What the Scavenger knows of each symbol's market: closed candles by timeframe, open interest,
funding, the last spot and perp prices, the trade flow (velocity, CVD, bursts, which feed leads),
the book's imbalance, and its dispatch bookkeeping (last activation, failures, blacklisting); and a
sprung trap waiting for its confirmation."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from titan.core.clock import NS_PER_MS
from titan.core.marketdata.candles import CandleAggregator
from titan.core.money import to_decimal
from titan.phases.scavenger.flow import CVD, Burst, BurstCounter, LeadLag, Velocity
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.tripwires import CandleBar, OIHistory, Tripwire
from titan.v1 import market_pb2

HISTORY = {"1m": 20, "5m": 40}  # closed candles kept per timeframe besides the structure one
STRUCTURE_KEEP = 200  # structure candles kept (Bollinger needs 92)


@dataclass
class PendingTrap:
    """A sprung trap and the burst that sprang it, confirmed (or not) at ``due_ns``."""

    trap: Tripwire
    burst: Burst
    sprung_ns: int
    due_ns: int


class Candles:
    """Closed candles of one timeframe keyed by open time; event candles win over built ones."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.bars: dict[int, CandleBar] = {}
        self.from_events = False

    def put(self, bar: CandleBar, from_event: bool) -> None:
        if from_event:
            self.from_events = True
        elif self.from_events:
            return
        self.bars[bar.open_ns] = bar
        if len(self.bars) > self.keep:
            for k in sorted(self.bars)[: len(self.bars) - self.keep]:
                del self.bars[k]

    def last(self, n: int) -> list[CandleBar]:
        return [self.bars[k] for k in sorted(self.bars)[-n:]] if n > 0 else []


class SymbolState:
    """One symbol's market state and tripwires."""

    def __init__(self, symbol: str, p: ScavengerParams) -> None:
        self.symbol = symbol
        self.tripwires: list[Tripwire] = []
        self.candles: dict[str, Candles] = {tf: Candles(n) for tf, n in HISTORY.items()}
        self.candles.setdefault(p.structure_timeframe, Candles(STRUCTURE_KEEP))
        self.candles[p.structure_timeframe].keep = STRUCTURE_KEEP
        self.agg_1m: CandleAggregator | None = None
        self.agg_up: dict[str, CandleAggregator] = {}
        self.oi = OIHistory()
        self.funding: Decimal | None = None
        self.spot: Decimal | None = None
        self.perp: Decimal | None = None
        self.perp_traded = False  # the perp price comes from marks until the first perp trade
        self.price: Decimal | None = None          # last burst-source trade price
        self.exponent = 0                         # most decimals seen in prices (tick proxy)
        self.velocity = Velocity()
        self.cvd = CVD()
        self.burst = BurstCounter(p.volume_window_ms * NS_PER_MS, p.min_trades_in_window)
        self.lead_lag = LeadLag()
        self.book_imbalance: float | None = None
        self.last_activation_ns: int | None = None
        self.feed_lag_ns = 0                      # clock − exchange time of burst trades (max over ~5 s)
        self.feed_lag_at_ns = 0
        self.failures = 0
        self.blacklisted_until = 0

    def quantize(self, price: Decimal) -> Decimal:
        """``price`` to the most decimals seen in this symbol's prices (the tick's proxy)."""
        return price.quantize(Decimal(1).scaleb(min(self.exponent, 0)))


def candle_bar(c: market_pb2.Candle) -> CandleBar:
    return CandleBar(
        c.open_time_ns,
        to_decimal(c.open),
        to_decimal(c.high),
        to_decimal(c.low),
        to_decimal(c.close),
        to_decimal(c.volume),
    )
