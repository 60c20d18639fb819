"""Events to real JetStream: natural-key ids, one message per submitted outcome (a batch on its own
subject; a single event on its kind's), dedup on re-publish, retried (never dropped) while the stream
is unavailable, forwarded only after JetStream acknowledged."""

from __future__ import annotations

import uuid

from tests.execution.helpers import leg, make_engine, signal
from tests.util import wait_for
from titan.core.bus import decode_event, ensure_jetstream, unpack
from titan.core.catalog import Catalog
from titan.execution.envelopes import to_event
from titan.execution.publisher import JetStreamPublisher
from titan.v1 import trading_pb2


def _updates():
    engine, clock = make_engine()
    d = engine.on_signal(signal(clock, leg(size="5000"), signal_id="pub-1"))
    assert d.ack.accepted
    return d.updates


def test_event_ids_derive_from_natural_keys():
    ups = _updates()
    kinds = [u.DESCRIPTOR.name for u in ups]
    assert kinds == ["Order", "Fill", "Position", "SignalDecision"]
    order, fill, pos, decision = (to_event(u) for u in ups)
    assert order.event_id == f"order:{ups[0].client_order_id}:{ups[0].version}"
    assert fill.event_id == f"fill:bybit:{ups[1].fill_id}"
    assert pos.event_id == f"position:hunter:bybit:BTCUSDT:2:{ups[2].version}"
    assert decision.event_id == "decision:hunter:pub-1"
    assert to_event(ups[1]).event_id == fill.event_id  # same update, same id
    odd = trading_pb2.SignalAck(phase_id="hunter", signal_id="has space")
    from titan.v1 import events_pb2
    ev = to_event(events_pb2.SignalDecision(ack=odd))
    assert " " not in ev.event_id and ev.event_id.startswith("decision:hunter:h")


async def test_publishes_in_order_dedups_and_forwards_after_ack(bus_js, catalog):
    forwarded = []
    pub = JetStreamPublisher(bus_js, catalog, on_published=forwarded.extend)
    await pub.start()
    ups = _updates()
    pub.submit(ups)
    assert await pub.flush(10)
    assert forwarded == ups
    assert pub.published == 4 and pub.duplicates == 0
    pub.submit(ups)  # a retry / restart re-publishing the same updates
    assert await pub.flush(10)
    assert pub.duplicates == 4 and pub.messages == 2
    pub.submit(ups[:1])  # one update: the event itself, on its kind's subject
    assert await pub.flush(10)
    sub = await bus_js.subscribe(catalog.event_filter("execution", "*"), ordered_consumer=True)
    first = await sub.next_msg(timeout=5)
    single = await sub.next_msg(timeout=5)
    await sub.unsubscribe()
    assert first.subject == catalog.event_subject("execution", "batch")
    batch = decode_event(first.data)
    assert batch.event_id.startswith("batch:execution:") and batch.ts_ns == max(to_event(u).ts_ns for u in ups)
    assert [e.event_id for e in unpack(batch)] == [to_event(u).event_id for u in ups]
    assert [e.WhichOneof("body") for e in unpack(batch)] == ["order", "fill", "position", "decision"]
    assert single.subject == catalog.event_subject("execution", "order")
    assert [e.event_id for e in unpack(decode_event(single.data))] == [to_event(ups[0]).event_id]
    await pub.stop()


async def test_retries_until_the_stream_exists(bus_nc):
    js = bus_nc.jetstream()
    cat = Catalog(namespace=f"t{uuid.uuid4().hex[:10]}")  # its streams do not exist yet
    forwarded = []
    pub = JetStreamPublisher(js, cat, on_published=forwarded.extend)
    await pub.start()
    ups = _updates()
    pub.submit(ups)
    await wait_for(lambda: pub.retries >= 4, timeout=15)
    assert not forwarded and pub.pending == 1  # one message with the four events
    await ensure_jetstream(js, cat)
    try:
        assert await pub.flush(15)
        assert forwarded == ups
        info = await js.stream_info(cat.events_stream.name)
        assert info.state.messages == 1 and pub.published == 4
    finally:
        await pub.stop()
        for name in [s.name for s in cat.streams] + [f"KV_{b.name}" for b in cat.buckets]:
            await js.delete_stream(name)
