"""Parity: `titan up --source replay:FILE` and `titan backtest` on the same file and organism trade
the same — the same signal decided the same way, the same fills (price, quantity, fee, side).

What differs, by design, is listed and bounded here:
* times and the ids derived from them: `titan up` replays the file rebased to now (every timestamp
  shifted by one constant) and the Scavenger's signal id carries its creation time;
* the signal -> fill delay: real in `titan up`, the latency model's in the backtest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from titan.backtest import BacktestConfig, BacktestResult, LatencyModel, run

from .scenario import Scenario, build_scenario, write_organism
from .test_titan_up import Run, finish, ledger_of, scratch_dir, start_up

pytestmark = pytest.mark.slow

MAX_LIVE_DELAY_NS = 250 * 10**6  # signal created -> filled in `titan up` on a loaded 2-core machine


@pytest.fixture(scope="module")
def files() -> Iterator[tuple[Scenario, Path, Path]]:
    with scratch_dir("titan-parity-") as where:
        yield build_scenario(where / "scenario.tmd"), write_organism(where / "organism"), where


@pytest.fixture(scope="module")
async def live(files: tuple[Scenario, Path, Path]) -> Run:
    scenario, organism, where = files
    data_dir = where / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    return await finish(await start_up(data_dir, scenario, organism, "50s", "parity"))


@pytest.fixture(scope="module")
def backtest(files: tuple[Scenario, Path, Path]) -> BacktestResult:
    scenario, organism, _ = files
    return run(BacktestConfig(data=(str(scenario.path),), organism=organism, latency=LatencyModel()))


async def test_titan_up_and_the_backtest_fill_the_same(live: Run, backtest: BacktestResult) -> None:
    assert live.exit_code == 0, live.text()[-3000:]
    async with ledger_of(live.data_dir) as ledger:
        fills = await ledger.fills("scavenger")
        decisions = await ledger.decisions("scavenger", limit=1000)
    assert fills and backtest.fills, "the scenario's burst must trade in both drivers"

    def traded(fill: object) -> tuple[object, ...]:
        return (fill.symbol, fill.instrument, fill.side, fill.price, fill.quantity, fill.fee, fill.maker)  # type: ignore[attr-defined]

    assert [traded(f) for f in fills] == [traded(f) for f in backtest.fills]

    # The decisions: the same setup, legs and sizes; accepted in both.
    live_signals = [d.signal for d in decisions if d.ack.accepted]
    bt_signals = [e.decision.signal for e in backtest.events
                  if e.WhichOneof("body") == "decision" and e.decision.ack.accepted]
    assert len(live_signals) == len(bt_signals) == len({f.client_order_id for f in fills})
    for a, b in zip(live_signals, bt_signals, strict=True):
        assert (a.setup, list(a.legs), a.stop_price, list(a.target_prices)) == (
            b.setup, list(b.legs), b.stop_price, list(b.target_prices))

    # The differences, bounded: the signal -> fill delay is the latency model's in the backtest
    # and real (a few ms) in `titan up`.
    by_signal = {d.ack.client_order_ids[0]: d.signal.created_at_ns for d in decisions if d.ack.accepted}
    live_delays = [f.ts_ns - by_signal[f.client_order_id] for f in fills]
    assert all(0 < delay <= MAX_LIVE_DELAY_NS for delay in live_delays), live_delays
    bt_created = {e.decision.ack.client_order_ids[0]: e.decision.signal.created_at_ns for e in backtest.events
                  if e.WhichOneof("body") == "decision" and e.decision.ack.accepted}
    assert [f.ts_ns - bt_created[f.client_order_id] for f in backtest.fills] == [LatencyModel().signal_ns] * len(
        backtest.fills)
