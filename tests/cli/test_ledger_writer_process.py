"""`titan ledger writer` as a real process: events published to JetStream land in PostgreSQL once,
and SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg

from tests.util import wait_for
from titan.core.bus import connect, ensure_jetstream, new_event_id, publish_event
from titan.core.catalog import Catalog
from titan.v1 import common_pb2, events_pb2, trading_pb2


def _fill_event(n: int) -> events_pb2.Event:
    fill = trading_pb2.Fill(
        venue="paper", fill_id=f"f{n}", client_order_id=f"o{n}", phase_id="scavenger", symbol="BTCUSDT",
        instrument=common_pb2.INSTRUMENT_KIND_PERP, side=common_pb2.SIDE_BUY, price="42000.5", quantity="0.001",
        fee="0.0231", ts_ns=1_700_000_000_000_000_000 + n,
    )
    return events_pb2.Event(
        event_id=new_event_id("fill", "paper", fill.fill_id), source="execution", ts_ns=fill.ts_ns, fill=fill
    )


async def test_writer_process_persists_events_once(pg_dsn: str, nats_url: str, catalog: Catalog) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")} | {
        "TITAN_PG_DSN": pg_dsn, "TITAN_NATS_URL": nats_url, "TITAN_NAMESPACE": catalog.namespace,
        "TITAN_METRICS_PORT": "0", "TITAN_HEALTH_PORT": "0",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "titan.cli", "ledger", "writer", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    nc = await connect(nats_url, "test")
    try:
        js = nc.jetstream()
        await ensure_jetstream(js, catalog)
        for n in range(20):
            await publish_event(js, catalog, _fill_event(n))
        for n in range(5):  # retries of already-published events: deduplicated or no-ops
            await publish_event(js, catalog, _fill_event(n))

        async def fills() -> int:
            conn = await asyncpg.connect(pg_dsn)
            try:
                if not await conn.fetchval("SELECT to_regclass('fills') IS NOT NULL"):
                    return 0
                return int(await conn.fetchval("SELECT count(*) FROM fills"))
            finally:
                await conn.close()

        await wait_for(lambda: fills_is(fills, 20), timeout=60)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=30)
        assert code == 0
        assert await fills() == 20
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await nc.close()


async def fills_is(count: object, expected: int) -> bool:
    return await count() == expected  # type: ignore[operator, no-any-return]
