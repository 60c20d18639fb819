"""A finished backtest: its ledger, trades, figures and fingerprint; ``run(config)`` makes one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from titan.backtest.config import BacktestConfig
from titan.backtest.driver import Backtest, Progress, RunStats
from titan.backtest.organism import Organism
from titan.backtest.performance import Metrics, Trade, closed_trades, compute_metrics
from titan.backtest.record import EquityPoint, Recorder
from titan.core.marketdata.datafile import FileReport
from titan.core.money import to_decimal
from titan.v1 import events_pb2, trading_pb2
from titan.v1.market_pb2 import MarketEvent


@dataclass(frozen=True)
class MetricsReport:
    total: Metrics
    by_phase: dict[str, Metrics] = field(default_factory=dict)


@dataclass
class BacktestResult:
    config: BacktestConfig
    fingerprint: str
    phases: tuple[str, ...]
    initial_equity: Decimal
    final_equity: Decimal
    fills: list[trading_pb2.Fill]
    orders: dict[str, trading_pb2.Order]
    funding: list[trading_pb2.FundingPayment]
    trades: list[Trade]
    metrics: MetricsReport
    equity: dict[str, list[EquityPoint]]
    events: list[events_pb2.Event]
    stats: RunStats
    prices: dict[tuple[str, str, int], list[tuple[int, float]]]
    counts: dict[str, int]
    signals_decided: int = 0
    signals_accepted: int = 0
    data: list[dict[str, Any]] = field(default_factory=list)
    carry: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # Sentinel phases: per symbol

    def summary(self) -> dict[str, Any]:
        """What ``titan backtest --json`` prints (one JSON object)."""
        st = self.stats
        return {
            "fingerprint": self.fingerprint,
            "phases": list(self.phases),
            "from_ns": st.first_ns,
            "to_ns": st.last_ns,
            "market_events": st.market_events,
            "signals": st.signals,
            "signals_decided": self.signals_decided,
            "signals_accepted": self.signals_accepted,
            "orders": len(self.orders),
            "fills": len(self.fills),
            "trades": len(self.trades),
            "initial_equity": str(self.initial_equity),
            "final_equity": str(self.final_equity),
            "metrics": {"total": self.metrics.total.as_dict(),
                        "by_phase": {k: m.as_dict() for k, m in sorted(self.metrics.by_phase.items())}},
            "events_per_s": round(st.events_per_s, 1),
            "wall_s": round(st.wall_s, 3),
            "problems": list(st.problems),
            "data": self.data,
            "carry": self.carry,
        }


def run(config: BacktestConfig, progress: Progress | None = None, organism: Organism | None = None,
        events: Iterable[MarketEvent] | None = None) -> BacktestResult:
    """Run one backtest to the end of its data (``organism``: one built in code instead of
    ``config.organism``'s YAML; ``events``: market events prepared by the caller instead of
    ``config.data``)."""
    backtest = Backtest(config, organism)
    recorder = backtest.run(events, progress=progress)
    organism = backtest.organism
    start = organism.initial_equity
    trades = closed_trades(recorder.fills, recorder.funding)
    funding_total = sum((to_decimal(p.amount) for p in recorder.funding), Decimal(0))
    total = compute_metrics(recorder.equity.get("total", []), trades, start, funding_total)
    by_phase: dict[str, Metrics] = {}
    for plan in organism.runs:
        pid = plan.phase_id
        phase_trades = [t for t in trades if t.phase_id == pid]
        phase_funding = sum((to_decimal(p.amount) for p in recorder.funding if p.phase_id == pid), Decimal(0))
        by_phase[pid] = compute_metrics(recorder.equity.get(pid, []), phase_trades, start, phase_funding, base=start)
    return BacktestResult(
        config=config,
        fingerprint=recorder.fingerprint,
        phases=tuple(plan.phase_id for plan in organism.runs),
        initial_equity=start,
        final_equity=backtest.final_equity,
        fills=recorder.fills,
        orders=recorder.orders,
        funding=recorder.funding,
        trades=trades,
        metrics=MetricsReport(total, by_phase),
        equity=recorder.equity,
        events=recorder.events,
        stats=backtest.stats,
        prices=backtest.prices.series,
        counts=dict(recorder.counts),
        signals_decided=recorder.decisions,
        signals_accepted=recorder.accepted,
        data=[_file_report(r) for r in backtest.feed.reports()] if backtest.feed is not None else [],
        carry=_carry(backtest, recorder),
    )


def _carry(backtest: Backtest, recorder: Recorder) -> dict[str, dict[str, dict[str, str]]]:
    """Each Sentinel phase's PnL per symbol split into basis, funding and fees (the same function
    `titan report` uses), at the engine's marks at the end of the run."""
    from titan.phases.sentinel.pnl import carry_breakdown

    # The engine's marks at the end of the run: a position record's mark is that of its last fill or
    # funding, so one leg could be valued hours staler than its twin.
    marks = {
        (p.symbol, int(p.instrument)): to_decimal(p.mark_price) for p in backtest.engine.positions() if p.mark_price
    }
    out: dict[str, dict[str, dict[str, str]]] = {}
    for plan in backtest.organism.runs:
        if plan.kind.name != "sentinel":
            continue
        rows = carry_breakdown(recorder.fills, recorder.funding, marks, phase_id=plan.phase_id)
        out[plan.phase_id] = {symbol: {"basis_pnl": str(row.basis_pnl), "funding_pnl": str(row.funding_pnl),
                                       "fees": str(row.fees)} for symbol, row in sorted(rows.items())}
    return out


def _file_report(report: FileReport) -> dict[str, Any]:
    """What reading one file found, for the summary: rows, time range, repairs and gaps."""
    return {
        "file": str(report.path), "rows": report.rows, "events": report.events,
        "first_ns": report.first_ns, "last_ns": report.last_ns, "timeframe": report.timeframe,
        "duplicates_dropped": report.duplicates, "rows_sorted": report.out_of_order,
        "gaps": report.gap_count, "gap_list": [str(g) for g in report.gaps], "notes": list(report.notes),
    }


__all__ = ["BacktestResult", "MetricsReport", "run"]
