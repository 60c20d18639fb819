"""The organism's data path as real processes on real NATS and PostgreSQL, for the end-to-end tests
(``test_organism_*``, the phases' process tests): ledger writer, execution (paper), the Brain's local
driver and a phase, then a market-data gateway; checks of what reached the ledger. Every process must stop cleanly on
SIGTERM."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from titan.core.catalog import Catalog
from titan.core.ledger import Ledger
from titan.core.money import to_decimal
from titan.v1.events_pb2 import SignalDecision

from ..util import http_get, wait_for
from .procs import TITAN, Proc, Procs, clean_env, free_port


@dataclass
class Chain:
    procs: Procs
    env: dict[str, str]
    ledger: Ledger
    phase: Proc

    async def start_gateway(self, *args: str, speed: float = 1) -> int:
        """Start the gateway (after the phase listens: core NATS keeps no history); its start time."""
        started_ns = time.time_ns()
        await self.procs.start("gateway", [*TITAN, "data", "gateway", "--speed", f"{speed:g}", *args], self.env)
        return started_ns

    async def first_filled_decision(self, timeout: float) -> SignalDecision:
        async def filled() -> bool:
            decisions = await self.ledger.decisions("scavenger", accepted=True)
            return bool(decisions) and await self.ledger.fill_count("scavenger") > 0

        await wait_for(filled, timeout=timeout, interval=0.25)
        await wait_for(lambda: self.ledger.equity_series("total"), timeout=30, interval=0.25)
        return (await self.ledger.decisions("scavenger", accepted=True))[-1]  # newest first

    async def assert_filled(self, venue: str) -> None:
        """Every fill belongs to an accepted signal's orders and stays within its size; the positions
        are those of the filled signals, long after a buy and short after a sell; equity is recorded."""
        decisions = await self.ledger.decisions("scavenger", accepted=True)
        fills = await self.ledger.fills("scavenger")
        assert fills
        by_order = {oid: d.signal.legs[0] for d in decisions for oid in d.ack.client_order_ids}
        assert {f.client_order_id for f in fills} <= set(by_order)
        for d in decisions:
            leg = d.signal.legs[0]
            mine = [f for f in fills if f.client_order_id in set(d.ack.client_order_ids)]
            for oid in d.ack.client_order_ids:  # the order: size_quote at its price, never overfilled
                order = await self.ledger.order(oid)
                assert order is not None
                quantity = to_decimal(order.quantity)
                assert not order.price or quantity * to_decimal(order.price) <= to_decimal(leg.size_quote)
                assert sum(to_decimal(f.quantity) for f in mine if f.client_order_id == oid) <= quantity
            assert all(f.venue == venue and f.symbol == leg.symbol and f.side == leg.side for f in mine)
        positions = {p.symbol: to_decimal(p.quantity) for p in await self.ledger.positions("scavenger")}
        sides = {by_order[f.client_order_id].symbol: by_order[f.client_order_id].side for f in fills}
        assert set(positions) == set(sides)
        assert all((positions[sym] > 0) == (side == 1) for sym, side in sides.items())
        equity = await self.ledger.equity_series("total")
        assert equity and all(to_decimal(e.equity) > 0 for e in equity)
        assert "TRAP_FIRED" in self.phase.output()


@asynccontextmanager
async def organism(tmp_path: Path, pg_dsn: str, nats_url: str, catalog: Catalog, organism_dir: Path,
                   params: dict[str, object], *, phase: str = "scavenger", capital: int = 1000,
                   ) -> AsyncIterator[Chain]:
    """Ledger writer, execution, the Brain's local driver and one phase (the Scavenger unless named),
    running and connected; paper capital ``capital``."""
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / f"{phase}.key").write_text(secrets.token_hex(32))
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps(params))
    grpc_port, phase_port = free_port(), free_port()
    env = clean_env(
        TITAN_PG_DSN=pg_dsn, TITAN_NATS_URL=nats_url, TITAN_NAMESPACE=catalog.namespace,
        TITAN_DATA_DIR=str(tmp_path / "data"), TITAN_HMAC_KEYS_DIR=str(keys),
        TITAN_CONTROL_KEY=secrets.token_hex(32), TITAN_PAPER_CAPITAL=str(capital),
        TITAN_EXECUTION_HOST="127.0.0.1", TITAN_EXECUTION_PORT=str(grpc_port),
        TITAN_METRICS_PORT="0", TITAN_HEALTH_PORT="0",
    )
    procs = Procs(tmp_path / "logs")
    ledger = await Ledger.open(pg_dsn)  # migrations in place before anyone writes
    try:
        await procs.start("ledger", [*TITAN, "ledger", "writer"], env)
        await procs.start("execution", [*TITAN, "execution", "run"], env)
        await procs.start("brain", [*TITAN, "operator", "local", str(organism_dir), "--interval", "1"], env)
        process = await procs.start(phase, [
            *TITAN, "phase", "run", phase, "--key-file", str(keys / f"{phase}.key"),
            "--params", str(params_file), "--execution", f"127.0.0.1:{grpc_port}", "--http-port", str(phase_port)],
            env)

        async def phase_ready() -> bool:
            status, body = await http_get(phase_port, "/healthz")
            return status == 200 and '"stream_connected": true' in body

        await wait_for(phase_ready, timeout=45, interval=0.2)
        yield Chain(procs, env, ledger, process)
    finally:
        codes = await procs.stop_all()
        await ledger.close()
    assert codes == {"gateway": 0, phase: 0, "brain": 0, "execution": 0, "ledger": 0}, {
        p.name: p.output()[-2000:] for p in procs.started if p.exit_code}
