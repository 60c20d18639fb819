"""Timestamps in market data files -> integer nanoseconds since the Unix epoch (UTC).

Integer epochs are told apart by magnitude, value by value (a Binance spot file switched from
milliseconds to microseconds in 2025): below 1e11 seconds, below 1e14 milliseconds, below 1e17
microseconds, else nanoseconds. That reads every date from 1973 to 5138 in each unit correctly.
Text is an integer or decimal epoch, or ISO-8601 (a naive time is UTC).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# (upper bound of the magnitude, ns per unit)
_UNITS = ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3))


def epoch_ns(n: int | Decimal) -> int:
    """An epoch in s/ms/µs/ns (told apart by magnitude) -> ns."""
    if n < 0:
        raise ValueError(f"negative epoch time {n}")
    for bound, scale in _UNITS:
        if n < bound:
            return int(n * scale)
    return int(n)


def datetime_ns(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def parse_time_ns(text: str) -> int:
    """ISO-8601 (naive = UTC) or an integer/decimal epoch in s, ms, µs or ns -> ns since the epoch.

    ``parse_time_ns("1570752011620") == 1570752011620000000`` (milliseconds)."""
    text = text.strip()
    if text.isdigit():
        return epoch_ns(int(text))
    if text[:1].isdigit() and "-" not in text and ":" not in text:
        try:
            return epoch_ns(Decimal(text))
        except InvalidOperation:
            pass
    try:
        return datetime_ns(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(f"not a time: {text!r}") from None


def value_ns(value: object) -> int:
    """A time cell from any reader (text, JSON number, Arrow datetime) -> ns."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int):
        return epoch_ns(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a time: {value!r}")
        return epoch_ns(Decimal(repr(value)))
    if isinstance(value, datetime):
        return datetime_ns(value)
    if isinstance(value, str):
        return parse_time_ns(value)
    raise ValueError(f"not a time: {value!r}")


def iso(ts_ns: int) -> str:
    """ns -> ISO-8601 UTC for messages and reports (``2022-01-01T00:00:00Z``, fractions when set)."""
    dt = datetime.fromtimestamp(ts_ns // 10**9, tz=UTC)
    frac = ts_ns % 10**9
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += f".{frac:09d}".rstrip("0")
    return text + "Z"
