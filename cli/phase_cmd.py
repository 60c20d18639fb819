"""`titan phase ...`: list the runnable phases and run one as a process (from titan.phases.registry)."""

from __future__ import annotations

from pathlib import Path

import typer

from titan.phases import registry

app = typer.Typer(help="Run trading phases (market data in, signed signals out).", no_args_is_help=True)


@app.command("list")
def list_phases() -> None:
    """The phases this build can run."""
    for name in registry.names():
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
    try:
        kind = registry.get(name)
    except KeyError as err:
        typer.secho(str(err.args[0]), err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    argv: list[str] = []
    if params is not None:
        argv += ["--params", str(params)]
    if key_file is not None:
        argv += ["--key-file", str(key_file)]
    if execution is not None:
        argv += ["--execution", execution]
    if http_port is not None:
        argv += ["--http-port", str(http_port)]
    raise typer.Exit(kind.main(argv))
