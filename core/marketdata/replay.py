"""Replay of market data files, several merged by time, flat out or at a chosen speed-up.

A paced replay can be *rebased to now* (``rebase=True``): every timestamp is shifted by one constant
so the first live event is stamped with the wall-clock time at which the replay starts. Live-like
consumers (execution's freshness gate, signal time-to-live, strategies' wall-clock timers) then see
events near the present. History before the first live event (candles, funding, open interest, marks
that precede the first trade or book event) is shifted too and passes at once, unpaced.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from titan.core.clock import ManualClock
from titan.core.metrics import MD_EVENTS
from titan.v1.market_pb2 import MarketEvent

from .datafile import FileMeta, FileReport, Overrides
from .detect import detect
from .events import kind_of, ts_of
from .files import DataFile
from .source import Sleep, pace

# Payload kinds that start the live part of a replay; what precedes the first of them is history.
LIVE_KINDS = frozenset({"trade", "top", "depth", "liquidation"})


def shift_event(ev: MarketEvent, delta_ns: int) -> MarketEvent:
    """Shift every timestamp of ``ev`` in place by ``delta_ns``: exchange and receive times, a
    candle's open/close times, a funding event's funding times. Zero (unset) times stay zero."""
    if not delta_ns:
        return ev
    if ev.exchange_ts_ns:
        ev.exchange_ts_ns += delta_ns
    if ev.receive_ts_ns:
        ev.receive_ts_ns += delta_ns
    kind = ev.WhichOneof("payload")
    if kind == "candle":
        ev.candle.open_time_ns += delta_ns
        ev.candle.close_time_ns += delta_ns
    elif kind == "funding":
        if ev.funding.funding_time_ns:
            ev.funding.funding_time_ns += delta_ns
        if ev.funding.next_funding_time_ns:
            ev.funding.next_funding_time_ns += delta_ns
    return ev


@dataclass(frozen=True)
class ReplayFile:
    """A file to replay, with its venue/symbol when the name does not tell."""

    path: Path
    meta: FileMeta | None = None

    def open(self, overrides: Overrides) -> DataFile:
        if self.meta is not None:
            m = self.meta
            overrides = replace(overrides, venue=m.venue, symbol=m.symbol, instrument=m.instrument,
                                timeframe=m.timeframe)
        return DataFile(detect(self.path, overrides))


def _data_file(f: Path | str | ReplayFile | DataFile, overrides: Overrides) -> DataFile:
    if isinstance(f, DataFile):
        return f
    return (f if isinstance(f, ReplayFile) else ReplayFile(Path(f))).open(overrides)


class ReplaySource:
    """Merges files by event time (ties: in the order the files were given, then file order).

    Files are any :mod:`.files` reads, detected by content and name; ``overrides`` states format,
    venue, symbol, instrument or timeframe instead (for every file). With ``scan`` (the default) each
    file is read once before the replay starts: every row is checked (a bad row raises
    :class:`~.datafile.DataFileError` before any event is emitted), rows out of time order are sorted
    (counted in ``out_of_order``), exact duplicates dropped; ``reports`` holds what each file held.
    Without ``scan`` an out-of-order row raises when it is reached.
    ``start_ns``/``end_ns`` cut a window ``[start, end)`` (in the files' own time). Each emitted
    event gets a per-stream ``seq`` if it had none, so consumers can detect gaps uniformly.

    ``rebase=True`` shifts all timestamps (see :func:`shift_event`) by one constant so that the
    *anchor* — ``live_from_ns`` if given, else the first trade, book top, book depth or liquidation
    event (else the first event) — is stamped ``rebase_to_ns`` (default: the wall clock when the
    iteration starts). Events before the anchor are history: ``stream()`` yields them at once and
    paces from the anchor on, so at ``speed`` 1 every live event is stamped about when it is yielded.
    The shift applied is ``shift_ns`` (0 without rebasing).
    """

    name = "replay"

    def __init__(
        self,
        files: Sequence[Path | str | ReplayFile | DataFile],
        *,
        overrides: Overrides | None = None,
        scan: bool = True,
        speed: float | None = None,
        clock: ManualClock | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rebase: bool = False,
        rebase_to_ns: int | None = None,
        live_from_ns: int | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.files = [_data_file(f, overrides or Overrides()) for f in files]
        self.scan = scan
        self.speed = speed
        self.clock = clock
        self.start_ns = start_ns
        self.end_ns = end_ns
        self._sleep = sleep
        self._monotonic = monotonic
        self.rebase = rebase
        self.rebase_to_ns = rebase_to_ns
        self.live_from_ns = live_from_ns
        self._wall_ns = wall_ns
        self.shift_ns = 0
        self.anchor_ns: int | None = None  # the first live event's (shifted) time, once known
        self.out_of_order = 0
        self.emitted = 0

    @property
    def reports(self) -> list[FileReport]:
        """What each file held (rows, time range, repairs, gaps), after a scan or a full pass."""
        return [f.report for f in self.files]

    def check(self) -> None:
        """Scan every file not scanned yet (when ``scan``); done before the first event anyway."""
        if self.scan:
            for f in self.files:
                if not f.scanned:
                    f.scan()
        self.out_of_order = sum(f.report.out_of_order for f in self.files)

    def _merged(self) -> Iterator[MarketEvent]:
        return heapq.merge(*(f.events() for f in self.files), key=ts_of)

    def _find_anchor(self) -> int | None:
        """The original time of the first live event inside the window (else of the first event)."""
        first: int | None = None
        for ev in self._merged():
            ts = ts_of(ev)
            if self.start_ns is not None and ts < self.start_ns:
                continue
            if self.end_ns is not None and ts >= self.end_ns:
                break
            if first is None:
                first = ts
            if ev.WhichOneof("payload") in LIVE_KINDS:
                return ts
        return first

    def _plan(self) -> None:
        """Check the files, fix the shift (and the anchor) before the first event is emitted."""
        self.check()
        if not self.rebase:
            self.shift_ns, self.anchor_ns = 0, None
            return
        anchor = self.live_from_ns if self.live_from_ns is not None else self._find_anchor()
        if anchor is None:
            self.shift_ns, self.anchor_ns = 0, None
            return
        target = self.rebase_to_ns if self.rebase_to_ns is not None else self._wall_ns()
        self.shift_ns = target - anchor
        self.anchor_ns = target

    def events(self) -> Iterator[MarketEvent]:
        """All events, time-ordered, unpaced (shifted when rebasing). Sets the ManualClock (if any)
        as it goes."""
        self._plan()
        return self._emit()

    def _emit(self) -> Iterator[MarketEvent]:
        merged = self._merged()
        shift = self.shift_ns
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
            if shift:
                shift_event(ev, shift)
                ts = ts_of(ev)
            if self.clock is not None and ts > self.clock.now_ns():
                self.clock.set(ts)
            self.emitted += 1
            MD_EVENTS.labels("replay", ev.venue, kind_of(ev).value).inc()
            yield ev

    def __iter__(self) -> Iterator[MarketEvent]:
        return self.events()

    async def stream(self) -> AsyncIterator[MarketEvent]:
        """Events paced at ``speed`` (flat out when None). When rebasing, history before the anchor
        passes at once and pacing starts at the anchor."""
        self._plan()
        async for ev in pace(self._emit(), self.speed, sleep=self._sleep, monotonic=self._monotonic,
                             start_ns=self.anchor_ns):
            yield ev

    async def aclose(self) -> None:
        return None
