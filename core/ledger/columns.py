"""A batch's rows of one table sent as one text value per column, split by the server.

asyncpg encodes an array parameter element by element, checking each for a nested array (an
abstract-base-class test): about 0.5 µs per value, the largest part of the client's CPU per event. A
column packed here is one string (the values joined by a unit separator, NULL as a record separator)
that the server turns back into an array with ``string_to_array`` and casts to the column's type, as
it parses numbers sent as text today. A column whose values hold either separator (free text could),
a single empty string (``string_to_array('')`` is an empty array), a ``bytea`` or an array column
travels as an array parameter as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

UNIT = "\x1f"  # between values
NULL = "\x1e"  # a NULL value
_SPLIT = "string_to_array($%d, E'\\x1f', E'\\x1e')"


def packable_type(sql_type: str) -> bool:
    """Types whose text form the server parses from a packed column."""
    return sql_type != "bytea" and not sql_type.endswith("[]")


def pack(values: Sequence[Any], sql_type: str) -> str | None:
    """``values`` as one string for ``sql_type``, or None when they cannot be packed safely."""
    texts: Sequence[Any]
    if sql_type == "boolean":
        texts = [NULL if v is None else ("t" if v else "f") for v in values]
        nulls = texts.count(NULL)
    elif sql_type == "text":
        nulls = values.count(None)  # text compared with None: no Decimal comparison (which is slow)
        texts = [NULL if v is None else v for v in values] if nulls else values
    else:
        texts = [NULL if v is None else str(v) for v in values]
        nulls = texts.count(NULL)  # no number's text is NULL
    try:
        joined = UNIT.join(texts)
    except TypeError:  # not text after all
        return None
    if joined.count(UNIT) != len(texts) - 1 or joined.count(NULL) != nulls:
        return None
    if len(texts) == 1 and joined == "":
        return None
    return joined


def unpack_sql(parameter: int, sql_type: str) -> str:
    """The array expression reading packed parameter ``$parameter`` as ``sql_type`` values."""
    split = _SPLIT % parameter
    return split if sql_type == "text" else f"{split}::{sql_type}[]"
