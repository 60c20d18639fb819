"""Trade intensity of the simulator: clustered (Hawkes) arrivals, and dense bursts at stop-runs that the
Scavenger's default gate (>= 50 trades within 100 ms within 0.1% of a trigger) can see."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from titan.core.marketdata.events import BUY, PERP, SPOT, kind_of, ts_of
from titan.core.marketdata.sim import DEFAULT_START_NS, SimConfig, Simulator

S = 10**9
MINUTE = 60 * S
HOUR = 3600 * S
WINDOW = 100_000_000  # the Scavenger's volume_window_ms
MIN_TRADES = 50       # its min_trades_in_window
PROXIMITY = 0.001     # its proximity
HOURS = 12


@dataclass
class Tape:
    ts: np.ndarray      # int64 ns
    price: np.ndarray   # float64
    buy: np.ndarray     # bool: taker bought


@dataclass
class Run:
    sim: Simulator
    tapes: dict[tuple[str, int], Tape]
    highs: np.ndarray   # perp 1m candles (prelude and live) of BTCUSDT: close time, high, low
    events: int


@pytest.fixture(scope="module")
def run() -> Run:
    cfg = SimConfig(seed=4, symbols=("BTCUSDT",), start_ns=DEFAULT_START_NS, history_hours=6)
    sim = Simulator(cfg)
    trades: dict[tuple[str, int], list[tuple[int, float, bool]]] = {}
    candles: list[tuple[int, float, float]] = []
    n = 0
    for ev in sim.events(end_ns=cfg.start_ns + HOURS * HOUR):
        n += 1
        k = kind_of(ev)
        if k == "trade":
            trades.setdefault((ev.symbol, int(ev.instrument)), []).append(
                (ev.exchange_ts_ns, float(ev.trade.price), ev.trade.taker_side == BUY))
        elif k == "candle" and ev.candle.timeframe == "1m" and ev.instrument == PERP:
            candles.append((ev.candle.close_time_ns, float(ev.candle.high), float(ev.candle.low)))
    tapes = {key: Tape(np.array([t[0] for t in v], dtype=np.int64), np.array([t[1] for t in v]),
                       np.array([t[2] for t in v])) for key, v in trades.items()}
    return Run(sim, tapes, np.array(candles), n)


def densest_window(tape: Tape, mask: np.ndarray) -> tuple[int, int]:
    """(most trades of ``mask`` within any WINDOW, index into the masked trades where it starts)."""
    ts = tape.ts[mask]
    if not len(ts):
        return 0, 0
    counts = np.searchsorted(ts, ts + WINDOW) - np.arange(len(ts))
    i = int(counts.argmax())
    return int(counts[i]), i


def test_stop_runs_print_dense_bursts_at_the_swept_extreme(run: Run) -> None:
    perp = run.tapes[("BTCUSDT", int(PERP))]
    traps = [t for t in run.sim.stats.trap_log if t[0] >= DEFAULT_START_NS]
    assert len(traps) >= 3
    for t_break, _, direction, _ in traps:
        # the extreme the run broke, from the published candles alone: the highest high (lowest low) of
        # the perp over the previous 240 minutes or 50 hours, whichever the burst sits at
        before = run.highs[run.highs[:, 0] <= t_break]
        extremes = [before[-w:, 1].max() if direction > 0 else before[-w:, 2].min() for w in (240, 3000)]
        near_burst = (perp.ts >= t_break) & (perp.ts < t_break + S)
        best = None
        for level in extremes:
            mask = near_burst & (np.abs(perp.price / level - 1) <= PROXIMITY)
            count, i = densest_window(perp, mask)
            if best is None or count > best[0]:
                best = (count, i, mask)
        assert best is not None
        count, i, mask = best
        assert count >= MIN_TRADES, (t_break, count)
        # the aggressors push in the run's direction (the Scavenger's micro-CVD and burst quality)
        window = perp.buy[mask][i : i + count]
        share = window.mean() if direction > 0 else 1 - window.mean()
        assert share > 0.7, (t_break, share)


def test_bursts_happen_only_at_stop_runs_and_cascades(run: Run) -> None:
    events = [t[0] for t in run.sim.stats.trap_log] + [t[0] for t in run.sim.stats.cascade_log]
    for key, tape in run.tapes.items():
        counts = np.searchsorted(tape.ts, tape.ts + WINDOW) - np.arange(len(tape.ts))
        dense = tape.ts[counts >= MIN_TRADES]
        assert len(dense) > 0, key
        # every dense window starts within the second of a run's break or a cascade's jump (or just after:
        # its follow-on trades)
        assert all(any(0 <= t - e < 2 * S for e in events) for t in dense), key


def test_trade_arrivals_are_clustered(run: Run) -> None:
    """Away from the bursts, trades per second are over-dispersed and autocorrelated (a Poisson process
    with a constant rate would give a variance/mean ratio of 1 and no autocorrelation)."""
    quiet = np.ones(HOURS * 3600, dtype=bool)
    for t in [t[0] for t in run.sim.stats.trap_log] + [t[0] for t in run.sim.stats.cascade_log]:
        s = (t - DEFAULT_START_NS) // S
        quiet[max(0, s - 30) : max(0, s + 180)] = False
    for inst in (SPOT, PERP):
        tape = run.tapes[("BTCUSDT", int(inst))]
        per_s = np.bincount((tape.ts - DEFAULT_START_NS) // S, minlength=HOURS * 3600)[: HOURS * 3600]
        q = per_s[quiet]
        pairs = quiet[:-1] & quiet[1:]
        dispersion = q.var() / q.mean()
        lag1 = float(np.corrcoef(per_s[:-1][pairs], per_s[1:][pairs])[0, 1])
        assert dispersion > 2.0  # docs: 2.9 (spot), 3.5 (perp)
        assert lag1 > 0.2        # docs: 0.27, 0.40


def test_event_volume_stays_manageable(run: Run) -> None:
    live_trades = sum(int((t.ts >= DEFAULT_START_NS).sum()) for t in run.tapes.values())
    assert live_trades / HOURS < 20_000  # docs: 0.46 M trades a day for two symbols
    assert run.events / HOURS < 40_000


def test_trade_ids_and_times_are_unique_per_stream() -> None:
    cfg = SimConfig(seed=4, symbols=("BTCUSDT",), start_ns=DEFAULT_START_NS, history_hours=6)
    ids: dict[tuple[str, int], list[int]] = {}
    for ev in Simulator(cfg).events(end_ns=DEFAULT_START_NS + HOUR):
        if kind_of(ev) == "trade":
            ids.setdefault((ev.symbol, int(ev.instrument)), []).append(int(ev.trade.trade_id))
            assert ts_of(ev) >= DEFAULT_START_NS
    for v in ids.values():
        assert v == list(range(1, len(v) + 1))
