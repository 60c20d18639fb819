"""The `titan execution` typer app."""

from __future__ import annotations

from typer.testing import CliRunner

from titan.cli.execution_cmd import app


def test_run_help_lists_its_options():
    result = CliRunner().invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--cpus"):
        assert option in result.output


def test_bad_settings_exit_2(monkeypatch):
    monkeypatch.setenv("TITAN_EXECUTION_CPUS", "3-1")
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2
