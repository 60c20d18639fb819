"""The baseline a model has to beat: a seeded TPE search (Optuna) over the same bounded space.

The space is exactly what the guardrails let a proposal reach: each whitelisted field inside its
params-model bounds and within the maximum relative step of its current value. A trial is scored by
the mean in-sample objective over the folds' train windows (the test windows stay unseen); the best
trial then faces the same walk-forward acceptance as a model's proposal. Same seed, same evaluator →
the same trials and the same answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from titan.phases.ai_quant.params import Tunable, TunableKind, TunableSpace
from titan.phases.ai_quant.strategy import GuardrailVerdict, check_proposal
from titan.quant.walkforward import AcceptanceRule, Evaluator, Fold, Verdict, walk_forward


@dataclass(frozen=True)
class SearchResult:
    trials: int
    best_in_sample: float
    guardrail: GuardrailVerdict          # the best trial's params as a proposal (passed, or why not)
    verdict: Verdict | None              # its walk-forward verdict (None when no trial was valid)
    elapsed_s: float
    history: tuple[tuple[dict[str, Any], float], ...]   # (tunable values, in-sample objective) per trial


def step_range(tunable: Tunable, current: float, max_relative_step: float) -> tuple[float, float]:
    """The search interval of one field: its bounds ∩ the step allowed from ``current``."""
    scale = abs(current) if current != 0 else tunable.upper - tunable.lower
    lower = max(tunable.lower, current - max_relative_step * scale)
    upper = min(tunable.upper, current + max_relative_step * scale)
    if not tunable.lower_inclusive and lower <= tunable.lower:
        lower = math.nextafter(tunable.lower, math.inf)
    if not tunable.upper_inclusive and upper >= tunable.upper:
        upper = math.nextafter(tunable.upper, -math.inf)
    if tunable.kind is TunableKind.INT:
        lower, upper = math.ceil(lower), math.floor(upper)
    return lower, upper


def _suggest(trial: Any, tunable: Tunable, lower: float, upper: float) -> int | float:
    if lower >= upper:
        return int(lower) if tunable.kind is TunableKind.INT else lower
    if tunable.kind is TunableKind.INT:
        return int(trial.suggest_int(tunable.key, int(lower), int(upper)))
    return float(trial.suggest_float(tunable.key, lower, upper))


def in_sample_score(evaluator: Evaluator, params: Mapping[str, Any], folds: tuple[Fold, ...]) -> float:
    values = [evaluator(params, fold.train).comparable for fold in folds]
    return sum(values) / len(values) if values and all(math.isfinite(v) for v in values) else -math.inf


def optuna_search(
    space: TunableSpace,
    current_params: Mapping[str, Any],
    folds: tuple[Fold, ...],
    evaluator: Evaluator,
    rule: AcceptanceRule,
    *,
    trials: int,
    seed: int,
    max_relative_step: float,
) -> SearchResult:
    """Run ``trials`` TPE trials seeded with ``seed``; validate the best on the folds' test windows."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.monotonic()
    current = {k: float(v) for k, v in space.current(current_params).items()}
    ranges = {t.key: step_range(t, current[t.key], max_relative_step) for t in space.fields}
    history: list[tuple[dict[str, Any], float]] = []
    verdicts: dict[int, GuardrailVerdict] = {}

    def objective(trial: Any) -> float:
        values = {t.key: _suggest(trial, t, *ranges[t.key]) for t in space.fields}
        guard = check_proposal(space, current_params, {"params": values, "rationale": "optuna trial"},
                               max_relative_step)
        verdicts[trial.number] = guard
        score = in_sample_score(evaluator, guard.params, folds) if guard.passed else -math.inf
        history.append((values, score))
        return score if math.isfinite(score) else -1e12

    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=trials, n_jobs=1, gc_after_trial=False, show_progress_bar=False)
    best = study.best_trial
    guard = verdicts[best.number]
    verdict = walk_forward(current_params, guard.params, folds, evaluator, rule) if guard.passed else None
    return SearchResult(trials, history[best.number][1], guard, verdict, time.monotonic() - started,
                        tuple(history))
