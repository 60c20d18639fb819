"""Exact money. Ledger amounts are Decimal; wire values are decimal strings."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext

ZERO = Decimal(0)
ONE = Decimal(1)
# Plenty for crypto quantities (1e-18) times prices (1e7) without silent rounding.
CONTEXT = Context(prec=38, rounding=ROUND_HALF_EVEN)


class MoneyError(ValueError):
    """A wire value is not a finite decimal."""


def D(value: str | int | Decimal) -> Decimal:
    """Parse a wire decimal string (or int/Decimal) exactly; reject NaN/Infinity/garbage.

    Floats are refused on purpose: money never passes through binary floating point."""
    if isinstance(value, float):  # pragma: no cover - guarded by the type, kept for callers without mypy
        raise MoneyError("floats are not money; pass a string")
    if isinstance(value, Decimal):
        d = value
    else:
        try:
            d = Decimal(value)
        except (InvalidOperation, ValueError, TypeError):
            raise MoneyError(f"not a decimal: {value!r}") from None
    if not d.is_finite():
        raise MoneyError(f"not a finite decimal: {value!r}")
    return d


class ParsedDecimals:
    """:func:`D` for wire strings that repeat (a phase's sizes, leverage and limits): each string of
    at most ``longest`` characters is parsed once and its Decimal (immutable) handed out again; at
    most ``limit`` are kept, then all are forgotten at once, so what is kept stays small whatever
    the strings. A string :func:`D` refuses is refused every time, never kept."""

    __slots__ = ("_known", "limit", "longest")

    def __init__(self, limit: int = 4096, longest: int = 64) -> None:
        self.limit = limit
        self.longest = longest
        self._known: dict[str, Decimal] = {}

    def __call__(self, text: str) -> Decimal:
        known = self._known.get(text)
        if known is None:
            known = D(text)
            if len(text) <= self.longest:
                if len(self._known) >= self.limit:
                    self._known.clear()
                self._known[text] = known
        return known


def D_or(value: str, default: Decimal) -> Decimal:
    """Like :func:`D` but an empty string means ``default``."""
    return default if value == "" else D(value)


def s(value: Decimal) -> str:
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
