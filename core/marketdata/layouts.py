"""Column layouts of tabular market data: which column holds which field.

A file with a header is mapped by column name (aliases below, case-insensitive; spaces and hyphens
count as underscores). Headerless files are Binance public-data files (or plain
``time,open,high,low,close,volume`` candles) and are mapped by position, told apart by their column
count and the cells of the first row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Field(StrEnum):
    TIME = "time"
    OPEN = "open"
    HIGH = "high"
    LOW = "low"
    CLOSE = "close"
    VOLUME = "volume"
    CLOSE_TIME = "close_time"
    TRADE_COUNT = "trade_count"
    TRADE_ID = "trade_id"
    PRICE = "price"
    SIZE = "size"
    BUYER_MAKER = "buyer_maker"
    SIDE = "side"
    RATE = "rate"
    INTERVAL_HOURS = "interval_hours"
    SYMBOL = "symbol"


# Column names per field, in order of preference (the first present wins).
ALIASES: dict[Field, tuple[str, ...]] = {
    Field.TIME: ("open_time", "timestamp", "ts", "time", "date", "datetime", "calc_time", "transact_time",
                 "time_ms", "unix", "t"),
    Field.OPEN: ("open", "o"),
    Field.HIGH: ("high", "h"),
    Field.LOW: ("low", "l"),
    Field.CLOSE: ("close", "c"),
    Field.VOLUME: ("volume", "vol", "base_volume", "volume_base", "v"),
    Field.CLOSE_TIME: ("close_time",),
    Field.TRADE_COUNT: ("count", "number_of_trades", "trade_count", "num_trades"),
    Field.TRADE_ID: ("trade_id", "agg_trade_id", "id", "tradeid"),
    Field.PRICE: ("price", "p"),
    Field.SIZE: ("quantity", "qty", "amount", "size", "q"),
    Field.BUYER_MAKER: ("is_buyer_maker", "buyer_maker", "isbuyermaker", "m"),
    Field.SIDE: ("side", "taker_side"),
    Field.RATE: ("last_funding_rate", "funding_rate", "fundingrate", "rate"),
    Field.INTERVAL_HOURS: ("funding_interval_hours",),
    Field.SYMBOL: ("symbol", "pair", "ticker"),
}

CANDLE_FIELDS = (Field.TIME, Field.OPEN, Field.HIGH, Field.LOW, Field.CLOSE)
TRADE_FIELDS = (Field.TIME, Field.PRICE, Field.SIZE)
FUNDING_FIELDS = (Field.TIME, Field.RATE)

# Headers that only Binance public-data files carry (USDⓈ-M files have a header row, spot files none).
BINANCE_HEADER_MARKS = frozenset({"close_time", "agg_trade_id", "is_buyer_maker", "last_funding_rate",
                                  "taker_buy_volume", "quote_qty"})


def normalise(name: str) -> str:
    return name.strip().strip('"').lower().replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class Layout:
    """Column index per field, and the column names (for messages)."""

    columns: tuple[str, ...]
    index: tuple[tuple[Field, int], ...]

    def get(self, field: Field) -> int | None:
        for f, i in self.index:
            if f is field:
                return i
        return None

    def has(self, *fields: Field) -> bool:
        return all(self.get(f) is not None for f in fields)

    def missing(self, fields: Sequence[Field]) -> list[Field]:
        return [f for f in fields if self.get(f) is None]


def header_layout(names: Sequence[str]) -> Layout:
    norm = [normalise(n) for n in names]
    index: list[tuple[Field, int]] = []
    taken: set[int] = set()
    for fld, aliases in ALIASES.items():
        for alias in aliases:
            if alias in norm and norm.index(alias) not in taken:
                i = norm.index(alias)
                index.append((fld, i))
                taken.add(i)
                break
    return Layout(columns=tuple(names), index=tuple(index))


def positional(*fields: tuple[Field, int], names: Sequence[str]) -> Layout:
    return Layout(columns=tuple(names), index=fields)


_F = Field
# data.binance.vision layouts (spot files have no header; USDⓈ-M files have one in recent years)
BINANCE_KLINES = positional(
    (_F.TIME, 0), (_F.OPEN, 1), (_F.HIGH, 2), (_F.LOW, 3), (_F.CLOSE, 4), (_F.VOLUME, 5), (_F.CLOSE_TIME, 6),
    (_F.TRADE_COUNT, 8),
    names=("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
           "taker_buy_volume", "taker_buy_quote_volume", "ignore"),
)
BINANCE_AGG_TRADES = positional(  # spot: 8 columns (+ is_best_match), futures: 7
    (_F.TRADE_ID, 0), (_F.PRICE, 1), (_F.SIZE, 2), (_F.TIME, 5), (_F.BUYER_MAKER, 6),
    names=("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
           "is_buyer_maker", "is_best_match"),
)
BINANCE_TRADES = positional(  # spot: 7 columns (+ is_best_match), futures: 6
    (_F.TRADE_ID, 0), (_F.PRICE, 1), (_F.SIZE, 2), (_F.TIME, 4), (_F.BUYER_MAKER, 5),
    names=("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"),
)
BINANCE_FUNDING = positional(
    (_F.TIME, 0), (_F.INTERVAL_HOURS, 1), (_F.RATE, 2),
    names=("calc_time", "funding_interval_hours", "last_funding_rate"),
)
PLAIN_CANDLES = positional(  # headerless time,open,high,low,close,volume; freqtrade's JSON candles
    (_F.TIME, 0), (_F.OPEN, 1), (_F.HIGH, 2), (_F.LOW, 3), (_F.CLOSE, 4), (_F.VOLUME, 5),
    names=("time", "open", "high", "low", "close", "volume"),
)
FREQTRADE_TRADES = positional(  # freqtrade's JSON trades: [timestamp, id, type, side, price, amount, cost]
    (_F.TIME, 0), (_F.TRADE_ID, 1), (_F.SIDE, 3), (_F.PRICE, 4), (_F.SIZE, 5),
    names=("timestamp", "id", "type", "side", "price", "amount", "cost"),
)


def _is_bool(cell: str) -> bool:
    return cell.strip().lower() in ("true", "false")


def headerless_layout(first: Sequence[str], name_hints: str) -> tuple[str, Layout] | None:
    """(what, layout) of a headerless row; ``what`` is "klines", "aggtrades", "trades", "funding" or
    "candles". ``name_hints`` is the lower-case path, for the cases the cells leave open."""
    n = len(first)
    if n == 12:
        return "klines", BINANCE_KLINES
    if n == 8 and _is_bool(first[6]):
        return "aggtrades", BINANCE_AGG_TRADES
    if n == 7:
        if _is_bool(first[5]) or ("aggtrades" not in name_hints and "trades" in name_hints):
            return "trades", BINANCE_TRADES
        return "aggtrades", BINANCE_AGG_TRADES
    if n == 6:
        if _is_bool(first[5]):
            return "trades", BINANCE_TRADES
        return "candles", PLAIN_CANDLES
    if n == 3:
        return "funding", BINANCE_FUNDING
    return None
