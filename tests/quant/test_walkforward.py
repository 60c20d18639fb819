"""Walk-forward acceptance and the Optuna baseline, on the synthetic market of tests/quant/synthetic.py."""

from __future__ import annotations

import itertools

import pytest

from tests.quant.synthetic import T0, days, regime_evaluator
from titan.phases.ai_quant.params import AiQuantParams, Objective, tunable_space
from titan.phases.ai_quant.strategy import ReasonCode, check_proposal
from titan.quant.search import optuna_search, step_range
from titan.quant.walkforward import (
    AcceptanceRule,
    Fold,
    FoldResult,
    Window,
    WindowScore,
    cached,
    judge,
    plan_folds,
    walk_forward,
)

SPACE = tunable_space("scavenger")
BASE = {"stopLossPercent": 0.02, "targetPercent": 0.06}


def test_folds_roll_forward_and_tile_the_span() -> None:
    folds = plan_folds(T0, T0 + days(10), 4, 0.6)
    assert len(folds) == 4
    for a, b in itertools.pairwise(folds):
        assert a.test.end_ns == b.test.start_ns          # test windows tile without overlap
        assert b.train.start_ns > a.train.start_ns       # rolling
    for f in folds:
        assert f.train.end_ns == f.test.start_ns         # out-of-sample right after its train window
    assert folds[0].train.start_ns == T0 and folds[-1].test.end_ns == T0 + days(10)
    with pytest.raises(ValueError, match="empty"):
        plan_folds(T0, T0, 3, 0.5)


def _split_folds(split_day: int, k: int) -> tuple[Fold, ...]:
    """K folds whose train windows all lie before ``split_day`` and whose test windows after it."""
    return tuple(
        Fold(i, Window(T0 + days(i), T0 + days(split_day)), Window(T0 + days(split_day + 2 * i),
                                                                    T0 + days(split_day + 2 * i + 2)))
        for i in range(k)
    )


def test_better_in_sample_but_not_out_of_sample_is_rejected() -> None:
    # The market's best stop-loss is 1% before day 20 and 3% after it (a regime change).
    evaluator = regime_evaluator(lambda day: 0.01 if day < 20 else 0.03)
    folds = _split_folds(20, 3)
    rule = AcceptanceRule(Objective.SHARPE, min_improved_folds=2, max_drawdown_worsening=0.1)
    overfit = {"stopLossPercent": 0.01, "targetPercent": 0.03}
    verdict = walk_forward(BASE, overfit, folds, evaluator, rule)
    assert all(f.candidate_train.objective > f.baseline_train.objective for f in verdict.folds)  # in-sample: better
    assert verdict.improved_folds == 0
    assert not verdict.accepted and verdict.reason is ReasonCode.NOT_ENOUGH_FOLDS
    assert "0 of 3" in verdict.detail

    robust = {"stopLossPercent": 0.03, "targetPercent": 0.09}
    verdict = walk_forward(BASE, robust, folds, evaluator, rule)
    assert verdict.accepted, verdict.detail
    assert verdict.improved_folds == 3 and verdict.candidate_oos > verdict.baseline_oos


def _score(objective: float, drawdown: float) -> WindowScore:
    return WindowScore.of(Objective.SHARPE, sharpe=objective, sortino=0.0, calmar=0.0, max_drawdown=drawdown,
                          total_return=0.01, trades=10)


def test_drawdown_bound_rejects_a_better_objective_with_deeper_drawdown() -> None:
    folds = plan_folds(T0, T0 + days(30), 3, 0.5)

    def scored(candidate_dd: float) -> tuple[FoldResult, ...]:
        return tuple(FoldResult(f, _score(1.0, 0.05), _score(1.2, 0.05), _score(1.0, 0.10),
                                _score(1.5, candidate_dd)) for f in folds)

    rule = AcceptanceRule(Objective.SHARPE, 3, 0.10)
    assert judge(rule, scored(0.11)).accepted                       # 11% <= 10% x 1.1
    worse = judge(rule, scored(0.1101))
    assert worse.reason is ReasonCode.DRAWDOWN_WORSE and "11.01%" in worse.detail
    assert worse.improved_folds == 3                                 # better objective everywhere, still refused


def test_optuna_with_a_seed_is_reproducible_and_stays_in_the_guarded_space() -> None:
    config = AiQuantParams(max_relative_step=0.5)
    folds = plan_folds(T0, T0 + days(40), 3, 0.6)

    def run(seed: int) -> tuple[list[dict[str, object]], float, dict[str, object]]:
        evaluator = cached(regime_evaluator(lambda day: 0.028))
        result = optuna_search(SPACE, BASE, folds, evaluator, AcceptanceRule(Objective.SHARPE, 2, 0.5), trials=25,
                               seed=seed, max_relative_step=config.max_relative_step)
        return [values for values, _ in result.history], result.best_in_sample, dict(result.guardrail.params)

    first, second, other = run(11), run(11), run(12)
    assert first == second                          # same seed: the same trials and the same best
    assert first[0] != other[0][0]                  # another seed samples elsewhere
    for values in first[0]:
        for key, value in values.items():
            t = SPACE.by_key()[key]
            current = float(SPACE.current(BASE)[key])
            lo, hi = step_range(t, current, config.max_relative_step)
            assert lo <= float(value) <= hi
            verdict = check_proposal(SPACE, BASE, {"params": {key: value}, "rationale": "x"}, 0.5)
            assert verdict.reason in (None, ReasonCode.NO_CHANGE, ReasonCode.INVALID_PARAMS)
    # TPE moves the stop toward the market's best (2.8%) from 2%.
    assert abs(float(first[2]["stopLossPercent"]) - 0.028) < abs(0.02 - 0.028)


def test_cached_evaluator_scores_each_params_window_once() -> None:
    calls: list[tuple[str, Window]] = []
    evaluator = cached(regime_evaluator(lambda day: 0.01, calls=calls))
    folds = plan_folds(T0, T0 + days(10), 2, 0.5)
    rule = AcceptanceRule(Objective.SORTINO, 1, 0.5)
    walk_forward(BASE, {"stopLossPercent": 0.015, "targetPercent": 0.045}, folds, evaluator, rule)
    walk_forward(BASE, {"stopLossPercent": 0.012, "targetPercent": 0.036}, folds, evaluator, rule)
    windows = {w for f in folds for w in (f.train, f.test)}
    assert len(windows) == 3                        # fold 1 trains on fold 0's test window (rolling, f = 0.5)
    assert len(calls) == 3 * len(windows)           # baseline once, then each candidate: every window once
