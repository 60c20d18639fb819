"""Exact money. Ledger amounts are Decimal; wire values are decimal strings."""

from __future__ import annotations

import functools
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext

ZERO = Decimal(0)
ONE = Decimal(1)
# Plenty for crypto quantities (1e-18) times prices (1e7) without silent rounding.
CONTEXT = Context(prec=38, rounding=ROUND_HALF_EVEN)


class MoneyError(ValueError):
    """A wire value is not a finite decimal."""


def to_decimal(value: str | int | Decimal) -> Decimal:
    """Parse a wire decimal string (or int/Decimal) exactly; reject NaN/Infinity/garbage.

    Floats are refused on purpose: money never passes through binary floating point."""
    if isinstance(value, float):  # pragma: no cover - guarded by the type, kept for callers without mypy
        raise MoneyError("floats are not money; pass a string")
    if isinstance(value, Decimal):
        parsed = value
    else:
        try:
            parsed = Decimal(value)
        except (InvalidOperation, ValueError, TypeError):
            raise MoneyError(f"not a decimal: {value!r}") from None
    if not parsed.is_finite():
        raise MoneyError(f"not a finite decimal: {value!r}")
    return parsed


# What :func:`wire_decimal` keeps: strings of at most this many characters, this many of them.
WIRE_DECIMAL_LONGEST = 64
WIRE_DECIMALS_KEPT = 4096


@functools.lru_cache(maxsize=WIRE_DECIMALS_KEPT)
def _wire_decimal_kept(text: str) -> Decimal:
    return to_decimal(text)


def wire_decimal(text: str) -> Decimal:
    """:func:`to_decimal` for wire strings that repeat (a phase's sizes, leverage and limits): a
    string of at most :data:`WIRE_DECIMAL_LONGEST` characters is parsed once and its Decimal
    (immutable) handed out again, the least recently used forgotten beyond
    :data:`WIRE_DECIMALS_KEPT`; a longer one is parsed every time, so what is kept stays small
    whatever the strings. A refused string (``lru_cache`` keeps no exceptions) is refused every
    time."""
    return _wire_decimal_kept(text) if len(text) <= WIRE_DECIMAL_LONGEST else to_decimal(text)


def to_decimal_or(value: str, default: Decimal) -> Decimal:
    """Like :func:`to_decimal` but an empty string means ``default``."""
    return default if value == "" else to_decimal(value)


def to_wire(value: Decimal) -> str:
    """Decimal -> canonical wire string (no exponent, no trailing zeros, "-0" -> "0")."""
    if value == 0:
        return "0"
    text = format(value.normalize(CONTEXT), "f")
    return text


def quantize_down(value: Decimal, step: Decimal) -> Decimal:
    """Round towards zero to a multiple of ``step`` (lot size / tick size)."""
    if step <= 0:
        return value
    with localcontext(CONTEXT):
        return (value / step).to_integral_value(rounding=ROUND_DOWN) * step
