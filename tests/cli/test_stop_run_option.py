"""`--stop-run-at` on `titan up` and `titan data gateway`: scripted simulator stop-runs reach the
gateway's command line, and any other source is refused before anything starts."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import typer

from titan.cli.common import parse_duration
from titan.cli.up import Organism, child_specs
from titan.core.config import Settings

TITAN = [sys.executable, "-m", "titan.cli"]


def organism(tmp_path: Path) -> Organism:
    settings = Settings(pg_dsn="postgresql://127.0.0.1:1/x", nats_url="nats://127.0.0.1:1", data_dir=tmp_path)
    return Organism(settings, tmp_path / "organism", tmp_path / "keys", "k" * 64, ["scavenger"], Decimal(1000))


def test_titan_up_hands_the_runs_to_the_gateway(tmp_path: Path) -> None:
    specs = child_specs(organism(tmp_path), "sim:7", 1.0, "", tmp_path / "logs", [90.0, 150.5])
    gateway = next(s for s in specs if s.name == "gateway")
    args = gateway.argv[gateway.argv.index("gateway") + 1:]
    assert args[:2] == ["--source", "sim:7"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--stop-run-at"] == ["90s", "150.5s"]
    plain = child_specs(organism(tmp_path), "sim", 1.0, "", tmp_path / "logs")
    assert "--stop-run-at" not in next(s for s in plain if s.name == "gateway").argv


def test_durations() -> None:
    assert [parse_duration(t) for t in ("45", "45s", "2m", "1.5h")] == [45.0, 45.0, 120.0, 5400.0]
    with pytest.raises(typer.BadParameter, match="not a duration"):
        parse_duration("soon")


@pytest.mark.parametrize("argv", [
    ["up", "--source", "replay:/nonexistent.tmd", "--stop-run-at", "30s"],
    ["data", "gateway", "--source", "replay:/nonexistent.tmd", "--stop-run-at", "30s"],
])
def test_other_sources_are_refused(argv: list[str], tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TITAN_DATA_DIR": str(tmp_path / "data"), "TITAN_NATS_URL": "nats://127.0.0.1:1"}
    proc = subprocess.run([*TITAN, *argv], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "simulator" in proc.stderr or "sim[:SEED]" in proc.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())  # nothing was started
