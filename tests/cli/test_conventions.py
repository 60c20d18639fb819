"""CLI conventions every command follows: flags read as flags in help, `titan --version`."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from titan.cli.main import app

RUNNER = CliRunner()


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in sorted(getattr(group, "commands", {}).items()):
        yield from _commands(command, (*path, name))


ALL = list(_commands(typer.main.get_command(app)))


def test_every_command_is_listed() -> None:
    assert {("up",), ("status",), ("report",), ("infra", "up"), ("operator", "run")} <= set(ALL)


@pytest.mark.parametrize("path", ALL, ids=[" ".join(p) or "titan" for p in ALL])
def test_help_shows_flags_without_a_value_type(path: tuple[str, ...]) -> None:
    result = RUNNER.invoke(app, [*path, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output
    for line in result.output.splitlines():
        if "--help" in line:  # the flag is followed by its description, no value placeholder
            assert line.split("--help", 1)[1].split()[0] == "Show", line


def test_up_help_lists_headless_as_a_flag() -> None:
    out = RUNNER.invoke(app, ["up", "--help"], env={"COLUMNS": "160"}).output
    (line,) = [ln for ln in out.splitlines() if "--headless" in ln]
    assert line.split("--headless", 1)[1].split()[:2] == ["no", "live"]


def test_version() -> None:
    result = RUNNER.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"titan {metadata.version('titan-trading')}"


def test_one_log_format_per_run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """TITAN_LOG_FORMAT (set by `titan up` for every child) wins over a component's own choice."""
    import json
    import logging

    from titan.core.logging import setup_logging

    log = logging.getLogger("titan.test")
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # restored after the test
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setenv("TITAN_LOG_FORMAT", "json")
    setup_logging("INFO", json_lines=False)
    log.info("hello", extra={"child": "gateway"})
    line = capsys.readouterr().err.strip()
    assert json.loads(line) | {"ts": ""} == {"ts": "", "level": "info", "logger": "titan.test", "msg": "hello",
                                            "child": "gateway"}
    monkeypatch.setenv("TITAN_LOG_FORMAT", "human")
    setup_logging("INFO", json_lines=True)
    log.info("hello", extra={"child": "gateway"})
    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO    titan.test: hello child=gateway") and line[2] == ":"


def test_setup_logging_replaces_its_own_handler_and_leaves_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """An embedding program (or a test runner) keeps its root handlers when a command run in its
    process sets up logging; a second setup replaces the first one's handler instead of adding one."""
    import io
    import logging

    from titan.core.logging import setup_logging

    root = logging.getLogger()
    theirs = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(root, "handlers", [theirs])  # restored after the test
    monkeypatch.setattr(root, "level", root.level)
    setup_logging("INFO")
    setup_logging("WARNING")
    ours = [h for h in root.handlers if h is not theirs]
    assert root.handlers[0] is theirs and len(ours) == 1 and root.level == logging.WARNING
    logging.getLogger("titan.test").warning("kept")
    assert theirs.stream.getvalue() == "kept\n"


def test_a_warning_when_no_enabled_phase_trades_the_sources_symbols(caplog: pytest.LogCaptureFixture) -> None:
    from titan.cli.up import warn_if_nothing_trades

    docs = [{"kind": "TitanPhase", "spec": {"phase": "scavenger", "symbols": ["SOLUSDT"]}},
            {"kind": "TitanPhase", "spec": {"phase": "hunter", "enabled": False, "symbols": ["BTCUSDT"]}}]
    with caplog.at_level("WARNING", logger="titan.up"):
        warn_if_nothing_trades("sim", docs, ["scavenger"])
    (record,) = caplog.records
    assert "no enabled phase trades any symbol of source sim (BTCUSDT, ETHUSDT" in record.getMessage()
    assert "SOLUSDT" in record.getMessage()
    caplog.clear()
    docs[0]["spec"]["symbols"] = ["SOLUSDT", "ETHUSDT"]
    with caplog.at_level("WARNING", logger="titan.up"):
        warn_if_nothing_trades("sim", docs, ["scavenger"])
        warn_if_nothing_trades("replay:/data/x.tmd", docs, ["scavenger"])  # a replay's symbols are in its files
    assert not caplog.records
