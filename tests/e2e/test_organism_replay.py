"""The same chain on the real Binance trade tape: replayed inside a constructed history
(``scenario.py``) and rebased to now, it springs the BREAKOUT tripwire at 39,500."""

from __future__ import annotations

from pathlib import Path

import pytest

from titan.core.catalog import Catalog

from .chain import organism
from .scenario import SCAVENGER_PARAMS, SYMBOL, VENUE, build_scenario, write_organism

pytestmark = pytest.mark.slow


async def test_replayed_tape_to_fills(pg_dsn: str, nats_url: str, catalog: Catalog, tmp_path: Path) -> None:
    scenario = build_scenario(tmp_path / "scenario.tmd")
    org = write_organism(tmp_path / "organism")
    async with organism(tmp_path, pg_dsn, nats_url, catalog, org, SCAVENGER_PARAMS) as chain:
        started_ns = await chain.start_gateway("--source", f"replay:{scenario.path}", "--symbols", SYMBOL)
        decision = await chain.first_filled_decision(timeout=45 + scenario.burst_offset_s)
        sig = decision.signal
        assert sig.setup == "trap.breakout" and sig.metadata["trap_id"] == "BTCUSDT:BREAKOUT:LONG"
        assert sig.created_at_ns >= started_ns  # rebased to now: made from this run's events
        assert (sig.legs[0].venue, sig.legs[0].symbol) == (VENUE, SYMBOL)
        await chain.assert_filled(VENUE)
