"""The backtest evaluator: the candidate reaches the backtest as the tuned phase's params override
and nothing else; a backtest that cannot run (bad params, bad data) is a failed window with its
reason and a rejected fold — never an exception. One continuous simulated market, cut per window."""

from __future__ import annotations

import math
from pathlib import Path

from titan.backtest.organism import load_organism
from titan.core.marketdata.sim import DEFAULT_START_NS as T0
from titan.phases.ai_quant.params import Objective
from titan.phases.ai_quant.strategy import ReasonCode
from titan.quant.apply import FileTarget
from titan.quant.evaluator import BacktestSetup, backtest_evaluator
from titan.quant.market import SimulatedSpan, SpanEvents
from titan.quant.walkforward import AcceptanceRule, Window, plan_folds, walk_forward

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"
HOUR = 3600 * 10**9


def test_a_refused_params_set_is_a_rejected_fold_with_the_reason() -> None:
    evaluate = backtest_evaluator(BacktestSetup(("sim:1",), "scavenger", Objective.SHARPE, SAMPLES))
    score = evaluate({"stopLossPercent": "lots"}, Window(T0, T0 + HOUR))
    assert score.error and "stopLossPercent" in score.error and not math.isfinite(score.comparable)
    folds = plan_folds(T0, T0 + 4 * HOUR, 2, 0.5)
    current = FileTarget(SAMPLES, "scavenger").read()
    verdict = walk_forward(current, {**current, "stopLossPercent": "lots"}, folds,
                           lambda p, w: evaluate(p, w) if p.get("stopLossPercent") == "lots" else
                           score.of(Objective.SHARPE, sharpe=1, sortino=1, calmar=1, max_drawdown=0.01,
                                    total_return=0.01, trades=1),
                           AcceptanceRule(Objective.SHARPE, 1, 0.1))
    assert verdict.reason is ReasonCode.BACKTEST_FAILED
    assert "fold 0 (candidate, train)" in verdict.detail and "stopLossPercent" in verdict.detail
    assert all(f.as_json()["error"] for f in verdict.folds)


def test_bad_data_is_a_failed_window_not_an_exception(tmp_path: Path) -> None:
    evaluate = backtest_evaluator(BacktestSetup((str(tmp_path / "missing.csv"),), "scavenger", Objective.SHARPE,
                                                SAMPLES))
    score = evaluate(FileTarget(SAMPLES, "scavenger").read(), Window(T0, T0 + HOUR))
    assert "missing.csv: no such file" in score.error


def test_only_the_phase_params_override_reaches_the_organism() -> None:
    params = {**FileTarget(SAMPLES, "scavenger").read(), "stopLossPercent": 0.013}
    organism = load_organism(SAMPLES, params={"scavenger": params}, only=("scavenger",))
    [plan] = organism.runs
    assert dict(plan.params) == params
    assert {s.phase_id for s in organism.specs} >= {"scavenger", "hunter"}   # the rest of the organism is as written


def test_windows_of_one_simulated_span_continue_one_market() -> None:
    span = SimulatedSpan(5, T0, T0 + 2 * HOUR, ("BTCUSDT",), stop_run_every_h=1.0)
    events = SpanEvents(span)
    first = list(events.window(T0, T0 + HOUR))
    second = list(events.window(T0 + HOUR, T0 + 2 * HOUR))
    live_first = [e for e in first if e.exchange_ts_ns >= T0]
    live_second = [e for e in second if e.exchange_ts_ns >= T0 + HOUR]
    assert live_first and live_second
    # the second window's history ends where the first window's market was
    history = [e for e in second if e.exchange_ts_ns < T0 + HOUR]
    assert any(e.WhichOneof("payload") == "candle" and e.candle.timeframe == "1m" and
               e.exchange_ts_ns >= T0 for e in history)
    assert all(e.WhichOneof("payload") in ("candle", "open_interest", "funding", "mark") for e in history)
    assert [e.exchange_ts_ns for e in second] == sorted(e.exchange_ts_ns for e in second)
    # not the same path restarted: the windows' trade tapes differ
    trades_first = [e.trade.price for e in live_first if e.WhichOneof("payload") == "trade"][:50]
    trades_second = [e.trade.price for e in live_second if e.WhichOneof("payload") == "trade"][:50]
    assert trades_first != trades_second
    assert span.stop_runs_s == (1800.0, 5400.0)
