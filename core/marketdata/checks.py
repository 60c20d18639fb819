"""The checks every file's rows go through, in one place, whatever the format.

Rows arrive decoded (:class:`Decoded`); :func:`checked` passes them on in time order and

* raises :class:`OutOfOrder` (a :class:`DataFileError`) at the first row older than the one before
  it — :meth:`DataFile.scan` catches it and reads the file again sorted by time (a repair);
* drops exact duplicates (the same candle time / trade id with identical content) and counts them;
  two *different* rows for one candle time or trade id are an error;
* lists gaps in candle and funding series (a row later than the previous one plus its length).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from titan.v1.market_pb2 import MarketEvent

from .datafile import DataFileError, FileReport, Gap
from .events import ts_of
from .timestamps import iso


@dataclass(slots=True)
class Decoded:
    """One row as an event; ``key`` identifies duplicates (None: never a duplicate), ``series_ns`` and
    ``step_ns`` place it in a candle/funding series (``step_ns`` 0: not a series)."""

    row: int
    event: MarketEvent
    key: object = None
    series_ns: int = 0
    step_ns: int = 0


class OutOfOrder(DataFileError):
    """A row older than the row before it."""


def checked(rows: Iterable[Decoded], path: Path, unit: str, report: FileReport) -> Iterator[MarketEvent]:
    prev_ts: int | None = None
    prev_row = 0
    # Each keyed row's encoding when it was seen: consumers may change an event once it is yielded
    # (a replay numbers it), and an exact duplicate must be compared with the row as it was read.
    at_ts: dict[object, tuple[Decoded, bytes]] = {}
    series_end: int | None = None
    for d in rows:
        ts = ts_of(d.event)
        report.rows += 1
        if prev_ts is not None and ts < prev_ts:
            raise OutOfOrder(path, d.row, f"time {iso(ts)} is before {iso(prev_ts)} of {unit} {prev_row}: "
                                          "rows out of time order", unit=unit)
        if ts != prev_ts:
            at_ts.clear()
        if d.key is not None:
            encoded = d.event.SerializeToString(deterministic=True)
            seen = at_ts.get(d.key)
            if seen is not None:
                if seen[1] == encoded:
                    report.duplicates += 1
                    continue
                raise DataFileError(path, d.row, f"conflicts with {unit} {seen[0].row}: two different rows for "
                                                 f"{_key_text(d.key)}", unit=unit)
            at_ts[d.key] = (d, encoded)
        if d.step_ns:
            if series_end is not None and d.series_ns > series_end:
                report.add_gap(Gap(series_end, d.series_ns))
            series_end = d.series_ns + d.step_ns
        if report.first_ns is None:
            report.first_ns = ts
            if d.event.WhichOneof("payload") == "candle":
                report.timeframe = d.event.candle.timeframe
        report.last_ns = ts
        report.events += 1
        prev_ts, prev_row = ts, d.row
        yield d.event


def _key_text(key: object) -> str:
    if isinstance(key, int):
        return f"time {iso(key)}"
    return f"id {key}"


def time_sorted(rows: Iterable[Decoded], report: FileReport) -> list[Decoded]:
    """All rows sorted by time (stable: rows with one time keep their order); counts the rows that
    came after a later one."""
    out = list(rows)
    latest = -1
    late = 0
    for d in out:
        ts = ts_of(d.event)
        if ts < latest:
            late += 1
        else:
            latest = ts
    report.out_of_order = late
    out.sort(key=lambda d: ts_of(d.event))
    return out
