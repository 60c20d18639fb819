"""Several events as one JetStream message (titan.v1.EventBatch): ids, order, the size cap, and the
envelope checks every consumer relies on."""

from __future__ import annotations

import pytest

from titan.core.bus import InvalidEvent, batches, decode_event, event_message, unpack, validate_event
from titan.core.bus.events import batch_event
from titan.core.catalog import Catalog, EventKind
from titan.v1 import events_pb2, trading_pb2


def order_event(i: int, note: str = "") -> events_pb2.Event:
    order = trading_pb2.Order(client_order_id=f"cid-{i}", phase_id="hunter", symbol="BTCUSDT", version=1,
                              updated_at_ns=1_000 + i, reason=note)
    return events_pb2.Event(event_id=f"order:cid-{i}:1", source="execution", ts_ns=1_000 + i, order=order)


def test_a_batch_carries_its_events_in_order_under_a_hash_of_their_ids() -> None:
    events = [order_event(i) for i in range(3)]
    batch = batch_event(events, "execution")
    assert validate_event(batch) is EventKind.BATCH
    assert [e.event_id for e in unpack(decode_event(batch.SerializeToString()))] == [e.event_id for e in events]
    assert batch.ts_ns == 1_002
    assert batch_event(events, "execution").event_id == batch.event_id  # a re-publish is a JetStream duplicate
    assert batch_event(events[:2], "execution").event_id != batch.event_id
    assert list(unpack(events[0])) == [events[0]]  # a single event is its own content


def test_events_go_as_few_messages_as_the_size_cap_allows() -> None:
    events = [order_event(i, note="x" * 100) for i in range(10)]
    size = events[0].ByteSize() + 8
    packed = batches(events, "execution", events_pb2.Event.CopyFrom, max_bytes=4 * size)
    assert [count for _, count in packed] == [4, 4, 2]
    assert [e.event_id for message, _ in packed for e in unpack(message)] == [e.event_id for e in events]
    assert all(validate_event(message) is EventKind.BATCH for message, _ in packed)
    assert [message.event_id for message, _ in packed] == [batch_event(events[i:i + 4], "execution").event_id
                                                           for i in (0, 4, 8)]
    (alone, count), = batches(events[:1], "execution", events_pb2.Event.CopyFrom)
    assert count == 1 and alone.WhichOneof("body") == "order"  # one event goes as itself
    huge = order_event(99, note="y" * 1000)
    assert [c for _, c in batches([huge, events[0]], "execution", events_pb2.Event.CopyFrom, max_bytes=500)] == [1, 1]
    assert [c for _, c in batches([events[0], huge, *events[1:3]], "execution", events_pb2.Event.CopyFrom,
                                  max_bytes=500)] == [1, 1, 2]  # a huge one goes alone, wherever it comes


def test_a_batch_whose_events_were_checked_as_built_still_has_its_envelope_checked() -> None:
    """The publisher's batches skip re-checking their events (their ids come from new_event_id),
    not the batch's own envelope: the message is the same, and a bad source is still refused."""
    catalog = Catalog()
    (batch, count), = batches([order_event(i) for i in range(3)], "execution", events_pb2.Event.CopyFrom)
    assert count == 3 and event_message(catalog, batch, inner_checked=True) == event_message(catalog, batch)
    batch.source = "no spaces allowed"
    with pytest.raises(InvalidEvent) as refused:
        event_message(catalog, batch, inner_checked=True)
    assert refused.value.reason == "bad_source"


@pytest.mark.parametrize(("inner", "reason"), [
    ([], "empty_batch"),
    ([batch_event([order_event(1)], "execution")], "nested_batch"),
    ([events_pb2.Event(event_id="order:x:1", source="execution")], "no_body"),
])
def test_a_malformed_batch_is_refused_with_its_reason(inner: list[events_pb2.Event], reason: str) -> None:
    batch = events_pb2.Event(event_id="batch:execution:abc", source="execution")
    batch.batch.events.extend(inner)
    batch.batch.SetInParent()
    with pytest.raises(InvalidEvent) as refused:
        decode_event(batch.SerializeToString())
    assert refused.value.reason == reason
