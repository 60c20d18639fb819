"""`titan backtest` as a user runs it: JSON summary last, result folder, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "btc-perp-2022-01_1m.csv"


def titan(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "titan.cli", "backtest", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_json_summary_is_the_last_line_and_a_second_run_has_the_same_fingerprint(tmp_path: Path) -> None:
    args = ("--data", str(DATA), "--to", "2022-01-01T06:00", "--json", "--no-progress")
    first = titan(*args, "--out", str(tmp_path / "one"))
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    for key in ("fingerprint", "trades", "fills", "final_equity", "metrics"):
        assert key in summary
    assert len(summary["fingerprint"]) == 64 and summary["market_events"] > 400
    second = titan(*args)
    assert json.loads(second.stdout.strip().splitlines()[-1])["fingerprint"] == summary["fingerprint"]
    out = tmp_path / "one"
    assert (out / "fingerprint.txt").read_text().strip() == summary["fingerprint"]
    assert json.loads((out / "summary.json").read_text())["fingerprint"] == summary["fingerprint"]
    for name in ("report.html", "equity.png", "drawdown.png", "trades.csv", "equity.csv",
                 "ledger/equity_snapshots.jsonl", "ledger/allocations.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.rglob("*.partial"))


def test_human_summary_names_the_figures() -> None:
    done = titan("--data", str(DATA), "--to", "2022-01-01T01:00", "--no-progress")
    assert done.returncode == 0, done.stderr
    for word in ("phases", "equity", "Sharpe", "fingerprint"):
        assert word in done.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (("--data", "/nonexistent/file.csv"), "/nonexistent/file.csv: no such file"),
    (("--data", "sim:x"), "sim:x: the simulator's seed must be an integer"),
    (("--data", str(DATA), "--phase", "nobody"), "--phase names phases not in"),
    (("--data", str(DATA), "--param", "scavenger.noSuchKey=1"), "TitanPhase scavenger: spec.params"),
    (("--data", str(DATA), "--stop-run-at", "60s"), "scripted stop-runs need the simulator"),
])
def test_bad_input_is_one_line_naming_what_is_wrong(args: tuple[str, ...], expected: str) -> None:
    done = titan(*args, "--no-progress")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert expected in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_malformed_file_names_the_file_the_line_and_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "BTCUSDT-1m.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n"
                   "2022-01-01 00:00:00,100,101,99,100,5\n"
                   "2022-01-01 00:01:00,100,101,99,-3,5\n")
    done = titan("--data", str(bad), "--no-progress")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert str(bad) in done.stderr and "line 3" in done.stderr, done.stderr


def test_gaps_and_repairs_are_reported_in_the_result_and_warned_about(tmp_path: Path) -> None:
    data = tmp_path / "BTCUSDT-1m.csv"
    rows = ["timestamp,open,high,low,close,volume"]
    minutes = [0, 1, 2, 3, 7, 8, 9, 8]  # 4..6 missing; minute 8 twice (an exact duplicate)
    for m in minutes:
        rows.append(f"2022-01-01 00:{m:02d}:00,100,101,99,100,5")
    data.write_text("\n".join(rows) + "\n")
    done = titan("--data", str(data), "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout.strip().splitlines()[-1])["data"]
    assert report["gaps"] == 1 and report["duplicates_dropped"] == 1 and report["rows_sorted"] == 1
    assert "2022-01-01T00:04:00Z" in report["gap_list"][0]
    for said in ("1 duplicate rows dropped", "1 rows out of time order: sorted", "1 gaps in the series"):
        assert f"{data}: {said}" in done.stderr, done.stderr
