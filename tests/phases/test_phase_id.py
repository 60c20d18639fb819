"""A phase runs under its TitanPhase's name (TITAN_PHASE_ID, set by the operator), not only under its
kind: its budget, parameters, HMAC key file and signals all carry that id, so two TitanPhases of one
kind are two phases."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from titan.phases.scavenger.__main__ import make_strategy

from .helpers import budget


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")}
    return subprocess.run([sys.executable, "-m", "titan.phases.scavenger"], env=base | env, capture_output=True,
                          text=True, timeout=60)


def test_the_process_takes_its_id_from_titan_phase_id(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "scavenger.key").write_text(secrets.token_hex(32))  # the kind's key, not this phase's
    proc = _run(tmp_path, TITAN_PHASE_ID="scavenger-eth", TITAN_HMAC_KEYS_DIR=str(keys),
                TITAN_NATS_URL="nats://127.0.0.1:1")
    assert proc.returncode == 2 and "scavenger-eth.key" in proc.stderr, proc.stderr
    bad = _run(tmp_path, TITAN_PHASE_ID="scavenger.eth", TITAN_HMAC_KEYS_DIR=str(keys))
    assert bad.returncode == 2 and "TITAN_PHASE_ID" in bad.stderr, bad.stderr


def test_the_strategy_signs_for_its_own_id_and_takes_only_its_budget() -> None:
    strat = make_strategy({"symbols": ["BTCUSDT"]}, phase_id="scavenger-eth")
    assert strat.phase_id == "scavenger-eth"
    strat.set_budget(budget("1000", phase="scavenger"))  # the kind's budget is another phase's
    assert strat.budget is None
    strat.set_budget(budget("1000", phase="scavenger-eth"))
    assert strat.budget is not None and strat.budget.phase_id == "scavenger-eth"
    assert make_strategy().phase_id == "scavenger"
