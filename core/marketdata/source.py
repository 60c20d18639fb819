"""The ``Source`` protocol shared by the simulator, file replay and live feeds, and pacing.

Every source gives an async stream of MarketEvents in time order (``stream()``); offline sources
(simulator, replay) also give a plain iterator (``events()``) that a backtest drains as fast as it
likes. ``titan up`` picks a source with :func:`open_source` from a spec string:
``sim`` / ``sim:SEED`` / ``replay:PATH[,PATH...]`` / ``live``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from titan.core.clock import ManualClock
from titan.v1.market_pb2 import MarketEvent

from .events import ts_of

Sleep = Callable[[float], Awaitable[None]]


@runtime_checkable
class Source(Protocol):
    """A market data source. ``stream()`` yields events in time order until the source ends."""

    name: str

    def stream(self) -> AsyncIterator[MarketEvent]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class OfflineSource(Source, Protocol):
    """A source that can also be drained synchronously, unpaced (backtests)."""

    def events(self) -> Iterator[MarketEvent]: ...


async def pace(
    events: Iterable[MarketEvent],
    speed: float | None,
    *,
    sleep: Sleep = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    clock: ManualClock | None = None,
    yield_every: int = 256,
    start_ns: int | None = None,
) -> AsyncIterator[MarketEvent]:
    """Yield ``events`` asynchronously: as fast as possible (``speed`` None or <= 0) or at ``speed``
    times real time (1.0 = real time), measured from the first event. A ManualClock, if given, is set
    to each event's time before the event is yielded, so a backtest can be driven by the data.

    ``start_ns`` marks where real time begins: events older than it (a source's history prelude) are
    yielded at once, and an event at ``ts >= start_ns`` is due ``(ts - start_ns) / speed`` seconds
    after ``pace`` began, so the stream catches up with the time the history took."""
    rate = speed if speed is not None and speed > 0 else None
    t0: int | None = None
    w0 = 0.0
    if rate is not None and start_ns is not None:
        t0, w0 = start_ns, monotonic()
    for n, ev in enumerate(events):
        ts = ts_of(ev)
        if rate is not None and (start_ns is None or ts >= start_ns):
            if t0 is None:
                t0, w0 = ts, monotonic()
            delay = w0 + (ts - t0) / 1e9 / rate - monotonic()
            if delay > 0:
                await sleep(delay)
            elif n % yield_every == 0:
                await sleep(0)
        elif n % yield_every == 0:
            await sleep(0)  # stay cooperative when running flat out
        if clock is not None and ts > clock.now_ns():
            clock.set(ts)
        yield ev


LIVE_SIM_HISTORY_HOURS = 72  # history prelude of a real-time simulator (structure candles at once)


def open_source(
    spec: str,
    *,
    speed: float | None = None,
    symbols: Sequence[str] | None = None,
    start_ns: int | None = None,
    clock: ManualClock | None = None,
    history_hours: int | None = None,
    stop_runs_s: Sequence[float] = (),
    start_marks: Sequence[tuple[str, float]] = (),
) -> Source:
    """Build a source from ``sim[:SEED]``, ``replay:PATH[,PATH...]`` or ``live``.

    ``speed`` applies to sim/replay (None = flat out); the simulator defaults to real time when
    ``start_ns`` is None (it then starts now) and then first emits a history prelude of
    ``history_hours`` (default :data:`LIVE_SIM_HISTORY_HOURS`; 0 for a given ``start_ns``).
    A paced replay (``speed`` > 0) is rebased to now (``ReplaySource(rebase=True)``): the history
    before its first trade/book event passes at once and that event is stamped with the present.
    ``stop_runs_s`` scripts simulator stop-runs that many seconds after the start
    (:attr:`SimConfig.scripted_runs_s`); other sources refuse it. ``start_marks`` starts the
    simulator's market at those perp marks (:attr:`SimConfig.start_marks`); other sources refuse it."""
    kind, _, arg = spec.partition(":")
    if kind == "sim":
        from .sim import SimConfig, Simulator

        cfg = SimConfig(seed=int(arg) if arg else 1, scripted_runs_s=tuple(stop_runs_s),
                        start_marks=tuple(start_marks))
        if symbols:
            cfg = cfg.with_symbols(symbols)
        if start_ns is None:
            hours = LIVE_SIM_HISTORY_HOURS if history_hours is None else history_hours
            cfg = cfg.replace(start_ns=time.time_ns(), history_hours=hours)
            speed = 1.0 if speed is None else speed
        else:
            cfg = cfg.replace(start_ns=start_ns, history_hours=history_hours or 0)
        return Simulator(cfg, speed=speed, clock=clock)
    if stop_runs_s:
        raise ValueError("scripted stop-runs need the simulator (sim or sim:SEED)")
    if start_marks:
        raise ValueError("start marks need the simulator (sim or sim:SEED)")
    if kind == "replay":
        from .replay import ReplaySource

        if not arg:
            raise ValueError("replay needs files: replay:PATH[,PATH...]")
        # Paced (live-like) replays are rebased to now: their events carry present-day timestamps,
        # so freshness checks, time-to-live and wall-clock timers behave as on a live feed.
        # A flat-out replay (a backtest) keeps the files' own times.
        paced = speed is not None and speed > 0
        return ReplaySource([Path(p) for p in arg.split(",")], speed=speed, clock=clock, rebase=paced)
    if kind == "live":
        from .live import LiveConfig, LiveSource

        return LiveSource(LiveConfig.default(symbols))
    raise ValueError(f"unknown market data source: {spec!r} (use sim, sim:SEED, replay:PATH, live)")
