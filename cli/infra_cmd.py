"""`titan infra`: embedded PostgreSQL + NATS JetStream for local use."""

from __future__ import annotations

import json

import typer

from titan.cli.common import settings_or_exit
from titan.core.infra import InfraError, OrganismRunning, infra_down, infra_status, infra_up, refuse_if_running

app = typer.Typer(help="Start, stop and inspect the embedded PostgreSQL and NATS (JetStream).", no_args_is_help=True)


@app.command("up")
def up() -> None:
    """Start PostgreSQL and NATS on free loopback ports (data under TITAN_DATA_DIR) and print
    their DSN/URL. With TITAN_PG_DSN / TITAN_NATS_URL set, those are used and nothing starts."""
    settings = settings_or_exit()
    try:
        state = infra_up(settings)
    except InfraError as err:
        typer.secho(f"infra up failed: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    for note in state.notes:
        typer.echo(note, err=True)
    typer.echo(f"TITAN_PG_DSN={state.pg_dsn}")
    typer.echo(f"TITAN_NATS_URL={state.nats_url}")


@app.command("down")
def down() -> None:
    """Stop the embedded servers (their data is kept for the next `titan infra up`). Refused while a
    `titan up` runs on the same data dir: its ledger and bus would vanish under it."""
    settings = settings_or_exit()
    try:
        refuse_if_running(settings.data_dir)
    except OrganismRunning as err:
        typer.secho(f"infra down refused: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    try:
        for note in infra_down(settings):
            typer.echo(note)
    except InfraError as err:
        typer.secho(f"infra down failed: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show whether the embedded servers run, and where."""
    info = infra_status(settings_or_exit())
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for name, row in info.items():
        state = "external" if row["mode"] == "external" else ("running" if row["running"] else "stopped")
        where = row.get("dsn") or row.get("url") or "-"
        typer.echo(f"{name:9} {state:9} pid={row['pid'] or '-'}  {where}")
