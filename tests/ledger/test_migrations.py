"""Schema migrations: ordered, recorded, idempotent, safe when several processes start together."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from titan.core.ledger import MIGRATIONS, Ledger, Migration, MigrationError, migrate

TABLES = {
    "events", "orders", "fills", "positions", "funding_payments", "equity_snapshots", "signals",
    "decisions", "allocations", "breaker_events", "parameter_proposals", "trading_state_changes",
    "schema_migrations",
}


def _dsn_for(dsn: str, database: str) -> str:
    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, "/" + database, p.query, p.fragment))


@pytest.fixture
async def fresh_dsn(pg_dsn: str) -> AsyncIterator[str]:
    """An extra empty database (the module's one is migrated by the first test already)."""
    name = f"titan_m_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield _dsn_for(pg_dsn, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_migrations_run_twice_without_error(pg_dsn: str) -> None:
    first = await Ledger.open(pg_dsn)
    try:
        second = await Ledger.open(pg_dsn)  # migrates again: nothing to do
        try:
            assert await second.migrate() == []
        finally:
            await second.close()
        assert await first.migrate() == []
    finally:
        await first.close()
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await _tables(conn) >= TABLES
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [m.version for m in MIGRATIONS]
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_once(fresh_dsn: str) -> None:
    conns = [await asyncpg.connect(fresh_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = [r for r in results if r]
        assert applied == [[m.version for m in MIGRATIONS]]  # exactly one connection applied them
        assert results.count([]) == 3
        assert await _tables(conns[0]) >= TABLES
        assert await conns[0].fetchval("SELECT count(*) FROM schema_migrations") == len(MIGRATIONS)
    finally:
        for c in conns:
            await c.close()


async def test_migrations_apply_in_order_and_all_or_nothing(fresh_dsn: str) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        extra = (
            *MIGRATIONS,
            Migration(90, "add a table", "CREATE TABLE extra_a (x integer)"),
            Migration(91, "uses the table before", "ALTER TABLE extra_a ADD COLUMN y integer"),
        )
        assert await migrate(conn, extra) == [m.version for m in extra]
        broken = (*extra, Migration(92, "broken", "CREATE TABLE extra_b (x integer); SELECT no_such_fn()"))
        with pytest.raises(asyncpg.PostgresError):
            await migrate(conn, broken)
        # the failed migration left nothing behind
        assert "extra_b" not in await _tables(conn)
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 91
    finally:
        await conn.close()


async def test_edited_or_unknown_migration_is_refused(fresh_dsn: str) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await migrate(conn)
        edited = (Migration(1, MIGRATIONS[0].name, MIGRATIONS[0].sql + "\n-- edited"), *MIGRATIONS[1:])
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, edited)
        await migrate(conn, (*MIGRATIONS, Migration(99, "newer", "SELECT 1")))
        with pytest.raises(MigrationError, match="does not know"):
            await migrate(conn)  # the database is ahead of this code
        with pytest.raises(MigrationError, match="ascending"):
            await migrate(conn, (Migration(2, "b", "SELECT 1"), Migration(1, "a", "SELECT 1")))
    finally:
        await conn.close()
