"""A batch of events as one statement: envelopes in, each body table's rows reduced in SQL, the new
event ids out (no I/O; :class:`titan.core.ledger.repository.Ledger` sends it).

The tables that most events feed (orders, fills, positions: ``rows.COLUMNAR``) are built column by
column for the whole batch (``Table.columns``); a batch in which one of their bodies needs a
closer look goes row by row for that table, which names the field of any body it refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from titan.core.bus.events import InvalidEvent, event_kind, validate_event
from titan.core.ledger import rows
from titan.core.ledger.columns import pack, packable_type, unpack_sql
from titan.core.ledger.statements import Collapse, LedgerReject, Statement, Upsert
from titan.v1 import events_pb2


class RowLayouts:
    """Each ledger table's columns and their SQL types, to send a batch's rows of a table as one
    parameter per column (see :meth:`columns`)."""

    def __init__(self, types: dict[str, dict[str, str]]) -> None:
        self.types = types
        self.tables = set(types)

    @classmethod
    async def load(cls, conn: Any) -> RowLayouts:
        records = await conn.fetch(
            "SELECT c.relname, a.attname::text AS column, format_type(a.atttypid, NULL) AS type"
            " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
            " AND a.attnum > 0 AND NOT a.attisdropped"
        )
        types: dict[str, dict[str, str]] = {}
        for r in records:
            types.setdefault(r["relname"], {})[r["column"]] = r["type"]
        return cls(types)

    def columns(self, statement: Statement, by_column: Sequence[Sequence[Any]],
                first: int) -> tuple[str, list[Any]]:
        """The statement's bulk form reading its rows (given as columns) from parameters
        ``first``... (one per column), and those parameters: each column packed in one string
        (titan.core.ledger.columns), or else an array (numbers and arrays as text, parsed by the
        server: cheaper than binary numeric)."""
        types = self.types[statement.table]
        sources: list[str] = []
        values: list[str] = []
        params: list[Any] = []
        for n, (column, values_of) in enumerate(zip(statement.columns, by_column, strict=True)):
            kind = types[column]
            packed = pack(values_of, kind) if packable_type(kind) else None
            if packed is not None:
                sources.append(unpack_sql(first + n, kind))
                values.append(column)
                params.append(packed)
            elif kind == "numeric" or kind.endswith("[]"):  # as text, cast per row by the server
                sources.append(f"${first + n}::text[]")
                values.append(f"{column}::{kind}")
                params.append([None if v is None else (_array_literal(v) if kind.endswith("[]") else str(v))
                               for v in values_of])
            else:
                sources.append(f"${first + n}::{kind}[]")
                values.append(column)
                params.append(list(values_of))
        source = f"unnest({', '.join(sources)}) WITH ORDINALITY AS r({', '.join(statement.columns)}, ordinality)"
        sql: str = statement.bulk_sql(source, ", ".join(values), all_new=ALL_NEW,
                                      unique_keys=_unique_keys(statement, by_column))
        return sql, params


def _unique_keys(statement: Statement, by_column: Sequence[Sequence[Any]]) -> bool:
    """No two rows share the statement's conflict key (each fill, signal and decision of a batch
    usually has its own key; an order or a position may come in several versions)."""
    key = [by_column[statement.columns.index(column)] for column in statement.conflict]
    rows_in = len(key[0])
    return len(set(key[0] if len(key) == 1 else zip(*key, strict=True))) == rows_in


def _array_literal(values: Sequence[str]) -> str:
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


_EVENT_TYPES = ("text", "text", "text", "bigint")
# Every envelope of the batch is new to the ledger: the insert (``ev``) returned as many ids as
# payloads went in ($5; a prepared batch's ids are distinct, see prepare_batch).
ALL_NEW = "(SELECT count(*) FROM ev) = cardinality($5::bytea[])"


def events_cte(envelopes: list[list[Any]]) -> tuple[str, list[Any]]:
    """The envelopes' insert (parameters 1-5: id, kind, source, time packed where they can be, the
    payloads as a bytea array) returning the ids new to the ledger, and its parameters."""
    sources: list[str] = []
    params: list[Any] = []
    for n, (kind, values) in enumerate(zip(_EVENT_TYPES, envelopes, strict=False), start=1):
        packed = pack(values, kind)
        sources.append(f"${n}::{kind}[]" if packed is None else unpack_sql(n, kind))
        params.append(values if packed is None else packed)
    sources.append("$5::bytea[]")
    params.append(envelopes[4])
    return ("ev AS (INSERT INTO events (event_id, kind, source, ts_ns, payload)"
            f" SELECT * FROM unnest({', '.join(sources)}) ON CONFLICT (event_id) DO NOTHING RETURNING event_id)",
            params)


def bulk_statement(
    layout: RowLayouts, envelopes: list[list[Any]], bulk: dict[Statement, list[list[Any]]]
) -> tuple[str, list[Any]]:
    """One statement recording a batch: the envelopes (columns: id, kind, source, time, payload),
    then every body table's rows, applied only for the events new to the ledger; it returns the new
    event ids. Returns the SQL and its parameters."""
    ev, params = events_cte(envelopes)
    ctes: list[str] = [ev]
    for n, st in enumerate(sorted(bulk, key=lambda st: (st.table, st.columns))):
        cte, more = layout.columns(st, bulk[st], 1 + len(params))
        ctes.append(f"b{n} AS ({cte})")
        params.extend(more)
    return "WITH " + ", ".join(ctes) + " SELECT event_id FROM ev", params


@dataclass
class PreparedBatch:
    """A batch ready for :meth:`Ledger.write`: the events, the outcome of those kept out before the
    database (LedgerReject; False for a second copy), and (position, event id) of those to write;
    ``bulk``: each reduced statement's rows as columns, in event order."""

    events: Sequence[events_pb2.Event]
    results: list[bool | LedgerReject]
    new: list[tuple[int, str]]
    envelopes: list[list[Any]] = field(default_factory=list)
    bulk: dict[Statement, list[list[Any]]] = field(default_factory=dict)
    one_by_one: list[Upsert] = field(default_factory=list)
    statement: tuple[str, list[Any]] | None = None


def prepare_batch(events: Sequence[events_pb2.Event], layout: RowLayouts | None, *,
                  checked: bool = False) -> PreparedBatch:
    """Validation, rows, and the statement with its parameters when ``layout`` (the tables'
    columns) is known and covers the batch's tables. ``checked``: the envelopes were validated
    already (``decode_event`` does, for what the writer consumes), only their kinds are read."""
    results: list[bool | LedgerReject] = [False] * len(events)
    valid: list[tuple[int, events_pb2.Event, str]] = []
    check = event_kind if checked else validate_event
    for i, event in enumerate(events):
        try:
            valid.append((i, event, str(check(event))))
        except InvalidEvent as exc:
            results[i] = LedgerReject(exc.reason, exc.detail)
    columnar = _columnar(valid)
    taken = dict.fromkeys(columnar, 0)          # per columnar kind: its events seen so far
    repeats: dict[str, list[int]] = {}          # per columnar kind: which of them repeat an id
    by_row: dict[Statement, list[tuple[Any, ...]]] = {}
    one_by_one: list[Upsert] = []
    kept: list[tuple[int, events_pb2.Event, str]] = []
    batch_ids: set[str] = set()
    for i, event, kind in valid:
        if kind in columnar:
            seen = taken[kind]
            taken[kind] = seen + 1
            if event.event_id in batch_ids:  # a second copy in the batch: False, like a repeat
                repeats.setdefault(kind, []).append(seen)
                continue
        else:
            try:
                upserts = rows.body_rows(event)
            except LedgerReject as exc:
                results[i] = exc
                continue
            if event.event_id in batch_ids:
                continue
            for upsert in upserts:
                if upsert.statement.collapse is Collapse.NONE:
                    one_by_one.append(upsert)
                else:
                    by_row.setdefault(upsert.statement, []).append(upsert.args)
        batch_ids.add(event.event_id)
        kept.append((i, event, kind))
    batch = PreparedBatch(events, results, [(i, e.event_id) for i, e, _ in kept], one_by_one=one_by_one)
    if not kept:
        return batch
    for kind, by_column in columnar.items():
        dropped = set(repeats.get(kind, ()))
        if dropped:
            by_column = [[v for n, v in enumerate(column) if n not in dropped] for column in by_column]
        batch.bulk[rows.COLUMNAR[kind].statement] = by_column
    for statement, args in by_row.items():
        batch.bulk[statement] = [list(column) for column in zip(*args, strict=True)]
    batch.envelopes = [
        [e.event_id for _, e, _ in kept],
        [k for _, _, k in kept],
        [e.source for _, e, _ in kept],
        [e.ts_ns for _, e, _ in kept],
        [e.SerializeToString(deterministic=True) for _, e, _ in kept],
    ]
    if layout is not None and {st.table for st in batch.bulk} <= layout.tables:
        batch.statement = bulk_statement(layout, batch.envelopes, batch.bulk)
    return batch


def _columnar(valid: list[tuple[int, events_pb2.Event, str]]) -> dict[str, list[list[Any]]]:
    """Per columnar kind in the batch, its events' rows as columns (every copy of a repeated id
    included), unless one of its bodies needs the row-by-row check."""
    bodies: dict[str, tuple[list[Any], list[str]]] = {}
    for _, event, kind in valid:
        if kind in rows.COLUMNAR:
            entry = bodies.get(kind) or bodies.setdefault(kind, ([], []))
            entry[0].append(getattr(event, kind))
            entry[1].append(event.event_id)
    out: dict[str, list[list[Any]]] = {}
    for kind, (of_kind, event_ids) in bodies.items():
        by_column = rows.COLUMNAR[kind].columns(of_kind, event_ids)
        if by_column is not None:
            out[kind] = by_column
    return out
