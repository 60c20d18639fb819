"""Fast Decimal -> wire string for the hot path, same output as ``titan.core.money.to_wire`` for
values that ``str`` prints without an exponent (``to_wire`` itself handles the rest)."""

from __future__ import annotations

from decimal import Decimal

from titan.core.money import to_wire


def fmt(value: Decimal) -> str:
    if not value:
        return "0"
    text = str(value)
    if "E" in text:
        return to_wire(value)
    if text[-1] == "0" and "." in text:  # str never ends a Decimal with its point: "5." is "5"
        text = text.rstrip("0").rstrip(".")
    return text
