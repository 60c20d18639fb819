"""Events on JetStream: subject per body kind, dedup by message id, strict decoding."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from google.protobuf.message import DecodeError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from titan.core.catalog import Catalog, EventKind, token
from titan.v1 import events_pb2

MSG_ID_HEADER = "Nats-Msg-Id"
MAX_EVENT_ID_LEN = 200
_BAD_ID_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")

# titan.v1.Event `body` oneof field -> subject kind token.
_KIND_BY_FIELD: dict[str, EventKind] = {
    "order": EventKind.ORDER,
    "fill": EventKind.FILL,
    "position": EventKind.POSITION,
    "funding": EventKind.FUNDING,
    "equity": EventKind.EQUITY,
    "decision": EventKind.DECISION,
    "allocation": EventKind.ALLOCATION,
    "breaker": EventKind.BREAKER,
    "proposal": EventKind.PROPOSAL,
    "trading_state": EventKind.TRADING_STATE,
    "hedge": EventKind.HEDGE,
    "batch": EventKind.BATCH,
}
T = TypeVar("T")
BATCH_MAX_BYTES = 512 * 1024  # a batch stays well under NATS's default max_payload (1 MB)


class InvalidEvent(ValueError):
    """An event that must not go on (or come off) the bus. ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def event_kind(event: events_pb2.Event) -> EventKind:
    """The kind of an event's body; :class:`InvalidEvent` (reason ``no_body``) if it has none."""
    field = event.WhichOneof("body")
    if field is None:
        raise InvalidEvent("no_body", f"event {event.event_id!r} has no body")
    return _KIND_BY_FIELD[field]


def new_event_id(*parts: str | int) -> str:
    """A deterministic event id from natural keys, e.g. ``new_event_id("fill", venue, fill_id)``
    -> ``"fill:binance:123"``. The same keys always give the same id, so a re-published event is
    dropped by JetStream's duplicate window and by the ledger's ``events`` primary key.

    Ids longer than 200 characters keep a readable prefix and end in a hash of the whole."""
    if not parts:
        raise ValueError("new_event_id needs at least one part")
    texts = [part if type(part) is str else str(part) for part in parts]
    if "" in texts:
        raise ValueError("event id parts must not be empty")
    joined = ":".join(texts)
    if _BAD_ID_CHARS.search(joined):  # one search for all parts: the ":" between them is never bad
        bad = next(text for text in texts if _BAD_ID_CHARS.search(text))
        raise ValueError(f"event id part contains whitespace or control characters: {bad!r}")
    if len(joined) <= MAX_EVENT_ID_LEN:
        return joined
    digest = hashlib.sha256(joined.encode()).hexdigest()[:32]
    return f"{joined[: MAX_EVENT_ID_LEN - 34]}:#{digest}"


def validate_event(event: events_pb2.Event, checked_source: str = "", *, inner: bool = True) -> EventKind:
    """Check the envelope (id, source, body); return the body kind. ``checked_source``: a source
    already found valid (a batch's, for its events) is not checked again. ``inner=False``: a batch's
    own envelope only, for a batch whose events were checked as they were built (see
    :func:`event_message`)."""
    event_id = event.event_id
    if not event_id:
        raise InvalidEvent("no_event_id", "event has no event_id")
    if len(event_id) > MAX_EVENT_ID_LEN or _BAD_ID_CHARS.search(event_id):
        raise InvalidEvent("bad_event_id", f"unusable event_id {event_id[:60]!r}")
    kind = event_kind(event)
    source = event.source
    if source != checked_source or not source:
        try:
            token(source)
        except ValueError:
            raise InvalidEvent("bad_source", f"event {event_id!r} has source {source!r}") from None
    if kind is EventKind.BATCH:
        if not event.batch.events:
            raise InvalidEvent("empty_batch", f"batch {event_id!r} holds no event")
        for held in event.batch.events if inner else ():
            if validate_event(held, source) is EventKind.BATCH:
                raise InvalidEvent("nested_batch", f"batch {event_id!r} holds batch {held.event_id!r}")
    return kind


def unpack(event: events_pb2.Event) -> Sequence[events_pb2.Event]:
    """The events a message carries: a batch's inner events in order, else the event itself.
    Every consumer of TITAN_EVENTS reads messages through this."""
    if event.WhichOneof("body") == "batch":
        return event.batch.events
    return (event,)


def batch_event(events: Sequence[events_pb2.Event], source: str) -> events_pb2.Event:
    """One envelope for several events (``titan.v1.EventBatch``), copied in; see :func:`seal`."""
    batch = events_pb2.Event(source=source)
    batch.batch.events.extend(events)
    return seal(batch)


def seal(batch: events_pb2.Event, ids: Sequence[str] = (), latest_ns: int = 0) -> events_pb2.Event:
    """Give a batch its id and time once its events are in: the id is a hash of the inner ids, so
    re-publishing the same batch is dropped by JetStream's duplicate window while a different batch
    that repeats one event is not (the ledger drops that event by its own id); the time is the
    latest of its events'. ``ids`` and ``latest_ns``: the inner events' ids and latest time, when
    the caller collected them as it added the events (else they are read back)."""
    inner = batch.batch.events
    if not ids:
        ids = [e.event_id for e in inner]
        latest_ns = max(e.ts_ns for e in inner)
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:40]
    batch.event_id = new_event_id("batch", batch.source, digest)
    batch.ts_ns = latest_ns
    return batch


def batches(items: Sequence[T], source: str, envelope: Callable[[events_pb2.Event, T], object],
            max_bytes: int = BATCH_MAX_BYTES) -> list[tuple[events_pb2.Event, int]]:
    """``items`` as few messages as fit ``max_bytes`` each, in order, each with how many of
    ``items`` it carries. ``envelope(event, item)`` fills the (empty) event of an item: inside a
    batch it fills the batch's own inner event, so nothing is copied twice. One item goes as its
    event, several as a sealed batch (an event larger than ``max_bytes`` goes alone)."""
    if len(items) == 1:
        single = events_pb2.Event(source=source)
        envelope(single, items[0])
        return [(single, 1)]
    whole = events_pb2.Event(source=source)
    add = whole.batch.events.add
    ids: list[str] = []
    latest_ns = 0
    for item in items:
        event = add(source=source)
        envelope(event, item)
        ids.append(event.event_id)
        latest_ns = max(latest_ns, event.ts_ns)
    if whole.ByteSize() <= max_bytes:  # the usual case: everything fits one message, sized once
        return [(seal(whole, ids, latest_ns), len(items))]
    out: list[tuple[events_pb2.Event, int]] = []
    batch = events_pb2.Event(source=source)
    size = 0
    for item in items:
        inner = batch.batch.events.add(source=source)
        envelope(inner, item)
        n = inner.ByteSize() + 8
        if size + n > max_bytes and len(batch.batch.events) > 1:  # full: the item opens the next
            moved = events_pb2.Event()
            moved.CopyFrom(inner)
            del batch.batch.events[-1]
            out.append(_finished(batch))
            batch = events_pb2.Event(source=source)
            batch.batch.events.append(moved)
            size = 0
        size += n
    out.append(_finished(batch))
    return out


def _finished(batch: events_pb2.Event) -> tuple[events_pb2.Event, int]:
    """A batch of one goes as its event; a larger one sealed."""
    inner = batch.batch.events
    if len(inner) == 1:
        return inner[0], 1
    return seal(batch), len(inner)


def decode_event(data: bytes) -> events_pb2.Event:
    """Parse a bus message payload into a valid titan.v1.Event, or raise :class:`InvalidEvent`."""
    event = events_pb2.Event()
    try:
        event.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidEvent("decode", str(exc) or "not a titan.v1.Event") from None
    validate_event(event)
    return event


def event_message(catalog: Catalog, event: events_pb2.Event, *,
                  inner_checked: bool = False) -> tuple[str, bytes, dict[str, str]]:
    """Validate ``event`` and return its JetStream message: subject
    (``catalog.event_subject(event.source, kind)``), payload, and headers carrying the event_id as
    the message id (dedup). Every publisher of events goes through this.

    ``inner_checked``: a batch from :func:`batches` whose envelope function gives every event a body
    and the id :func:`new_event_id` gives for its keys (it refuses what ``validate_event`` refuses);
    only the batch's own envelope is checked then (its source is its events')."""
    kind = validate_event(event, inner=not inner_checked)
    subject = catalog.event_subject(event.source, kind)
    return subject, event.SerializeToString(deterministic=True), {MSG_ID_HEADER: event.event_id}


async def publish_event(
    js: JetStreamContext, catalog: Catalog, event: events_pb2.Event, *, ack_timeout_s: float | None = None
) -> PubAck:
    """Publish ``event`` and wait for JetStream's ack; ``ack.duplicate`` is true when JetStream
    already had that id."""
    subject, payload, headers = event_message(catalog, event)
    return await js.publish(
        subject, payload, timeout=ack_timeout_s, stream=catalog.events_stream.name, headers=headers
    )
