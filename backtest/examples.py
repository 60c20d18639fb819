"""A minimal strategy for benchmarks and examples: a simple moving-average cross on closed candles.

It is the smallest complete use of the Strategy protocol: candles in, signed-ready signals out, its
own position learnt from execution's position updates. On each cross of the fast average over the
slow one it closes what it holds and opens in the cross's direction (long above, short below), with
market orders of ``size_quote`` each. ``bench/backtest.py`` runs it through the whole path and compares its
trades with backtesting.py's on the same candles.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pydantic

from titan.backtest.organism import Organism, PhasePlan
from titan.core.clock import Clock
from titan.operator.brain import BandEdges, BrainPolicy, PhaseKind, PhaseSpec
from titan.phases import registry
from titan.phases.runtime.contract import StrategyBase, StrategyOutput
from titan.v1 import common_pb2, market_pb2, trading_pb2

NS_PER_S = 1_000_000_000


class SmaCrossParams(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    symbol: str = "BTCUSDT"
    timeframe: str = "1m"
    fast: int = pydantic.Field(10, ge=1)
    slow: int = pydantic.Field(20, ge=2)
    size_quote: Decimal = pydantic.Field(Decimal(200), gt=0)
    leverage: Decimal = pydantic.Field(Decimal(1), gt=0)

    @pydantic.model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError("need fast < slow")
        return self


class SmaCrossStrategy(StrategyBase):
    def __init__(self, params: SmaCrossParams, phase_id: str, clock: Clock) -> None:
        self.params = params
        self.phase_id = phase_id
        self.clock = clock
        self.closes: deque[float] = deque(maxlen=params.slow)
        self.fast_sum = 0.0
        self.slow_sum = 0.0
        self.previous: tuple[float, float] | None = None  # (fast, slow) at the last close
        self.position = Decimal(0)
        self.venue = ""
        self.instrument = common_pb2.INSTRUMENT_KIND_PERP
        self.count = 0
        self.budget: trading_pb2.Budget | None = None

    @classmethod
    def from_params(cls, raw: Mapping[str, Any] | None, phase_id: str, clock: Clock) -> SmaCrossStrategy:
        return cls(SmaCrossParams.model_validate(dict(raw or {})), phase_id, clock)

    def set_budget(self, budget: trading_pb2.Budget | None) -> None:
        self.budget = budget

    def set_params(self, raw: Mapping[str, Any]) -> None:
        self.params = SmaCrossParams.model_validate(dict(raw))

    def market_filters(self) -> list[tuple[str, str, str]]:
        return [("*", self.params.symbol, "candle")]

    def on_event(self, ev: market_pb2.MarketEvent) -> StrategyOutput:
        out = StrategyOutput()
        candle = ev.candle
        if ev.WhichOneof("payload") != "candle" or candle.timeframe != self.params.timeframe or not candle.closed:
            return out
        self.venue, self.instrument = ev.venue, ev.instrument
        self.closes.append(float(candle.close))  # floats only inside the indicator
        if len(self.closes) < self.params.slow:
            return out
        closes = list(self.closes)
        fast = sum(closes[-self.params.fast:]) / self.params.fast
        slow = sum(closes) / self.params.slow
        before, self.previous = self.previous, (fast, slow)
        if before is None:
            return out
        # A cross between two consecutive closes, strictly on both sides (equal averages do not cross).
        if before[0] < before[1] and fast > slow:
            self._reverse(out, long=True)
        elif before[0] > before[1] and fast < slow:
            self._reverse(out, long=False)
        return out

    def _reverse(self, out: StrategyOutput, *, long: bool) -> None:
        """On every cross: close whatever is held, then open in the cross's direction (as
        backtesting.py's own example does, so a cross in the held direction starts a new trade)."""
        now = self.clock.now_ns()
        if self.position != 0:
            out.signals.append(self._signal(trading_pb2.INTENT_CLOSE, self.position < 0, "", now))
        out.signals.append(self._signal(trading_pb2.INTENT_OPEN, long, str(self.params.size_quote), now))

    def _signal(self, intent: int, buy: bool, size: str, now: int) -> trading_pb2.Signal:
        self.count += 1
        leg = trading_pb2.Leg(venue=self.venue, symbol=self.params.symbol, instrument=self.instrument,
                              side=common_pb2.SIDE_BUY if buy else common_pb2.SIDE_SELL, size_quote=size,
                              order_type=trading_pb2.ORDER_TYPE_MARKET)
        return trading_pb2.Signal(
            phase_id=self.phase_id, signal_id=f"sma-{now}-{self.count}", intent=intent,  # type: ignore[arg-type]
            legs=[leg], confidence=1.0, leverage=str(self.params.leverage), ttl_ms=5_000, created_at_ns=now,
            setup="sma.cross")

    def on_position(self, position: trading_pb2.Position) -> StrategyOutput:
        if position.symbol == self.params.symbol:
            self.position = Decimal(position.quantity or "0")
        return StrategyOutput()


def _no_process(argv: list[str]) -> int:
    raise SystemExit("the SMA cross is an example for backtests; it has no process")


SMA_CROSS = registry.PhaseKind("sma-cross", SmaCrossParams, SmaCrossStrategy.from_params, _no_process)


def sma_organism(params: Mapping[str, Any] | None = None, *, initial_equity: Decimal = Decimal(10_000),
                 max_leverage: Decimal = Decimal(10)) -> Organism:
    """An organism of one SMA-cross phase that the Brain funds fully (it runs as the Scavenger's kind,
    which gets all the capital below the first band edge; the edges are raised above the equity)."""
    model = SmaCrossParams.model_validate(dict(params or {}))
    edge = initial_equity * 100
    policy = BrainPolicy(initial_equity=initial_equity, max_leverage=max_leverage, soft_losses=10**9,
                         bands=_bands(edge), max_order_fraction=Decimal(1))
    spec = PhaseSpec(phase_id="sma", kind=PhaseKind.SCAVENGER, symbols=(model.symbol,), max_leverage=max_leverage,
                     params=model.model_dump(mode="json"))
    return Organism("sma", policy, (spec,), (PhasePlan(spec, SMA_CROSS, spec.params),), ())


def _bands(edge: Decimal) -> BandEdges:
    return BandEdges(start_p2=edge, full_p2=edge * 2, start_p3=edge * 4)


__all__ = ["SMA_CROSS", "SmaCrossParams", "SmaCrossStrategy", "sma_organism"]
