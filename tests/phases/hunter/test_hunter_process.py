"""The Hunter as a process in the organism: simulator → market-data gateway → Hunter → execution
(paper, gRPC) → ledger, on real NATS and PostgreSQL, with an accepted Hunter signal filled and in
PostgreSQL.

The simulator starts with a 72 h history prelude, far too short for a 1D bias (a daily fractal needs
five days, a trend two breaks), so the Hunter runs with permissive, documented params: bias from
15m, location from 5m, trigger on 1m, entries in every session, no CVD confirmation. The scoring,
vetoes, POI selection, stops, targets and sizing are the shipped rules. The Brain runs the sample
TitanBrain at 10 000 of equity, where the Hunter has weight (at the sample's 1 000 it has none)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from titan.core.catalog import Catalog
from titan.core.money import to_decimal
from titan.v1 import trading_pb2

from ...e2e.chain import organism
from ...util import wait_for

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[3] / "crds" / "samples"
PERMISSIVE = {
    "symbols": ["BTCUSDT"], "venue": "sim", "biasTimeframe": "15m", "locationTimeframe": "5m", "timeframe": "1m",
    "entrySessions": ["ASIAN", "LONDON", "NY", "DEAD_ZONE"], "requireCvdConfirmation": False,
}


def write_organism(directory: Path) -> Path:
    """The sample TitanBrain at 10 000 of equity and the sample Hunter TitanPhase with PERMISSIVE params."""
    directory.mkdir(parents=True)
    brain = yaml.safe_load((SAMPLES / "titanbrain.yaml").read_text())
    brain["spec"]["initialEquity"] = 10000
    (directory / "titanbrain.yaml").write_text(yaml.safe_dump(brain, sort_keys=False))
    phase = yaml.safe_load((SAMPLES / "titanphase-hunter.yaml").read_text())
    phase["spec"]["symbols"] = ["BTCUSDT"]
    phase["spec"]["params"] = PERMISSIVE
    (directory / "titanphase-hunter.yaml").write_text(yaml.safe_dump(phase, sort_keys=False))
    return directory


async def test_simulator_to_hunter_to_paper_fill_in_postgres(
    pg_dsn: str, nats_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    org = write_organism(tmp_path / "organism")
    async with organism(tmp_path, pg_dsn, nats_url, catalog, org, PERMISSIVE, phase="hunter", capital=10_000) as chain:
        # After the phase listens (core NATS keeps no history); 240x real time once the prelude is
        # out (about 10 entries per simulated day with these params).
        await chain.start_gateway("--source", "sim:1", "--symbols", "BTCUSDT", speed=240)
        ledger = chain.ledger

        async def filled() -> bool:
            return bool(await ledger.decisions("hunter", accepted=True)) and await ledger.fill_count("hunter") > 0

        await wait_for(filled, timeout=240, interval=0.5)
        decisions = await ledger.decisions("hunter", accepted=True)
        entries = [d for d in decisions if d.signal.intent == trading_pb2.INTENT_OPEN]
        assert entries, [d.signal.intent for d in decisions]
        sig = entries[-1].signal                                       # the first entry (newest first)
        assert sig.phase_id == "hunter" and sig.setup.startswith("hunter.")
        assert sig.metadata["poi_type"] in ("FVG", "ORDER_BLOCK", "LIQUIDITY_POOL")
        assert 0 < sig.confidence <= 1 and sig.stop_price and sig.target_prices
        fills = await ledger.fills("hunter")
        mine = [f for f in fills if f.client_order_id in set(entries[-1].ack.client_order_ids)]
        assert mine and all(f.symbol == "BTCUSDT" and f.side == sig.legs[0].side for f in mine)
        size_quote = to_decimal(sig.legs[0].size_quote)
        assert sum(to_decimal(f.quantity) * to_decimal(f.price) for f in mine) <= size_quote * to_decimal("1.01")
