"""`titan data`: record live public market data, replay files, synthesise simulated days."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import nats.errors
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from titan.core.marketdata.continuation import ContinuationError, MarketMarks, MarkTracker, load
from titan.core.marketdata.continuation import save as save_marks
from titan.core.marketdata.datafile import DataFileError, FileFormat, Overrides
from titan.core.marketdata.events import kind_of
from titan.core.marketdata.files import EventWriter, make_overrides, open_files
from titan.core.marketdata.live import CHANNELS, LiveConfig, LiveFeed, LiveSource
from titan.core.marketdata.replay import ReplaySource
from titan.core.marketdata.sim import SimConfig, Simulator

app = typer.Typer(help="Market data: record live feeds, replay files, synthesise simulated days.",
                  no_args_is_help=True)
console = Console(stderr=True)
log = logging.getLogger("titan.marketdata.gateway")

DAY_NS = 86_400 * 10**9
MARKS_EVERY_S = 5.0


def _symbols(text: str) -> tuple[str, ...]:
    return tuple(s.strip().upper() for s in text.split(",") if s.strip())


def _date_ns(text: str) -> int:
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 10**9


def _summary(counts: Counter[str], seconds: float) -> None:
    total = sum(counts.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    console.print(f"{total} events in {seconds:.1f}s ({parts})")


@app.command()
def synth(
    days: float = typer.Option(1.0, "--days", min=0.001, help="simulated days"),
    seed: int = typer.Option(1, "--seed", help="random seed (same seed, same data)"),
    out: Path = typer.Option(..., "--out", help="output directory (one file per UTC day)"),
    symbols: str = typer.Option("BTCUSDT,ETHUSDT", "--symbols", help="comma-separated"),
    start: str = typer.Option("2024-01-01", "--start", help="UTC start date/time (ISO)"),
    fmt: str = typer.Option("tmd.gz", "--format", help="tmd.gz, tmd or csv"),
) -> None:
    """Write N simulated days (spot + perp per symbol) as Titan files, one per UTC day."""
    if fmt not in ("tmd.gz", "tmd", "csv"):
        raise typer.BadParameter("format must be tmd.gz, tmd or csv")
    out.mkdir(parents=True, exist_ok=True)
    start_ns = _date_ns(start)
    end_ns = start_ns + int(days * DAY_NS)
    cfg = SimConfig(seed=seed, symbols=_symbols(symbols), start_ns=start_ns)
    counts: Counter[str] = Counter()
    writer: EventWriter | None = None
    day_of_writer = -1
    t0 = time.monotonic()
    total_s = (end_ns - start_ns) // 10**9
    with Progress(
        SpinnerColumn(), TextColumn("[bold]synth[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("sim-s"), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    ) as progress:
        task = progress.add_task(f"seed {seed}", total=total_s)
        last_s = start_ns // 10**9
        try:
            for ev in Simulator(cfg).events(end_ns=end_ns):
                day = ev.exchange_ts_ns // DAY_NS
                if day != day_of_writer:
                    if writer is not None:
                        writer.close()
                    stamp = datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%d")
                    writer = EventWriter(out / f"sim-seed{seed}-{stamp}.{fmt}")
                    day_of_writer = day
                assert writer is not None
                writer.write(ev)
                counts[kind_of(ev).value] += 1
                now_s = ev.exchange_ts_ns // 10**9
                if now_s - last_s >= 60:
                    progress.update(task, advance=now_s - last_s)
                    last_s = now_s
            progress.update(task, completed=total_s)
        finally:
            if writer is not None:
                writer.close()
    _summary(counts, time.monotonic() - t0)
    for path in sorted(out.glob(f"sim-seed{seed}-*.{fmt}")):
        typer.echo(str(path))


FORMATS = ", ".join(f.value for f in FileFormat)


def _overrides(fmt: str | None, symbol: str | None, timeframe: str | None, instrument: str | None,
               venue: str | None) -> Overrides:
    try:
        return make_overrides(format=fmt, symbol=symbol, timeframe=timeframe, instrument=instrument, venue=venue)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def _fail(err: Exception) -> typer.Exit:
    """A bad file: one line naming file, line and problem; exit 1, no traceback."""
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(1)


FORMAT_HELP = f"file format instead of detecting it: {FORMATS}"
SYMBOL_HELP = "symbol instead of the one from the file name/content (e.g. BTCUSDT)"
TF_HELP = "candle timeframe instead of the one from the name/rows (e.g. 1m, 1h)"
INST_HELP = "spot or perp instead of the detected one"
VENUE_HELP = "venue instead of the one from the file name (e.g. binance)"


@app.command()
def replay(
    paths: list[Path] = typer.Argument(..., help="files to merge by time (exchange samples or Titan files)"),
    speed: float = typer.Option(0.0, "--speed", help="x real time (0 = as fast as possible)"),
    publish: bool = typer.Option(False, "--publish", help="publish on NATS (TITAN_NATS_URL) via the gateway"),
    out: Path | None = typer.Option(None, "--out", help="also write the merged events to a Titan file"),
    start: str | None = typer.Option(None, "--start", help="UTC start (ISO), inclusive"),
    end: str | None = typer.Option(None, "--end", help="UTC end (ISO), exclusive"),
    fmt: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    symbol: str | None = typer.Option(None, "--symbol", help=SYMBOL_HELP),
    timeframe: str | None = typer.Option(None, "--timeframe", help=TF_HELP),
    instrument: str | None = typer.Option(None, "--instrument", help=INST_HELP),
    venue: str | None = typer.Option(None, "--venue", help=VENUE_HELP),
) -> None:
    """Replay files merged by time: check them, count them, write a Titan file and/or publish on NATS.

    Every file is checked in full before the first event: a bad row stops the replay with the file,
    line and problem; rows out of order are sorted and duplicates dropped, with a warning."""
    overrides = _overrides(fmt, symbol, timeframe, instrument, venue)
    try:
        source = ReplaySource(paths, overrides=overrides, speed=speed or None,
                              start_ns=_date_ns(start) if start else None, end_ns=_date_ns(end) if end else None)
        source.check()  # every row of every file, before anything is written or published
        asyncio.run(_replay(source, publish, out))
    except DataFileError as err:
        raise _fail(err) from None


async def _replay(source: ReplaySource, publish: bool, out: Path | None) -> None:
    from titan.cli.common import settings_or_exit

    gateway = None
    nc = None
    if publish:
        from titan.core.bus import connect
        from titan.core.marketdata.gateway import Gateway

        settings = settings_or_exit()
        if not settings.nats_url:
            console.print("[red]--publish needs TITAN_NATS_URL (or `titan infra up`)[/]")
            raise typer.Exit(2)
        nc = await connect(settings.nats_url, "titan-data-replay")
        gateway = Gateway(nc, settings.catalog)  # counts as source="gateway"; the replay counts itself
    counts: Counter[str] = Counter()
    t0 = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            writer = stack.enter_context(EventWriter(out)) if out else None  # renamed into place only when done
            progress = stack.enter_context(Progress(
                SpinnerColumn(), TextColumn("[bold]replay[/] {task.description}"), MofNCompleteColumn(),
                TextColumn("events"), TimeElapsedColumn(), console=console))
            task = progress.add_task(", ".join(f.path.name for f in source.files), total=None)
            async for ev in source.stream():
                counts[kind_of(ev).value] += 1
                if writer is not None:
                    writer.write(ev)
                if gateway is not None:
                    await gateway.publish(ev)
                if source.emitted % 500 == 0:
                    progress.update(task, completed=source.emitted)
            progress.update(task, completed=source.emitted)
    finally:
        if nc is not None:
            await nc.flush()
            await nc.close()
    for report in source.reports:
        for warning in report.warnings():
            console.print(f"[yellow]{report.path.name}: {warning}[/]", markup=True, highlight=False)
    _summary(counts, time.monotonic() - t0)


@app.command()
def inspect(
    paths: list[Path] = typer.Argument(..., help="market data files"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per file, one per line"),
    fmt: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    symbol: str | None = typer.Option(None, "--symbol", help=SYMBOL_HELP),
    timeframe: str | None = typer.Option(None, "--timeframe", help=TF_HELP),
    instrument: str | None = typer.Option(None, "--instrument", help=INST_HELP),
    venue: str | None = typer.Option(None, "--venue", help=VENUE_HELP),
) -> None:
    """What each file was detected as (format, venue, symbol, instrument, kind, timeframe), its time
    range, row count, gaps and repairs. Reads every row; exits 1 naming the file and line of a bad row."""
    import json

    from titan.core.marketdata.inspection import render, summary

    o = _overrides(fmt, symbol, timeframe, instrument, venue)
    try:
        files = open_files(paths, format=o.format, symbol=o.symbol, timeframe=o.timeframe, instrument=o.instrument,
                           venue=o.venue)
        for f in files:
            info = summary(f)
            typer.echo(json.dumps(info, sort_keys=True) if as_json else render(info))
    except DataFileError as err:
        raise _fail(err) from None


@app.command()
def record(
    out: Path = typer.Option(..., "--out", help="output directory"),
    minutes: float = typer.Option(10.0, "--minutes", min=0.01, help="how long to record"),
    symbols: str = typer.Option("BTCUSDT,ETHUSDT", "--symbols", help="comma-separated"),
    venues: str = typer.Option("binance,bybit", "--venues", help="binance (spot) and/or bybit (linear perps)"),
) -> None:
    """Record live public data (no API keys) into a Titan file; needs network access."""
    syms = _symbols(symbols)
    feeds = []
    for venue in (v.strip() for v in venues.split(",") if v.strip()):
        if venue == "binance":
            feeds.append(LiveFeed("binance", syms, ("trades", "book"), book_depth=1000))
        elif venue == "bybit":
            feeds.append(LiveFeed("bybit", syms, CHANNELS, book_depth=50))
        else:
            raise typer.BadParameter(f"unsupported venue: {venue}")
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"live-{stamp}.tmd.gz"
    asyncio.run(_record(LiveSource(LiveConfig(feeds=tuple(feeds))), path, minutes * 60))
    typer.echo(str(path))


async def _record(source: LiveSource, path: Path, seconds: float) -> None:
    counts: Counter[str] = Counter()
    t0 = time.monotonic()
    with EventWriter(path) as writer, Progress(
        SpinnerColumn(), TextColumn("[bold]record[/]"), BarColumn(), TextColumn("{task.fields[n]} events"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    ) as progress:
        task = progress.add_task("record", total=seconds, n=0)

        async def consume() -> None:
            async for ev in source.stream():
                writer.write(ev)
                counts[kind_of(ev).value] += 1
                if writer.count % 200 == 0:
                    progress.update(task, completed=time.monotonic() - t0, n=writer.count)

        consumer = asyncio.create_task(consume())
        try:
            while time.monotonic() - t0 < seconds and not consumer.done():
                await asyncio.sleep(0.5)
                progress.update(task, completed=min(seconds, time.monotonic() - t0), n=writer.count)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await source.aclose()
    _summary(counts, time.monotonic() - t0)
    if source.gaps:
        console.print(f"[yellow]{source.gaps} book sequence gaps (resubscribed)[/]")


@app.command()
def gateway(
    source: str = typer.Option("sim", "--source", help="sim, sim:SEED, replay:PATH[,PATH...] or live"),
    speed: float = typer.Option(1.0, "--speed", help="x real time for sim/replay (0 = as fast as possible)"),
    symbols: str = typer.Option("BTCUSDT,ETHUSDT", "--symbols", help="comma-separated"),
    json_logs: bool = typer.Option(False, "--json-logs", help="structured JSON log lines"),
    stop_run_at: list[str] = typer.Option(
        [], "--stop-run-at", metavar="DURATION",
        help="simulator: script a stop-run this long after the start (e.g. 30s; repeatable)"),
    market_state: Path | None = typer.Option(
        None, "--market-state", metavar="FILE",
        help="simulator: start at the perp marks saved in FILE (if it exists) and keep saving them there"),
) -> None:
    """Run the market-data gateway: publish a source's events on NATS (titan.md.<venue>.<symbol>.<kind>)."""
    from titan.cli.common import parse_duration, settings_or_exit
    from titan.core.bus import connect
    from titan.core.marketdata.gateway import Gateway
    from titan.core.marketdata.source import open_source
    from titan.core.service import run_service

    settings = settings_or_exit()
    if not settings.nats_url:
        console.print("[red]the gateway needs TITAN_NATS_URL (or `titan infra up`)[/]")
        raise typer.Exit(2)
    marks = _saved_marks(market_state, source, _symbols(symbols))
    try:
        src = open_source(source, speed=speed or None, symbols=_symbols(symbols),
                          stop_runs_s=[parse_duration(t) for t in stop_run_at],
                          start_marks=marks.start_marks() if marks else ())
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    state = {"ok": False}
    tracker = None
    if market_state is not None and isinstance(src, Simulator):
        tracker = MarkTracker(src.config.venue, live_from_ns=src.config.start_ns)

    async def main(stop: asyncio.Event) -> None:
        if isinstance(src, Simulator) and src.config.scripted_runs_s:
            cfg = src.config
            at = ", ".join(datetime.fromtimestamp(cfg.start_ns / 1e9 + t, UTC).isoformat(timespec="seconds")
                           for t in sorted(cfg.scripted_runs_s))
            log.info("scripted stop-runs at %s: every symbol's perp breaks its range extreme", at)
        if tracker is not None and market_state is not None and isinstance(src, Simulator):
            _announce(market_state, marks, src.config.seed)
        nc = await connect(settings.nats_url, "titan-md-gateway")
        gw = Gateway(nc, settings.catalog)
        state["ok"] = True
        run = asyncio.create_task(gw.run(src, tracker.observe if tracker else None))
        halt = asyncio.create_task(stop.wait())
        keeper = asyncio.create_task(_keep_marks(tracker, market_state)) if tracker and market_state else None
        try:
            await asyncio.wait({run, halt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            state["ok"] = False
            for task in (run, keeper):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            halt.cancel()
            try:
                await nc.drain()
            except (nats.errors.Error, TimeoutError, asyncio.InvalidStateError) as err:  # shutting down anyway
                log.warning("closing the NATS connection failed (%s)", type(err).__name__)
            if tracker and market_state and (last := tracker.snapshot()):
                save_marks(market_state, last)

    run_service("md-gateway", settings, main, health=lambda: state["ok"], json_logs=json_logs)


def _saved_marks(path: Path | None, source: str, symbols: tuple[str, ...]) -> MarketMarks | None:
    """The marks a previous run saved at ``path`` for the symbols run now (None: a new market)."""
    if path is None:
        return None
    if source.partition(":")[0] != "sim":
        raise typer.BadParameter("--market-state needs the simulator (sim or sim:SEED)")
    try:
        marks = load(path)
    except ContinuationError as err:
        console.print(f"[red]{err}[/] (remove the file to start a new simulated market)")
        raise typer.Exit(2) from None
    if marks is None:
        return None
    kept = tuple((symbol, mark) for symbol, mark in marks.marks if symbol in symbols)
    return MarketMarks(marks.venue, marks.at_ns, kept) if kept else None


def _announce(path: Path, marks: MarketMarks | None, seed: int) -> None:
    if marks is None:
        log.info("simulator: a new market from seed %d (no marks saved in %s yet)", seed, path)
        return
    at = datetime.fromtimestamp(marks.at_ns / 1e9, UTC).isoformat(timespec="seconds")
    log.info("simulator: continues from the marks saved at %s: %s (%s)", at, marks.describe(), path)


async def _keep_marks(tracker: MarkTracker, path: Path) -> None:
    """Save the simulator's last marks every few seconds (and the caller saves them at exit)."""
    while True:
        await asyncio.sleep(MARKS_EVERY_S)
        marks = tracker.snapshot()
        if marks is not None:
            try:
                save_marks(path, marks)
            except OSError as err:
                log.warning("cannot save the simulator's marks to %s: %s", path, err.strerror)
