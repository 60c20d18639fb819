"""Burst windows are in exchange time: on a wall clock, a feed that arrives with latency must not
have its windows closed by the timer before their last trades arrived."""

from __future__ import annotations

from decimal import Decimal

from titan.core.clock import ManualClock
from titan.phases.runtime.contract import StrategyOutput
from titan.phases.scavenger import strategy
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.strategy import ScavengerStrategy
from titan.phases.scavenger.tripwires import Direction, TrapType, Tripwire

from .helpers import budget, trade

MS = 10**6
T0 = 1_700_000_000_000 * MS


def run(lag_ms: int) -> StrategyOutput:
    """50 buys near the trigger within 99 ms of exchange time, each delivered ``lag_ms`` late, with
    the 50 ms timer running on the clock in between."""
    clock = ManualClock(T0 - 1000 * MS)
    strat = ScavengerStrategy(ScavengerParams(symbols=["BTCUSDT"], venue="sim"), clock=clock)
    strat.set_budget(budget("1000", leverage="10"))
    strat.on_time()
    strat.place_tripwires("BTCUSDT", [Tripwire("BTCUSDT", TrapType.BREAKOUT, Direction.LONG, Decimal(100), 0.8,
                                               Decimal(5), Decimal("0.02"))])
    out = StrategyOutput()
    # A first trade sets the feed's lag, then the burst: 2 ms apart (0..98 ms).
    trades = [trade("99.5", ts_ns=T0 - 500 * MS)] + [trade("100.01", ts_ns=T0 + i * 2 * MS) for i in range(50)]
    next_tick = T0 - 500 * MS
    for ev in trades:
        arrival = ev.exchange_ts_ns + lag_ms * MS
        while next_tick < arrival:
            clock.set(max(clock.now_ns(), next_tick))
            out.extend(strat.on_time())
            next_tick += 50 * MS
        clock.set(max(clock.now_ns(), arrival))
        out.extend(strat.on_event(ev))
    clock.set(clock.now_ns() + 150 * MS)
    out.extend(strat.on_time())
    return out


def test_a_late_feed_still_springs_the_burst() -> None:
    for lag in (0, 30, 120):
        sprung = [e for e in run(lag).events if e.kind == strategy.TRAP_SPRUNG]
        assert len(sprung) == 1, lag
        assert int(sprung[0].get("trades")) == 50
