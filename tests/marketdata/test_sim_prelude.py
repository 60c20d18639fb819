"""The simulator's history prelude: closed candles and the latest funding / mark / open interest of the
hours before the start, emitted first and unpaced, continuous with the real-time stream after it."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import defaultdict
from decimal import Decimal

import numpy as np
import pytest

from titan.core.marketdata import open_source
from titan.core.marketdata.events import PERP, SPOT, kind_of, ts_of
from titan.core.marketdata.sim import DEFAULT_START_NS, SimConfig, Simulator
from titan.v1.market_pb2 import MarketEvent

S = 10**9
MINUTE = 60 * S
HOUR = 3600 * S
START = DEFAULT_START_NS + 5 * HOUR + 17 * MINUTE + 123_456_789  # 2024-01-01 05:17:00.123456789, unaligned
HISTORY = 6
SYMBOLS = ("BTCUSDT", "ETHUSDT")
END = START - START % HOUR + HOUR + MINUTE  # just past the close of the hour the seam falls in


def _cfg(**kw: object) -> SimConfig:
    return SimConfig(seed=11, symbols=SYMBOLS, start_ns=START, history_hours=HISTORY).replace(**kw)


@pytest.fixture(scope="module")
def run() -> list[MarketEvent]:
    return list(Simulator(_cfg()).events(end_ns=END))


def _candles(events: list[MarketEvent], tf: str) -> dict[tuple[str, int], list[MarketEvent]]:
    out: dict[tuple[str, int], list[MarketEvent]] = defaultdict(list)
    for ev in events:
        if kind_of(ev) == "candle" and ev.candle.timeframe == tf:
            out[(ev.symbol, int(ev.instrument))].append(ev)
    return out


def _rollup(minutes: list[MarketEvent]) -> tuple[str, str, str, str, Decimal, int]:
    c = [m.candle for m in minutes]
    return (c[0].open, str(max(Decimal(x.high) for x in c)), str(min(Decimal(x.low) for x in c)), c[-1].close,
            sum(Decimal(x.volume) for x in c), sum(x.trade_count for x in c))


def test_prelude_comes_first_with_closed_candles_up_to_the_start(run: list[MarketEvent]) -> None:
    stamps = [ts_of(e) for e in run]
    assert stamps == sorted(stamps)
    seqs: dict[tuple[str, int], list[int]] = defaultdict(list)
    for e in run:
        seqs[(e.symbol, int(e.instrument))].append(e.seq)
    assert all(v == list(range(1, len(v) + 1)) for v in seqs.values())  # gap-free from 1 across the seam
    prelude = [e for e in run if ts_of(e) < START]
    assert run[: len(prelude)] == prelude  # everything before the start comes first
    assert {kind_of(e).value for e in prelude} == {"candle", "open_interest", "funding", "mark"}
    hour_start = START - START % HOUR
    minute_start = START - START % MINUTE
    hours, minutes = _candles(prelude, "1h"), _candles(prelude, "1m")
    assert set(hours) == set(minutes) == {(s, i) for s in SYMBOLS for i in (int(SPOT), int(PERP))}
    for key, hs in hours.items():
        # at least HISTORY closed hourly candles, back to back, the last one closing at the start's hour
        assert len(hs) >= HISTORY and all(h.candle.closed for h in hs)
        assert hs[-1].candle.close_time_ns == hour_start
        assert all(b.candle.open_time_ns == a.candle.close_time_ns for a, b in itertools.pairwise(hs))
        assert all(h.candle.open_time_ns % HOUR == 0 and h.exchange_ts_ns == h.candle.close_time_ns for h in hs)
        ms = minutes[key]
        assert ms[0].candle.open_time_ns == hs[0].candle.open_time_ns
        assert ms[-1].candle.close_time_ns == minute_start  # every minute up to the start's minute
        assert [m.candle.open_time_ns for m in ms] == list(range(ms[0].candle.open_time_ns, minute_start, MINUTE))
        for h in hs:  # an hourly candle is the roll-up of its minutes
            inside = [m for m in ms if h.candle.open_time_ns <= m.candle.open_time_ns < h.candle.close_time_ns]
            assert len(inside) == 60
            assert (h.candle.open, h.candle.high, h.candle.low, h.candle.close, Decimal(h.candle.volume),
                    h.candle.trade_count) == _rollup(inside)
        for m in ms:
            c = m.candle
            assert Decimal(c.low) <= min(Decimal(c.open), Decimal(c.close))
            assert Decimal(c.high) >= max(Decimal(c.open), Decimal(c.close)) and Decimal(c.volume) > 0
    # the latest state: mark/index, open interest and the predicted funding at the last prelude minute,
    # and the settlement at 00:00 UTC that fell inside the history
    for sym in SYMBOLS:
        state = {kind_of(e).value: e for e in prelude if e.symbol == sym and ts_of(e) == minute_start}
        assert {"mark", "open_interest", "funding"} <= set(state)
        assert not state["funding"].funding.settled and state["funding"].funding.next_funding_time_ns > START
        settled = [e for e in prelude if e.symbol == sym and kind_of(e) == "funding" and e.funding.settled]
        assert [e.funding.funding_time_ns for e in settled] == [DEFAULT_START_NS]
        ois = [e for e in prelude if e.symbol == sym and kind_of(e) == "open_interest"]
        assert len(ois) == len(minutes[(sym, int(PERP))])  # one a minute, as live


def test_prelude_is_deterministic_per_seed(run: list[MarketEvent]) -> None:
    again = list(Simulator(_cfg()).events(end_ns=START + 5 * MINUTE))
    assert [e.SerializeToString() for e in again] == [e.SerializeToString() for e in run[: len(again)]]
    other = list(Simulator(_cfg(seed=12)).events(end_ns=START))
    assert [e.SerializeToString() for e in other] != [e.SerializeToString() for e in run[: len(other)]]


def test_continuation_is_the_same_path_as_a_run_started_earlier(run: list[MarketEvent]) -> None:
    """The prelude is the first part of the path: a run started at the prelude's first minute without
    history publishes the very same marks after the seam."""
    first_open = min(e.candle.open_time_ns for e in run if kind_of(e) == "candle")
    assert first_open % HOUR == 0 and START - first_open >= HISTORY * HOUR
    early = SimConfig(seed=11, symbols=SYMBOLS, start_ns=first_open, mark_every_s=1, trade_rate=(0.0, 0.0),
                      depth_levels=0, candles=False)
    want = [(e.symbol, ts_of(e), e.mark.mark_price, e.mark.index_price)
            for e in Simulator(early).events(end_ns=START + 10 * MINUTE) if kind_of(e) == "mark" and ts_of(e) >= START]
    got = [(e.symbol, ts_of(e), e.mark.mark_price, e.mark.index_price)
           for e in run if kind_of(e) == "mark" and START <= ts_of(e) < START + 10 * MINUTE]
    assert len(got) > 1000 and got == want


def test_no_price_jump_at_the_seam(run: list[MarketEvent]) -> None:
    prelude_minutes = _candles([e for e in run if ts_of(e) < START], "1m")
    for (sym, inst), ms in prelude_minutes.items():
        closes = np.array([float(m.candle.close) for m in ms])
        sd = float(np.diff(np.log(closes)).std())
        first_trade = next(e for e in run if ts_of(e) >= START and kind_of(e) == "trade"
                           and e.symbol == sym and e.instrument == inst)
        # the last prelude close is one minute (and a fraction) before the first live trade
        seam = abs(math.log(float(first_trade.trade.price) / closes[-1]))
        assert seam < 5 * sd, (sym, inst, seam, sd)


def test_hour_across_the_seam_rolls_up_prelude_and_live_minutes(run: list[MarketEvent]) -> None:
    hour = START - START % HOUR
    minutes, hours = _candles(run, "1m"), _candles(run, "1h")
    for key, hs in hours.items():
        seam_hour = [h for h in hs if h.candle.open_time_ns == hour]
        assert len(seam_hour) == 1
        inside = [m for m in minutes[key] if hour <= m.candle.open_time_ns < hour + HOUR]
        assert len(inside) == 60 and any(ts_of(m) > START for m in inside) and any(ts_of(m) < START for m in inside)
        h = seam_hour[0].candle
        assert (h.open, h.high, h.low, h.close, Decimal(h.volume), h.trade_count) == _rollup(inside)


async def test_prelude_is_not_paced_real_time_runs_from_the_start() -> None:
    now = [0.0]

    async def fake_sleep(dt: float) -> None:
        now[0] += dt
        await asyncio.sleep(0)

    cfg = SimConfig(seed=2, symbols=("ETHUSDT",), start_ns=START, end_ns=START + 120 * S, history_hours=3)
    src = Simulator(cfg, speed=60.0, sleep=fake_sleep, monotonic=lambda: now[0])
    got = [(ev, now[0]) async for ev in src.stream()]
    past = [t for ev, t in got if ts_of(ev) < START]
    assert len(past) > 3 * 60 * 2 and set(past) == {0.0}  # history yielded without waiting
    assert now[0] == pytest.approx((ts_of(got[-1][0]) - START) / 1e9 / 60.0, rel=1e-6)
    assert [e.SerializeToString() for e, _ in got] == [e.SerializeToString() for e in Simulator(cfg).events()]


def test_live_sim_source_starts_with_three_days_of_history() -> None:
    before = time.time_ns()
    src = open_source("sim:3", symbols=["BTCUSDT"])
    assert isinstance(src, Simulator) and src.speed == 1.0
    start = src.config.start_ns
    assert start >= before and src.config.history_hours == 72
    hourly = []
    for ev in src.events():
        if ts_of(ev) >= start:
            break
        if kind_of(ev) == "candle" and ev.candle.timeframe == "1h" and ev.instrument == PERP:
            hourly.append(ev)
    assert len(hourly) >= 72 and hourly[-1].candle.close_time_ns == start - start % HOUR
    # backtests (a given start) have no prelude unless asked for
    assert isinstance(bt := open_source("sim:3", start_ns=START), Simulator) and bt.config.history_hours == 0
    asked = open_source("sim:3", start_ns=START, history_hours=4)
    assert isinstance(asked, Simulator) and asked.config.history_hours == 4
    none = open_source("sim:3", history_hours=0)
    assert isinstance(none, Simulator) and none.config.history_hours == 0
