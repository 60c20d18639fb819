"""`titan report`: an HTML report (plotly) of equity, drawdown, per-phase PnL and allocations over
time, read from the ledger, plus a PNG of the equity curve."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import typer

from titan.cli.common import settings_or_exit
from titan.core.ledger import Ledger
from titan.core.money import to_decimal
from titan.phases.sentinel.pnl import CarryPnL, carry_breakdown, totals

SENTINEL_PHASE = "sentinel"


@dataclass
class ReportData:
    equity: list[tuple[int, Decimal]] = field(default_factory=list)
    phase_equity: dict[str, list[tuple[int, Decimal]]] = field(default_factory=dict)
    weights: dict[str, list[tuple[int, Decimal]]] = field(default_factory=dict)
    fills: int = 0
    decisions: int = 0
    accepted: int = 0
    carry: dict[str, CarryPnL] = field(default_factory=dict)  # Sentinel PnL split per symbol

    def carry_line(self) -> str:
        """The Sentinel's PnL split into basis, funding and fees ("" without Sentinel fills)."""
        if not self.carry:
            return ""
        t = totals(self.carry.values())
        return (f"Sentinel: basis {t['basis_pnl']:+,.2f}, funding {t['funding_pnl']:+,.2f}, "
                f"fees {-t['fees']:+,.2f}, net {t['net']:+,.2f}")

    def drawdown(self) -> list[tuple[int, Decimal]]:
        """Fraction below the running peak (0 at a new high)."""
        peak = Decimal(0)
        out = []
        for ts, eq in self.equity:
            peak = max(peak, eq)
            out.append((ts, (peak - eq) / peak if peak > 0 else Decimal(0)))
        return out

    def max_drawdown(self) -> Decimal:
        return max((dd for _, dd in self.drawdown()), default=Decimal(0))


async def load(dsn: str, since_ns: int = 0) -> ReportData:
    ledger = await Ledger.open(dsn, migrate=False)
    try:
        data = ReportData()
        data.equity = [(s.ts_ns, to_decimal(s.equity)) for s in await ledger.equity_series("total", since_ns)]
        for alloc in await ledger.allocations(since_ns=since_ns, limit=1_000_000):
            data.weights.setdefault(alloc.phase_id, []).append((alloc.ts_ns, to_decimal(alloc.weight or "0")))
        for phase in sorted(data.weights):
            series = await ledger.equity_series(phase, since_ns)
            if series:
                data.phase_equity[phase] = [(s.ts_ns, to_decimal(s.equity)) for s in series]
        data.fills = await ledger.fill_count()
        decisions = await ledger.decisions(limit=1_000_000)
        data.decisions = len(decisions)
        data.accepted = sum(1 for d in decisions if d.ack.accepted)
        data.carry = await load_carry(ledger, SENTINEL_PHASE, since_ns)
        return data
    finally:
        await ledger.close()


async def load_carry(ledger: Ledger, phase_id: str, since_ns: int = 0) -> dict[str, CarryPnL]:
    """The Sentinel's basis/funding/fee split from the ledger's fills and funding payments, open legs
    at their last marks (the same function the backtest's numbers come from)."""
    fills = await ledger.fills(phase_id, since_ns, limit=10_000_000)
    funding = await ledger.funding_payments(phase_id, since_ns)
    marks = {(p.symbol, int(p.instrument)): to_decimal(p.mark_price) for p in await ledger.positions(phase_id)
             if p.mark_price}
    return carry_breakdown(fills, funding, marks, phase_id)


def _times(series: list[tuple[int, Decimal]]) -> list[datetime]:
    return [datetime.fromtimestamp(ts / 1e9, tz=UTC) for ts, _ in series]


def _values(series: list[tuple[int, Decimal]]) -> list[float]:
    return [float(v) for _, v in series]  # floats only for plotting


def write_html(data: ReportData, path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=("Equity (quote)", "Drawdown", "PnL by phase", "Allocation weight"))
    fig.add_trace(go.Scatter(x=_times(data.equity), y=_values(data.equity), name="equity"), row=1, col=1)
    dd = data.drawdown()
    fig.add_trace(go.Scatter(x=_times(dd), y=[-v for v in _values(dd)], name="drawdown", fill="tozeroy"),
                  row=2, col=1)
    for phase, series in sorted(data.phase_equity.items()):
        fig.add_trace(go.Scatter(x=_times(series), y=_values(series), name=f"{phase} PnL"), row=3, col=1)
    for phase, series in sorted(data.weights.items()):
        fig.add_trace(go.Scatter(x=_times(series), y=_values(series), name=f"{phase} weight", stackgroup="w",
                                 line_shape="hv"), row=4, col=1)
    last = data.equity[-1][1] if data.equity else None
    first = data.equity[0][1] if data.equity else None
    title = "Titan report"
    if last is not None and first is not None:
        title += (f" — equity {last:,.2f} ({last - first:+,.2f}), max drawdown {data.max_drawdown():.2%}, "
                  f"fills {data.fills}, signals {data.decisions} ({data.accepted} accepted)")
    if data.carry_line():
        title += "<br>" + data.carry_line()
    fig.update_layout(title=title, height=1100, template="plotly_white")
    fig.update_yaxes(tickformat=".1%", row=2, col=1)
    path.write_text(fig.to_html(include_plotlyjs=True, full_html=True))


def write_png(data: ReportData, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    ax.plot(_times(data.equity), _values(data.equity), color="#1f77b4", linewidth=1.5)  # type: ignore[arg-type]
    ax.set_title("Titan equity")
    ax.set_ylabel("quote")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(
    out: Path = typer.Option(Path("reports"), "--out", help="output folder"),
    since: str | None = typer.Option(None, "--since", help="only from this UTC time (ISO)"),
) -> None:
    """Write report.html (equity, drawdown, per-phase PnL, allocations over time) and equity.png."""
    from titan.cli.organism import ControlError
    from titan.cli.organism_local import NO_TABLES, organism_backends, started_note

    settings = settings_or_exit()
    try:
        since_ns = int(datetime.fromisoformat(since).replace(tzinfo=UTC).timestamp() * 1e9) if since else 0
    except ValueError:
        raise typer.BadParameter(f"not an ISO time: {since!r} (e.g. 2026-12-01T00:00)", param_hint="--since") from None
    try:
        with organism_backends(settings) as backends:
            data = asyncio.run(load(backends.pg_dsn, since_ns))
    except ControlError as err:
        typer.secho(str(err), err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    except asyncpg.UndefinedTableError:
        typer.secho(NO_TABLES, err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    except (OSError, ConnectionError, asyncpg.PostgresError) as err:
        typer.secho(f"cannot read the ledger: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    note = started_note(backends)
    if note is not None:
        typer.secho(note.text, err=True, fg=typer.colors.YELLOW)
    if not data.equity:
        typer.secho("the ledger has no equity snapshots yet: run the organism first", err=True,
                    fg=typer.colors.YELLOW)
        raise typer.Exit(1)
    out.mkdir(parents=True, exist_ok=True)
    write_html(data, out / "report.html")
    write_png(data, out / "equity.png")
    typer.echo(f"wrote {out / 'report.html'} and {out / 'equity.png'} "
               f"({len(data.equity)} equity points, max drawdown {data.max_drawdown():.2%})")
    if data.carry_line():
        typer.echo(data.carry_line())
