"""Walk-forward validation: K rolling folds, each an in-sample (train) window followed by an
out-of-sample (test) window, and the rule that accepts a candidate only on out-of-sample evidence.

A candidate is accepted when its objective beats the current parameters' on at least m of the K
out-of-sample windows *and* its worst out-of-sample max drawdown is at most (1 + bound) × the
current parameters' worst. In-sample numbers are stored for inspection but never decide.

Scores come from an injected :data:`Evaluator` (params, window) -> :class:`WindowScore`; the default
one backtests with :mod:`titan.backtest` (:mod:`titan.quant.evaluator`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from titan.phases.ai_quant.params import Objective
from titan.phases.ai_quant.strategy import ReasonCode

NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class Window:
    start_ns: int
    end_ns: int

    @property
    def days(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_DAY

    def describe(self) -> str:
        def iso(ns: int) -> str:
            return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        return f"[{iso(self.start_ns)}, {iso(self.end_ns)})"


@dataclass(frozen=True)
class Fold:
    index: int
    train: Window
    test: Window


def plan_folds(start_ns: int, end_ns: int, k: int, train_fraction: float) -> tuple[Fold, ...]:
    """K rolling folds over [start, end): each fold spans L = train + test, with train = f·L; fold i
    starts i·test later, so the K test windows tile the end of the span without overlapping."""
    if end_ns <= start_ns:
        raise ValueError("the walk-forward span is empty (end must be after start)")
    if k < 1 or not 0 < train_fraction < 1:
        raise ValueError("need k >= 1 and 0 < train fraction < 1")
    fold_span = (end_ns - start_ns) / (train_fraction + k * (1 - train_fraction))
    train = int(fold_span * train_fraction)
    test = int(fold_span - train)
    if test <= 0:
        raise ValueError("the walk-forward span is too short for this many folds")
    folds = []
    for i in range(k):
        t0 = start_ns + i * test
        fold_end = end_ns if i == k - 1 else t0 + train + test
        folds.append(Fold(i, Window(t0, t0 + train), Window(t0 + train, fold_end)))
    return tuple(folds)


@dataclass(frozen=True)
class WindowScore:
    """A window's numbers after fees and funding; ``objective`` is the configured one of them.
    ``error`` names why the window could not be backtested (its numbers are then NaN)."""

    objective: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float      # positive fraction
    total_return: float
    trades: int
    fees: Decimal = Decimal(0)
    funding: Decimal = Decimal(0)
    error: str = ""

    @classmethod
    def failed(cls, objective: Objective, error: str) -> WindowScore:
        nan = math.nan
        return cls.of(objective, sharpe=nan, sortino=nan, calmar=nan, max_drawdown=nan, total_return=nan, trades=0) \
            .with_error(error)

    def with_error(self, error: str) -> WindowScore:
        return WindowScore(self.objective, self.sharpe, self.sortino, self.calmar, self.max_drawdown,
                           self.total_return, self.trades, self.fees, self.funding, error)

    @classmethod
    def of(cls, objective: Objective, *, sharpe: float, sortino: float, calmar: float, max_drawdown: float,
           total_return: float, trades: int, fees: Decimal = Decimal(0), funding: Decimal = Decimal(0)
           ) -> WindowScore:
        values = {Objective.SHARPE: sharpe, Objective.SORTINO: sortino, Objective.CALMAR: calmar}
        return cls(values[objective], sharpe, sortino, calmar, max_drawdown, total_return, trades, fees, funding)

    @property
    def comparable(self) -> float:
        """The objective where NaN/inf (no trades, no variance) or a failed backtest counts as the worst."""
        return self.objective if math.isfinite(self.objective) and not self.error else -math.inf

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fees"], data["funding"] = str(self.fees), str(self.funding)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()}


Evaluator = Callable[[Mapping[str, Any], Window], WindowScore]


def params_key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def cached(evaluator: Evaluator) -> Evaluator:
    """The evaluator with each (params, window) computed once (the baseline is scored by every candidate)."""
    memo: dict[tuple[str, Window], WindowScore] = {}

    def evaluate(params: Mapping[str, Any], window: Window) -> WindowScore:
        key = (params_key(params), window)
        if key not in memo:
            memo[key] = evaluator(params, window)
        return memo[key]

    return evaluate


@dataclass(frozen=True)
class AcceptanceRule:
    objective: Objective = Objective.SHARPE
    min_improved_folds: int = 3
    max_drawdown_worsening: float = 0.10


@dataclass(frozen=True)
class FoldResult:
    fold: Fold
    baseline_train: WindowScore
    candidate_train: WindowScore
    baseline_test: WindowScore
    candidate_test: WindowScore

    @property
    def improved(self) -> bool:
        return not self.error and self.candidate_test.comparable > self.baseline_test.comparable

    @property
    def error(self) -> str:
        """The first window of this fold that could not be backtested, and why ("" when none)."""
        scores = (("current params, train", self.baseline_train), ("candidate, train", self.candidate_train),
                  ("current params, test", self.baseline_test), ("candidate, test", self.candidate_test))
        return next((f"fold {self.fold.index} ({name}): {score.error}" for name, score in scores if score.error), "")

    def as_json(self) -> dict[str, Any]:
        return {
            "fold": self.fold.index,
            "train": [self.fold.train.start_ns, self.fold.train.end_ns],
            "test": [self.fold.test.start_ns, self.fold.test.end_ns],
            "baseline_train": self.baseline_train.as_json(),
            "candidate_train": self.candidate_train.as_json(),
            "baseline_test": self.baseline_test.as_json(),
            "candidate_test": self.candidate_test.as_json(),
            "improved": self.improved,
            "error": self.error,
        }


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _max(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else math.nan


@dataclass(frozen=True)
class Verdict:
    rule: AcceptanceRule
    folds: tuple[FoldResult, ...]
    reason: ReasonCode | None
    detail: str

    @property
    def accepted(self) -> bool:
        return self.reason is None

    @property
    def improved_folds(self) -> int:
        return sum(f.improved for f in self.folds)

    @property
    def candidate_oos(self) -> float:
        return _mean([f.candidate_test.objective for f in self.folds])

    @property
    def baseline_oos(self) -> float:
        return _mean([f.baseline_test.objective for f in self.folds])

    @property
    def candidate_in_sample(self) -> float:
        return _mean([f.candidate_train.objective for f in self.folds])

    @property
    def candidate_drawdown(self) -> float:
        return _max([f.candidate_test.max_drawdown for f in self.folds])

    @property
    def baseline_drawdown(self) -> float:
        return _max([f.baseline_test.max_drawdown for f in self.folds])


def judge(rule: AcceptanceRule, folds: tuple[FoldResult, ...]) -> Verdict:
    """Apply the acceptance rule to scored folds (a fold that could not be backtested rejects)."""
    failed = [f.error for f in folds if f.error]
    if failed:
        return Verdict(rule, folds, ReasonCode.BACKTEST_FAILED,
                       f"{len(failed)} of {len(folds)} folds could not be backtested; {failed[0]}")
    improved = sum(f.improved for f in folds)
    if improved < rule.min_improved_folds:
        return Verdict(rule, folds, ReasonCode.NOT_ENOUGH_FOLDS,
                       f"{rule.objective.value} improved on {improved} of {len(folds)} out-of-sample folds "
                       f"(needs {rule.min_improved_folds})")
    base_dd = max((f.baseline_test.max_drawdown for f in folds), default=0.0)
    cand_dd = max((f.candidate_test.max_drawdown for f in folds), default=0.0)
    limit = base_dd * (1 + rule.max_drawdown_worsening)
    if cand_dd > limit + 1e-12:
        return Verdict(rule, folds, ReasonCode.DRAWDOWN_WORSE,
                       f"out-of-sample max drawdown {cand_dd:.2%} exceeds {limit:.2%} "
                       f"(baseline {base_dd:.2%} + {rule.max_drawdown_worsening:.0%})")
    return Verdict(rule, folds, None,
                   f"{rule.objective.value} improved on {improved} of {len(folds)} out-of-sample folds; "
                   f"max drawdown {cand_dd:.2%} vs {base_dd:.2%}")


def walk_forward(
    baseline: Mapping[str, Any],
    candidate: Mapping[str, Any],
    folds: tuple[Fold, ...],
    evaluator: Evaluator,
    rule: AcceptanceRule,
) -> Verdict:
    """Score both param sets on every fold's train and test window, then judge on the test windows."""
    results = tuple(
        FoldResult(
            fold,
            evaluator(baseline, fold.train),
            evaluator(candidate, fold.train),
            evaluator(baseline, fold.test),
            evaluator(candidate, fold.test),
        )
        for fold in folds
    )
    return judge(rule, results)
