"""The backtest's ledger rows, written to a real PostgreSQL through the ledger's own writer."""

from __future__ import annotations

from pathlib import Path

from titan.backtest import BacktestConfig, run
from titan.backtest.examples import sma_organism
from titan.backtest.ledger_export import export_events
from titan.core.ledger import Ledger
from titan.core.marketdata.timestamps import parse_time_ns

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "btc-perp-2022-01_1m.csv"


async def test_export_writes_every_event_once_and_the_ledger_agrees_with_the_result(pg_dsn: str) -> None:
    result = run(BacktestConfig(data=(str(DATA),), end_ns=parse_time_ns("2022-01-01T04:00")),
                 organism=sma_organism({"fast": 5, "slow": 12}))
    assert result.fills
    first = await export_events(pg_dsn, result.events)
    assert (first.written, first.already_there, first.refused) == (len(result.events), 0, ())
    again = await export_events(pg_dsn, result.events)
    assert (again.written, again.already_there) == (0, len(result.events))
    ledger = await Ledger.open(pg_dsn, migrate=False)
    try:
        fills = await ledger.fills("sma")
        equity = await ledger.equity_series("total")
    finally:
        await ledger.close()
    assert sorted((f.fill_id, f.price, f.quantity, f.fee) for f in fills) == sorted(
        (f.fill_id, f.price, f.quantity, f.fee) for f in result.fills)
    assert [e.equity for e in equity] == [str(p.equity) for p in result.equity["total"]]
