"""Where a simulated market stopped, so that the next run continues from there.

A ledger outlives a ``titan up`` run; a simulated market did not. Restarted on the same data dir,
positions opened in the last run used to be valued on a market re-seeded at its default prices
(equity jumped with no trade). The gateway therefore keeps the simulator's last perp mark per symbol
in a small JSON file of the data dir (written atomically every few seconds and at exit), and a run
that finds the file starts the simulator there (:attr:`SimConfig.start_marks`).

The file is input like any other: a file that cannot be read, or a field that is missing or not a
positive price, is refused with a message naming the file and the field."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from titan.v1.common_pb2 import InstrumentKind
from titan.v1.market_pb2 import MarketEvent

FORMAT = 1


class ContinuationError(ValueError):
    """The continuation file exists but cannot be used (the message names the file and field)."""


@dataclass(frozen=True)
class MarketMarks:
    """The last perp mark of each symbol of one simulated market, and when it was seen."""

    venue: str
    at_ns: int
    marks: tuple[tuple[str, Decimal], ...]

    def start_marks(self) -> tuple[tuple[str, float], ...]:
        """As :attr:`SimConfig.start_marks` wants them (the simulator's path is in floats)."""
        return tuple((symbol, float(mark)) for symbol, mark in self.marks)

    def describe(self) -> str:
        return ", ".join(f"{symbol} {mark}" for symbol, mark in self.marks)


class MarkTracker:
    """Follows the perp marks a source emits (live events only: the history prelude is the past)."""

    def __init__(self, venue: str, live_from_ns: int = 0) -> None:
        self.venue = venue
        self.live_from_ns = live_from_ns
        self._marks: dict[str, Decimal] = {}
        self._at_ns = 0

    def observe(self, event: MarketEvent) -> None:
        if (event.instrument != InstrumentKind.INSTRUMENT_KIND_PERP or event.WhichOneof("payload") != "mark"
                or event.exchange_ts_ns < self.live_from_ns):
            return
        self._marks[event.symbol] = Decimal(event.mark.mark_price)
        self._at_ns = max(self._at_ns, event.exchange_ts_ns)

    def snapshot(self) -> MarketMarks | None:
        if not self._marks:
            return None
        return MarketMarks(self.venue, self._at_ns, tuple(sorted(self._marks.items())))


def save(path: Path, marks: MarketMarks) -> None:
    """Write ``marks`` to ``path`` atomically (a kill mid-write leaves the previous file)."""
    body = {"format": FORMAT, "venue": marks.venue, "at_ns": marks.at_ns,
            "marks": {symbol: str(mark) for symbol, mark in marks.marks}}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(partial, path)


def load(path: Path) -> MarketMarks | None:
    """The marks saved at ``path``; None when there is no such file (a first run)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ContinuationError(f"{path}: cannot be read ({err.strerror})") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        raise ContinuationError(f"{path}: not JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(body, dict):
        raise ContinuationError(f"{path}: expected an object")
    if body.get("format") != FORMAT:
        raise ContinuationError(f"{path}: field 'format' must be {FORMAT}, got {body.get('format')!r}")
    venue, at_ns, raw = body.get("venue"), body.get("at_ns"), body.get("marks")
    if not isinstance(venue, str) or not venue:
        raise ContinuationError(f"{path}: field 'venue' must be a non-empty string")
    if not isinstance(at_ns, int) or isinstance(at_ns, bool) or at_ns < 0:
        raise ContinuationError(f"{path}: field 'at_ns' must be a non-negative integer")
    if not isinstance(raw, dict) or not raw:
        raise ContinuationError(f"{path}: field 'marks' must map symbols to prices")
    return MarketMarks(venue, at_ns, tuple(sorted((str(symbol), _price(path, symbol, value))
                                                  for symbol, value in raw.items())))


def _price(path: Path, symbol: str, value: Any) -> Decimal:
    try:
        price = Decimal(str(value)) if isinstance(value, str | int) and not isinstance(value, bool) else None
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite() or price <= 0 or not math.isfinite(float(price)):
        raise ContinuationError(f"{path}: field 'marks.{symbol}' must be a positive price, got {value!r}")
    return price
