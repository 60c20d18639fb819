"""Engine updates as ``titan.v1.Event`` envelopes, each with the event id its natural keys give
(``order:<cid>:<version>``, ``fill:<venue>:<fill id>``, ...; see ``titan.core.bus.new_event_id``).

Every id is the one :func:`~titan.core.bus.new_event_id` gives for those keys. The usual keys (ids the
engine made, venue and symbol tokens) are plain printable ASCII: such an id is built as one string and
checked with one regular expression, which is what ``new_event_id`` would conclude about it; anything
else (an empty part, a space, a long or non-ASCII venue fill id) goes through ``new_event_id`` itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from operator import attrgetter
from typing import Any, NamedTuple

from titan.core.bus.events import MAX_EVENT_ID_LEN, new_event_id
from titan.v1 import events_pb2, trading_pb2

SAFE_PART_MAX = 128  # characters a free-form key keeps as itself in an id; a longer one is hashed
_SAFE = re.compile(rf"^[\x21-\x7e]{{1,{SAFE_PART_MAX}}}$")
# An id new_event_id returns as it is: printable ASCII (no whitespace, no control character), short
# enough not to be hashed.
_PLAIN_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_EVENT_ID_LEN}}}")


def safe_part(part: str) -> str:
    """A free-form key (a venue's fill id, a phase's signal id) as an id part: itself when it is 1-128
    printable ASCII characters, else a hash of it."""
    return part if _SAFE.match(part) else "h" + hashlib.sha256(part.encode()).hexdigest()[:32]


# Each id below is checked inline: its parts are non-empty (and a free-form part is its own safe form,
# 1-128 characters) and the whole id is plain; anything else goes through new_event_id.

def order_id(order: trading_pb2.Order) -> str:
    cid = order.client_order_id
    event_id = f"order:{cid}:{order.version}"
    return event_id if cid and _PLAIN_ID.fullmatch(event_id) else new_event_id("order", cid, order.version)


def fill_id(fill: trading_pb2.Fill) -> str:
    venue, venue_fill_id = fill.venue, fill.fill_id
    event_id = f"fill:{venue}:{venue_fill_id}"
    if venue and 0 < len(venue_fill_id) <= SAFE_PART_MAX and _PLAIN_ID.fullmatch(event_id):
        return event_id
    return new_event_id("fill", venue, safe_part(venue_fill_id))


def position_id(position: trading_pb2.Position) -> str:
    phase, venue, symbol = position.phase_id, position.venue, position.symbol
    event_id = f"position:{phase}:{venue}:{symbol}:{position.instrument}:{position.version}"
    if phase and venue and symbol and _PLAIN_ID.fullmatch(event_id):
        return event_id
    return new_event_id("position", phase, venue, symbol, position.instrument, position.version)


def decision_id(decision: events_pb2.SignalDecision) -> str:
    ack = decision.ack
    phase, signal = ack.phase_id, ack.signal_id
    event_id = f"decision:{phase}:{signal}"
    if 0 < len(phase) <= SAFE_PART_MAX and 0 < len(signal) <= SAFE_PART_MAX and _PLAIN_ID.fullmatch(event_id):
        return event_id
    return new_event_id("decision", safe_part(phase), safe_part(signal))


def funding_id(payment: trading_pb2.FundingPayment) -> str:
    return new_event_id("funding", payment.venue, payment.symbol, payment.phase_id, payment.funding_time_ns)


def equity_id(snapshot: trading_pb2.EquitySnapshot) -> str:
    return new_event_id("equity", snapshot.scope, snapshot.ts_ns)


def hedge_id(outcome: trading_pb2.HedgeOutcome) -> str:
    return new_event_id("hedge", safe_part(outcome.phase_id), safe_part(outcome.signal_id))


def trading_state_id(state: trading_pb2.TradingState) -> str:
    return new_event_id("trading_state", state.version, state.ts_ns or 0)


class _Kind(NamedTuple):
    """How one type of engine update goes in an envelope."""

    field: str                          # the Event's body field
    event_id: Callable[[Any], str]      # its natural-key id
    ts_ns: Callable[[Any], int]         # the event's time


_KINDS: dict[type, _Kind] = {
    trading_pb2.Fill: _Kind("fill", fill_id, attrgetter("ts_ns")),
    trading_pb2.Order: _Kind("order", order_id, attrgetter("updated_at_ns")),
    trading_pb2.Position: _Kind("position", position_id, attrgetter("ts_ns")),
    events_pb2.SignalDecision: _Kind("decision", decision_id, attrgetter("ack.acked_at_ns")),
    trading_pb2.FundingPayment: _Kind("funding", funding_id, attrgetter("funding_time_ns")),
    trading_pb2.EquitySnapshot: _Kind("equity", equity_id, attrgetter("ts_ns")),
    trading_pb2.HedgeOutcome: _Kind("hedge", hedge_id, attrgetter("ts_ns")),
    trading_pb2.TradingState: _Kind("trading_state", trading_state_id, attrgetter("ts_ns")),
}


def envelope(ev: events_pb2.Event, body: Any) -> events_pb2.Event:
    """Fill ``ev`` (an empty envelope, its source set) with one engine update and its natural-key
    event id; returns it."""
    kind = _KINDS.get(type(body))
    if kind is None:  # pragma: no cover - the engine only emits the types above
        raise TypeError(f"not an event body: {type(body).__name__}")
    ev.event_id = kind.event_id(body)
    ev.ts_ns = kind.ts_ns(body)
    getattr(ev, kind.field).CopyFrom(body)
    return ev


def to_event(body: Any, source: str = "execution") -> events_pb2.Event:
    """The envelope for one engine update, with its natural-key event id."""
    return envelope(events_pb2.Event(source=source), body)
