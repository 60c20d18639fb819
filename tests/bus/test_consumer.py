"""DurableConsumer against a real JetStream: ack after success, nak + redelivery on failure,
terminate + count malformed messages, survive everything, resume after a restart."""

from __future__ import annotations

import asyncio
import uuid

from nats.aio.client import Client
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from titan.core.bus import DurableConsumer, Reject, connect, decode_event, ensure_jetstream, publish_event
from titan.core.catalog import Catalog, ConsumerSpec
from titan.v1 import events_pb2

from ..ledger.builders import fill_event
from ..util import wait_for


def _spec(catalog: Catalog, source: str) -> ConsumerSpec:
    return ConsumerSpec(
        stream=catalog.events_stream.name,
        durable=f"test-{source}",
        filter_subject=catalog.event_filter(source, "*"),
        description="test consumer",
        ack_wait_s=30.0,
    )


class Recorder:
    """A fresh source and its consumer spec, and a handler that records the fill ids it is given."""

    def __init__(self, catalog: Catalog) -> None:
        self.source = f"s{uuid.uuid4().hex[:8]}"
        self.spec = _spec(catalog, self.source)
        self.got: list[str] = []

    async def handler(self, ev: events_pb2.Event) -> None:
        self.got.append(ev.fill.fill_id)


def _rejects(consumer: str, reason: str) -> float:
    return REGISTRY.get_sample_value("titan_bus_rejects_total", {"consumer": consumer, "reason": reason}) or 0.0


async def _drained(js: JetStreamContext, spec: ConsumerSpec) -> bool:
    """Nothing waiting for delivery and nothing delivered-but-unacked."""
    info = await js.consumer_info(spec.stream, spec.durable)
    return (info.num_pending or 0, info.num_ack_pending or 0) == (0, 0)


async def test_handler_failure_naks_and_message_is_redelivered(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog,
) -> None:
    source = f"s{uuid.uuid4().hex[:8]}"
    spec = _spec(catalog, source)
    seen: list[str] = []
    failed: set[str] = set()

    async def handler(ev: events_pb2.Event) -> None:
        seen.append(ev.event_id)
        if ev.event_id == "boom" and ev.event_id not in failed:
            failed.add(ev.event_id)
            raise ConnectionError("database went away")

    consumer = DurableConsumer(bus_nc, spec, handler, decode_event, nak_delay_s=0.05)
    async with consumer:
        await publish_event(bus_js, catalog, fill_event("1", source=source, event_id="boom"))
        await publish_event(bus_js, catalog, fill_event("2", source=source, event_id="fine"))
        await wait_for(lambda: consumer.acked == 2)
        assert consumer.naked == 1
        assert seen.count("boom") == 2 and seen.count("fine") == 1
        await wait_for(lambda: _drained(bus_js, spec))
    assert not consumer.running


async def test_malformed_message_is_terminated_counted_and_loop_continues(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog
) -> None:
    source = f"s{uuid.uuid4().hex[:8]}"
    spec = _spec(catalog, source)
    handled: list[str] = []

    async def handler(ev: events_pb2.Event) -> None:
        if ev.fill.fill_id == "poison":
            raise Reject("unusable", "handler says no")
        handled.append(ev.event_id)

    before_decode = _rejects(spec.durable, "decode")
    before_body = _rejects(spec.durable, "no_body")
    before_handler = _rejects(spec.durable, "unusable")
    subject = catalog.event_subject(source, "fill")
    consumer = DurableConsumer(bus_nc, spec, handler, decode_event)
    async with consumer:
        await bus_js.publish(subject, b"\x0f\xff\xffgarbage")
        await bus_js.publish(subject, events_pb2.Event(event_id="x", source=source).SerializeToString())
        await publish_event(bus_js, catalog, fill_event("poison", source=source))
        await publish_event(bus_js, catalog, fill_event("good", source=source))
        await wait_for(lambda: handled == ["fill:paper:good"])
        await wait_for(lambda: consumer.terminated == 3)
        assert consumer.running
    assert _rejects(spec.durable, "decode") == before_decode + 1
    assert _rejects(spec.durable, "no_body") == before_body + 1
    assert _rejects(spec.durable, "unusable") == before_handler + 1
    # terminated messages are not redelivered: nothing left pending for this consumer
    await wait_for(lambda: _drained(bus_js, spec))


async def test_stop_and_restart_resumes_from_the_durable_position(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog
) -> None:
    recorder = Recorder(catalog)
    source, spec, got, handler = recorder.source, recorder.spec, recorder.got, recorder.handler
    consumer = DurableConsumer(bus_nc, spec, handler, decode_event)
    await consumer.start()
    await publish_event(bus_js, catalog, fill_event("a", source=source))
    await wait_for(lambda: got == ["a"])
    await consumer.stop()
    await consumer.stop()  # stopping twice is harmless
    await publish_event(bus_js, catalog, fill_event("b", source=source))
    await publish_event(bus_js, catalog, fill_event("c", source=source))
    again = DurableConsumer(bus_nc, spec, handler, decode_event)
    async with again:
        await wait_for(lambda: got == ["a", "b", "c"])


async def test_consumer_ends_quietly_when_its_connection_is_closed(nats_url: str, catalog: Catalog) -> None:
    nc = await connect(nats_url, "titan-test-closing")
    js = nc.jetstream()
    await ensure_jetstream(js, catalog)

    async def handler(ev: events_pb2.Event) -> None:
        return None

    consumer = DurableConsumer(nc, _spec(catalog, f"s{uuid.uuid4().hex[:8]}"), handler, decode_event,
                               fetch_timeout_s=0.2)
    await consumer.start()
    task = consumer._task
    await nc.close()
    await wait_for(lambda: not consumer.running)
    assert task is not None and task.exception() is None
    await consumer.stop()


async def test_a_deleted_durable_is_created_again_and_the_consumer_goes_on(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog
) -> None:
    recorder = Recorder(catalog)
    source, spec, got, handler = recorder.source, recorder.spec, recorder.got, recorder.handler
    async with DurableConsumer(bus_nc, spec, handler, decode_event, fetch_timeout_s=0.3) as consumer:
        await publish_event(bus_js, catalog, fill_event(f"{source}-a", source=source))
        await wait_for(lambda: got == [f"{source}-a"])
        await bus_js.delete_consumer(spec.stream, spec.durable)
        await publish_event(bus_js, catalog, fill_event(f"{source}-b", source=source))
        await wait_for(lambda: f"{source}-b" in got, timeout=15.0)  # from the start again: "a" may come back
        assert consumer.running
    assert got[-1] == f"{source}-b" and set(got) == {f"{source}-a", f"{source}-b"}


async def test_messages_held_ahead_at_stop_are_handed_back_at_once(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog,
) -> None:
    """The feed keeps a batch ahead of the handler; stopping naks what it held, so a restarted consumer
    gets it now, not after the ack wait (30 s here)."""
    source = f"s{uuid.uuid4().hex[:8]}"
    spec = _spec(catalog, source)
    for i in range(12):
        await publish_event(bus_js, catalog, fill_event(f"{source}-{i}", source=source))
    got: list[str] = []

    async def handler(ev: events_pb2.Event) -> None:
        got.append(ev.fill.fill_id)
        await asyncio.sleep(0.05)

    first = DurableConsumer(bus_nc, spec, handler, decode_event, batch=4)
    await first.start()
    await wait_for(lambda: len(got) >= 1)
    await first.stop()
    assert len(got) < 12  # stopped with messages in hand
    async with DurableConsumer(bus_nc, spec, handler, decode_event, batch=4):
        await wait_for(lambda: {f"{source}-{i}" for i in range(12)} <= set(got), timeout=10.0)  # < the ack wait
    await wait_for(lambda: _drained(bus_js, spec))


async def test_a_pipelined_batch_handler_gets_every_batch_in_order(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog,
) -> None:
    source = f"s{uuid.uuid4().hex[:8]}"
    spec = _spec(catalog, source)
    for i in range(50):
        await publish_event(bus_js, catalog, fill_event(f"{source}-{i}", source=source))
    handed: list[str] = []
    in_hand = 0
    most_in_hand = 0

    async def handle(batch: list[events_pb2.Event]) -> list[Exception | None]:
        nonlocal in_hand, most_in_hand
        handed.extend(ev.fill.fill_id for ev in batch)  # before any await: the order they were handed over
        in_hand += 1
        most_in_hand = max(most_in_hand, in_hand)
        await asyncio.sleep(0.01)
        in_hand -= 1
        return [None] * len(batch)

    consumer = DurableConsumer(bus_nc, spec, None, decode_event, batch_handler=handle, batch=8, pipeline=2)
    async with consumer:
        await wait_for(lambda: consumer.acked == 50)
    assert handed == [f"{source}-{i}" for i in range(50)] and most_in_hand <= 2
    await wait_for(lambda: _drained(bus_js, spec))
