"""The Sentinel as a process in the organism: simulator (spot + perp with basis and funding) ->
market-data gateway -> Sentinel -> execution (paper, gRPC) -> ledger, on real NATS and PostgreSQL: a
hedged position is opened as one unit, funding settles on its perp leg, it is closed as one unit,
and the net delta of every unit is within the tolerance throughout.

Permissive, documented params so one simulated day gives an entry at once and a close after one
funding settlement: a basis sample every 10 s over a 30-sample window, EXPAND at z >= 1.5 with any
confidence, the round-trip costs spread over a year (so the carry is essentially the expected
funding), the paper venue's default fees, no convergence or funding-flip exit, and a 9 h holding
limit (the simulator settles funding every 8 h from 00:00 UTC). The Brain runs the sample
TitanBrain at 100 000 of equity, where the Sentinel has weight."""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from titan.core.catalog import Catalog
from titan.core.ledger import Ledger
from titan.v1 import common_pb2, trading_pb2

from ..e2e.procs import TITAN, Procs, clean_env, free_port
from ..util import http_get, wait_for
from .helpers import SENTINEL_SIM_PERMISSIVE

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"
SPOT, PERP = common_pb2.INSTRUMENT_KIND_SPOT, common_pb2.INSTRUMENT_KIND_PERP
PERMISSIVE = {**SENTINEL_SIM_PERMISSIVE, "maxHoldingHours": "9"}


def write_organism(directory: Path) -> Path:
    directory.mkdir(parents=True)
    brain = yaml.safe_load((SAMPLES / "titanbrain.yaml").read_text())
    brain["spec"]["initialEquity"] = 100000
    (directory / "titanbrain.yaml").write_text(yaml.safe_dump(brain, sort_keys=False))
    phase = yaml.safe_load((SAMPLES / "titanphase-sentinel.yaml").read_text())
    phase["spec"]["symbols"] = ["BTCUSDT"]
    phase["spec"]["params"] = PERMISSIVE
    (directory / "titanphase-sentinel.yaml").write_text(yaml.safe_dump(phase, sort_keys=False))
    return directory


async def test_simulator_to_sentinel_hedged_open_funding_close_in_postgres(
    pg_dsn: str, nats_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    organism = write_organism(tmp_path / "organism")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "sentinel.key").write_text(secrets.token_hex(32))
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps(PERMISSIVE))
    grpc_port, phase_port = free_port(), free_port()
    env = clean_env(
        TITAN_PG_DSN=pg_dsn, TITAN_NATS_URL=nats_url, TITAN_NAMESPACE=catalog.namespace,
        TITAN_DATA_DIR=str(tmp_path / "data"), TITAN_HMAC_KEYS_DIR=str(keys),
        TITAN_CONTROL_KEY=secrets.token_hex(32), TITAN_PAPER_CAPITAL="100000",
        TITAN_EXECUTION_HOST="127.0.0.1", TITAN_EXECUTION_PORT=str(grpc_port),
        TITAN_METRICS_PORT="0", TITAN_HEALTH_PORT="0",
    )
    procs = Procs(tmp_path / "logs")
    ledger = await Ledger.open(pg_dsn)
    try:
        await procs.start("ledger", [*TITAN, "ledger", "writer"], env)
        await procs.start("execution", [*TITAN, "execution", "run"], env)
        await procs.start("brain", [*TITAN, "operator", "local", str(organism), "--interval", "1"], env)
        await procs.start("sentinel", [
            *TITAN, "phase", "run", "sentinel", "--key-file", str(keys / "sentinel.key"),
            "--params", str(params_file), "--execution", f"127.0.0.1:{grpc_port}", "--http-port", str(phase_port)],
            env)

        async def ready() -> bool:
            status, body = await http_get(phase_port, "/healthz")
            return status == 200 and '"stream_connected": true' in body

        await wait_for(ready, timeout=45, interval=0.2)
        await procs.start("gateway", [*TITAN, "data", "gateway", "--source", "sim:3", "--symbols", "BTCUSDT",
                                      "--speed", "1500"], env)

        async def closed_after_funding() -> bool:
            paid = await ledger.funding_payments()
            if not any(p.phase_id == "sentinel" for p in paid):
                return False
            decisions = await ledger.decisions("sentinel", accepted=True)
            if not any(d.signal.intent == trading_pb2.INTENT_CLOSE for d in decisions):
                return False
            rows = await ledger.positions("sentinel", include_flat=True)
            return bool(rows) and all(Decimal(p.quantity) == 0 for p in rows)

        await wait_for(closed_after_funding, timeout=300, interval=1.0)
        decisions = await ledger.decisions("sentinel", accepted=True)
        fills = await ledger.fills("sentinel")
        units = [d for d in decisions if "hedge" in d.signal.metadata]
        assert any(d.signal.intent == trading_pb2.INTENT_OPEN for d in units)
        for d in units:   # every unit: spot and perp filled alike (net delta 0 within the lot)
            mine = [f for f in fills if f.client_order_id in set(d.ack.client_order_ids)]
            spot = sum((Decimal(f.quantity) for f in mine if f.instrument == SPOT), Decimal(0))
            perp = sum((Decimal(f.quantity) for f in mine if f.instrument == PERP), Decimal(0))
            assert spot == perp, (d.signal.signal_id, spot, perp, d.ack.detail)
            assert d.ack.detail.startswith("hedge "), d.ack.detail
        # delta within tolerance throughout: replay the fills unit by unit, in time order
        by_cid = {cid: d.signal.signal_id for d in decisions for cid in d.ack.client_order_ids}
        groups: dict[str, list[trading_pb2.Fill]] = {}
        for f in fills:
            groups.setdefault(by_cid.get(f.client_order_id, f.client_order_id), []).append(f)
        spot_qty = perp_qty = Decimal(0)
        for group in sorted(groups.values(), key=lambda g: min(f.ts_ns for f in g)):
            for f in group:
                signed = Decimal(f.quantity) if f.side == common_pb2.SIDE_BUY else -Decimal(f.quantity)
                if f.instrument == SPOT:
                    spot_qty += signed
                else:
                    perp_qty += signed
            assert abs(spot_qty + perp_qty) <= Decimal("0.02") * max(spot_qty, Decimal(0)), (spot_qty, perp_qty)
        paid = [p for p in await ledger.funding_payments() if p.phase_id == "sentinel"]
        assert paid and all(Decimal(p.position_quantity) < 0 for p in paid)   # on the short perp
        assert spot_qty == 0 and perp_qty == 0
    finally:
        codes = await procs.stop_all()
        await ledger.close()
    assert all(code == 0 for code in codes.values()), {p.name: p.output()[-2000:] for p in procs.started
                                                       if p.exit_code}
