"""Columns packed as one text value each (titan.core.ledger.columns): what packs, what falls back to an
array, and text that holds the separators surviving a batch unchanged."""

from __future__ import annotations

from decimal import Decimal

from titan.core.ledger import Ledger
from titan.core.ledger.columns import NULL, UNIT, pack
from titan.v1 import events_pb2, trading_pb2

from .builders import T0, fill_event, order_event


def test_values_pack_with_nulls_and_booleans() -> None:
    assert pack(["a", None, ""], "text") == f"a{UNIT}{NULL}{UNIT}"
    assert pack([Decimal("1.50"), None], "numeric") == f"1.50{UNIT}{NULL}"
    assert pack([True, False, None], "boolean") == f"t{UNIT}f{UNIT}{NULL}"
    assert pack([1, -2], "bigint") == f"1{UNIT}-2"


def test_values_that_cannot_be_packed_safely_are_refused() -> None:
    assert pack([f"x{UNIT}y"], "text") is None
    assert pack(["a", NULL], "text") is None  # a value that reads as NULL
    assert pack([f"a{NULL}b"], "text") is None
    assert pack([""], "text") is None  # string_to_array('') is an empty array
    assert pack([1], "text") is None  # not text


async def test_text_with_separators_and_empty_values_survive_a_batch(ledger: Ledger) -> None:
    phase = "colsp"
    odd = [f"reason{UNIT}with unit", NULL, f"a{NULL}b", "", "plain"]
    events = []
    for i, reason in enumerate(odd):
        event = order_event(f"cols-{i}", 1, trading_pb2.ORDER_STATE_REJECTED, phase_id=phase)
        event.order.reason = reason
        events.append(event)
    alone = order_event("cols-alone", 1, trading_pb2.ORDER_STATE_NEW, phase_id="colsq")  # one row: reason ""
    assert await ledger.record_many(events) == [True] * len(odd)
    assert await ledger.record_many([alone]) == [True]
    stored = {o.client_order_id: o for o in await ledger.orders(phase)}
    assert [stored[f"cols-{i}"].reason for i in range(len(odd))] == odd
    assert stored["cols-0"].average_price == "" and stored["cols-0"].price == "100.5"  # NULL and a number
    [only] = await ledger.orders("colsq")
    assert only.reason == "" and only.state == trading_pb2.ORDER_STATE_NEW


async def test_a_decision_batch_mixes_packed_and_array_columns(ledger: Ledger) -> None:
    acks = [trading_pb2.SignalAck(phase_id="colsd", signal_id=f"sig-{i}", accepted=i % 2 == 0,
                                  client_order_ids=[f"o{i}", 'q"uote'], detail=f"d{UNIT}{i}", acked_at_ns=T0 + i)
            for i in range(3)]
    events = [events_pb2.Event(event_id=f"cols-dec-{i}", source="execution", ts_ns=T0 + i,
                               decision=events_pb2.SignalDecision(ack=ack)) for i, ack in enumerate(acks)]
    events.append(fill_event("cols-f", phase_id="colsd"))
    assert await ledger.record_many(events) == [True] * 4
    decisions = {d.ack.signal_id: d.ack for d in await ledger.decisions("colsd")}
    assert [decisions[f"sig-{i}"] for i in range(3)] == acks
