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
) -> AsyncIterator[MarketEvent]:
    """Yield ``events`` asynchronously: as fast as possible (``speed`` None or <= 0) or at ``speed``
    times real time (1.0 = real time), measured from the first event. A ManualClock, if given, is set
    to each event's time before the event is yielded, so a backtest can be driven by the data."""
    t0: int | None = None
    w0 = 0.0
    for n, ev in enumerate(events):
        ts = ts_of(ev)
        if speed is not None and speed > 0:
            if t0 is None:
                t0, w0 = ts, monotonic()
            delay = w0 + (ts - t0) / 1e9 / speed - monotonic()
            if delay > 0:
                await sleep(delay)
            elif n % yield_every == 0:
                await sleep(0)
        elif n % yield_every == 0:
            await sleep(0)  # stay cooperative when running flat out
        if clock is not None and ts > clock.now_ns():
            clock.set(ts)
        yield ev


def open_source(
    spec: str,
    *,
    speed: float | None = None,
    symbols: Sequence[str] | None = None,
    start_ns: int | None = None,
    clock: ManualClock | None = None,
) -> Source:
    """Build a source from ``sim[:SEED]``, ``replay:PATH[,PATH...]`` or ``live``.

    ``speed`` applies to sim/replay (None = flat out); the simulator defaults to real time when
    ``start_ns`` is None (it then starts now)."""
    kind, _, arg = spec.partition(":")
    if kind == "sim":
        from .sim import SimConfig, Simulator

        cfg = SimConfig(seed=int(arg) if arg else 1)
        if symbols:
            cfg = cfg.with_symbols(symbols)
        if start_ns is None:
            cfg = cfg.replace(start_ns=time.time_ns())
            speed = 1.0 if speed is None else speed
        else:
            cfg = cfg.replace(start_ns=start_ns)
        return Simulator(cfg, speed=speed, clock=clock)
    if kind == "replay":
        from .replay import ReplaySource

        if not arg:
            raise ValueError("replay needs files: replay:PATH[,PATH...]")
        return ReplaySource([Path(p) for p in arg.split(",")], speed=speed, clock=clock)
    if kind == "live":
        from .live import LiveConfig, LiveSource

        return LiveSource(LiveConfig.default(symbols))
    raise ValueError(f"unknown market data source: {spec!r} (use sim, sim:SEED, replay:PATH, live)")
