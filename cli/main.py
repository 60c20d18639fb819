"""The `titan` command."""

from __future__ import annotations

import os
import sys
from importlib import metadata
from typing import Any

import typer
import typer.core

from titan.cli.common import settings_or_exit
from titan.core.infra import InfraError

DISTRIBUTION = "titan-trading"

app = typer.Typer(
    name="titan",
    help=(
        "Titan: a capital-aware algorithmic crypto trading organism.\n\n"
        "Paper trading is the default. `titan up` runs the whole organism locally on embedded "
        "PostgreSQL and NATS; `titan infra` manages that infrastructure on its own."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _flags_show_no_value_type() -> None:
    """typer's rich help gives every option a value-type column, flags included (`--headless
    <bool>`), which reads as if the flag took a value. A flag takes none: show no type for it."""
    show_type = typer.core.TyperOption.display_type_rich

    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else show_type(self, ctx)

    typer.core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_value_type()


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"titan {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                      help="print the version and exit"),
) -> None:
    """Titan: a capital-aware algorithmic crypto trading organism."""


@app.command()
def config() -> None:
    """Print the effective configuration (secrets masked)."""
    settings = settings_or_exit()
    for name, value in settings.model_dump(mode="json").items():
        shown = "***" if "key" in name or "secret" in name else value
        typer.echo(f"TITAN_{name.upper()}={shown}")


def main() -> None:
    """The console entry point. Commands turn the failures they expect into one line each; this is
    the net below them: an unreachable server or an infrastructure problem is one line, exit 1
    (TITAN_DEBUG=1 shows the traceback)."""
    try:
        app(prog_name="titan")
    except (InfraError, OSError) as err:
        if os.environ.get("TITAN_DEBUG"):
            raise
        typer.secho(f"titan: {err}", err=True, fg=typer.colors.RED)
        sys.exit(1)


def _register() -> None:
    from titan.cli import (
        backtest_cmd,
        control_cmd,
        data_cmd,
        execution_cmd,
        infra_cmd,
        ledger_cmd,
        operator_cmd,
        phase_cmd,
        quant_cmd,
        report,
        up,
    )

    app.add_typer(infra_cmd.app, name="infra")
    app.add_typer(ledger_cmd.app, name="ledger")
    app.add_typer(phase_cmd.app, name="phase")
    app.add_typer(data_cmd.app, name="data")
    app.add_typer(operator_cmd.app, name="operator")
    app.add_typer(execution_cmd.app, name="execution")
    app.add_typer(quant_cmd.app, name="quant")
    app.command("up")(up.up_command)
    app.command("backtest")(backtest_cmd.backtest_command)
    app.command("status")(control_cmd.status)
    app.command("halt")(control_cmd.halt)
    app.command("resume")(control_cmd.resume)
    app.command("report")(report.report)


_register()
