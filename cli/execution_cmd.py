"""``titan execution``: run the execution service."""

from __future__ import annotations

import typer

app = typer.Typer(help="The execution service (risk gate, order state machine, paper/live venues).",
                  no_args_is_help=True)


@app.command()
def run(
    host: str = typer.Option(None, help="listen address (default TITAN_EXECUTION_HOST)"),
    port: int = typer.Option(None, help="gRPC port (default TITAN_EXECUTION_PORT)"),
    cpus: str = typer.Option(None, help="CPU list to pin to, e.g. '2-3' (default TITAN_EXECUTION_CPUS)"),
) -> None:
    """Run the execution gRPC service until SIGTERM/SIGINT. Paper venue unless TITAN_MODE=live."""
    import asyncio
    import signal

    from titan.core.config import ConfigError, load_settings
    from titan.core.logging import setup_logging

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["execution_host"] = host
    if port is not None:
        overrides["execution_port"] = port
    if cpus is not None:
        overrides["execution_cpus"] = cpus
    try:
        settings = load_settings(**overrides)
    except ConfigError as err:
        typer.secho(str(err), err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    setup_logging(settings.log_level)

    async def main() -> None:
        from titan.execution.runtime import ExecutionRuntime

        rt = ExecutionRuntime(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await rt.start()
        typer.echo(f"execution listening on {settings.execution_host}:{rt.port}")
        try:
            await stop.wait()
        finally:
            await rt.stop()

    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover
        runner = asyncio.Runner()
    with runner:
        runner.run(main())
