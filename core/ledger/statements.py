"""The ledger's statements: what a wire value must be to be stored (a reject names the field that
is not), the INSERT ... ON CONFLICT statements of the body tables, and the specs of the tables most
events feed, which give one body's row or a whole batch's columns (no I/O)."""

from __future__ import annotations

import enum
import functools
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from titan.core.money import MoneyError, to_decimal, to_wire


class LedgerReject(ValueError):
    """An event the ledger can never store (malformed body). ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class _Enum(Protocol):
    def Name(self, number: int) -> str: ...
    def Value(self, name: str) -> int: ...
    def __hash__(self) -> int: ...


@functools.lru_cache(maxsize=1024)
def enum_name(enum: _Enum, number: int) -> str:
    """The enum value's name; an unknown number (from a newer producer) is kept as its digits."""
    try:
        return enum.Name(number)
    except ValueError:
        return str(number)


def enum_value(enum: _Enum, name: str) -> Any:
    """The enum number for a stored name (typed Any: protobuf's stubs want each enum's own ValueType)."""
    try:
        return enum.Value(name)
    except ValueError:
        return int(name) if name.lstrip("-").isdigit() else 0


def opt_num(value: str, field: str) -> Decimal | None:
    if value == "":
        return None
    try:
        parsed: Decimal = to_decimal(value)
    except MoneyError:
        raise LedgerReject("bad_decimal", f"{field}={value[:40]!r}") from None
    return parsed


def num(value: str, field: str, *, empty_is_zero: bool = False) -> Decimal:
    if value == "" and empty_is_zero:
        return Decimal(0)
    d = opt_num(value, field)
    if d is None:
        raise LedgerReject("missing", f"{field} is required")
    return d


def text(value: Decimal | None) -> str:
    return "" if value is None else to_wire(value)


def required(value: str, field: str) -> str:
    if not value:
        raise LedgerReject("missing", f"{field} is required")
    return value


class Collapse(enum.Enum):
    """How rows of one statement with the same conflict key in one batch reduce to one row, giving
    the result of applying them one after another."""

    FIRST = "first"      # DO NOTHING: the first row wins
    NEWEST = "newest"    # DO UPDATE guarded by ``(cur.guard) < (EXCLUDED.guard)``: the greatest guard
    #                      wins, the first among equals
    NONE = "none"        # anything else: applied row by row


@dataclass(frozen=True)
class Statement:
    """One INSERT ... ON CONFLICT into ``table``: its single-row form (``sql``) and its bulk form
    (``bulk_sql``)."""

    table: str
    columns: tuple[str, ...]
    conflict: tuple[str, ...]
    on_conflict: str
    collapse: Collapse
    guard: tuple[str, ...] = ()

    @property
    def sql(self) -> str:
        values = ", ".join(f"${i}" for i in range(1, len(self.columns) + 1))
        return f"INSERT INTO {self.table} AS cur ({', '.join(self.columns)}) VALUES ({values}) {self.on_conflict}"

    def bulk_sql(self, source: str, values: str, *, all_new: str, unique_keys: bool = False) -> str:
        """A CTE applying rows read from ``source`` (a FROM item named ``r`` with the statement's
        columns and an ``ordinality``; ``values`` selects them), for the events new to the ledger
        (``ev``), reduced to one row per key as applying them in order would leave it.

        ``all_new``: an SQL condition true when every event of the batch is new; then the rows are
        taken without looking each event id up in ``ev`` (the usual case: no hash of the batch's ids
        per table). ``unique_keys``: no two rows share a conflict key, so there is nothing to reduce
        and the rows go in as they are, in order (no sort)."""
        new_only = f"({all_new} OR r.event_id IN (SELECT event_id FROM ev))"
        into = f"INSERT INTO {self.table} AS cur ({', '.join(self.columns)})"
        if unique_keys:
            return f"{into} SELECT {values} FROM {source} WHERE {new_only} {self.on_conflict}"
        key = ", ".join(self.conflict)
        order = ", ".join([*self.conflict, *(f"{g} DESC" for g in self.guard), "ordinality"])
        return (f"{into} SELECT DISTINCT ON ({key}) {values}"
                f" FROM {source} WHERE {new_only} ORDER BY {order} {self.on_conflict}")


class Upsert(NamedTuple):
    """One INSERT ... ON CONFLICT statement with its arguments (a tuple: one is built per row)."""

    statement: Statement
    args: tuple[Any, ...]

    @property
    def sql(self) -> str:
        return self.statement.sql


@functools.lru_cache(maxsize=256)
def _statement(
    table: str,
    columns: tuple[str, ...],
    conflict: tuple[str, ...],
    update: tuple[str, ...],
    where: str,
    update_sql: tuple[tuple[str, str], ...],
    guard: tuple[str, ...],
) -> Statement:
    sets = [f"{c} = EXCLUDED.{c}" for c in update] + [f"{c} = {e}" for c, e in update_sql]
    on_conflict = f"ON CONFLICT ({', '.join(conflict)}) "
    if sets:
        on_conflict += "DO UPDATE SET " + ", ".join(sets) + (f" WHERE {where}" if where else "")
        collapse = Collapse.NEWEST if guard and not update_sql else Collapse.NONE
    else:
        on_conflict += "DO NOTHING"
        collapse = Collapse.FIRST
    return Statement(table, columns, conflict, on_conflict, collapse, guard if collapse is Collapse.NEWEST else ())


_STATEMENTS: dict[tuple[str, tuple[str, ...], str], Statement] = {}  # by table, columns and guard clause


def statement_for(
    table: str,
    columns: tuple[str, ...],
    conflict: Sequence[str],
    update: Sequence[str] | None = (),
    where: str = "",
    update_sql: Mapping[str, str] | None = None,
    guard: Sequence[str] = (),
) -> Statement:
    """The statement inserting ``columns`` into ``table``, one object per table, columns and guard
    clause. ``update``: the columns a conflict updates (None: every column outside the key).
    ``guard``: the columns ``where`` compares as ``(cur.g...) < (EXCLUDED.g...)`` (newest wins)."""
    key = (table, columns, where)
    statement = _STATEMENTS.get(key)
    if statement is None:
        updated = tuple(c for c in columns if c not in conflict) if update is None else tuple(update)
        statement = _STATEMENTS[key] = _statement(table, columns, tuple(conflict), updated, where,
                                                  tuple((update_sql or {}).items()), tuple(guard))
    return statement


# --- tables fed by many events: one spec gives a body's row and a batch's columns ---------------
_PLAIN_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?"
_PLAIN_NUMBERS = re.compile(f"(?:{_PLAIN_NUMBER}\x1f)*{_PLAIN_NUMBER}")


def plain_numbers(values: Sequence[str]) -> bool:
    """Every value is a decimal in the plain form execution writes (``-12.5``; no exponent, sign
    ``+``, spaces or other digits), which PostgreSQL parses as Decimal would: one regular expression
    over the column instead of a Decimal per value. False only means "check them one by one"."""
    joined = "\x1f".join(values)  # a separator inside a value would pass as two numbers: counted
    return joined.count("\x1f") == len(values) - 1 and _PLAIN_NUMBERS.fullmatch(joined) is not None


class Check(enum.Enum):
    """What a field's wire value must be, and how it is stored."""

    AS_IS = "as_is"                      # any value (text, number, bool), stored as it is
    REQUIRED = "required"                # a non-empty string
    NUMBER = "number"                    # a decimal string
    NUMBER_OR_ZERO = "number_or_zero"    # a decimal string; empty is 0
    NUMBER_OR_NULL = "number_or_null"    # a decimal string; empty is NULL


@dataclass(frozen=True)
class Field:
    """One body field as one column of the same name; an ``enum`` field is stored by name."""

    name: str
    check: Check = Check.AS_IS
    enum: _Enum | None = None


@dataclass(frozen=True)
class Table:
    """A table whose row is one body's fields (in column order) and the event id: the spec gives a
    body's row, checked field by field with the reason named (:meth:`row`), and a whole batch's
    columns at once (:meth:`columns`)."""

    body: str  # the body's name in messages ("order.price=...")
    table: str
    fields: tuple[Field, ...]
    conflict: tuple[str, ...]
    update: tuple[str, ...] | None = ()
    where: str = ""
    guard: tuple[str, ...] = ()

    @functools.cached_property
    def statement(self) -> Statement:
        columns = (*(f.name for f in self.fields), "event_id")
        return statement_for(self.table, columns, self.conflict, self.update, self.where, None, self.guard)

    def row(self, body: Any, event_id: str) -> Upsert:
        """The body's row; raises LedgerReject naming the first field that cannot be stored."""
        values: list[Any] = []
        for f in self.fields:
            raw = getattr(body, f.name)
            label = f"{self.body}.{f.name}"
            check = f.check
            if f.enum is not None:
                values.append(enum_name(f.enum, raw))
            elif check is Check.AS_IS:
                values.append(raw)
            elif check is Check.REQUIRED:
                values.append(required(raw, label))
            elif check is Check.NUMBER_OR_NULL:
                values.append(opt_num(raw, label))
            else:
                values.append(num(raw, label, empty_is_zero=check is Check.NUMBER_OR_ZERO))
        values.append(event_id)
        return Upsert(self.statement, tuple(values))

    def columns(self, bodies: Sequence[Any], event_ids: list[str]) -> list[list[Any]] | None:
        """The bodies' rows as columns (numbers as their wire text), or None when a value needs
        :meth:`row`'s one-by-one check (one may be malformed: the caller asks each body)."""
        out: list[list[Any]] = []
        for f in self.fields:
            values: list[Any] = list(map(operator.attrgetter(f.name), bodies))
            check = f.check
            if f.enum is not None:
                kind = f.enum
                values = [enum_name(kind, v) for v in values]
            elif check is Check.REQUIRED:
                if not all(values):
                    return None
            elif check is Check.NUMBER_OR_NULL:
                present = [v for v in values if v]
                if present and not plain_numbers(present):
                    return None
                if len(present) < len(values):
                    values = [v or None for v in values]
            elif check is not Check.AS_IS:
                if not all(values):
                    if check is Check.NUMBER:
                        return None
                    values = [v or "0" for v in values]
                if not plain_numbers(values):
                    return None
            out.append(values)
        out.append(event_ids)
        return out
