"""A batch prepared column by column (orders, fills, positions) is the batch its events give one by
one: the same outcomes, the same reasons, the same rows, whatever the wire values hold."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from titan.core.bus.events import InvalidEvent, validate_event
from titan.core.ledger import Ledger, rows
from titan.core.ledger.batches import prepare_batch
from titan.core.ledger.statements import Check, LedgerReject, plain_numbers
from titan.v1 import common_pb2, events_pb2, trading_pb2

from .builders import T0, fill_event, order_event

# Wire numbers: the plain form execution writes, and forms only a closer look can judge.
PLAIN = ["0", "1", "-2.5", "007", "50000.5", "0.000000000000000001", "12345678901234.123456789012345678"]
AWKWARD = ["", "1e5", "1E+2", " 1", "+1", ".5", "5.", "1_0", "NaN", "-Infinity", "abc", "\u0661\u0662", "1\x1f2"]
numbers = st.sampled_from(PLAIN + AWKWARD)
texts = st.sampled_from(["", "a", "BTCUSDT", 'x"y', "paper"])
event_ids = st.sampled_from(["e1", "e2", "e3", "e4", "e5", "bad id"])
NUMBER_CHECKS = {Check.NUMBER, Check.NUMBER_OR_ZERO, Check.NUMBER_OR_NULL}


@st.composite
def bodies(draw: Any) -> events_pb2.Event:
    kind = draw(st.sampled_from(sorted(rows.COLUMNAR)))
    table = rows.COLUMNAR[kind]
    body = {"order": trading_pb2.Order, "fill": trading_pb2.Fill, "position": trading_pb2.Position}[kind]()
    for f in table.fields:
        if f.check in NUMBER_CHECKS:
            setattr(body, f.name, draw(numbers))
        elif f.enum is not None:
            setattr(body, f.name, draw(st.sampled_from([0, 1, 2, 99])))
        else:
            current = getattr(body, f.name)
            if isinstance(current, bool):
                setattr(body, f.name, draw(st.booleans()))
            elif isinstance(current, int):
                setattr(body, f.name, draw(st.integers(min_value=0, max_value=2**31)))
            else:
                setattr(body, f.name, draw(texts))
    event = events_pb2.Event(event_id=draw(event_ids), source="execution", ts_ns=T0)
    getattr(event, kind).CopyFrom(body)
    return event


def one_by_one(events: list[events_pb2.Event]) -> tuple[list[Any], list[tuple[int, str]], dict[Any, list[Any]]]:
    """The outcomes, the events kept and each statement's rows as columns, event by event."""
    outcomes: list[Any] = []
    kept: list[tuple[int, str]] = []
    by_statement: dict[Any, list[tuple[Any, ...]]] = {}
    seen: set[str] = set()
    for i, event in enumerate(events):
        try:
            validate_event(event)
            upserts = rows.body_rows(event)
        except InvalidEvent as exc:  # the ledger's reject carries the bus's reason and message
            outcomes.append((exc.reason, str(LedgerReject(exc.reason, exc.detail))))
            continue
        except LedgerReject as exc:
            outcomes.append((exc.reason, str(exc)))
            continue
        outcomes.append(False)
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        kept.append((i, event.event_id))
        for upsert in upserts:
            by_statement.setdefault(upsert.statement, []).append(upsert.args)
    return outcomes, kept, {s: [list(c) for c in zip(*args, strict=True)] for s, args in by_statement.items()}


def same_value(a: Any, b: Any) -> bool:
    """Equal, numbers by value (a row holds a Decimal where a column holds its wire text)."""
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        try:
            return Decimal(a) == Decimal(b)
        except InvalidOperation:
            return False
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(st.lists(bodies(), min_size=1, max_size=12))
def test_a_batch_is_prepared_as_its_events_one_by_one(events: list[events_pb2.Event]) -> None:
    batch = prepare_batch(events, None)
    outcomes, kept, by_statement = one_by_one(events)
    got = [(r.reason, str(r)) if isinstance(r, LedgerReject) else r for r in batch.results]
    assert got == outcomes
    assert batch.new == kept
    assert set(batch.bulk) == set(by_statement)
    for statement, columns in by_statement.items():
        assert len(batch.bulk[statement]) == len(columns)
        for name, theirs, ours in zip(statement.columns, columns, batch.bulk[statement], strict=True):
            assert len(ours) == len(theirs), name
            assert all(same_value(a, b) for a, b in zip(theirs, ours, strict=True)), (name, theirs, ours)


def test_envelopes_checked_already_are_prepared_alike_and_a_body_is_still_required() -> None:
    """The writer's events come through decode_event, which validated their envelopes: prepared
    with ``checked`` they give the same batch; an event without a body is refused all the same."""
    events = [fill_event("ck-1"), order_event("ck-o", 1, trading_pb2.ORDER_STATE_NEW), fill_event("ck-1"),
              events_pb2.Event(event_id="ck-empty", source="execution", ts_ns=T0)]
    checked, full = prepare_batch(events, None, checked=True), prepare_batch(events, None)
    assert checked.results[:3] == full.results[:3] == [False, False, False]  # the database decides those
    assert checked.new == full.new and checked.envelopes == full.envelopes and checked.bulk == full.bulk
    refused = ["no_body: event 'ck-empty' has no body"] * 2
    assert [str(r) for r in (checked.results[3], full.results[3])] == refused


def test_one_malformed_fill_sends_its_table_row_by_row_and_names_the_field() -> None:
    good = [fill_event(f"ok-{n}") for n in range(3)]
    bad = fill_event("bad", price="1e")
    batch = prepare_batch([*good[:2], bad, good[2]], None)
    reject = batch.results[2]
    assert isinstance(reject, LedgerReject) and reject.reason == "bad_decimal"
    assert "fill.price='1e'" in str(reject)
    assert [i for i, _ in batch.new] == [0, 1, 3]
    prices = batch.bulk[rows.FILLS.statement][rows.FILLS.statement.columns.index("price")]
    assert prices == [Decimal("100.5")] * 3  # row by row: Decimals, as before the columns


def test_plain_numbers_are_the_only_ones_read_without_decimal() -> None:
    assert plain_numbers(PLAIN)
    for value in AWKWARD:
        assert not plain_numbers([*PLAIN, value]), value


async def test_a_batch_built_by_columns_reads_back_as_written(ledger: Ledger) -> None:
    phase = "columnar"
    fills = [fill_event(f"col-{n}", phase_id=phase, price=price, quantity="0.000000000000000001", fee=fee)
             for n, (price, fee) in enumerate([("12345678901234.123456789012345678", ""), ("0.5", "-0.25")])]
    orders = [order_event("col-o", 2, trading_pb2.ORDER_STATE_FILLED, filled="1.5", phase_id=phase)]
    position = trading_pb2.Position(phase_id=phase, venue="paper", symbol="BTCUSDT",
                                    instrument=common_pb2.INSTRUMENT_KIND_PERP, quantity="", mark_price="50000.25",
                                    realized_pnl="-3.5", ts_ns=T0, version=7)
    events = [*fills, *orders, events_pb2.Event(event_id="col-p", source="execution", ts_ns=T0, position=position)]
    assert prepare_batch(events, None).bulk.keys() == {rows.FILLS.statement, rows.ORDERS.statement,
                                                       rows.POSITIONS.statement}
    assert await ledger.record_many(events) == [True] * 4
    stored = {f.fill_id: f for f in await ledger.fills(phase)}
    assert Decimal(stored["col-0"].price) == Decimal("12345678901234.123456789012345678")
    assert stored["col-0"].quantity == "0.000000000000000001"
    assert stored["col-0"].fee == "0" and stored["col-1"].fee == "-0.25"  # empty fee: zero
    order = await ledger.order("col-o")
    assert order is not None and (order.version, order.filled_quantity, order.average_price) == (2, "1.5", "")
    [held] = await ledger.positions(phase, include_flat=True)
    assert (held.quantity, held.mark_price, held.realized_pnl, held.version) == ("0", "50000.25", "-3.5", 7)
    assert held.average_entry_price == ""  # empty: NULL
