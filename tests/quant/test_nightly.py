"""The AI Quant's nightly child: `titan quant nightly` runs `titan quant run` at its UTC time of day
(a real run: Optuna without a Gemini key, real backtests of the Scavenger, proposals stored in the real
ledger), reports the job's outcome in its log, waits for the next day and stops on SIGTERM; `titan up
--quant-at` starts it as a child and shows the AI Quant as scheduled."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.util import wait_for
from titan.cli.up import Organism, child_specs
from titan.cli.view import OrganismView, RunInfo
from titan.core.config import Settings
from titan.core.ledger import Ledger

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"


def _start(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_the_nightly_job_runs_at_its_time_stores_its_proposal_and_stops_on_sigterm(
        pg_dsn: str, tmp_path: Path) -> None:
    organism = tmp_path / "organism"
    shutil.copytree(SAMPLES, organism)
    at = datetime.fromtimestamp(time.time() + 4, UTC).strftime("%H:%M:%S")
    log_path = tmp_path / "nightly.log"
    env = {**os.environ, "TITAN_PG_DSN": pg_dsn, "TITAN_DATA_DIR": str(tmp_path / "data"),
           "TITAN_GEMINI_API_KEY": "", "COLUMNS": "160"}
    proc = _start([sys.executable, "-m", "titan.cli", "quant", "nightly", "--at", at, "--organism", str(organism),
                   "--data", "sim:3", "--days", "0.05", "--folds", "2", "--trials", "1", "--stop-run-every", "0.5"],
                  env, log_path)
    try:
        await wait_for(lambda: "AI Quant run ended" in log_path.read_text(), timeout=800, interval=1)
        text = log_path.read_text()
        assert "no TITAN_GEMINI_API_KEY: the nightly runs use the Optuna search" in text
        assert "AI Quant run ended with exit code 0" in text, text[-3000:]
        assert "[optuna]" in text  # the job's outcome line, in the scheduler's log
        ledger = await Ledger.open(pg_dsn)
        try:
            stored = await ledger.proposals("scavenger")
        finally:
            await ledger.close()
        assert len(stored) == 1 and stored[0].status in ("accepted", "rejected") and stored[0].params_json
        # then it waits for the same time tomorrow
        await wait_for(lambda: log_path.read_text().count("next AI Quant run at") == 2, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0


def test_titan_up_starts_the_nightly_child_and_the_view_shows_it(tmp_path: Path) -> None:
    settings = Settings(pg_dsn="postgresql://127.0.0.1:1/x", nats_url="nats://127.0.0.1:1", data_dir=tmp_path)
    run = RunInfo(source="sim", enabled=("scavenger",), quant_at="02:30 UTC", quant_target="scavenger")
    org = Organism(settings, tmp_path / "organism", tmp_path / "keys", "k" * 64, ["scavenger"], Decimal(1000),
                   run=run)
    (spec,) = [s for s in child_specs(org, "sim", 1.0, "", tmp_path / "logs") if s.name == "ai-quant"]
    args = spec.argv[spec.argv.index("nightly") + 1:]
    assert args[:4] == ["--at", "02:30", "--phase", "scavenger"]
    assert args[args.index("--organism") + 1] == str(tmp_path / "organism")
    view = OrganismView(run=run)
    assert "ai-quant" in view.phases() and view.phase_state("ai-quant") == "nightly 02:30"
    plain = Organism(settings, tmp_path / "organism", tmp_path / "keys", "k" * 64, ["scavenger"], Decimal(1000))
    assert not [s for s in child_specs(plain, "sim", 1.0, "", tmp_path / "logs") if s.name == "ai-quant"]


def test_a_bad_quant_time_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "TITAN_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "titan.cli", "up", "--quant-at", "25:00"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not a time of day" in proc.stderr
    assert not (tmp_path / "data").exists()
