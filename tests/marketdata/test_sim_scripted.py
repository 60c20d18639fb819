"""Scripted stop-runs (``SimConfig.scripted_runs_s``): at a chosen offset after the start, every
symbol's perp breaks the extreme of its 50-hour range — the same level as a consumer's range over
the last 50 closed hourly candles — by a few basis points on a dense, short burst; before that the
path is led to the extreme without crossing it, and nothing else changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from titan.core.clock import ManualClock
from titan.core.marketdata.events import PERP, kind_of
from titan.core.marketdata.sim import DEFAULT_START_NS, SimConfig, Simulator
from titan.core.marketdata.source import open_source
from titan.phases.runtime.contract import StrategyOutput
from titan.phases.scavenger import strategy
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.strategy import ScavengerStrategy
from titan.v1.market_pb2 import MarketEvent

from ..phases.helpers import budget

S = 10**9
MINUTE = 60 * S
HOUR = 60 * MINUTE
START = DEFAULT_START_NS + 17 * MINUTE + 23_400_000_000  # not on a minute: offsets count from here
SYMBOLS = ("BTCUSDT", "ETHUSDT")
RUN_S = 95.0
HISTORY_H = 72


def config(**changes: object) -> SimConfig:
    base = SimConfig(seed=3, symbols=SYMBOLS, start_ns=START, history_hours=HISTORY_H, scripted_runs_s=(RUN_S,))
    return base.replace(**changes)


@dataclass
class Recorded:
    sim: Simulator
    events: list[MarketEvent]
    hourly: dict[str, list[MarketEvent]] = field(default_factory=dict)  # closed perp 1h candles


def record(cfg: SimConfig, until_s: float) -> Recorded:
    sim = Simulator(cfg)
    events = list(sim.events(cfg.start_ns + round(until_s * S)))
    rec = Recorded(sim, events)
    for ev in events:
        if kind_of(ev) == "candle" and ev.instrument == PERP and ev.candle.timeframe == "1h":
            rec.hourly.setdefault(ev.symbol, []).append(ev)
    return rec


@pytest.fixture(scope="module")
def scripted() -> Recorded:
    return record(config(), RUN_S + 10)


def test_every_symbol_breaks_its_range_at_the_offset(scripted: Recorded) -> None:
    t = START + round(RUN_S * S)
    runs = [r for r in scripted.sim.stats.trap_log if r[0] >= START]
    assert scripted.sim.stats.scripted_runs == len(SYMBOLS)
    assert sorted(r[1] for r in runs) == sorted(SYMBOLS)
    for t_break, sym, direction, level in runs:
        assert t - S < t_break <= t  # the break comes in the second holding the offset
        # the level is the extreme of the last 50 closed hourly candles (a tick of spread aside)
        closed = [c.candle for c in scripted.hourly[sym] if c.candle.close_time_ns <= t_break][-50:]
        extreme = max(float(c.high) for c in closed) if direction > 0 else min(float(c.low) for c in closed)
        assert abs(extreme / level - 1) < 2e-5, (sym, extreme, level)


def test_the_break_is_shallow_and_dense(scripted: Recorded) -> None:
    cfg = config()
    for t_break, sym, direction, level in (r for r in scripted.sim.stats.trap_log if r[0] >= START):
        second = [ev for ev in scripted.events
                  if ev.symbol == sym and ev.instrument == PERP and kind_of(ev) == "trade"
                  and t_break <= ev.exchange_ts_ns < t_break + S]
        prices = [float(ev.trade.price) for ev in second]
        beyond = max(prices) / level - 1 if direction > 0 else 1 - min(prices) / level
        assert 0 < beyond <= cfg.scripted_overshoot_bps[1] / 1e4 + 2e-5  # through the level, by a few bps
        near = sorted(ev.exchange_ts_ns for ev, p in zip(second, prices, strict=True) if abs(p / level - 1) <= 0.001)
        counts = [(sum(1 for x in near[i:] if x - ts < 100_000_000), ts) for i, ts in enumerate(near)]
        densest, at = max(counts)
        assert densest >= 50  # the Scavenger's default gate: >= 50 trades within 100 ms within 0.1%
        assert at - t_break < (300 + cfg.scripted_burst_ms) * 10**6  # early in its second, and short


def test_nothing_changes_before_the_steering_and_no_natural_run_during_it() -> None:
    cfg = config(history_hours=6, scripted_steer_min=60)
    steer_from = (START + round(RUN_S * S)) // MINUTE * MINUTE - 60 * MINUTE
    plain = record(cfg.replace(scripted_runs_s=()), RUN_S + 10)
    scripted = record(cfg, RUN_S + 10)
    before = [ev.SerializeToString() for ev in plain.events if ev.exchange_ts_ns < steer_from]
    assert before and before == [ev.SerializeToString() for ev in scripted.events if ev.exchange_ts_ns < steer_from]
    assert not [r for r in scripted.sim.stats.trap_log if steer_from <= r[0] < START + (RUN_S - 1) * S]


def test_deterministic(scripted: Recorded) -> None:
    again = record(config(), RUN_S + 10)
    assert [e.SerializeToString() for e in again.events] == [e.SerializeToString() for e in scripted.events]


def test_the_shipped_scavenger_trades_it(scripted: Recorded) -> None:
    """In-process, on the events' clock: each symbol's run springs a tripwire, confirms and fires."""
    params = ScavengerParams.model_validate({"symbols": list(SYMBOLS), "venue": "sim", "burstInstrument": "perp"})
    clock = ManualClock(scripted.events[0].exchange_ts_ns)
    strat = ScavengerStrategy(params, clock=clock)
    strat.set_budget(budget("1000", leverage="10", symbols=SYMBOLS))
    out = StrategyOutput()
    for ev in scripted.events:
        clock.set(max(clock.now_ns(), ev.exchange_ts_ns))
        out.extend(strat.on_event(ev))
    fired = {e.symbol for e in out.events if e.kind == strategy.TRAP_FIRED}
    assert fired == set(SYMBOLS)
    assert {s.legs[0].symbol for s in out.signals} == set(SYMBOLS)
    assert all(Decimal(s.legs[0].size_quote) > 0 for s in out.signals)


def test_refused_where_it_cannot_apply(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="scripted_runs_s"):
        list(Simulator(config(scripted_runs_s=(-1.0,))).events(START))
    with pytest.raises(ValueError, match="need the simulator"):
        open_source("replay:/nonexistent.tmd", speed=1.0, stop_runs_s=[30.0])
    src = open_source("sim:5", symbols=["BTCUSDT"], stop_runs_s=[30.0, 90.0])
    assert isinstance(src, Simulator) and src.config.scripted_runs_s == (30.0, 90.0)
