"""Helpers shared by the `titan` subcommands."""

from __future__ import annotations

import typer

from titan.core.config import ConfigError, Settings, load_settings


def settings_or_exit(**overrides: object) -> Settings:
    """Load settings, or print which TITAN_* field is wrong and exit 2."""
    try:
        return load_settings(**overrides)
    except ConfigError as err:
        typer.secho(str(err), err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
