"""`titan backtest`: the whole organism in one process on a simulated clock (titan.backtest)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
import yaml

from titan.backtest import BacktestConfig, Cadence, DataError, LatencyModel, OrganismError, run
from titan.backtest.driver import RunStats
from titan.cli.common import parse_duration
from titan.core.marketdata.files import make_overrides
from titan.core.marketdata.timestamps import parse_time_ns

NS_PER_US = 1_000


def _time(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_time_ns(text)
    except ValueError:
        raise typer.BadParameter(
            f"{flag} {text!r}: not a time (use 2022-01-05, 2022-01-05T12:00, or epoch s/ms)") from None


def _params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``PHASE.KEY=VALUE`` (VALUE read as YAML: numbers, lists, booleans)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        phase, dot, key = target.partition(".")
        if not sep or not dot or not phase or not key:
            raise typer.BadParameter(f"--param {item!r}: use PHASE.KEY=VALUE, e.g. scavenger.minTradesInWindow=40")
        out.setdefault(phase, {})[key] = yaml.safe_load(value)
    return out


def backtest_command(
    data: list[str] = typer.Option(
        ..., "--data", "-d", metavar="PATH|sim[:SEED]",
        help="market data: files or folders in any format Titan reads (Binance public data, freqtrade, "
             "CSV candles, Titan's own), merged in time order; or sim[:SEED] for the simulator. Repeatable."),
    phases_dir: Path | None = typer.Option(None, "--phases", help="folder of TitanBrain/TitanPhase YAML "
                                           "(default: the samples titan up starts from)"),
    start: str | None = typer.Option(None, "--from", help="start of the window (ISO date/time UTC or epoch)"),
    end: str | None = typer.Option(None, "--to", help="end of the window, exclusive"),
    out: Path | None = typer.Option(None, "--out", help="write the result folder here (ledger, trades, "
                                    "metrics, fingerprint, report.html, PNGs)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON line at the end"),
    only: list[str] = typer.Option([], "--phase", help="run only this phase id (repeatable)"),
    param: list[str] = typer.Option([], "--param", metavar="PHASE.KEY=VALUE",
                                    help="override a TitanPhase param for this run (repeatable)"),
    initial_equity: str | None = typer.Option(None, "--initial-equity", help="override spec.initialEquity"),
    latency_us: int = typer.Option(460, "--latency-us", help="signal->execution and execution->phase delay"),
    exact_timers: bool = typer.Option(False, "--exact-timers", help="run every periodic step, even "
                                      "over idle time (slower; see docs/backtest.md)"),
    sim_hours: float = typer.Option(24.0, "--sim-hours", help="with sim: how many hours to simulate"),
    stop_run_at: list[str] = typer.Option([], "--stop-run-at", metavar="DURATION",
                                          help="with sim: script a stop-run this long after the start (repeatable)"),
    fmt: str | None = typer.Option(None, "--format", help="the files' format instead of detecting it "
                                   "(see `titan data inspect`)"),
    symbol: str | None = typer.Option(None, "--symbol", help="the files' symbol instead of detecting it"),
    venue: str | None = typer.Option(None, "--venue", help="the files' venue instead of detecting it"),
    instrument: str | None = typer.Option(None, "--instrument", help="spot or perp, instead of detecting it"),
    timeframe: str | None = typer.Option(None, "--timeframe", help="the candles' timeframe, e.g. 1m"),
    ledger_dsn: str | None = typer.Option(None, "--ledger-dsn", help="also write the ledger rows to this "
                                          "PostgreSQL database (postgresql://...)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar on stderr"),
) -> None:
    """Backtest the organism on recorded or simulated market data: the same strategies, Brain, risk
    gate, order state machine and paper venue as `titan up`, deterministic, fingerprinted."""
    from decimal import Decimal, InvalidOperation

    try:
        equity = Decimal(initial_equity) if initial_equity is not None else None
    except InvalidOperation:
        raise typer.BadParameter(f"--initial-equity {initial_equity!r}: not a number") from None
    try:
        overrides = make_overrides(format=fmt, symbol=symbol, timeframe=timeframe, instrument=instrument,
                                   venue=venue)
        config = BacktestConfig(
            data=tuple(data), organism=phases_dir, start_ns=_time(start, "--from"), end_ns=_time(end, "--to"),
            params=_params(param), phases=tuple(only) or None, initial_equity=equity,
            latency=LatencyModel(latency_us * NS_PER_US, latency_us * NS_PER_US),
            cadence=Cadence(idle_after_ns=0) if exact_timers else Cadence(), sim_hours=sim_hours,
            sim_stop_runs_s=tuple(parse_duration(t) for t in stop_run_at), overrides=overrides,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    bar = _ProgressBar(config) if progress and sys.stderr.isatty() else None
    try:
        result = run(config, progress=bar.update if bar else None)
    except (OrganismError, DataError, OSError) as err:
        _fail(str(err))
    except ValueError as err:  # malformed data files name the file, row and problem
        _fail(str(err))
    finally:
        if bar is not None:
            bar.close()
    summary = result.summary()
    if out is not None:
        from titan.backtest.report import write_result

        write_result(result, out)
    if ledger_dsn:
        summary["ledger"] = _export(ledger_dsn, result.events)
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True))
    else:
        _print_summary(summary, out)


def _export(dsn: str, events: list[Any]) -> dict[str, Any]:
    import asyncio

    from titan.backtest.ledger_export import export_events

    try:
        report = asyncio.run(export_events(dsn, events))
    except (OSError, ConnectionError) as err:
        _fail(f"--ledger-dsn: cannot write to the ledger ({type(err).__name__}: {err})")
    except Exception as err:  # asyncpg's errors: authentication, missing database, ...
        _fail(f"--ledger-dsn: {type(err).__name__}: {err}")
    for line in report.refused[:5]:
        typer.secho(f"ledger refused {line}", err=True, fg=typer.colors.YELLOW)
    return {"written": report.written, "already_there": report.already_there, "refused": len(report.refused)}


def _fail(message: str) -> NoReturn:
    typer.secho(f"backtest: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


def _print_summary(summary: dict[str, Any], out: Path | None) -> None:
    m = summary["metrics"]["total"]

    def pct(v: Any) -> str:
        return "n/a" if v is None or isinstance(v, str) else f"{v:+.2%}"

    def num(v: Any) -> str:
        return "n/a" if v is None or isinstance(v, str) else f"{v:.2f}"

    lines = [
        f"phases       {', '.join(summary['phases']) or '(none)'}",
        f"events       {summary['market_events']:,} in {summary['wall_s']:.1f} s ({summary['events_per_s']:,.0f}/s)",
        f"signals      {summary['signals']} sent, {summary['signals_accepted']} accepted; "
        f"{summary['orders']} orders, {summary['fills']} fills, {summary['trades']} trades",
        f"equity       {summary['initial_equity']} -> {summary['final_equity']} (return {pct(m['total_return'])}, "
        f"max drawdown {pct(-m['max_drawdown'] if m['max_drawdown'] else 0.0)})",
        f"ratios       Sharpe {num(m['sharpe'])}  Sortino {num(m['sortino'])}  Calmar {num(m['calmar'])}  "
        f"win rate {pct(m['win_rate'])}  profit factor {num(m['profit_factor'])}",
        f"costs        fees {m['fees']}  funding {m['funding']}",
        f"fingerprint  {summary['fingerprint']}",
    ]
    if out is not None:
        lines.append(f"result       {out}/ (report.html, summary.json, ledger/, trades.csv)")
    typer.echo("\n".join(lines))


class _ProgressBar:
    """A rich progress bar over simulated time when the window's end is known, else a counter."""

    def __init__(self, config: BacktestConfig) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.end_ns = config.end_ns  # else the data's span, once the files are scanned
        self.progress = Progress(TextColumn("[bold]backtest"), BarColumn(), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                 transient=True)
        self.progress.start()
        self.task = self.progress.add_task("", total=None)
        self.start_ns: int | None = None

    def update(self, stats: RunStats) -> None:
        if self.start_ns is None:
            self.start_ns = stats.first_ns
        text = f"{stats.market_events:,} events · {stats.events_per_s:,.0f}/s"
        end = self.end_ns if self.end_ns is not None else (stats.span_ns[1] if stats.span_ns else None)
        if end is not None and end > self.start_ns:
            self.progress.update(self.task, total=end - self.start_ns,
                                 completed=stats.last_ns - self.start_ns, description=text)
        else:
            self.progress.update(self.task, description=text)

    def close(self) -> None:
        self.progress.stop()
