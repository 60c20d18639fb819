"""The end-to-end scenario itself, in-process: its history places the BREAKOUT tripwire inside the
real tape's range, the tape's burst springs and confirms it, and the Scavenger sends one complete
signal — the same one however the events are delivered (latency, jitter, timer phase)."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest

from titan.core.clock import ManualClock
from titan.core.marketdata.replay import ReplaySource
from titan.core.money import to_decimal
from titan.phases.runtime.contract import StrategyOutput
from titan.phases.scavenger import strategy
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.strategy import ScavengerStrategy
from titan.phases.scavenger.tripwires import TrapType
from titan.v1 import common_pb2, market_pb2, trading_pb2

from .scenario import SCAVENGER_PARAMS, SYMBOL, TRIGGER, VENUE, Scenario, build_scenario, tape_events

MS = 10**6


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(tmp_path_factory.mktemp("scenario") / "scenario.tmd")


def budget() -> trading_pb2.Budget:
    # What the Brain gives the Scavenger at equity 1,000 (weight 1, 10x): see test_titan_up.
    return trading_pb2.Budget(phase_id="scavenger", state=common_pb2.PHASE_STATE_ACTIVE, weight="1",
                              max_notional="10000", max_order_notional="2500", max_leverage="10",
                              symbols=[SYMBOL], expires_at_ns=2**62)


def run(events: list[market_pb2.MarketEvent], *, seed: int | None = None, max_lag_ms: int = 0) -> (
    tuple[StrategyOutput, ScavengerStrategy]
):
    """Feed the strategy as a process would: with ``seed``, each event arrives after a random
    delivery delay (in order) and a 50 ms timer runs at a random phase; without, on event time."""
    rnd = random.Random(seed)
    clock = ManualClock(events[0].exchange_ts_ns)
    strat = ScavengerStrategy(ScavengerParams.model_validate(SCAVENGER_PARAMS), clock=clock)
    strat.set_budget(budget())
    out = StrategyOutput()
    tick = 50 * MS
    next_tick = events[0].exchange_ts_ns + rnd.randrange(tick)
    arrival = 0
    base = rnd.randrange(max_lag_ms * MS + 1)
    for ev in events:
        if seed is None:
            arrival = ev.exchange_ts_ns
        else:
            arrival = max(arrival, ev.exchange_ts_ns + base + rnd.randrange(max_lag_ms * MS + 1))
            if arrival - next_tick > 10**9:  # across the history: the timer has nothing to do
                next_tick += (arrival - next_tick) // tick * tick
            while next_tick < arrival:
                if next_tick > clock.now_ns():
                    clock.set(next_tick)
                    out.extend(strat.on_time())
                next_tick += tick
        clock.set(max(clock.now_ns(), arrival))
        out.extend(strat.on_event(ev))
    clock.set(clock.now_ns() + 2000 * MS)
    out.extend(strat.on_time())
    return out, strat


def test_the_scenario_file_holds_history_then_the_tape_and_perp_tops(scenario: Scenario) -> None:
    events = list(ReplaySource([scenario.path]).events())
    assert len(events) == scenario.events
    candles = [e for e in events if e.HasField("candle")]
    assert {e.candle.timeframe for e in candles} == {"1h", "1m"}
    assert sum(1 for e in candles if e.candle.timeframe == "1h") == 60
    hourly = [e.candle for e in candles if e.candle.timeframe == "1h"]
    assert max(to_decimal(c.high) for c in hourly[-50:]) == TRIGGER
    trades = [e for e in events if e.HasField("trade")]
    first_trade = trades[0].exchange_ts_ns
    assert all(e.exchange_ts_ns <= first_trade for e in candles)  # all history precedes the tape
    real = tape_events()
    assert [(t.trade.trade_id, t.trade.price) for t in trades] == [
        (t.trade.trade_id, t.trade.price) for t in real[: len(trades)]]
    assert scenario.tape_trades == len(trades) > 800
    tops = [e for e in events if e.HasField("top")]
    assert tops and all((e.venue, e.symbol, e.instrument) == (VENUE, SYMBOL, common_pb2.INSTRUMENT_KIND_PERP)
                        for e in tops)
    assert all(to_decimal(e.top.bid_price) < to_decimal(e.top.ask_price) for e in tops)
    assert {(e.venue, e.instrument) for e in trades} == {(VENUE, common_pb2.INSTRUMENT_KIND_SPOT)}
    assert any(e.HasField("open_interest") for e in events) and any(e.HasField("funding") for e in events)


def test_the_scenario_places_the_breakout_tripwire_where_the_tape_bursts(scenario: Scenario) -> None:
    out, strat = run(list(ReplaySource([scenario.path]).events()))
    traps = {t.trap_type: t for t in strat.tripwires(SYMBOL)}
    assert traps[TrapType.BREAKOUT].trigger == TRIGGER
    prices = [to_decimal(e.trade.price) for e in tape_events()]
    near = [t for t in traps.values() if min(prices) * Decimal("0.999") <= t.trigger <= max(prices) * Decimal("1.001")]
    assert [t.trap_type for t in near] == [TrapType.BREAKOUT]  # the only tripwire the tape can reach
    kinds = [e.kind for e in out.events if e.kind != strategy.TRAP_MAP_UPDATED]
    assert kinds == [strategy.TRAP_SPRUNG, strategy.TRAP_CONFIRMED, strategy.TRAP_FIRED]
    sprung = out.events[[e.kind for e in out.events].index(strategy.TRAP_SPRUNG)]
    assert sprung.get("trap") == "BTCUSDT:BREAKOUT:LONG" and int(sprung.get("trades")) >= 50
    assert len(out.signals) == 1
    sig = out.signals[0]
    leg = sig.legs[0]
    assert (leg.venue, leg.symbol, leg.instrument, leg.side) == (
        VENUE, SYMBOL, common_pb2.INSTRUMENT_KIND_PERP, common_pb2.SIDE_BUY)
    assert to_decimal(leg.size_quote) == Decimal(2500)  # capped by the budget's per-order notional
    entry = to_decimal(leg.limit_price or sig.metadata["reference_price"])
    assert to_decimal(sig.stop_price) < entry < to_decimal(sig.target_prices[0])
    # The perp's ask at that moment is below the limit: execution's paper venue fills it at once.
    last_top = [e for e in ReplaySource([scenario.path]).events()
                if e.HasField("top") and e.exchange_ts_ns <= sig.created_at_ns][-1]
    ask = to_decimal(last_top.top.ask_price)
    assert leg.order_type == trading_pb2.ORDER_TYPE_MARKET or ask <= to_decimal(leg.limit_price)


@pytest.mark.parametrize("max_lag_ms", [0, 5, 40, 150])
def test_the_decision_does_not_depend_on_delivery_timing(scenario: Scenario, max_lag_ms: int) -> None:
    events = list(ReplaySource([scenario.path]).events())
    reference, _ = run(events)
    ref = reference.signals[0]
    for seed in range(4):
        out, _ = run(events, seed=seed, max_lag_ms=max_lag_ms)
        assert len(out.signals) == 1, [
            (e.kind, dict(e.detail)) for e in out.events if e.kind != strategy.TRAP_MAP_UPDATED
        ]
        sig = out.signals[0]
        assert (sig.legs[0].limit_price, sig.legs[0].size_quote, sig.stop_price, list(sig.target_prices)) == (
            ref.legs[0].limit_price, ref.legs[0].size_quote, ref.stop_price, list(ref.target_prices))


def test_rebased_to_now_the_scenario_keeps_its_shape(scenario: Scenario, tmp_path: Path) -> None:
    target = 1_900_000_000 * 10**9
    src = ReplaySource([scenario.path], rebase=True, rebase_to_ns=target)
    events = list(src.events())
    first_trade = next(e for e in events if e.HasField("trade"))
    assert first_trade.exchange_ts_ns == target  # the tape starts "now"; the history lies before it
    out, _ = run(events)
    assert len(out.signals) == 1 and out.signals[0].created_at_ns > target
