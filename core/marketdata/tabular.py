"""Rows of tabular files (CSV in plain/gzip/zip, freqtrade JSON arrays, feather/Parquet) -> events.

One decoder per kind works on cells by the column index of its :class:`~.layouts.Layout`, whatever
the container. A row that cannot be a correct event raises :class:`DataFileError` naming the line
(text) or row (tables) and the problem: a missing or non-numeric value (NaN included), a price at or
below zero, a negative volume, high below low, open or close outside [low, high], a truncated line,
a symbol different from the file's.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .candles import floor_ns, timeframe_ns
from .checks import Decoded
from .datafile import DataFileError, DataKind, FileReport
from .detect import Detection, open_text
from .events import BUY, SELL, candle_event, funding_event, mark_event, trade_event
from .layouts import Field

Cells = tuple[Any, ...] | list[Any]
MINUTE_NS = 60 * 10**9
_INFER_ROWS = 50  # rows looked at to infer a timeframe from the row spacing


class RowProblem(ValueError):
    """What is wrong with one row; the reader adds the file and row."""


def tf_name(tf_ns: int) -> str:
    for unit, ns in (("d", 86_400 * 10**9), ("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9)):
        if tf_ns % ns == 0:
            return f"{tf_ns // ns}{unit}"
    return f"{tf_ns}ns"


# --- cells -------------------------------------------------------------------------------------
def _text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float):
        return repr(cell) if math.isfinite(cell) else str(cell)
    return str(cell).strip()


def _dec(cell: Any, what: str) -> Decimal:
    text = _text(cell)
    if not text:
        raise RowProblem(f"{what} is empty")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RowProblem(f"{what} is not a number: {text!r}") from None
    if not value.is_finite():
        raise RowProblem(f"{what} is not a number: {text!r}")
    return value


def _positive(cell: Any, what: str) -> Decimal:
    value = _dec(cell, what)
    if value <= 0:
        raise RowProblem(f"{what} {_text(cell)} is not positive")
    return value


def _time(cell: Any, what: str = "time") -> int:
    from .timestamps import value_ns

    try:
        return value_ns(cell)
    except ValueError as err:
        raise RowProblem(f"bad {what}: {err}") from None


def _bool(cell: Any) -> bool:
    if isinstance(cell, bool):
        return cell
    text = _text(cell).lower()
    if text in ("true", "1", "t", "yes"):
        return True
    if text in ("false", "0", "f", "no"):
        return False
    raise RowProblem(f"buyer_maker is not true/false: {_text(cell)!r}")


def _side(cell: Any) -> Any:
    text = _text(cell).lower()
    if text in ("buy", "b", "bid"):
        return BUY
    if text in ("sell", "s", "ask"):
        return SELL
    raise RowProblem(f"side is not buy/sell: {_text(cell)!r}")


def _symbol(cell: Any) -> str:
    text = _text(cell).upper().split(":", 1)[0]
    return text.replace("/", "").replace("-", "").replace("_", "")


# --- row sources -------------------------------------------------------------------------------
def _csv_rows(det: Detection) -> Iterator[tuple[int, Cells]]:
    container = det.container if det.container in ("zip", "gzip") else "plain"
    with open_text(det.path, container) as fh:
        reader = csv.reader(fh)
        width = 0
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if not width:
                width = len(cells)
                if det.header:
                    continue
            if len(cells) != width:
                what = "truncated line?" if len(cells) < width else "extra values?"
                raise DataFileError(det.path, reader.line_num,
                                    f"wrong columns: {len(cells)} values, expected {width} ({what})")
            yield reader.line_num, cells


def _json_rows(det: Detection) -> Iterator[tuple[int, Cells]]:
    container = det.container.removeprefix("json+") if det.container.startswith("json+") else "plain"
    with open_text(det.path, container) as fh:
        try:
            data = json.load(fh)  # freqtrade writes one JSON array: it is read whole
        except json.JSONDecodeError as err:
            raise DataFileError(det.path, err.lineno, f"broken JSON (truncated file?): {err.msg}") from None
    if not isinstance(data, list):
        raise DataFileError(det.path, None, "not a JSON array of rows")
    width = len(det.layout.columns) if det.layout else 0
    for n, cells in enumerate(data, 1):
        if not isinstance(cells, list) or len(cells) != width:
            raise DataFileError(det.path, n, f"wrong columns: expected a list of {width} values, got {cells!r:.80}",
                                unit="row")
        yield n, cells


def _arrow_rows(det: Detection) -> Iterator[tuple[int, Cells]]:
    from .arrow import arrow_rows

    yield from enumerate(arrow_rows(det.path, det.container), 1)


def raw_rows(det: Detection) -> Iterator[tuple[int, Cells]]:
    if det.container in ("feather", "parquet"):
        return _arrow_rows(det)
    if det.container.startswith("json"):
        return _json_rows(det)
    return _csv_rows(det)


def unit_of(det: Detection) -> str:
    return "line" if det.container in ("plain", "zip", "gzip") else "row"


# --- decoders ----------------------------------------------------------------------------------
RowDecoder = Callable[[int, Cells], Decoded]


def _col(det: Detection, field: Field) -> int:
    assert det.layout is not None
    i = det.layout.get(field)
    if i is None:
        columns = ", ".join(det.layout.columns)
        raise DataFileError(det.path, 1, f"wrong columns: no {field.value} column among {columns}")
    return i


class _SymbolCheck:
    """The symbol column (if any) must name one symbol throughout the file."""

    def __init__(self, det: Detection) -> None:
        self.col = det.layout.get(Field.SYMBOL) if det.layout else None
        self.symbol = det.symbol
        self.first_row: int | None = None
        self.seen = ""
        self.from_column = self.col is not None and det.symbol_from_name

    def __call__(self, row: int, cells: Cells) -> str:
        if self.col is None:
            return self.symbol
        value = _symbol(cells[self.col])
        if self.first_row is None:
            self.first_row = row
            if self.from_column:
                self.symbol = value
            self.seen = value
        elif value != self.seen:
            raise RowProblem(f"mixed symbols: {value} here, {self.seen} in row {self.first_row}; "
                             "one file holds one symbol")
        return self.symbol


@dataclass
class _Blanks:
    """Rows whose volume cell is empty (taken as 0, reported)."""

    volume: int = 0


def _candle_decoder(det: Detection, tf_ns: int, report: FileReport, blanks: _Blanks) -> RowDecoder:
    it, io_, ih, il, ic = (_col(det, f) for f in (Field.TIME, Field.OPEN, Field.HIGH, Field.LOW, Field.CLOSE))
    assert det.layout is not None
    iv = det.layout.get(Field.VOLUME)
    ict = det.layout.get(Field.CLOSE_TIME)
    icount = det.layout.get(Field.TRADE_COUNT)
    kind, venue, inst = det.kind, det.venue, det.instrument
    symbol_of = _SymbolCheck(det)
    suffix = {DataKind.PREMIUM: "-PREMIUM", DataKind.INDEX: "-INDEX"}.get(kind, "")
    label = det.timeframe or (tf_name(tf_ns) if tf_ns else None)
    if iv is None and kind is DataKind.CANDLE:
        report.notes.append(f"no volume column among {', '.join(det.layout.columns)}: volumes are 0")

    def decode(row: int, cells: Cells) -> Decoded:
        open_ns = _time(cells[it])
        length = tf_ns
        if ict is not None and not det.timeframe:  # Binance: the last instant of the candle
            close_last = _time(cells[ict], "close_time")
            length = -(-(close_last - open_ns) // 10**9) * 10**9
            if length <= 0:
                raise RowProblem(f"close_time {_text(cells[ict])} is not after open_time {_text(cells[it])}")
        symbol = symbol_of(row, cells)
        close_ns = open_ns + length
        if kind is DataKind.FUNDING:
            rate = _dec(cells[io_], "funding rate (open)")
            t = floor_ns(open_ns, MINUTE_NS)
            return Decoded(row, funding_event(venue, symbol, rate=rate, funding_time_ns=t,
                                              next_funding_time_ns=t + length, settled=True, ts_ns=open_ns),
                           key=t, series_ns=t, step_ns=length)
        if kind is DataKind.PREMIUM:
            o, h, lo, c = (_dec(cells[i], n) for i, n in ((io_, "open"), (ih, "high"), (il, "low"), (ic, "close")))
        else:
            o, h, lo, c = (_positive(cells[i], n) for i, n in ((io_, "open"), (ih, "high"), (il, "low"),
                                                               (ic, "close")))
        if h < lo:
            raise RowProblem(f"high {h} is below low {lo}")
        if not (lo <= o <= h and lo <= c <= h):
            raise RowProblem(f"open {o} or close {c} is outside low {lo} .. high {h}")
        if kind is DataKind.MARK:
            return Decoded(row, mark_event(venue, symbol, mark_price=c, index_price=None, ts_ns=close_ns),
                           key=close_ns, series_ns=open_ns, step_ns=length)
        volume = Decimal(0)
        if iv is not None:
            if _text(cells[iv]):
                volume = _dec(cells[iv], "volume")
                if volume < 0:
                    raise RowProblem(f"negative volume {_text(cells[iv])}")
            else:
                blanks.volume += 1
        count = int(_dec(cells[icount], "count")) if icount is not None and _text(cells[icount]) else 0
        ev = candle_event(venue, symbol + suffix, inst, timeframe=label or tf_name(length), open_time_ns=open_ns,
                          close_time_ns=close_ns, open=o, high=h, low=lo, close=c, volume=volume, trade_count=count)
        return Decoded(row, ev, key=open_ns, series_ns=open_ns, step_ns=length)

    return decode


def _funding_decoder(det: Detection) -> RowDecoder:
    it, ir = _col(det, Field.TIME), _col(det, Field.RATE)
    assert det.layout is not None
    ih = det.layout.get(Field.INTERVAL_HOURS)
    default_ns = timeframe_ns(det.timeframe) if det.timeframe else 8 * 3600 * 10**9
    symbol_of = _SymbolCheck(det)

    def decode(row: int, cells: Cells) -> Decoded:
        ts = _time(cells[it])
        rate = _dec(cells[ir], "funding rate")
        step = int(_positive(cells[ih], "funding_interval_hours") * 3600 * 10**9) if ih is not None else default_ns
        t = floor_ns(ts, MINUTE_NS)
        ev = funding_event(det.venue, symbol_of(row, cells), rate=rate, funding_time_ns=t,
                           next_funding_time_ns=t + step, settled=True, ts_ns=ts)
        return Decoded(row, ev, key=t, series_ns=t, step_ns=step)

    return decode


def _trade_decoder(det: Detection) -> RowDecoder:
    it, ip, iq = _col(det, Field.TIME), _col(det, Field.PRICE), _col(det, Field.SIZE)
    assert det.layout is not None
    iid, ibm, iside = (det.layout.get(f) for f in (Field.TRADE_ID, Field.BUYER_MAKER, Field.SIDE))
    if ibm is None and iside is None:
        raise DataFileError(det.path, 1, "wrong columns: no taker side (buyer_maker or side) among "
                                         f"{', '.join(det.layout.columns)}")
    symbol_of = _SymbolCheck(det)

    def decode(row: int, cells: Cells) -> Decoded:
        ts = _time(cells[it])
        price = _positive(cells[ip], "price")
        size = _positive(cells[iq], "quantity")
        # buyer_maker True: the buyer's order rested, so the taker sold
        if ibm is not None:
            taker = SELL if _bool(cells[ibm]) else BUY
        else:
            assert iside is not None
            taker = _side(cells[iside])
        trade_id = ""
        if iid is not None:
            cell = cells[iid]
            trade_id = str(int(cell)) if isinstance(cell, float) and cell.is_integer() else _text(cell)
        ev = trade_event(det.venue, symbol_of(row, cells), det.instrument, price=price, size=size,
                         taker_side=taker, ts_ns=ts, trade_id=trade_id)
        return Decoded(row, ev, key=trade_id or None)

    return decode


def _infer_step(det: Detection, head: list[tuple[int, Cells]]) -> int:
    """A candle file's timeframe from the smallest spacing of its first rows (1m for one row)."""
    it = _col(det, Field.TIME)
    stamps = []
    for row, cells in head:
        try:
            stamps.append(_time(cells[it]))
        except RowProblem as err:
            raise DataFileError(det.path, row, str(err), unit=unit_of(det)) from None
    steps = [b - a for a, b in itertools.pairwise(stamps) if b > a]
    return min(steps) if steps else 60 * 10**9


def decoded_rows(det: Detection, report: FileReport) -> Iterator[Decoded]:
    """Every row of a tabular file as a :class:`Decoded` event, in file order."""
    unit = unit_of(det)
    rows = _guarded(det, raw_rows(det), unit)
    head: list[tuple[int, Cells]] = []
    kind = det.kind
    candle_like = kind in (DataKind.CANDLE, DataKind.MARK, DataKind.PREMIUM, DataKind.INDEX) or (
        kind is DataKind.FUNDING and det.layout is not None and det.layout.get(Field.RATE) is None)
    blanks = _Blanks()
    if candle_like:
        assert det.layout is not None
        step = timeframe_ns(det.timeframe) if det.timeframe else 0
        if not step and det.layout.get(Field.CLOSE_TIME) is None:
            for item in rows:
                head.append(item)
                if len(head) >= _INFER_ROWS:
                    break
            step = _infer_step(det, head)
        decode = _candle_decoder(det, step, report, blanks)
    elif kind is DataKind.FUNDING:
        decode = _funding_decoder(det)
    else:
        decode = _trade_decoder(det)
    empty = True
    for row, cells in _chain(head, rows):
        empty = False
        try:
            yield decode(row, cells)
        except (RowProblem, IndexError) as err:
            raise DataFileError(det.path, row, str(err), unit=unit) from None
    if empty:
        raise DataFileError(det.path, None, "empty file: no data rows")
    if blanks.volume:
        report.notes.append(f"{blanks.volume} rows without a volume value: taken as 0")


def _chain(head: list[tuple[int, Cells]], rest: Iterator[tuple[int, Cells]]) -> Iterator[tuple[int, Cells]]:
    yield from head
    yield from rest


def _guarded(det: Detection, rows: Iterator[tuple[int, Cells]], unit: str) -> Iterator[tuple[int, Cells]]:
    """Turn container and encoding failures half-way through a file into DataFileError."""
    last = 0
    try:
        for item in rows:
            last = item[0]
            yield item
    except DataFileError:
        raise
    except (UnicodeDecodeError, csv.Error, EOFError, zlib.error, zipfile.BadZipFile, OSError) as err:
        problem = f"unreadable ({type(err).__name__}: {err}); truncated or corrupt file?"
        raise DataFileError(det.path, last + 1 if last else None, problem, unit=unit) from None

