"""The latency model: a signal created at t is decided at t + latency, against the market as it is
then; its ack and fills reach the phase one update latency later."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from titan.backtest import BacktestConfig, LatencyModel
from titan.backtest.examples import sma_organism
from titan.backtest.organism import Organism, PhasePlan
from titan.core.clock import Clock
from titan.core.marketdata.events import trade_event
from titan.phases import registry
from titan.phases.runtime.contract import StrategyBase, StrategyOutput
from titan.v1 import common_pb2, market_pb2, trading_pb2

US = 1_000
T0 = 1_700_000_000 * 10**9
PERP = common_pb2.INSTRUMENT_KIND_PERP


class BuyOnce(StrategyBase):
    """Buys 100 quote at market on the first trade it sees; records when its feedback arrives."""

    def __init__(self, params: Mapping[str, Any] | None, phase_id: str, clock: Clock) -> None:
        self.phase_id, self.clock = phase_id, clock
        self.sent = False
        self.acks: list[int] = []
        self.fills: list[int] = []

    def market_filters(self) -> list[tuple[str, str, str]]:
        return [("*", "BTCUSDT", "trade")]

    def set_budget(self, budget: trading_pb2.Budget | None) -> None:
        return None

    def set_params(self, raw: Mapping[str, Any]) -> None:
        return None

    def on_event(self, ev: market_pb2.MarketEvent) -> StrategyOutput:
        out = StrategyOutput()
        if not self.sent:
            self.sent = True
            leg = trading_pb2.Leg(venue=ev.venue, symbol="BTCUSDT", instrument=PERP, side=common_pb2.SIDE_BUY,
                                  size_quote="100", order_type=trading_pb2.ORDER_TYPE_MARKET)
            out.signals.append(trading_pb2.Signal(
                phase_id=self.phase_id, signal_id="once", intent=trading_pb2.INTENT_OPEN, legs=[leg],
                leverage="1", ttl_ms=5_000, created_at_ns=self.clock.now_ns()))
        return out

    def on_ack(self, ack: trading_pb2.SignalAck) -> StrategyOutput:
        self.acks.append(self.clock.now_ns())
        return StrategyOutput()

    def on_fill(self, fill: trading_pb2.Fill) -> StrategyOutput:
        self.fills.append(self.clock.now_ns())
        return StrategyOutput()


STRATEGIES: list[BuyOnce] = []


def _make(params: Mapping[str, Any] | None, phase_id: str, clock: Clock) -> BuyOnce:
    strategy = BuyOnce(params, phase_id, clock)
    STRATEGIES.append(strategy)
    return strategy


def organism() -> Organism:
    base = sma_organism()  # a fully funded single phase; its strategy is replaced by BuyOnce
    kind = registry.PhaseKind("buy-once", base.runs[0].kind.params_model, _make, base.runs[0].kind.main)
    return Organism(base.brain_name, base.policy, base.specs, (PhasePlan(base.specs[0], kind, {}),), ())


def tape() -> list[market_pb2.MarketEvent]:
    """100 at t0, then 110 at t0 + 300 µs, then 120 at t0 + 2 ms."""
    return [trade_event("sim", "BTCUSDT", PERP, price=p, size="1", taker_side=common_pb2.SIDE_BUY,
                        ts_ns=T0 + dt, trade_id=str(i))
            for i, (dt, p) in enumerate(((0, "100"), (300 * US, "110"), (2_000 * US, "120")))]


def fill_of(latency_us: int) -> tuple[trading_pb2.Fill, BuyOnce]:
    STRATEGIES.clear()
    from titan.backtest.driver import Backtest

    config = BacktestConfig(data=("unused",), latency=LatencyModel(latency_us * US, 150 * US))
    backtest = Backtest(config, organism())
    recorder = backtest.run(events=tape())
    assert len(recorder.fills) == 1, recorder.counts
    return recorder.fills[0], STRATEGIES[0]


def test_a_signal_fills_against_the_market_of_its_arrival_not_of_its_creation() -> None:
    spread = Decimal("1.0003")  # no book: last trade + 3 bp (paper venue assumption 5)
    fast, _ = fill_of(50)
    assert fast.ts_ns == T0 + 50 * US and Decimal(fast.price) == Decimal(100) * spread
    slow, _ = fill_of(460)
    assert slow.ts_ns == T0 + 460 * US and Decimal(slow.price) == Decimal(110) * spread
    late, _ = fill_of(2_500)
    assert Decimal(late.price) == Decimal(120) * spread


def test_the_ack_and_the_fill_reach_the_phase_one_update_latency_after_execution() -> None:
    fill, strategy = fill_of(460)
    assert strategy.acks == [T0 + 460 * US + 150 * US]
    assert strategy.fills == [T0 + 460 * US + 150 * US]
    assert fill.ts_ns == T0 + 460 * US


def test_the_default_latency_is_half_the_measured_round_trip() -> None:
    assert (LatencyModel().signal_ns, LatencyModel().update_ns) == (460 * US, 460 * US)
