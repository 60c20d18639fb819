"""The default walk-forward evaluator: one backtest of the organism per (params, window).

Only the tuned phase runs (``BacktestConfig.phases``), on the same data and organism for every
candidate; the candidate is given to the backtest as that phase's ``spec.params`` override and
nothing else of the organism changes. The window's numbers are that phase's metrics after fees and
funding.

Market files are clipped to the window by :func:`titan.backtest.run`. The simulator is one
continuous market over the whole span (:class:`~titan.quant.market.SpanEvents`), each window
preceded by its own history, and driven through the same :class:`titan.backtest.driver.Backtest`.

A backtest that cannot run (bad data, an organism or params the phase refuses:
``titan.backtest.DataError``/``OrganismError``, both ValueErrors) is a failed window with the reason,
never an exception: the fold is rejected and says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from titan.backtest import BacktestConfig, Metrics, run
from titan.phases.ai_quant.params import Objective
from titan.quant.market import SimulatedSpan, SpanEvents
from titan.quant.walkforward import Evaluator, Window, WindowScore
from titan.v1.market_pb2 import MarketEvent


class EvaluationError(RuntimeError):
    """A backtest that could not run (names the window and the cause)."""


@dataclass(frozen=True)
class BacktestSetup:
    data: tuple[str, ...]
    phase_id: str
    objective: Objective
    organism: Path | None = None
    initial_equity: Decimal | None = None
    span: SimulatedSpan | None = None     # simulated data: one market over the span, cut per window


def score_from_metrics(metrics: Any, objective: Objective) -> WindowScore:
    """A WindowScore from a backtest's Metrics (ratios as floats, money as Decimal)."""
    return WindowScore.of(
        objective,
        sharpe=_ratio(metrics.sharpe),
        sortino=_ratio(metrics.sortino),
        calmar=_ratio(metrics.calmar),
        max_drawdown=float(metrics.max_drawdown),
        total_return=float(metrics.total_return),
        trades=int(metrics.trades),
        fees=Decimal(str(metrics.fees)),
        funding=Decimal(str(metrics.funding)),
    )


def _ratio(value: Any) -> float:
    return float("nan") if value is None else float(value)


def phase_metrics(config: BacktestConfig, events: Iterable[MarketEvent], phase_id: str) -> Metrics:
    """Backtest ``events`` and return ``phase_id``'s figures."""
    return run(config, events=events).metrics.by_phase[phase_id]


def backtest_evaluator(setup: BacktestSetup) -> Evaluator:
    """An evaluator that backtests ``setup.phase_id`` with the given params on each window."""
    span_events = SpanEvents(setup.span) if setup.span is not None else None

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
            if span_events is not None:
                metrics = phase_metrics(config, span_events.window(window.start_ns, window.end_ns), setup.phase_id)
            else:
                result = run(config)
                metrics = result.metrics.by_phase.get(setup.phase_id, result.metrics.total)
        except (ValueError, OSError) as exc:
            return WindowScore.failed(setup.objective, f"backtest of {window.describe()} failed: {exc}")
        return score_from_metrics(metrics, setup.objective)

    return evaluate
