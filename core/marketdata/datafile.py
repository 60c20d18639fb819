"""What a market data file is, what went wrong in it, and what reading it found.

Every problem in a file is one :class:`DataFileError` naming the file, the line (text files) or row
(Arrow/JSON files) and the problem. Repairs that keep the data correct (sorting rows that are out of
order, dropping exact duplicates) are counted in the file's :class:`FileReport` and logged as
warnings; gaps in candle and funding series are listed there too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from titan.v1.common_pb2 import InstrumentKind

from .timestamps import iso


class DataFileError(ValueError):
    """A market data file that cannot be read correctly. ``row`` is None when the whole file is at
    fault (empty, unknown format); ``unit`` is "line" for text files and "row" for tables."""

    def __init__(self, path: Path | str, row: int | None, problem: str, *, unit: str = "line") -> None:
        self.path = Path(path)
        self.row = row
        self.problem = problem
        self.unit = unit
        where = f"{self.path}, {unit} {row}" if row is not None else str(self.path)
        super().__init__(f"{where}: {problem}")


class DataKind(StrEnum):
    """What the rows of a file are."""

    CANDLE = "candle"
    MARK = "mark"  # mark-price candles -> mark events at each close
    FUNDING = "funding"  # settled funding rates
    PREMIUM = "premium"  # premium-index candles -> candles of <SYMBOL>-PREMIUM
    INDEX = "index"  # index-price candles -> candles of <SYMBOL>-INDEX
    TRADE = "trade"
    EVENTS = "events"  # recorded websocket messages or Titan's own files: any payload


class FileFormat(StrEnum):
    """A file layout Titan reads; ``--format`` takes these names."""

    BINANCE_KLINES = "binance-klines"
    BINANCE_MARK_KLINES = "binance-mark-klines"
    BINANCE_PREMIUM_KLINES = "binance-premium-klines"
    BINANCE_INDEX_KLINES = "binance-index-klines"
    BINANCE_AGG_TRADES = "binance-aggtrades"
    BINANCE_TRADES = "binance-trades"
    BINANCE_FUNDING = "binance-funding"
    FREQTRADE_CANDLES = "freqtrade-candles"
    FREQTRADE_MARK = "freqtrade-mark"
    FREQTRADE_FUNDING = "freqtrade-funding"
    FREQTRADE_TRADES = "freqtrade-trades"
    CSV_CANDLES = "csv-candles"
    CSV_MARK = "csv-mark"
    CSV_FUNDING = "csv-funding"
    CSV_TRADES = "csv-trades"
    WEBSOCKET = "websocket"
    TITAN = "titan"

    @property
    def family(self) -> str:
        return self.value.split("-", 1)[0]

    @property
    def kind(self) -> DataKind:
        return _KIND_OF_FORMAT[self]


_KIND_OF_FORMAT = {
    FileFormat.BINANCE_KLINES: DataKind.CANDLE,
    FileFormat.BINANCE_MARK_KLINES: DataKind.MARK,
    FileFormat.BINANCE_PREMIUM_KLINES: DataKind.PREMIUM,
    FileFormat.BINANCE_INDEX_KLINES: DataKind.INDEX,
    FileFormat.BINANCE_AGG_TRADES: DataKind.TRADE,
    FileFormat.BINANCE_TRADES: DataKind.TRADE,
    FileFormat.BINANCE_FUNDING: DataKind.FUNDING,
    FileFormat.FREQTRADE_CANDLES: DataKind.CANDLE,
    FileFormat.FREQTRADE_MARK: DataKind.MARK,
    FileFormat.FREQTRADE_FUNDING: DataKind.FUNDING,
    FileFormat.FREQTRADE_TRADES: DataKind.TRADE,
    FileFormat.CSV_CANDLES: DataKind.CANDLE,
    FileFormat.CSV_MARK: DataKind.MARK,
    FileFormat.CSV_FUNDING: DataKind.FUNDING,
    FileFormat.CSV_TRADES: DataKind.TRADE,
    FileFormat.WEBSOCKET: DataKind.EVENTS,
    FileFormat.TITAN: DataKind.EVENTS,
}


def format_for(family: str, kind: DataKind) -> FileFormat:
    """The format of ``family`` ("binance", "freqtrade", "csv") that holds ``kind``."""
    for fmt, k in _KIND_OF_FORMAT.items():
        if fmt.family == family and k is kind and fmt is not FileFormat.BINANCE_AGG_TRADES:
            return fmt
    raise ValueError(f"{family} files do not hold {kind.value} data")


@dataclass(frozen=True)
class FileMeta:
    """Who a file's events belong to; detected from the file name and content unless given."""

    venue: str
    symbol: str
    instrument: InstrumentKind
    timeframe: str | None = None


@dataclass(frozen=True)
class Overrides:
    """What the caller states about a file instead of detecting it (CLI ``--format`` etc.)."""

    format: FileFormat | None = None
    venue: str | None = None
    symbol: str | None = None
    instrument: InstrumentKind | None = None
    timeframe: str | None = None

    @classmethod
    def of(cls, meta: FileMeta | None) -> Overrides:
        if meta is None:
            return cls()
        return cls(venue=meta.venue, symbol=meta.symbol, instrument=meta.instrument, timeframe=meta.timeframe)


@dataclass(frozen=True)
class Gap:
    """Missing candles (or funding settlements) from ``start_ns`` (inclusive) to ``end_ns``."""

    start_ns: int
    end_ns: int

    def __str__(self) -> str:
        return f"{iso(self.start_ns)} .. {iso(self.end_ns)}"


MAX_LISTED_GAPS = 1000


@dataclass
class FileReport:
    """What reading one file found: rows, time range, repairs and gaps."""

    path: Path
    rows: int = 0  # data rows (or messages) read
    events: int = 0  # events emitted
    first_ns: int | None = None
    last_ns: int | None = None
    duplicates: int = 0  # exact duplicate rows dropped
    out_of_order: int = 0  # rows that came before an earlier row's time (the file was sorted)
    gaps: list[Gap] = field(default_factory=list)  # the first MAX_LISTED_GAPS
    gap_count: int = 0
    timeframe: str | None = None  # of the first candle, for candle files
    notes: list[str] = field(default_factory=list)

    def add_gap(self, gap: Gap) -> None:
        self.gap_count += 1
        if len(self.gaps) < MAX_LISTED_GAPS:
            self.gaps.append(gap)

    def warnings(self) -> list[str]:
        """The repairs and notes, one sentence each (logged and printed by the CLI)."""
        out = []
        if self.out_of_order:
            out.append(f"{self.out_of_order} rows out of time order: sorted by time (in memory)")
        if self.duplicates:
            out.append(f"{self.duplicates} duplicate rows dropped")
        if self.gap_count:
            out.append(f"{self.gap_count} gaps in the series")
        return out + self.notes
