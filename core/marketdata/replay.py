"""Replay of market data files, several merged by time, flat out or at a chosen speed-up."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from titan.core.clock import ManualClock
from titan.core.metrics import MD_EVENTS
from titan.v1.market_pb2 import MarketEvent

from .events import kind_of, ts_of
from .files import FileMeta, read_file
from .source import Sleep, pace


@dataclass(frozen=True)
class ReplayFile:
    """A file to replay, with its venue/symbol when the name does not tell."""

    path: Path
    meta: FileMeta | None = None


class ReplaySource:
    """Merges files by event time (ties: in the order the files were given, then file order).

    Each file must be in time order; an event older than its file's previous one is dropped and
    counted in ``out_of_order`` (the merge would otherwise emit time going backwards).
    ``start_ns``/``end_ns`` cut a window ``[start, end)``. Each emitted event gets a per-stream
    ``seq`` if it had none, so consumers can detect gaps uniformly.
    """

    name = "replay"

    def __init__(
        self,
        files: Sequence[Path | str | ReplayFile],
        *,
        speed: float | None = None,
        clock: ManualClock | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files = [f if isinstance(f, ReplayFile) else ReplayFile(Path(f)) for f in files]
        self.speed = speed
        self.clock = clock
        self.start_ns = start_ns
        self.end_ns = end_ns
        self._sleep = sleep
        self._monotonic = monotonic
        self.out_of_order = 0
        self.emitted = 0

    def _ordered(self, f: ReplayFile) -> Iterator[MarketEvent]:
        last = -1
        for ev in read_file(f.path, f.meta):
            ts = ts_of(ev)
            if ts < last:
                self.out_of_order += 1
                continue
            last = ts
            yield ev

    def events(self) -> Iterator[MarketEvent]:
        """All events, time-ordered, unpaced. Sets the ManualClock (if any) as it goes."""
        merged = heapq.merge(*(self._ordered(f) for f in self.files), key=ts_of)
        seqs: dict[tuple[str, str, int], int] = {}
        for ev in merged:
            ts = ts_of(ev)
            if self.start_ns is not None and ts < self.start_ns:
                continue
            if self.end_ns is not None and ts >= self.end_ns:
                break
            key = (ev.venue, ev.symbol, int(ev.instrument))
            n = seqs.get(key, 0) + 1
            seqs[key] = n
            if not ev.seq:
                ev.seq = n
            if self.clock is not None and ts > self.clock.now_ns():
                self.clock.set(ts)
            self.emitted += 1
            MD_EVENTS.labels("replay", ev.venue, kind_of(ev).value).inc()
            yield ev

    def __iter__(self) -> Iterator[MarketEvent]:
        return self.events()

    async def stream(self) -> AsyncIterator[MarketEvent]:
        async for ev in pace(self.events(), self.speed, sleep=self._sleep, monotonic=self._monotonic):
            yield ev

    async def aclose(self) -> None:
        return None
