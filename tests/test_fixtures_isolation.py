"""The infrastructure fixtures give each module a fresh database and namespace on real servers."""

from __future__ import annotations

import asyncpg
import nats

from titan.core.catalog import Catalog


async def test_module_database_is_fresh_and_writable(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
        await conn.execute("CREATE TABLE probe (n int)")
        assert await conn.fetchval("SELECT current_database()") == pg_dsn.rsplit("/", 1)[1]
    finally:
        await conn.close()


async def test_module_namespace_is_unique(catalog: Catalog, nats_url: str) -> None:
    assert catalog.namespace.startswith("t")
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        spec = catalog.events_stream
        await js.add_stream(name=spec.name, subjects=list(spec.subjects))
        ack = await js.publish(catalog.event_subject("execution", "fill"), b"x")
        assert ack.stream == spec.name
        info = await js.stream_info(spec.name)
        assert info.state.messages == 1
    finally:
        await nc.close()
