"""`titan ledger`: the JetStream → PostgreSQL writer and ledger queries."""

from __future__ import annotations

import asyncio
import json

import typer

from titan.cli.common import settings_or_exit
from titan.core.bus import connect, ensure_jetstream
from titan.core.bus.health_metrics import BusHealth
from titan.core.infra.manager import embedded_nats_monitor_url
from titan.core.ledger import Ledger
from titan.core.ledger.writer import LedgerWriter
from titan.core.service import run_service

app = typer.Typer(help="The ledger: PostgreSQL, the source of truth for recovery and reports.", no_args_is_help=True)


@app.command("writer")
def writer(json_logs: bool = typer.Option(False, "--json-logs", help="structured JSON log lines")) -> None:
    """Consume every event from JetStream and persist it idempotently (acks after commit); export
    JetStream and NATS health (titan_jetstream_*, titan_nats_*) on the same /metrics."""
    settings = settings_or_exit()
    if not settings.pg_dsn or not settings.nats_url:
        typer.secho("TITAN_PG_DSN and TITAN_NATS_URL are required (see `titan infra up`)", err=True, fg="red")
        raise typer.Exit(2)
    state: dict[str, bool] = {"ok": False}
    monitor_url = settings.nats_monitor_url or embedded_nats_monitor_url(settings)

    async def main(stop: asyncio.Event) -> None:
        nc = await connect(settings.nats_url, "titan-ledger-writer")
        js = nc.jetstream()
        await ensure_jetstream(js, settings.catalog)
        ledger = await Ledger.open(settings.pg_dsn)
        try:
            async with LedgerWriter(nc, settings.catalog, ledger), BusHealth(js, settings.catalog,
                                                                             monitor_url=monitor_url):
                state["ok"] = True
                await stop.wait()
        finally:
            state["ok"] = False
            await ledger.close()
            await nc.drain()

    run_service("ledger-writer", settings, main, health=lambda: state["ok"], json_logs=json_logs)


@app.command("migrate")
def migrate() -> None:
    """Apply the ledger's migrations (idempotent) and print the versions applied."""
    settings = settings_or_exit()

    async def go() -> list[int]:
        ledger = await Ledger.open(settings.pg_dsn, migrate=False)
        try:
            return await ledger.migrate()
        finally:
            await ledger.close()

    applied = asyncio.run(go())
    typer.echo(json.dumps({"applied": applied}))
