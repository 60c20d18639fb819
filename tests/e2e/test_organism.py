"""The organism's data path as real processes on real NATS and PostgreSQL: the market-data gateway
replays the scenario rebased to now → the Scavenger process springs the tripwire and signs a signal
→ execution (paper) accepts and fills it over gRPC → the ledger writer puts the fill and equity
snapshots into PostgreSQL; the Brain's local driver supplies the budget. Every process stops cleanly
on SIGTERM."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from titan.core.catalog import Catalog
from titan.core.ledger import Ledger
from titan.core.money import D

from ..util import wait_for
from .procs import TITAN, Procs, clean_env, free_port, http_get
from .scenario import SCAVENGER_PARAMS, SYMBOL, VENUE, build_scenario, write_organism

pytestmark = pytest.mark.slow


async def test_gateway_scavenger_execution_ledger(pg_dsn: str, nats_url: str, catalog: Catalog,
                                                   tmp_path: Path) -> None:
    scenario = build_scenario(tmp_path / "scenario.tmd")
    organism = write_organism(tmp_path / "organism")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "scavenger.key").write_text(secrets.token_hex(32))
    params = tmp_path / "params.json"
    params.write_text(json.dumps(SCAVENGER_PARAMS))
    grpc_port, phase_port = free_port(), free_port()
    env = clean_env(
        TITAN_PG_DSN=pg_dsn, TITAN_NATS_URL=nats_url, TITAN_NAMESPACE=catalog.namespace,
        TITAN_DATA_DIR=str(tmp_path / "data"), TITAN_HMAC_KEYS_DIR=str(keys),
        TITAN_CONTROL_KEY=secrets.token_hex(32), TITAN_PAPER_CAPITAL="1000",
        TITAN_EXECUTION_HOST="127.0.0.1", TITAN_EXECUTION_PORT=str(grpc_port),
        TITAN_METRICS_PORT="0", TITAN_HEALTH_PORT="0",
    )
    procs = Procs(tmp_path / "logs")
    ledger = await Ledger.open(pg_dsn)  # migrations in place before anyone writes
    try:
        await procs.start("ledger", [*TITAN, "ledger", "writer"], env)
        await procs.start("execution", [*TITAN, "execution", "run"], env)
        await procs.start("brain", [*TITAN, "operator", "local", str(organism), "--interval", "1"], env)
        phase = await procs.start("scavenger", [
            *TITAN, "phase", "run", "scavenger", "--key-file", str(keys / "scavenger.key"),
            "--params", str(params), "--execution", f"127.0.0.1:{grpc_port}", "--http-port", str(phase_port)], env)

        async def phase_ready() -> bool:
            status, body = await http_get(phase_port, "/healthz")
            return status == 200 and '"stream_connected": true' in body

        # The phase subscribes before the gateway starts: core NATS keeps no history for late joiners.
        await wait_for(phase_ready, timeout=45, interval=0.2)
        started_ns = time.time_ns()
        await procs.start("gateway", [*TITAN, "data", "gateway", "--source", f"replay:{scenario.path}",
                                      "--speed", "1", "--symbols", SYMBOL], env)

        async def filled() -> bool:
            decisions = await ledger.decisions("scavenger", accepted=True)
            return bool(decisions) and await ledger.fill_count("scavenger") > 0

        await wait_for(filled, timeout=45 + scenario.burst_offset_s, interval=0.25)
        await wait_for(lambda: ledger.equity_series("total"), timeout=30, interval=0.25)

        decision = (await ledger.decisions("scavenger", accepted=True))[0]
        sig = decision.signal
        assert sig.setup == "trap.breakout" and sig.metadata["trap_id"] == "BTCUSDT:BREAKOUT:LONG"
        assert sig.created_at_ns >= started_ns  # rebased to now: made from this run's events
        assert (sig.legs[0].venue, sig.legs[0].symbol) == (VENUE, SYMBOL)
        fills = await ledger.fills("scavenger")
        assert {f.client_order_id for f in fills} <= set(decision.ack.client_order_ids)
        assert sum(D(f.quantity) * D(f.price) for f in fills) <= D(sig.legs[0].size_quote)
        assert all(f.venue == VENUE and f.symbol == SYMBOL and D(f.quantity) > 0 for f in fills)
        positions = await ledger.positions("scavenger")
        assert [p.symbol for p in positions] == [SYMBOL] and D(positions[0].quantity) > 0
        equity = await ledger.equity_series("total")
        assert equity and all(D(e.equity) > 0 for e in equity)
        assert "TRAP_FIRED" in phase.output()
    finally:
        codes = await procs.stop_all()
        await ledger.close()
    assert codes == {"gateway": 0, "scavenger": 0, "brain": 0, "execution": 0, "ledger": 0}, {
        p.name: p.output()[-2000:] for p in procs.started if p.exit_code}
