"""Tell what a market data file is from its content and name.

Content first: the container by its magic bytes (zip, gzip, Arrow/feather, Parquet), then the first
line (a JSON array: freqtrade; a JSON object: recorded websocket messages; Titan's CSV header; a
header naming columns; or a headerless Binance public-data row told apart by its column count).
The name and folders then give what the content cannot: venue, symbol, spot or perp, timeframe,
and for candles whether they are mark prices, funding rates, premium or index prices.
Every detected value can be overridden (:class:`~.datafile.Overrides`).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from titan.v1.common_pb2 import InstrumentKind

from .candles import timeframe_ns
from .datafile import DataFileError, DataKind, FileFormat, FileMeta, Overrides, format_for
from .events import PERP, SPOT
from .layouts import (
    BINANCE_AGG_TRADES,
    BINANCE_FUNDING,
    BINANCE_HEADER_MARKS,
    BINANCE_KLINES,
    BINANCE_TRADES,
    CANDLE_FIELDS,
    FREQTRADE_TRADES,
    PLAIN_CANDLES,
    Field,
    Layout,
    header_layout,
    headerless_layout,
    normalise,
)

KNOWN_VENUES = ("binance", "bybit", "okx", "kraken", "coinbase", "deribit", "bitget", "gate", "kucoin", "sim")
_QUOTES = ("usdt", "usdc", "fdusd", "busd", "tusd", "usd", "btc", "eth", "bnb", "eur")
_PERP_TOKENS = frozenset({"perp", "futures", "future", "swap", "linear", "usdm", "um"})
TITAN_CSV_COLUMNS = (
    "exchange_ts_ns", "receive_ts_ns", "venue", "symbol", "instrument", "seq", "kind", "payload",
)
_MAGIC = ((b"PK\x03\x04", "zip"), (b"\x1f\x8b", "gzip"), (b"ARROW1", "feather"), (b"PAR1", "parquet"))
_PEEK_CHARS = 65_536


@dataclass(frozen=True)
class Detection:
    """What a file was found to be; ``layout`` is set for tabular files."""

    path: Path
    format: FileFormat
    venue: str
    symbol: str
    instrument: InstrumentKind
    timeframe: str | None
    container: str  # plain, zip, gzip, feather, parquet
    header: bool = False
    layout: Layout | None = None
    symbol_from_name: bool = True  # no symbol given: a symbol column, if any, names it
    instrument_given: bool = False

    @property
    def kind(self) -> DataKind:
        return self.format.kind


# --- containers --------------------------------------------------------------------------------
def container_of(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(8)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "plain"


def open_text(path: Path, container: str | None = None) -> IO[str]:
    """The text of a plain, gzip or single-member zip file."""
    container = container or container_of(path)
    if container == "gzip":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    if container == "zip":
        zf = zipfile.ZipFile(path)
        members = [n for n in zf.namelist() if not n.endswith("/")]
        if len(members) != 1:
            zf.close()
            raise DataFileError(path, None, f"expected one file in the zip, found {len(members)}")
        return io.TextIOWrapper(zf.open(members[0]), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _peek(path: Path, container: str) -> str:
    try:
        with open_text(path, container) as fh:
            return fh.read(_PEEK_CHARS)
    except UnicodeDecodeError:
        raise DataFileError(path, None, "not a text file Titan reads (binary content)") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataFileError(path, None, f"cannot open: {err}") from None


# --- names -------------------------------------------------------------------------------------
def _stem_tokens(path: Path) -> list[str]:
    name = path.name.lower()
    for ext in (".gz", ".zip", ".csv", ".data", ".jsonl", ".json", ".tmd", ".feather", ".parquet", ".ftr"):
        name = name.removesuffix(ext)
    return [t for t in re.split(r"[-_.\s]+", name) if t]


def _dir_tokens(path: Path) -> list[str]:
    return [t for part in path.parts[-5:-1] for t in re.split(r"[-_.\s]+", part.lower()) if t]


def _symbol(tokens: list[str]) -> str:
    for i, t in enumerate(tokens):
        if t in KNOWN_VENUES or not t.isalnum() or not any(c.isalpha() for c in t):
            continue
        if any(t.endswith(q) and len(t) > len(q) + 1 for q in _QUOTES):
            return t.upper()
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if nxt in _QUOTES:
            return (t + nxt).upper()
        if nxt == "perp":
            return (t + "usdt").upper()
    return ""


def _timeframe(tokens: list[str]) -> str | None:
    for t in tokens:
        try:
            timeframe_ns(t)
        except ValueError:
            continue
        return t
    return None


def infer_meta(path: Path) -> FileMeta:
    """Venue, symbol, instrument and timeframe as far as the file name (and its folders) tell."""
    tokens, dirs = _stem_tokens(path), _dir_tokens(path)
    venue = next((t for t in tokens + dirs if t in KNOWN_VENUES), "replay")
    perp = any(t in _PERP_TOKENS for t in tokens + dirs) or _settled_pair(tokens)
    return FileMeta(venue=venue, symbol=_symbol(tokens) or "UNKNOWN", instrument=PERP if perp else SPOT,
                    timeframe=_timeframe(tokens))


def _settled_pair(tokens: list[str]) -> bool:
    """freqtrade names futures pairs BASE_QUOTE_SETTLE: ``BTC_USDT_USDT-1h-futures``."""
    return len(tokens) >= 3 and tokens[1] in _QUOTES and tokens[2] in _QUOTES


def _candle_kind(path: Path) -> DataKind:
    hints = " ".join(p.lower() for p in path.parts[-5:])
    if "premiumindexklines" in hints or "premium" in path.name.lower():
        return DataKind.PREMIUM
    if "indexpriceklines" in hints:
        return DataKind.INDEX
    name = path.name.lower()
    if "funding" in name:
        return DataKind.FUNDING
    if "markpriceklines" in hints or re.search(r"(^|[-_])mark([-_.]|$)", name):
        return DataKind.MARK
    return DataKind.CANDLE


# --- content -----------------------------------------------------------------------------------
def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _json_kind(path: Path, text: str) -> DataKind:
    m = re.match(r"\s*\[\s*\[([^\]]*)\]", text)
    if m is None:
        if re.match(r"\s*\[\s*\]", text):
            raise DataFileError(path, None, "empty file: the JSON array has no rows")
        raise DataFileError(path, 1, "a JSON array that is not freqtrade candles or trades (rows of 6 or 7 values)")
    n = len(m.group(1).split(","))
    if n == 6:
        return DataKind.CANDLE
    if n == 7:
        return DataKind.TRADE
    raise DataFileError(path, 1, f"freqtrade rows have 6 (candles) or 7 (trades) values, found {n}")


def _tabular(path: Path, first: list[str], fmt: FileFormat | None) -> tuple[FileFormat, bool, Layout]:
    """Format, header present, layout of a CSV from its first row."""
    header = not any(_is_number(c) for c in first)
    if header:
        layout = header_layout(first)
        names = {normalise(c) for c in first}
        family = "binance" if names & BINANCE_HEADER_MARKS or "calc_time" in names else "csv"
        if layout.has(*CANDLE_FIELDS):
            kind = _candle_kind(path)
        elif layout.has(Field.TIME, Field.RATE):
            kind = DataKind.FUNDING
        elif layout.has(Field.TIME, Field.PRICE, Field.SIZE):
            kind = DataKind.TRADE
        else:
            raise DataFileError(path, 1, "wrong columns: neither candles (time, open, high, low, close), trades "
                                f"(time, price, quantity) nor funding (time, rate): {', '.join(first)}")
        if fmt is None:
            if family == "binance" and kind is DataKind.TRADE:
                fmt = FileFormat.BINANCE_AGG_TRADES if "agg_trade_id" in names else FileFormat.BINANCE_TRADES
            elif family == "binance" and kind in (DataKind.CANDLE, DataKind.MARK, DataKind.PREMIUM, DataKind.INDEX):
                fmt = {DataKind.CANDLE: FileFormat.BINANCE_KLINES, DataKind.MARK: FileFormat.BINANCE_MARK_KLINES,
                       DataKind.PREMIUM: FileFormat.BINANCE_PREMIUM_KLINES,
                       DataKind.INDEX: FileFormat.BINANCE_INDEX_KLINES}[kind]
            else:
                fmt = format_for(family, kind)
        return fmt, True, layout
    if fmt is not None:
        return fmt, False, _layout_for(fmt, len(first))
    found = headerless_layout(first, str(path).lower())
    if found is None:
        raise DataFileError(path, 1, f"wrong columns: {len(first)} values and no header naming them")
    what, layout = found
    kind = _candle_kind(path)
    by_what = {
        "aggtrades": FileFormat.BINANCE_AGG_TRADES, "trades": FileFormat.BINANCE_TRADES,
        "funding": FileFormat.BINANCE_FUNDING,
        "klines": {DataKind.MARK: FileFormat.BINANCE_MARK_KLINES, DataKind.PREMIUM: FileFormat.BINANCE_PREMIUM_KLINES,
                   DataKind.INDEX: FileFormat.BINANCE_INDEX_KLINES}.get(kind, FileFormat.BINANCE_KLINES),
        "candles": {DataKind.MARK: FileFormat.CSV_MARK, DataKind.FUNDING: FileFormat.CSV_FUNDING}.get(
            kind, FileFormat.CSV_CANDLES),
    }
    return by_what[what], False, layout


def _layout_for(fmt: FileFormat, ncols: int) -> Layout:
    """The positional layout of a headerless file of a stated format."""
    if fmt is FileFormat.BINANCE_AGG_TRADES:
        return BINANCE_AGG_TRADES
    if fmt is FileFormat.BINANCE_TRADES:
        return BINANCE_TRADES
    if fmt is FileFormat.BINANCE_FUNDING:
        return BINANCE_FUNDING
    if fmt is FileFormat.FREQTRADE_TRADES or fmt is FileFormat.CSV_TRADES:
        return FREQTRADE_TRADES
    return BINANCE_KLINES if ncols == 12 else PLAIN_CANDLES


def detect(path: Path | str, overrides: Overrides | None = None) -> Detection:
    """What ``path`` is; raises :class:`DataFileError` when it is empty or not market data Titan reads."""
    path = Path(path)
    ov = overrides or Overrides()
    if not path.is_file():
        raise DataFileError(path, None, "no such file")
    if path.stat().st_size == 0:
        raise DataFileError(path, None, "empty file")
    container = container_of(path)
    meta = infer_meta(path)
    fmt, header, layout, ncols = ov.format, False, None, 0
    if fmt is not FileFormat.TITAN and path.name.endswith((".tmd", ".tmd.gz")):
        fmt = FileFormat.TITAN
    elif container in ("feather", "parquet"):
        fmt, header, layout = _arrow_format(path, container, ov.format)
    elif fmt not in (FileFormat.TITAN, FileFormat.WEBSOCKET):
        text = _peek(path, container)
        stripped = text.lstrip()
        if not stripped:
            raise DataFileError(path, None, "empty file")
        if stripped.startswith("[") and (fmt is None or fmt.family == "freqtrade"):
            kind = _json_kind(path, stripped)
            fmt = fmt or _freqtrade_format(path, kind)
            layout = FREQTRADE_TRADES if fmt is FileFormat.FREQTRADE_TRADES else PLAIN_CANDLES
            container = "json+" + container if container != "plain" else "json"
        elif stripped.startswith("{") and fmt is None:
            fmt = FileFormat.WEBSOCKET
        else:
            first = next(csv.reader([stripped.splitlines()[0]]))
            if tuple(first) == TITAN_CSV_COLUMNS:
                fmt = FileFormat.TITAN
            else:
                fmt, header, layout = _tabular(path, first, fmt)
                ncols = len(first)
    assert fmt is not None
    instrument = ov.instrument
    if instrument is None:
        instrument = _instrument(fmt, meta, header, ncols, _stem_tokens(path))
    venue = ov.venue or (meta.venue if meta.venue != "replay" or fmt.family != "binance" else "binance")
    return Detection(
        path=path, format=fmt, venue=venue, symbol=ov.symbol or meta.symbol, instrument=instrument,
        timeframe=ov.timeframe or meta.timeframe, container=container, header=header, layout=layout,
        symbol_from_name=ov.symbol is None, instrument_given=ov.instrument is not None,
    )


def _instrument(
    fmt: FileFormat, meta: FileMeta, header: bool, ncols: int, name_tokens: list[str]
) -> InstrumentKind:
    if meta.instrument == PERP or fmt.kind in (DataKind.MARK, DataKind.FUNDING, DataKind.PREMIUM, DataKind.INDEX):
        return PERP
    if fmt is FileFormat.WEBSOCKET and meta.venue == "bybit" and "spot" not in name_tokens:
        return PERP  # Bybit recordings are linear perps (orderbook.500 exists only there) unless named spot
    if fmt.family == "binance":
        if header:  # only the USDⓈ-M files carry a header row
            return PERP
        # spot trade files end with is_best_match, USDⓈ-M files do not
        if (fmt, ncols) in ((FileFormat.BINANCE_AGG_TRADES, 7), (FileFormat.BINANCE_TRADES, 6)):
            return PERP
    return SPOT


def _freqtrade_format(path: Path, kind: DataKind) -> FileFormat:
    if kind is DataKind.TRADE:
        return FileFormat.FREQTRADE_TRADES
    return {DataKind.MARK: FileFormat.FREQTRADE_MARK, DataKind.FUNDING: FileFormat.FREQTRADE_FUNDING}.get(
        _candle_kind(path), FileFormat.FREQTRADE_CANDLES)


def _arrow_format(path: Path, container: str, fmt: FileFormat | None) -> tuple[FileFormat, bool, Layout]:
    from .arrow import arrow_columns

    names = arrow_columns(path, container)
    layout = header_layout(names)
    if fmt is None:
        if layout.has(*CANDLE_FIELDS):
            fmt = _freqtrade_format(path, DataKind.CANDLE)
        elif layout.has(Field.TIME, Field.PRICE, Field.SIZE):
            fmt = FileFormat.FREQTRADE_TRADES
        else:
            raise DataFileError(path, None, f"wrong columns for freqtrade candles or trades: {', '.join(names)}")
    return fmt, True, layout
