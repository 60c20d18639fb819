"""Same inputs, same ledger: two runs give byte-identical events and the same fingerprint."""

from __future__ import annotations

import hashlib

import pytest

from titan.backtest import BacktestConfig, BacktestResult, run
from titan.backtest.record import FINGERPRINTED

# Half an hour of the simulator (after its 72 h history) with a scripted stop-run 10 minutes in:
# the Scavenger fires on both symbols and the paper venue fills it.
CONFIG = BacktestConfig(data=("sim:3",), sim_hours=0.5, sim_stop_runs_s=(600,), phases=("scavenger",))


@pytest.fixture(scope="module")
def runs() -> tuple[BacktestResult, BacktestResult]:
    return run(CONFIG), run(CONFIG)


def test_two_runs_give_the_same_fingerprint_and_byte_identical_ledger_rows(
        runs: tuple[BacktestResult, BacktestResult]) -> None:
    first, second = runs
    assert first.fills, "the scripted stop-run must trade, or this test proves nothing"
    assert first.fingerprint == second.fingerprint
    assert [e.SerializeToString(deterministic=True) for e in first.events] == [
        e.SerializeToString(deterministic=True) for e in second.events]


def test_the_fingerprint_is_the_documented_hash_of_the_ledger(runs: tuple[BacktestResult, BacktestResult]) -> None:
    result = runs[0]
    digest = hashlib.sha256()
    for event in result.events:
        kind = event.WhichOneof("body")
        if kind in FINGERPRINTED:
            body = getattr(event, kind).SerializeToString(deterministic=True).hex()
            digest.update(f"{kind}\x1f{event.event_id}\x1f{body}\n".encode())
    assert digest.hexdigest() == result.fingerprint


def test_a_different_run_gives_a_different_fingerprint(runs: tuple[BacktestResult, BacktestResult]) -> None:
    other = run(BacktestConfig(data=("sim:3",), sim_hours=0.5, sim_stop_runs_s=(660,), phases=("scavenger",)))
    assert other.fills and other.fingerprint != runs[0].fingerprint


def test_what_the_scavenger_traded_went_through_the_gate_and_the_paper_venue(
        runs: tuple[BacktestResult, BacktestResult]) -> None:
    result = runs[0]
    decisions = [e.decision for e in result.events if e.WhichOneof("body") == "decision"]
    accepted = {d.signal.signal_id for d in decisions if d.ack.accepted}
    assert accepted and all(d.signal.signature for d in decisions)  # signed by the phase, checked by the gate
    orders = result.orders
    for fill in result.fills:
        order = orders[fill.client_order_id]
        assert order.signal_id in accepted and order.phase_id == "scavenger"
        assert fill.ts_ns >= next(d.signal.created_at_ns for d in decisions if d.signal.signal_id == order.signal_id)
    assert result.equity["total"][-1].ts_ns >= result.fills[-1].ts_ns
