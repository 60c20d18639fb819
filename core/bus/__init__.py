"""The event bus: NATS connection, JetStream streams and KV buckets, event publishing, durable
consumers and the KV state store. Every subject, stream and bucket comes from the Catalog."""

from titan.core.bus.connection import connect
from titan.core.bus.consumer import DurableConsumer, Reject, consumer_config
from titan.core.bus.events import (
    MSG_ID_HEADER,
    InvalidEvent,
    batches,
    decode_event,
    event_kind,
    event_message,
    new_event_id,
    publish_event,
    unpack,
    validate_event,
)
from titan.core.bus.jetstream import ensure_bucket, ensure_jetstream, ensure_stream, stream_config
from titan.core.bus.state import StateStore, canonical_json

__all__ = [
    "MSG_ID_HEADER",
    "DurableConsumer",
    "InvalidEvent",
    "Reject",
    "StateStore",
    "batches",
    "canonical_json",
    "connect",
    "consumer_config",
    "decode_event",
    "ensure_bucket",
    "ensure_jetstream",
    "ensure_stream",
    "event_kind",
    "event_message",
    "new_event_id",
    "publish_event",
    "stream_config",
    "unpack",
    "validate_event",
]
