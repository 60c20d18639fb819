"""The default walk-forward evaluator: one backtest of the organism per (params, window).

Only the tuned phase runs (``BacktestConfig.phases``), on the same data and organism for every
candidate, with the candidate's full ``spec.params``; the window's numbers are that phase's metrics
after fees and funding.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from titan.phases.ai_quant.params import Objective
from titan.quant.walkforward import Evaluator, Window, WindowScore


class EvaluationError(RuntimeError):
    """A backtest that could not run (names the window and the cause)."""


@dataclass(frozen=True)
class BacktestSetup:
    data: tuple[str, ...]
    phase_id: str
    objective: Objective
    organism: Path | None = None
    initial_equity: Decimal | None = None


def score_from_metrics(metrics: Any, objective: Objective) -> WindowScore:
    """A WindowScore from a backtest's Metrics (ratios as floats, money as Decimal)."""
    return WindowScore.of(
        objective,
        sharpe=float(metrics.sharpe),
        sortino=float(metrics.sortino),
        calmar=float(metrics.calmar),
        max_drawdown=float(metrics.max_drawdown),
        total_return=float(metrics.total_return),
        trades=int(metrics.trades),
        fees=Decimal(str(metrics.fees)),
        funding=Decimal(str(metrics.funding)),
    )


def backtest_evaluator(setup: BacktestSetup) -> Evaluator:
    """An evaluator that backtests ``setup.phase_id`` with the given params on each window."""
    backtest = importlib.import_module("titan.backtest")
    from titan.backtest.config import BacktestConfig

    def evaluate(params: Mapping[str, Any], window: Window) -> WindowScore:
        config = BacktestConfig(
            data=setup.data,
            organism=setup.organism,
            start_ns=window.start_ns,
            end_ns=window.end_ns,
            params={setup.phase_id: dict(params)},
            phases=(setup.phase_id,),
            initial_equity=setup.initial_equity,
            keep_events=False,
        )
        try:
            result = backtest.run(config)
        except (ValueError, OSError) as exc:
            raise EvaluationError(f"backtest of [{window.start_ns}, {window.end_ns}) failed: {exc}") from exc
        metrics = result.metrics.by_phase.get(setup.phase_id, result.metrics.total)
        return score_from_metrics(metrics, setup.objective)

    return evaluate
