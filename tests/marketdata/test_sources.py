"""Source selection (`titan up` picks sim / replay:PATH / live), event helpers and the CLI."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from titan.cli.data_cmd import app
from titan.core.catalog import Catalog
from titan.core.clock import ManualClock
from titan.core.marketdata import OfflineSource, Source, open_source
from titan.core.marketdata.events import (
    BUY,
    PERP,
    SPOT,
    candle_event,
    depth_event,
    funding_event,
    kind_of,
    liquidation_event,
    mark_event,
    open_interest_event,
    price_of,
    size_of,
    subject_of,
    top_event,
    trade_event,
)
from titan.core.marketdata.files import read_file
from titan.core.marketdata.live import LiveSource
from titan.core.marketdata.replay import ReplaySource
from titan.core.marketdata.sim import SimConfig, Simulator

from .conftest import BYBIT_BOOK, TRADES

T = 1_700_000_000 * 10**9


def test_helpers_build_and_read_every_kind() -> None:
    cat = Catalog()
    evs = [
        trade_event("binance", "BTCUSDT", SPOT, price="100.50", size=Decimal("0.10"), taker_side=BUY, ts_ns=T),
        top_event("bybit", "BTCUSDT", PERP, bid_price="99", bid_size="1", ask_price="101", ask_size="2", ts_ns=T),
        depth_event("bybit", "BTCUSDT", PERP, bids=[("99", "1")], asks=[("101", "2")], snapshot=True, ts_ns=T),
        funding_event("bybit", "BTCUSDT", rate="0.0001", funding_time_ns=T, next_funding_time_ns=T + 1,
                      settled=True, ts_ns=T),
        mark_event("bybit", "BTCUSDT", mark_price="100.1", index_price="100", ts_ns=T),
        open_interest_event("bybit", "BTCUSDT", open_interest="5", ts_ns=T),
        liquidation_event("bybit", "BTCUSDT", side=BUY, price="102", size="3", ts_ns=T),
        candle_event("sim", "BTCUSDT", PERP, timeframe="1m", open_time_ns=T - 60 * 10**9, close_time_ns=T,
                     open="1", high="2", low="0.5", close="1.5", volume="10"),
    ]
    assert [kind_of(e).value for e in evs] == ["trade", "top", "depth", "funding", "mark", "open_interest",
                                               "liquidation", "candle"]
    assert evs[0].trade.price == "100.5" and evs[0].trade.size == "0.1"  # canonical decimal strings
    assert [price_of(e) for e in evs] == [Decimal("100.5"), Decimal(100), None, None, Decimal("100.1"), None,
                                          Decimal(102), Decimal("1.5")]
    assert size_of(evs[0]) == Decimal("0.1")
    assert evs[7].exchange_ts_ns == T  # a candle is stamped at its close
    assert subject_of(cat, evs[0]) == "titan.md.binance.BTCUSDT.trade"
    assert subject_of(cat, evs[5]) == "titan.md.bybit.BTCUSDT.open_interest"
    assert all(e.receive_ts_ns == e.exchange_ts_ns for e in evs)


def test_open_source_specs(tmp_path: Path, data_dir: Path) -> None:
    sim = open_source("sim:9", start_ns=T)
    assert isinstance(sim, Simulator) and isinstance(sim, OfflineSource) and sim.config.seed == 9
    assert sim.speed is None  # a given start means a backtest: flat out
    before = time.time_ns()
    live_sim = open_source("sim")
    assert isinstance(live_sim, Simulator) and live_sim.speed == 1.0  # titan up: real time from now
    first = next(iter(live_sim.events()))
    assert live_sim.config.start_ns >= before
    assert live_sim.config.history_hours == 72
    assert first.exchange_ts_ns < live_sim.config.start_ns  # the history prelude comes first
    rep = open_source(f"replay:{TRADES},{BYBIT_BOOK}")
    assert isinstance(rep, ReplaySource) and isinstance(rep, OfflineSource) and len(rep.files) == 2
    live = open_source("live", symbols=["BTCUSDT"])
    assert isinstance(live, LiveSource) and isinstance(live, Source)
    assert {f.venue for f in live.config.feeds} == {"binance", "bybit"}
    with pytest.raises(ValueError):
        open_source("tape:foo")
    with pytest.raises(ValueError):
        open_source("replay:")


async def test_sim_stream_drives_a_manual_clock() -> None:
    clock = ManualClock()
    cfg = SimConfig(seed=2, symbols=("ETHUSDT",), start_ns=T, end_ns=T + 120 * 10**9)
    src = Simulator(cfg, clock=clock)
    got = [ev async for ev in src.stream()]
    assert got and clock.now_ns() == got[-1].exchange_ts_ns
    assert [e.SerializeToString() for e in got] == [e.SerializeToString() for e in Simulator(cfg).events()]


async def test_sim_real_time_pacing_is_speed_controlled() -> None:
    now = [0.0]

    async def fake_sleep(dt: float) -> None:
        now[0] += dt
        await asyncio.sleep(0)

    cfg = SimConfig(seed=2, symbols=("ETHUSDT",), start_ns=T, end_ns=T + 300 * 10**9)
    src = Simulator(cfg, speed=60.0, sleep=fake_sleep, monotonic=lambda: now[0])
    got = [ev async for ev in src.stream()]
    span = (got[-1].exchange_ts_ns - got[0].exchange_ts_ns) / 1e9
    assert now[0] == pytest.approx(span / 60.0, rel=1e-6)


def test_cli_synth_writes_the_simulated_days(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["synth", "--days", "0.02", "--seed", "4", "--out", str(tmp_path),
                                      "--symbols", "BTCUSDT", "--start", "2024-03-01"])
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("sim-seed4-*.tmd.gz"))
    assert [f.name for f in files] == ["sim-seed4-2024-03-01.tmd.gz"]
    written = list(read_file(files[0]))
    start = 1_709_251_200 * 10**9  # 2024-03-01 00:00 UTC
    cfg = SimConfig(seed=4, symbols=("BTCUSDT",), start_ns=start)
    expected = list(Simulator(cfg).events(end_ns=start + int(0.02 * 86_400 * 10**9)))
    assert written == expected


def test_cli_replay_writes_merged_file(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "merged.csv"
    result = CliRunner().invoke(app, ["replay", str(TRADES), str(BYBIT_BOOK), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert list(read_file(out)) == list(ReplaySource([TRADES, BYBIT_BOOK]).events())
