"""`titan status` and `titan report` where no organism ever ran, and with unusable input: one line
saying what to do, exit code 1, never a traceback. (After a real run: tests/cli/test_up_terminal.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TITAN = Path(sys.executable).parent / "titan"


def _titan(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TITAN_PG_DSN", "TITAN_NATS_URL", "TITAN_KUBE_CONTEXT",
                                                           "TITAN_KUBE_NAMESPACE")}
    return subprocess.run([str(TITAN), *args], env=env | {"TITAN_DATA_DIR": str(tmp_path / "data")},
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("command", [("status",), ("status", "--json"), ("report", "--out", "r")])
def test_nothing_ran_here_yet(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = _titan(tmp_path, *command)
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("no organism has run with data dir") and "run `titan up` first" in line
    assert not (tmp_path / "data" / "infra" / "postgres").exists()  # nothing was started for it


def test_report_rejects_a_bad_since_in_one_line(tmp_path: Path) -> None:
    result = _titan(tmp_path, "report", "--since", "yesterday")
    assert result.returncode == 2
    assert "not an ISO time" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_ledger_is_one_line(tmp_path: Path) -> None:
    env_dsn = {"TITAN_PG_DSN": "postgresql://postgres@127.0.0.1:1/titan", "TITAN_NATS_URL": "nats://127.0.0.1:1"}
    result = subprocess.run([str(TITAN), "report"], env=os.environ | env_dsn | {"TITAN_DATA_DIR": str(tmp_path)},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
