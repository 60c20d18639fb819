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
from typing import Any

from titan.core.bus.events import MAX_EVENT_ID_LEN, new_event_id
from titan.v1 import events_pb2, trading_pb2

_SAFE = re.compile(r"^[\x21-\x7e]{1,128}$")
# An id new_event_id returns as it is: printable ASCII (no whitespace, no control character), short
# enough not to be hashed.
_PLAIN_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_EVENT_ID_LEN}}}")


def safe_part(part: str) -> str:
    """A free-form key (a venue's fill id, a phase's signal id) as an id part: itself when it is 1-128
    printable ASCII characters, else a hash of it."""
    return part if _SAFE.match(part) else "h" + hashlib.sha256(part.encode()).hexdigest()[:32]


def _plain(event_id: str, *parts: str) -> bool:
    """``event_id``, joined from ``parts`` (and numbers), is what new_event_id gives for them: no part
    is empty and the whole is plain."""
    return all(parts) and _PLAIN_ID.fullmatch(event_id) is not None


def _safe_and_plain(event_id: str, *parts: str) -> bool:
    """As :func:`_plain`, for parts that go through :func:`safe_part`: each is its own safe form."""
    return all(0 < len(part) <= 128 for part in parts) and _PLAIN_ID.fullmatch(event_id) is not None


def order_id(order: trading_pb2.Order) -> str:
    cid = order.client_order_id
    event_id = f"order:{cid}:{order.version}"
    return event_id if _plain(event_id, cid) else new_event_id("order", cid, order.version)


def fill_id(fill: trading_pb2.Fill) -> str:
    venue, venue_fill_id = fill.venue, fill.fill_id
    event_id = f"fill:{venue}:{venue_fill_id}"
    if _plain(event_id, venue) and _safe_and_plain(event_id, venue_fill_id):
        return event_id
    return new_event_id("fill", venue, safe_part(venue_fill_id))


def position_id(position: trading_pb2.Position) -> str:
    phase, venue, symbol = position.phase_id, position.venue, position.symbol
    event_id = f"position:{phase}:{venue}:{symbol}:{position.instrument}:{position.version}"
    if _plain(event_id, phase, venue, symbol):
        return event_id
    return new_event_id("position", phase, venue, symbol, position.instrument, position.version)


def decision_id(decision: events_pb2.SignalDecision) -> str:
    ack = decision.ack
    phase, signal = ack.phase_id, ack.signal_id
    event_id = f"decision:{phase}:{signal}"
    return event_id if _safe_and_plain(event_id, phase, signal) else new_event_id(
        "decision", safe_part(phase), safe_part(signal))


def _fill(ev: events_pb2.Event, body: trading_pb2.Fill) -> None:
    ev.event_id = fill_id(body)
    ev.ts_ns = body.ts_ns
    ev.fill.CopyFrom(body)


def _order(ev: events_pb2.Event, body: trading_pb2.Order) -> None:
    ev.event_id = order_id(body)
    ev.ts_ns = body.updated_at_ns
    ev.order.CopyFrom(body)


def _position(ev: events_pb2.Event, body: trading_pb2.Position) -> None:
    ev.event_id = position_id(body)
    ev.ts_ns = body.ts_ns
    ev.position.CopyFrom(body)


def _decision(ev: events_pb2.Event, body: events_pb2.SignalDecision) -> None:
    ev.event_id = decision_id(body)
    ev.ts_ns = body.ack.acked_at_ns
    ev.decision.CopyFrom(body)


def _funding(ev: events_pb2.Event, body: trading_pb2.FundingPayment) -> None:
    ev.event_id = new_event_id("funding", body.venue, body.symbol, body.phase_id, body.funding_time_ns)
    ev.ts_ns = body.funding_time_ns
    ev.funding.CopyFrom(body)


def _equity(ev: events_pb2.Event, body: trading_pb2.EquitySnapshot) -> None:
    ev.event_id = new_event_id("equity", body.scope, body.ts_ns)
    ev.ts_ns = body.ts_ns
    ev.equity.CopyFrom(body)


def _hedge(ev: events_pb2.Event, body: trading_pb2.HedgeOutcome) -> None:
    ev.event_id = new_event_id("hedge", safe_part(body.phase_id), safe_part(body.signal_id))
    ev.ts_ns = body.ts_ns
    ev.hedge.CopyFrom(body)


def _trading_state(ev: events_pb2.Event, body: trading_pb2.TradingState) -> None:
    ev.event_id = new_event_id("trading_state", body.version, body.ts_ns or 0)
    ev.ts_ns = body.ts_ns
    ev.trading_state.CopyFrom(body)


_BY_TYPE: dict[type, Callable[[events_pb2.Event, Any], None]] = {
    trading_pb2.Fill: _fill,
    trading_pb2.Order: _order,
    trading_pb2.Position: _position,
    events_pb2.SignalDecision: _decision,
    trading_pb2.FundingPayment: _funding,
    trading_pb2.EquitySnapshot: _equity,
    trading_pb2.HedgeOutcome: _hedge,
    trading_pb2.TradingState: _trading_state,
}


def envelope(ev: events_pb2.Event, body: Any) -> events_pb2.Event:
    """Fill ``ev`` (an empty envelope, its source set) with one engine update and its natural-key
    event id; returns it."""
    fill_in = _BY_TYPE.get(type(body))
    if fill_in is None:  # pragma: no cover - the engine only emits the types above
        raise TypeError(f"not an event body: {type(body).__name__}")
    fill_in(ev, body)
    return ev


def to_event(body: Any, source: str = "execution") -> events_pb2.Event:
    """The envelope for one engine update, with its natural-key event id."""
    return envelope(events_pb2.Event(source=source), body)
