"""`titan operator local --once` on the sample files against a real NATS."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from titan.cli.operator_cmd import app
from titan.core.catalog import Catalog

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"


def test_local_once_prints_the_allocation(nats_url: str, catalog: Catalog, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TITAN_NATS_URL", nats_url)
    monkeypatch.setenv("TITAN_NAMESPACE", catalog.namespace)
    monkeypatch.setenv("TITAN_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["local", str(SAMPLES), "--once", "--state-dir", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line}
    assert "Active" in lines["scavenger"] and "weight=1" in lines["scavenger"]
    assert "Dormant" in lines["hunter"] and "weight=0" in lines["hunter"]
    assert "trading=ACTIVE" in result.output
    assert (tmp_path / "b" / "brain-status.json").exists()


def test_run_needs_a_namespace_or_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TITAN_OPERATOR_NAMESPACE", raising=False)
    monkeypatch.delenv("TITAN_OPERATOR_CLUSTERWIDE", raising=False)
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2 and "--namespace" in result.output
