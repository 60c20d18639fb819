"""Streams and KV buckets from the catalog; event publishing with JetStream dedup."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType

from titan.core.bus import (
    MSG_ID_HEADER,
    InvalidEvent,
    connect,
    decode_event,
    ensure_jetstream,
    event_kind,
    new_event_id,
    publish_event,
)
from titan.core.catalog import Catalog, EventKind
from titan.v1 import events_pb2, trading_pb2

from ..ledger.builders import T0, fill_event


async def test_ensure_jetstream_twice_and_concurrently(bus_nc: Client, catalog: Catalog, nats_url: str) -> None:
    js = bus_nc.jetstream()
    await ensure_jetstream(js, catalog)
    await ensure_jetstream(js, catalog)
    # as if several processes started together: separate connections, at the same time
    others = [await connect(nats_url, f"titan-test-ensure-{i}") for i in range(2)]
    try:
        await asyncio.gather(*(ensure_jetstream(nc.jetstream(), catalog) for nc in [bus_nc, *others]))
    finally:
        for nc in others:
            await nc.close()
    for spec in catalog.streams:
        info = await js.stream_info(spec.name)
        assert info.config.subjects == list(spec.subjects)
        assert info.config.storage == StorageType.FILE
        assert info.config.duplicate_window == spec.duplicate_window_s
        assert (info.config.max_age or 0.0) == spec.max_age_s
    for bucket in catalog.buckets:
        kv = await js.key_value(bucket.name)
        assert (await kv.status()).history == bucket.history


async def test_ensure_jetstream_repairs_a_drifted_stream(bus_nc: Client) -> None:
    cat = Catalog(namespace=f"drift{uuid.uuid4().hex[:10]}")
    js = bus_nc.jetstream()
    try:
        spec = cat.events_stream
        await js.add_stream(name=spec.name, subjects=list(spec.subjects), duplicate_window=5.0)
        await ensure_jetstream(js, cat)
        info = await js.stream_info(spec.name)
        assert info.config.duplicate_window == spec.duplicate_window_s
    finally:
        for name in [s.name for s in cat.streams] + [f"KV_{b.name}" for b in cat.buckets]:
            with contextlib.suppress(Exception):
                await js.delete_stream(name)


async def test_publish_same_event_id_twice_is_stored_once(bus_js: JetStreamContext, catalog: Catalog) -> None:
    ev = fill_event("pub-1", source="execution")
    first = await publish_event(bus_js, catalog, ev)
    second = await publish_event(bus_js, catalog, ev)
    assert not first.duplicate
    assert second.duplicate and second.seq == first.seq
    msg = await bus_js.get_msg(catalog.events_stream.name, first.seq)
    assert msg.subject == catalog.event_subject("execution", EventKind.FILL)
    assert msg.headers is not None and msg.headers[MSG_ID_HEADER] == ev.event_id
    assert decode_event(msg.data or b"") == ev


async def test_publish_refuses_events_without_id_or_body(bus_js: JetStreamContext, catalog: Catalog) -> None:
    no_id = fill_event("x")
    no_id.event_id = ""
    with pytest.raises(InvalidEvent, match="no_event_id"):
        await publish_event(bus_js, catalog, no_id)
    with pytest.raises(InvalidEvent, match="no_body"):
        await publish_event(bus_js, catalog, events_pb2.Event(event_id="e", source="execution", ts_ns=T0))
    with pytest.raises(InvalidEvent, match="bad_source"):
        await publish_event(bus_js, catalog, fill_event("y", source="a.b"))


def test_event_kind_covers_every_body() -> None:
    fields = [f.name for f in events_pb2.Event.DESCRIPTOR.oneofs_by_name["body"].fields]
    kinds = set()
    for name in fields:
        ev = events_pb2.Event()
        getattr(ev, name).SetInParent()
        kinds.add(event_kind(ev))
    assert kinds == set(EventKind)
    assert event_kind(events_pb2.Event(order=trading_pb2.Order())) is EventKind.ORDER


def test_new_event_id() -> None:
    assert new_event_id("fill", "binance", "123") == "fill:binance:123"
    assert new_event_id("order", "c-1", 7) == new_event_id("order", "c-1", 7) == "order:c-1:7"
    assert new_event_id("order", "c-1", 7) != new_event_id("order", "c-1", 8)
    long_a, long_b = new_event_id("x", "a" * 300), new_event_id("x", "a" * 299 + "b")
    assert len(long_a) <= 200 and long_a != long_b
    for bad in [(), ("",), ("a b",), ("a\nb",)]:
        with pytest.raises(ValueError):
            new_event_id(*bad)


def test_decode_event_rejects_garbage() -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(b"\xff\xff\xff not protobuf")
    assert info.value.reason == "decode"
    with pytest.raises(InvalidEvent) as info:
        decode_event(events_pb2.Event(event_id="e", source="s").SerializeToString())
    assert info.value.reason == "no_body"
