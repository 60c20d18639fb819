"""The Hunter as a process in the organism: simulator → market-data gateway → Hunter → execution
(paper, gRPC) → ledger, on real NATS and PostgreSQL, with an accepted Hunter signal filled and in
PostgreSQL.

The simulator starts with a 72 h history prelude, far too short for a 1D bias (a daily fractal needs
five days, a trend two breaks), so the Hunter runs with permissive, documented params: bias from
15m, location from 5m, trigger on 1m, entries in every session, no CVD confirmation. The scoring,
vetoes, POI selection, stops, targets and sizing are the shipped rules. The Brain runs the sample
TitanBrain at 10 000 of equity, where the Hunter has weight (at the sample's 1 000 it has none)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import yaml

from titan.core.catalog import Catalog
from titan.core.ledger import Ledger
from titan.core.money import D
from titan.v1 import trading_pb2

from ...e2e.procs import TITAN, Procs, clean_env, free_port
from ...util import http_get, wait_for

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
    organism = write_organism(tmp_path / "organism")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "hunter.key").write_text(secrets.token_hex(32))
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps(PERMISSIVE))
    grpc_port, phase_port = free_port(), free_port()
    env = clean_env(
        TITAN_PG_DSN=pg_dsn, TITAN_NATS_URL=nats_url, TITAN_NAMESPACE=catalog.namespace,
        TITAN_DATA_DIR=str(tmp_path / "data"), TITAN_HMAC_KEYS_DIR=str(keys),
        TITAN_CONTROL_KEY=secrets.token_hex(32), TITAN_PAPER_CAPITAL="10000",
        TITAN_EXECUTION_HOST="127.0.0.1", TITAN_EXECUTION_PORT=str(grpc_port),
        TITAN_METRICS_PORT="0", TITAN_HEALTH_PORT="0",
    )
    procs = Procs(tmp_path / "logs")
    ledger = await Ledger.open(pg_dsn)
    try:
        await procs.start("ledger", [*TITAN, "ledger", "writer"], env)
        await procs.start("execution", [*TITAN, "execution", "run"], env)
        await procs.start("brain", [*TITAN, "operator", "local", str(organism), "--interval", "1"], env)
        await procs.start("hunter", [
            *TITAN, "phase", "run", "hunter", "--key-file", str(keys / "hunter.key"), "--params", str(params_file),
            "--execution", f"127.0.0.1:{grpc_port}", "--http-port", str(phase_port)], env)

        async def ready() -> bool:
            status, body = await http_get(phase_port, "/healthz")
            return status == 200 and '"stream_connected": true' in body

        await wait_for(ready, timeout=45, interval=0.2)
        # After the phase listens (core NATS keeps no history); 240x real time once the prelude is
        # out (about 10 entries per simulated day with these params).
        await procs.start("gateway", [*TITAN, "data", "gateway", "--source", "sim:1", "--symbols", "BTCUSDT",
                                      "--speed", "240"], env)

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
        assert sum(D(f.quantity) * D(f.price) for f in mine) <= D(sig.legs[0].size_quote) * D("1.01")
    finally:
        codes = await procs.stop_all()
        await ledger.close()
    assert all(code == 0 for code in codes.values()), {p.name: p.output()[-2000:] for p in procs.started
                                                       if p.exit_code}
