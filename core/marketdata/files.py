"""Market data files: readers for the exchange sample formats and Titan's own event files.

Readers yield MarketEvents in file order. Supported inputs:

* candle CSV (``timestamp``/``date``, open, high, low, close, volume) -> candle events;
  files whose name says ``mark`` -> mark-price events at each candle's close;
  files whose name says ``funding`` -> settled funding events (rate in the ``open`` column)
* trade tape CSV (timestamp, trade_id, price, quantity, buyer_maker) -> trade events
* recorded websocket messages, one JSON per line (plain or inside a .zip/.gz): Bybit v5 and Binance
* Titan's own files: ``.tmd`` / ``.tmd.gz`` (length-delimited protobuf MarketEvents, lossless and
  compact) and ``.csv`` with Titan's header (one event per row, payload as protobuf JSON)
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from google.protobuf import json_format

from titan.v1.common_pb2 import InstrumentKind
from titan.v1.market_pb2 import MarketEvent

from .candles import floor_ns, timeframe_ns
from .events import (
    BUY,
    PERP,
    SELL,
    SPOT,
    MalformedEvent,
    candle_event,
    funding_event,
    kind_of,
    mark_event,
    trade_event,
)
from .parsers import BinanceParser, BybitParser

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KNOWN_VENUES = ("binance", "bybit", "okx", "kraken", "coinbase", "deribit", "sim")
_QUOTES = ("usdt", "usdc", "busd", "usd", "btc", "eth")
TITAN_CSV_COLUMNS = (
    "exchange_ts_ns", "receive_ts_ns", "venue", "symbol", "instrument", "seq", "kind", "payload",
)


# --- small helpers -----------------------------------------------------------------------------
def parse_time_ns(text: str) -> int:
    """ISO-8601 (naive = UTC) or an integer epoch in s/ms/µs/ns -> ns since the epoch."""
    text = text.strip()
    if text.isdigit():
        n = int(text)
        for scale in (10**9, 10**6, 10**3, 1):  # guess the unit from the magnitude
            if n * scale >= 10**17 or scale == 1:
                return n * scale
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


@dataclass(frozen=True)
class FileMeta:
    """Who a file's events belong to; inferred from the file name unless given."""

    venue: str
    symbol: str
    instrument: InstrumentKind
    timeframe: str | None = None


def infer_meta(path: Path) -> FileMeta:
    name = path.name.lower()
    for ext in (".gz", ".zip", ".csv", ".data", ".jsonl", ".json", ".tmd"):
        name = name.removesuffix(ext)
    tokens = [t for t in re.split(r"[-_.\s]+", name) if t]
    venue = next((t for t in tokens if t in KNOWN_VENUES), "replay")
    instrument = PERP if any(t in ("perp", "futures", "swap", "linear", "usdm") for t in tokens) else SPOT
    symbol = ""
    for i, t in enumerate(tokens):
        if t in KNOWN_VENUES:
            continue
        if any(t.endswith(q) and len(t) > len(q) + 1 for q in _QUOTES) and t.isalnum() and not t[0].isdigit():
            symbol = t.upper()
            break
        if i + 1 < len(tokens) and tokens[i + 1] in _QUOTES and t.isalpha():
            symbol = (t + tokens[i + 1]).upper()
            break
        if i + 1 < len(tokens) and tokens[i + 1] == "perp" and t.isalpha():
            symbol = (t + "usdt").upper()
            break
    timeframe = None
    for t in tokens:
        try:
            timeframe_ns(t)
        except ValueError:
            continue
        timeframe = t
        break
    return FileMeta(venue=venue, symbol=symbol or "UNKNOWN", instrument=instrument, timeframe=timeframe)


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    if path.suffix == ".zip":
        zf = zipfile.ZipFile(path)
        members = [n for n in zf.namelist() if not n.endswith("/")]
        if len(members) != 1:
            raise ValueError(f"{path}: expected one file in the zip, found {len(members)}")
        return io.TextIOWrapper(zf.open(members[0]), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


# --- exchange sample formats -------------------------------------------------------------------
def read_candles_csv(path: Path, meta: FileMeta | None = None, kind: str = "candle") -> Iterator[MarketEvent]:
    """Candle CSV -> candle events (``kind="candle"``), mark events (``"mark"``) or settled funding
    events (``"funding"``, rate in the ``open`` column). Timestamps are candle open times."""
    meta = meta or infer_meta(path)
    with _open_text(path) as fh:
        rows = csv.DictReader(fh)
        if rows.fieldnames is None:
            return
        time_col = "timestamp" if "timestamp" in rows.fieldnames else "date"
        tf_ns = timeframe_ns(meta.timeframe) if meta.timeframe else 0
        prev_ts: int | None = None
        pending: list[dict[str, str]] = []
        for row in rows:
            if not tf_ns:  # infer the timeframe from the first two rows
                pending.append(row)
                if len(pending) < 2:
                    continue
                tf_ns = parse_time_ns(pending[1][time_col]) - parse_time_ns(pending[0][time_col])
                if tf_ns <= 0:
                    raise ValueError(f"{path}: cannot infer the timeframe")
                todo, pending = pending, []
            else:
                todo = [row]
            for r in todo:
                ts = parse_time_ns(r[time_col])
                if prev_ts is not None and ts <= prev_ts:
                    raise ValueError(f"{path}: rows out of order at {r[time_col]}")
                prev_ts = ts
                yield _candle_row(r, ts, tf_ns, meta, kind)
        for r in pending:  # a one-row file
            yield _candle_row(r, parse_time_ns(r[time_col]), tf_ns or timeframe_ns("1m"), meta, kind)


def _tf_name(tf_ns: int) -> str:
    for unit, ns in (("d", 86_400 * 10**9), ("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9)):
        if tf_ns % ns == 0:
            return f"{tf_ns // ns}{unit}"
    return f"{tf_ns}ns"


def _candle_row(r: dict[str, str], ts: int, tf_ns: int, meta: FileMeta, kind: str) -> MarketEvent:
    if kind == "funding":
        t = floor_ns(ts, 60 * 10**9)  # settlement time; the file stamps it a few ms late
        return funding_event(
            meta.venue, meta.symbol, rate=r["open"], funding_time_ns=t,
            next_funding_time_ns=t + tf_ns, settled=True, ts_ns=ts,
        )
    if kind == "mark":
        return mark_event(meta.venue, meta.symbol, mark_price=r["close"], index_price=None, ts_ns=ts + tf_ns)
    return candle_event(
        meta.venue, meta.symbol, meta.instrument,
        timeframe=meta.timeframe or _tf_name(tf_ns), open_time_ns=ts, close_time_ns=ts + tf_ns,
        open=r["open"], high=r["high"], low=r["low"], close=r["close"], volume=r.get("volume") or "0",
    )


def read_trades_csv(path: Path, meta: FileMeta | None = None) -> Iterator[MarketEvent]:
    """Trade tape CSV; ``buyer_maker`` True means the buyer rested, so the taker sold."""
    meta = meta or infer_meta(path)
    with _open_text(path) as fh:
        for r in csv.DictReader(fh):
            maker = r["buyer_maker"].strip().lower()
            if maker not in ("true", "false", "1", "0"):
                raise MalformedEvent("bad_side", repr(r["buyer_maker"]))
            yield trade_event(
                meta.venue, meta.symbol, meta.instrument,
                price=r["price"], size=r["quantity"],
                taker_side=SELL if maker in ("true", "1") else BUY,
                ts_ns=parse_time_ns(r["timestamp"]), trade_id=r.get("trade_id", ""),
            )


def read_ws_lines(path: Path, meta: FileMeta | None = None) -> Iterator[MarketEvent]:
    """Recorded websocket messages, one JSON object per line (Bybit v5 or Binance)."""
    if meta is None:
        meta = infer_meta(path)
        # recorded Bybit streams are linear perps (orderbook.500 exists only there) unless named spot
        bybit_inst = SPOT if "spot" in path.name.lower() else PERP
    else:
        bybit_inst = meta.instrument
    bybit = BybitParser(instrument=bybit_inst)
    binance = BinanceParser(instrument=meta.instrument)
    with _open_text(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            msg: Any = json.loads(line)
            recv = msg.pop("_recv_ns", None) if isinstance(msg, dict) else None
            parser = bybit if "topic" in msg else binance
            ts_hint = int(recv) if recv is not None else _msg_ts(msg)
            yield from parser.parse(msg, ts_hint)


def _msg_ts(msg: dict[str, Any]) -> int:
    """Receive time for recorded messages without one: the message's own time."""
    for key in ("ts", "E"):
        if key in msg:
            return int(msg[key]) * 1_000_000
    data = msg.get("data")
    if isinstance(data, dict):
        return _msg_ts(data)
    return 0


# --- Titan's own format ------------------------------------------------------------------------
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
                raise MalformedEvent("truncated_file")
            return None
        result |= (c[0] & 0x7F) << shift
        if not c[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise MalformedEvent("bad_varint")


def is_titan_file(path: Path) -> bool:
    if path.name.endswith((".tmd", ".tmd.gz")):
        return True
    if path.suffix == ".csv":
        with _open_text(path) as fh:
            return fh.readline().strip() == ",".join(TITAN_CSV_COLUMNS)
    return False


class EventWriter:
    """Writes MarketEvents in Titan's format, chosen by suffix: ``.tmd``, ``.tmd.gz`` or ``.csv``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.count = 0
        name = self.path.name
        self._csv: Any = None
        if name.endswith(".tmd.gz"):
            self._bin: IO[bytes] | None = gzip.open(self.path, "wb", compresslevel=6)  # type: ignore[assignment]  # noqa: SIM115
        elif name.endswith(".tmd"):
            self._bin = self.path.open("wb")
        elif name.endswith(".csv"):
            self._bin = None
            self._text = self.path.open("w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._text)
            self._csv.writerow(TITAN_CSV_COLUMNS)
        else:
            raise ValueError(f"unknown Titan file type: {name} (use .tmd, .tmd.gz or .csv)")

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

    def close(self) -> None:
        if self._bin is not None:
            self._bin.close()
        else:
            self._text.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_titan(path: Path) -> Iterator[MarketEvent]:
    """Read a file written by :class:`EventWriter`."""
    if path.name.endswith((".tmd", ".tmd.gz")):
        opener: Any = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            while True:
                n = _read_varint(fh)
                if n is None:
                    return
                data = fh.read(n)
                if len(data) != n:
                    raise MalformedEvent("truncated_file")
                ev = MarketEvent()
                ev.ParseFromString(data)
                yield ev
        return
    field_by_kind = {"open_interest": "open_interest"}
    with _open_text(path) as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or tuple(header) != TITAN_CSV_COLUMNS:
            raise MalformedEvent("not_a_titan_csv", str(path))
        for row in rows:
            ts, recv, venue, symbol, inst, seq, kind, payload = row
            ev = MarketEvent(
                venue=venue, symbol=symbol, instrument=int(inst),  # type: ignore[arg-type]
                exchange_ts_ns=int(ts), receive_ts_ns=int(recv), seq=int(seq),
            )
            field = field_by_kind.get(kind, kind)
            json_format.Parse(payload, getattr(ev, field))
            yield ev


# --- dispatch ----------------------------------------------------------------------------------
def read_file(path: Path | str, meta: FileMeta | None = None) -> Iterator[MarketEvent]:
    """Read any supported file, recognised by name and header."""
    path = Path(path)
    if is_titan_file(path):
        return read_titan(path)
    name = path.name.lower()
    if path.suffix.lower() in (".zip", ".data", ".jsonl", ".json") or name.endswith((".jsonl.gz", ".data.gz")):
        return read_ws_lines(path, meta)
    with _open_text(path) as fh:
        header = fh.readline().strip().lower().split(",")
    if "buyer_maker" in header:
        return read_trades_csv(path, meta)
    if {"open", "high", "low", "close"} <= set(header):
        kind = "funding" if "funding" in name else "mark" if re.search(r"(^|[-_])mark([-_.]|$)", name) else "candle"
        return read_candles_csv(path, meta, kind=kind)
    raise ValueError(f"{path}: unrecognised market data file")
