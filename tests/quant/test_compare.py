"""`titan quant compare` end to end: the real CLI, real backtests of the Scavenger on one continuous
simulated market (no stub evaluator), the real google-genai client against the generateContent
stand-in. The table has its columns and the verdict follows from its numbers."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.quant.gemini_server import GeminiStandIn, Reply, json_reply, serve
from titan.phases.ai_quant.params import tunable_space

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def answer(stop: float, target: float) -> Reply:
    current = {k: float(v) for k, v in tunable_space("scavenger").current({}).items()}
    return json_reply({"params": {**current, "stopLossPercent": stop, "targetPercent": target},
                       "rationale": "stops are hit by the noise after a stop-run"}, prompt_tokens=300, output_tokens=60)


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"[│┃|]", line)[1:-1]]


def number(text: str) -> float:
    return -math.inf if text == "–" else float(text)


def test_compare_prints_the_table_and_a_verdict_that_follows_from_it(tmp_path: Path) -> None:
    stand_in = GeminiStandIn(default=lambda body: answer(0.012, 0.036))
    with serve(stand_in) as server:
        env = {**os.environ, "TITAN_GEMINI_API_KEY": "test-key", "TITAN_GEMINI_BASE_URL": server.base_url,
               "TITAN_DATA_DIR": str(tmp_path / "data"), "TITAN_PG_DSN": "", "COLUMNS": "160"}
        proc = subprocess.run(
            [sys.executable, "-m", "titan.cli", "quant", "compare", "--phase", "scavenger", "--data", "sim:3",
             "--days", "0.1", "--stop-run-every", "0.5", "--folds", "2", "--rounds", "1", "--trials", "1",
             "--objective", "calmar"],
            env=env, capture_output=True, text=True, timeout=880)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert len(stand_in.requests) == 1 and stand_in.requests[0]["path"].endswith(":generateContent")
    header = next(cells(line) for line in out.splitlines() if "trials" in line and "tokens" in line)
    assert header == ["", "trials", "accepted", "best OOS calmar", "max drawdown", "time", "tokens"]
    rows = {c[0]: c for c in (cells(line) for line in out.splitlines()) if c and c[0] in
            ("gemini", "optuna", "current params")}
    assert set(rows) == {"gemini", "optuna", "current params"}, out
    gemini, optuna, current = rows["gemini"], rows["optuna"], rows["current params"]
    assert gemini[1] == "1" and optuna[1] == "1"
    assert gemini[6] == "360" and optuna[6] == "0"            # tokens: the stand-in's usageMetadata
    assert all(float(r[5].rstrip("s")) > 0 for r in (gemini, optuna, current))   # real backtests took time
    assert math.isfinite(number(current[3])), out              # the current params traded in the folds
    gemini_wins = number(gemini[3]) > number(optuna[3])
    verdict = "Gemini beats the Optuna baseline." if gemini_wins else "Gemini does NOT beat the Optuna baseline"
    assert verdict in out, out
    # every outcome is listed with its reason (or ACCEPTED)
    assert re.search(r"\[gemini\] (ACCEPTED|rejected \(\w+\))", out)
    assert re.search(r"\[optuna\] (ACCEPTED|rejected \(\w+\))", out)
