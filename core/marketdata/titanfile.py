"""Titan's own market data files: ``.tmd`` / ``.tmd.gz`` (length-delimited protobuf MarketEvents,
lossless and compact) and ``.csv`` with Titan's header (one event per row, payload as protobuf JSON).

:class:`EventWriter` writes to a hidden ``.<name>.partial`` file next to the target and renames it
when closed without an error, so a crashed or interrupted run never leaves a valid-looking file
behind. The bytes depend on the events only: gzip is written with mtime 0 and no file name.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from titan.v1.market_pb2 import MarketEvent

from .datafile import DataFileError
from .detect import TITAN_CSV_COLUMNS, open_text
from .events import kind_of

GZIP_LEVEL = 6


def _write_varint(out: IO[bytes], n: int) -> None:
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.write(bytes((b | 0x80,)))
        else:
            out.write(bytes((b,)))
            return


def _read_varint(inp: IO[bytes]) -> int | None:
    shift = result = 0
    while True:
        c = inp.read(1)
        if not c:
            if shift:
                raise ValueError("truncated record length")
            return None
        result |= (c[0] & 0x7F) << shift
        if not c[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("bad record length")


def partial_path(path: Path) -> Path:
    """Where :class:`EventWriter` writes until it is closed."""
    return path.with_name(f".{path.name}.partial")


class EventWriter:
    """Writes MarketEvents in Titan's format, chosen by suffix: ``.tmd``, ``.tmd.gz`` or ``.csv``.

    The file appears under its name only when the writer is closed without an error
    (``close()``, or leaving the ``with`` block normally); ``abort()`` discards it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.count = 0
        name = self.path.name
        if not name.endswith((".tmd.gz", ".tmd", ".csv")):
            raise ValueError(f"unknown Titan file type: {name} (use .tmd, .tmd.gz or .csv)")
        self._tmp = partial_path(self.path)
        self._raw: IO[bytes] | None = None
        self._csv: Any = None
        self._text: IO[str] | None = None
        self._bin: IO[bytes] | None = None
        if name.endswith(".csv"):
            self._text = self._tmp.open("w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._text)
            self._csv.writerow(TITAN_CSV_COLUMNS)
        else:
            self._raw = self._tmp.open("wb")
            self._bin = self._raw
            if name.endswith(".gz"):  # no name, mtime 0: the bytes depend on the events only
                self._bin = cast(IO[bytes], gzip.GzipFile(filename="", mode="wb", fileobj=self._raw,
                                                          compresslevel=GZIP_LEVEL, mtime=0))
        self._open = True

    def write(self, ev: MarketEvent) -> None:
        if self._bin is not None:
            data = ev.SerializeToString()
            _write_varint(self._bin, len(data))
            self._bin.write(data)
        else:
            field = ev.WhichOneof("payload")
            payload = json_format.MessageToJson(getattr(ev, field), indent=None) if field else "{}"
            self._csv.writerow((
                ev.exchange_ts_ns, ev.receive_ts_ns, ev.venue, ev.symbol, int(ev.instrument), ev.seq,
                str(kind_of(ev)), payload,
            ))
        self.count += 1

    def _finish(self) -> None:
        self._open = False
        for stream in (self._text, self._bin, self._raw):  # the gzip layer before the file under it
            if stream is not None:
                stream.close()

    def close(self) -> None:
        """Finish the file and give it its name."""
        if self._open:
            self._finish()
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Discard what was written; the target path is left untouched."""
        if self._open:
            self._finish()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_titan(path: Path | str) -> Iterator[MarketEvent]:
    """Read a file written by :class:`EventWriter`."""
    path = Path(path)
    if path.name.endswith((".tmd", ".tmd.gz")):
        return _read_tmd(path)
    return _read_titan_csv(path)


def _read_tmd(path: Path) -> Iterator[MarketEvent]:
    n = 0
    try:
        opened = gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")  # noqa: SIM115
        with cast(IO[bytes], opened) as fh:
            while True:
                size = _read_varint(fh)
                if size is None:
                    return
                n += 1
                data = fh.read(size)
                if len(data) != size:
                    raise ValueError("truncated record (file cut short?)")
                ev = MarketEvent()
                ev.ParseFromString(data)
                yield ev
    except (ValueError, DecodeError, EOFError, OSError) as err:
        raise DataFileError(path, n or None, f"bad record: {err}", unit="record") from None


def _read_titan_csv(path: Path) -> Iterator[MarketEvent]:
    field_by_kind = {"open_interest": "open_interest"}
    with open_text(path) as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or tuple(header) != TITAN_CSV_COLUMNS:
            raise DataFileError(path, 1, "not a Titan CSV (header differs)")
        for row in rows:
            try:
                ts, recv, venue, symbol, inst, seq, kind, payload = row
                ev = MarketEvent(
                    venue=venue, symbol=symbol, instrument=int(inst),  # type: ignore[arg-type]
                    exchange_ts_ns=int(ts), receive_ts_ns=int(recv), seq=int(seq),
                )
                json_format.Parse(payload, getattr(ev, field_by_kind.get(kind, kind)))
            except (ValueError, AttributeError, json_format.ParseError) as err:
                raise DataFileError(path, rows.line_num, f"bad event row: {err}") from None
            yield ev
