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


def parse_duration(text: str) -> float:
    """'60', '60s', '5m', '1h' -> seconds."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"not a duration: {text!r} (use e.g. 60s, 5m, 1h)") from None
