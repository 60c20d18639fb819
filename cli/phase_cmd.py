"""`titan phase ...`: run a phase process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

app = typer.Typer(help="Run trading phases (market data in, signed signals out).", no_args_is_help=True)


def _scavenger() -> Callable[[list[str]], int]:
    from titan.phases.scavenger.__main__ import main

    return main


PHASES: dict[str, Callable[[], Callable[[list[str]], int]]] = {"scavenger": _scavenger}


@app.command("list")
def list_phases() -> None:
    """The phases this build can run."""
    for name in sorted(PHASES):
        typer.echo(name)


@app.command()
def run(
    name: str = typer.Argument(..., help="phase to run, e.g. scavenger"),
    params: Path | None = typer.Option(None, "--params", help="initial parameters (JSON/YAML) until KV has some"),
    key_file: Path | None = typer.Option(None, "--key-file", help="the phase's HMAC key file"),
    execution: str | None = typer.Option(None, "--execution", help="execution host:port"),
    http_port: int | None = typer.Option(None, "--http-port", help="/metrics and /healthz port"),
) -> None:
    """Run phase NAME until interrupted (settings from TITAN_* variables)."""
    factory = PHASES.get(name)
    if factory is None:
        typer.secho(f"unknown phase {name!r}; known: {', '.join(sorted(PHASES))}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    argv: list[str] = []
    if params is not None:
        argv += ["--params", str(params)]
    if key_file is not None:
        argv += ["--key-file", str(key_file)]
    if execution is not None:
        argv += ["--execution", execution]
    if http_port is not None:
        argv += ["--http-port", str(http_port)]
    raise typer.Exit(factory()(argv))
