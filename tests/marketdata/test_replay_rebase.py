"""A paced replay rebased to now: one constant shift of every timestamp (exchange/receive times,
candle open/close, funding times), history before the first live event unpaced, the live part paced
from the anchor; a flat-out replay keeps the files' own times."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from titan.core.marketdata import open_source
from titan.core.marketdata.events import (
    BUY,
    PERP,
    SPOT,
    candle_event,
    funding_event,
    open_interest_event,
    top_event,
    trade_event,
    ts_of,
)
from titan.core.marketdata.files import EventWriter
from titan.core.marketdata.replay import ReplaySource, shift_event
from titan.v1.market_pb2 import MarketEvent

S = 10**9
T0 = 1_609_459_200 * S  # 2021-01-01 00:00 UTC
H = 3600 * S


def history_and_tape() -> list[MarketEvent]:
    """Two closed hourly candles, a settled and a predicted funding, open interest (history), then a
    tape of trades and book tops (live) 0, 0.5, 1.5 and 3 s after the hour."""
    out = [
        candle_event("binance", "BTCUSDT", PERP, timeframe="1h", open_time_ns=T0 - 2 * H, close_time_ns=T0 - H,
                     open="100", high="101", low="99", close="100.5", volume="10"),
        funding_event("binance", "BTCUSDT", rate="0.0001", funding_time_ns=T0 - H, next_funding_time_ns=T0 + 7 * H,
                      settled=True, ts_ns=T0 - H + 5_000_000),
        candle_event("binance", "BTCUSDT", PERP, timeframe="1h", open_time_ns=T0 - H, close_time_ns=T0,
                     open="100.5", high="102", low="100", close="101", volume="12"),
        open_interest_event("binance", "BTCUSDT", open_interest="1000", ts_ns=T0),
        funding_event("binance", "BTCUSDT", rate="0.0002", funding_time_ns=T0 + 7 * H, next_funding_time_ns=0,
                      settled=False, ts_ns=T0),
    ]
    for i, dt in enumerate((0, S // 2, 3 * S // 2, 3 * S)):
        ts = T0 + 250_000_000 + dt
        out.append(top_event("binance", "BTCUSDT", PERP, bid_price="100.9", bid_size="1", ask_price="101.1",
                             ask_size="1", ts_ns=ts))
        out.append(trade_event("binance", "BTCUSDT", SPOT, price="101", size="0.5", taker_side=BUY, ts_ns=ts,
                               trade_id=str(i + 1)))
    return out


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.tmd"
    with EventWriter(path) as w:
        for ev in history_and_tape():
            w.write(ev)
    return path


def test_shift_event_moves_every_timestamp_and_keeps_unset_ones() -> None:
    c = shift_event(history_and_tape()[0], 5 * S)
    assert (c.exchange_ts_ns, c.receive_ts_ns) == (T0 - H + 5 * S, T0 - H + 5 * S)
    assert (c.candle.open_time_ns, c.candle.close_time_ns) == (T0 - 2 * H + 5 * S, T0 - H + 5 * S)
    f = shift_event(history_and_tape()[4], -7 * S)
    assert f.funding.funding_time_ns == T0 + 7 * H - 7 * S and f.funding.next_funding_time_ns == 0
    t = trade_event("x", "BTCUSDT", SPOT, price="1", size="1", taker_side=BUY, ts_ns=T0, receive_ts_ns=0)
    assert shift_event(t, S).receive_ts_ns == 0 and t.exchange_ts_ns == T0 + S


def test_rebase_shifts_all_events_by_one_constant_anchored_at_the_first_live_event(scenario: Path) -> None:
    original = list(ReplaySource([scenario]).events())
    target = 1_900_000_000 * S + 123_456_789
    src = ReplaySource([scenario], rebase=True, rebase_to_ns=target)
    rebased = list(src.events())
    first_live = T0 + 250_000_000  # the first top/trade; candles, funding and OI before it are history
    assert src.shift_ns == target - first_live and src.anchor_ns == target
    assert len(rebased) == len(original) == 13
    for a, b in zip(original, rebased, strict=True):
        assert b.exchange_ts_ns - a.exchange_ts_ns == src.shift_ns
        assert b.receive_ts_ns - a.receive_ts_ns == src.shift_ns
        assert (b.venue, b.symbol, b.instrument, b.seq, b.WhichOneof("payload")) == (
            a.venue, a.symbol, a.instrument, a.seq, a.WhichOneof("payload"))
        if a.HasField("candle"):
            assert b.candle.open_time_ns - a.candle.open_time_ns == src.shift_ns
            assert b.candle.close_time_ns - a.candle.close_time_ns == src.shift_ns
            assert (b.candle.high, b.candle.close) == (a.candle.high, a.candle.close)
        if a.HasField("funding") and a.funding.funding_time_ns:
            assert b.funding.funding_time_ns - a.funding.funding_time_ns == src.shift_ns
    assert next(ts_of(e) for e in rebased if e.HasField("trade")) == target
    # Not rebased: the files' own times.
    assert [ts_of(e) for e in ReplaySource([scenario]).events()] == [ts_of(e) for e in original]


def test_an_explicit_live_start_and_files_without_live_events(scenario: Path, tmp_path: Path) -> None:
    src = ReplaySource([scenario], rebase=True, rebase_to_ns=10 * H, live_from_ns=T0 - H)
    events = list(src.events())
    assert src.shift_ns == 10 * H - (T0 - H)
    assert events[0].candle.close_time_ns == T0 - H + src.shift_ns
    only_candles = tmp_path / "candles.tmd"
    with EventWriter(only_candles) as w:
        for ev in history_and_tape()[:3]:
            w.write(ev)
    src = ReplaySource([only_candles], rebase=True, rebase_to_ns=10 * H)
    assert ts_of(next(iter(src.events()))) == 10 * H  # no live event: anchored at the first event


async def test_paced_rebased_stream_sends_history_at_once_then_paces_from_the_anchor(scenario: Path) -> None:
    clock = [100.0]
    slept: list[float] = []

    async def fake_sleep(dt: float) -> None:
        slept.append(dt)
        clock[0] += dt

    wall = 1_900_000_000 * S
    src = ReplaySource([scenario], speed=1.0, sleep=fake_sleep, monotonic=lambda: clock[0], rebase=True,
                       wall_ns=lambda: wall)
    seen: list[tuple[float, MarketEvent]] = []
    async for ev in src.stream():
        seen.append((clock[0] - 100.0, ev))
    history = [(t, e) for t, e in seen if ts_of(e) < wall]
    assert len(history) == 5 and all(t == 0 for t, _ in history)
    live = [(t, e) for t, e in seen if ts_of(e) >= wall]
    assert ts_of(live[0][1]) == wall and live[0][0] == 0
    for t, e in live:  # every live event is yielded when the (rebased) wall clock reaches its stamp
        assert t == pytest.approx((ts_of(e) - wall) / 1e9, abs=1e-9)
    assert sum(slept) == pytest.approx(3.0)


def test_open_source_rebases_paced_replays_only(scenario: Path) -> None:
    before = time.time_ns()
    paced = open_source(f"replay:{scenario}", speed=1.0)
    assert isinstance(paced, ReplaySource) and paced.rebase
    events = list(paced.events())
    first_trade = next(e for e in events if e.HasField("trade"))
    assert before <= first_trade.exchange_ts_ns <= time.time_ns()
    assert all(e.exchange_ts_ns < first_trade.exchange_ts_ns for e in events[:5])
    flat = open_source(f"replay:{scenario}")
    assert isinstance(flat, ReplaySource) and not flat.rebase
    assert [ts_of(e) for e in flat.events()] == [ts_of(e) for e in history_and_tape()]
