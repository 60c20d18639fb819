"""Market data files: open any supported file, detect what it is, read it as MarketEvents.

Supported, read directly (no conversion step); see docs/market-data.md for the layouts:

* Binance public-data files (data.binance.vision): klines, aggTrades and trades of spot and USDⓈ-M
  futures, fundingRate, markPriceKlines, premiumIndexKlines and indexPriceKlines — the published
  ``.zip`` or the unzipped ``.csv``, with or without header, timestamps in ms or µs;
* freqtrade's data directory: candles and trades as ``.feather``, ``.parquet``, ``.json``,
  ``.json.gz``, its ``futures/`` files included (``-futures``, ``-mark``, ``-funding_rate``);
* CSV candles or trades with a header naming the columns (aliases: ts/time/timestamp/date/open_time,
  vol/volume, qty/quantity/amount, ...); candles named ``mark``/``funding`` become mark/funding events;
* recorded websocket messages, one JSON per line, plain or zipped (Bybit v5 and Binance);
* Titan's own files (:mod:`.titanfile`).

:func:`open_files` detects each file (:mod:`.detect`; keyword arguments override what was detected)
and gives :class:`DataFile` objects: ``events()`` streams a file's events in time order, ``scan()``
reads it once to check it, repair it (sort, de-duplicate) and report (:class:`FileReport`). Every
problem is a :class:`DataFileError` naming the file, the line or row and the problem.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from titan.v1.common_pb2 import InstrumentKind
from titan.v1.market_pb2 import MarketEvent

from .candles import timeframe_ns
from .checks import Decoded, OutOfOrder, checked, time_sorted
from .datafile import DataFileError, DataKind, FileFormat, FileMeta, FileReport, Gap, Overrides
from .detect import KNOWN_VENUES, TITAN_CSV_COLUMNS, Detection, detect, infer_meta, open_text
from .events import PERP, SPOT, MalformedEvent
from .parsers import BinanceParser, BybitParser
from .tabular import decoded_rows, unit_of
from .timestamps import parse_time_ns
from .titanfile import EventWriter, partial_path, read_titan

log = logging.getLogger("titan.marketdata.files")

__all__ = [
    "KNOWN_VENUES",
    "TITAN_CSV_COLUMNS",
    "DataFile",
    "DataFileError",
    "DataKind",
    "EventWriter",
    "FileFormat",
    "FileMeta",
    "FileReport",
    "Gap",
    "Overrides",
    "infer_meta",
    "instrument_kind",
    "make_overrides",
    "open_file",
    "open_files",
    "parse_time_ns",
    "partial_path",
    "read_file",
    "read_titan",
    "read_trades_csv",
]


class DataFile:
    """One market data file, detected. ``events()`` streams it in time order (sorted in memory when
    a ``scan()`` found rows out of order, else an out-of-order row raises); ``report`` describes the
    last complete pass."""

    def __init__(self, detection: Detection) -> None:
        self.detection = detection
        self.report = FileReport(detection.path)
        self.scanned = False
        self._sort = False

    @property
    def path(self) -> Path:
        return self.detection.path

    @property
    def meta(self) -> FileMeta:
        d = self.detection
        return FileMeta(d.venue, d.symbol, d.instrument, d.timeframe)

    def _decoded(self, report: FileReport) -> Iterator[Decoded]:
        fmt = self.detection.format
        if fmt is FileFormat.TITAN:
            return (Decoded(n, ev) for n, ev in enumerate(read_titan(self.path), 1))
        if fmt is FileFormat.WEBSOCKET:
            return _ws_decoded(self.detection)
        return decoded_rows(self.detection, report)

    def _unit(self) -> str:
        if self.detection.format is FileFormat.TITAN and not self.path.name.endswith(".csv"):
            return "record"
        return unit_of(self.detection)

    def events(self) -> Iterator[MarketEvent]:
        report = FileReport(self.path)
        self.report = report
        rows: Iterable[Decoded] = self._decoded(report)
        if self._sort:
            rows = time_sorted(rows, report)
        return checked(rows, self.path, self._unit(), report)

    def __iter__(self) -> Iterator[MarketEvent]:
        return self.events()

    def scan(self) -> FileReport:
        """Read the whole file once: check every row, decide on sorting, count duplicates and gaps.
        Repairs and notes are logged as warnings and kept in the returned report."""
        try:
            for _ in self.events():
                pass
        except OutOfOrder:
            self._sort = True
            for _ in self.events():
                pass
        self.scanned = True
        for warning in self.report.warnings():
            log.warning("%s: %s", self.path, warning)
        return self.report


def instrument_kind(value: str | InstrumentKind | None) -> InstrumentKind | None:
    """"spot" / "perp" (or "futures", "swap") -> InstrumentKind."""
    if value is None or isinstance(value, int):
        return value
    text = value.strip().lower()
    if text == "spot":
        return SPOT
    if text in ("perp", "futures", "future", "swap", "linear"):
        return PERP
    raise ValueError(f"unknown instrument {value!r} (use spot or perp)")


def make_overrides(
    *,
    format: str | FileFormat | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    instrument: str | InstrumentKind | None = None,
    venue: str | None = None,
) -> Overrides:
    """Overrides from user input; ValueError names a bad format, timeframe or instrument."""
    try:
        fmt = FileFormat(format) if format is not None else None
    except ValueError:
        raise ValueError(f"unknown format {format!r}; one of: {', '.join(f.value for f in FileFormat)}") from None
    if timeframe is not None:
        timeframe_ns(timeframe)
    return Overrides(format=fmt, venue=venue.lower() if venue else None, symbol=symbol.upper() if symbol else None,
                     instrument=instrument_kind(instrument), timeframe=timeframe)


def open_file(
    path: Path | str,
    *,
    format: str | FileFormat | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    instrument: str | InstrumentKind | None = None,
    venue: str | None = None,
) -> DataFile:
    """Detect ``path``; the keyword arguments override what detection would say."""
    return DataFile(detect(path, make_overrides(format=format, symbol=symbol, timeframe=timeframe,
                                                instrument=instrument, venue=venue)))


def open_files(
    paths: Iterable[Path | str],
    *,
    format: str | FileFormat | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    instrument: str | InstrumentKind | None = None,
    venue: str | None = None,
) -> list[DataFile]:
    return [open_file(p, format=format, symbol=symbol, timeframe=timeframe, instrument=instrument, venue=venue)
            for p in paths]


def read_file(path: Path | str, meta: FileMeta | None = None) -> Iterator[MarketEvent]:
    """Events of any supported file in time order (rows out of order raise; ``DataFile.scan()``
    sorts them). ``meta`` overrides venue, symbol, instrument and timeframe."""
    return DataFile(detect(path, Overrides.of(meta))).events()


def read_trades_csv(path: Path | str, meta: FileMeta | None = None) -> Iterator[MarketEvent]:
    """A trade tape CSV (timestamp, trade_id, price, quantity, buyer_maker)."""
    ov = Overrides.of(meta)
    return DataFile(detect(path, Overrides(FileFormat.CSV_TRADES, ov.venue, ov.symbol, ov.instrument))).events()


# --- recorded websocket messages ---------------------------------------------------------------
def _ws_decoded(det: Detection) -> Iterator[Decoded]:
    """Recorded websocket messages, one JSON object per line (Bybit v5 or Binance)."""
    # recorded Bybit streams are linear perps (orderbook.500 exists only there) unless named spot
    bybit_instrument = SPOT if "spot" in det.path.name.lower() else PERP
    bybit = BybitParser(instrument=det.instrument if det.instrument_given else bybit_instrument)
    binance = BinanceParser(instrument=det.instrument)
    line_no = 0
    try:
        with open_text(det.path) as fh:
            for line_no, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                msg: Any = json.loads(line)
                if not isinstance(msg, dict):
                    raise ValueError("not a JSON object")
                recv = msg.pop("_recv_ns", None)
                parser = bybit if "topic" in msg else binance
                ts_hint = int(recv) if recv is not None else _msg_ts(msg)
                for ev in parser.parse(msg, ts_hint):
                    yield Decoded(line_no, ev)
    except DataFileError:
        raise
    except (ValueError, MalformedEvent, UnicodeDecodeError, EOFError, OSError) as err:
        raise DataFileError(det.path, line_no or None, f"bad message: {err}") from None


def _msg_ts(msg: dict[str, Any]) -> int:
    """Receive time for recorded messages without one: the message's own time."""
    for key in ("ts", "E"):
        if key in msg:
            return int(msg[key]) * 1_000_000
    data = msg.get("data")
    if isinstance(data, dict):
        return _msg_ts(data)
    return 0
