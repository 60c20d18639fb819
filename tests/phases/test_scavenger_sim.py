"""The Scavenger on the seeded market simulator, in-process on a simulated clock: its stop-runs at
range extremes spring tripwires and produce complete signals, deterministically."""

from __future__ import annotations

from titan.core.clock import ManualClock
from titan.core.marketdata.sim import SimConfig, Simulator
from titan.core.money import to_decimal
from titan.phases.runtime.contract import StrategyOutput
from titan.phases.scavenger import strategy
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.strategy import ScavengerStrategy

from .helpers import budget

# The simulator prints about one trade a second, far below a Binance spot tape: the burst gate is
# scaled to it (4 trades in 1 s on the perp) and the structure uses 30 one-minute candles.
SIM_PARAMS = dict(symbols=["BTCUSDT"], venue="sim", structure_timeframe="1m", structure_bars=30,
                  min_trades_in_window=4, volume_window_ms=1000, burst_instrument="perp")
HOURS = 2


def run_sim() -> StrategyOutput:
    cfg = SimConfig(symbols=("BTCUSDT",), seed=1)
    clock = ManualClock(cfg.start_ns)
    strat = ScavengerStrategy(ScavengerParams.model_validate(SIM_PARAMS), clock=clock)
    strat.set_budget(budget("1000", leverage="10", symbols=("BTCUSDT",)))
    out = StrategyOutput()
    for ev in Simulator(cfg).events(cfg.start_ns + HOURS * 3600 * 10**9):
        if ev.exchange_ts_ns > clock.now_ns():
            clock.set(ev.exchange_ts_ns)
        out.extend(strat.on_event(ev))
    return out


def test_simulated_stop_runs_produce_signals_deterministically() -> None:
    a = run_sim()
    kinds = {e.kind for e in a.events}
    assert {strategy.TRAP_MAP_UPDATED, strategy.TRAP_SPRUNG, strategy.TRAP_CONFIRMED, strategy.TRAP_FIRED} <= kinds
    assert a.signals
    for sig in a.signals:
        leg = sig.legs[0]
        assert leg.venue == "sim" and to_decimal(leg.size_quote) > 0 and 0 < sig.confidence <= 1
        entry = to_decimal(leg.limit_price or sig.metadata["reference_price"])
        if leg.side == 1:
            assert to_decimal(sig.stop_price) < entry < to_decimal(sig.target_prices[0])
        else:
            assert to_decimal(sig.target_prices[0]) < entry < to_decimal(sig.stop_price)
    b = run_sim()
    assert [s.SerializeToString(deterministic=True) for s in a.signals] == [
        s.SerializeToString(deterministic=True) for s in b.signals
    ]
