"""``titan execution``: run the execution service."""

from __future__ import annotations

import typer

from titan.cli.common import settings_or_exit

app = typer.Typer(help="The execution service (risk gate, order state machine, paper/live venues).",
                  no_args_is_help=True)


@app.command()
def run(
    host: str = typer.Option(None, help="listen address (default TITAN_EXECUTION_HOST)"),
    port: int = typer.Option(None, help="gRPC port (default TITAN_EXECUTION_PORT)"),
    cpus: str = typer.Option(None, help="CPU list to pin to, e.g. '2-3' (default TITAN_EXECUTION_CPUS)"),
) -> None:
    """Run the execution gRPC service until SIGTERM/SIGINT. Paper venue unless TITAN_MODE=live."""
    from titan.execution.runtime import main

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["execution_host"] = host
    if port is not None:
        overrides["execution_port"] = port
    if cpus is not None:
        overrides["execution_cpus"] = cpus
    raise typer.Exit(main(settings_or_exit(**overrides)))
