"""Event builders for ledger and bus tests."""

from __future__ import annotations

from typing import Any

from titan.core.bus import new_event_id
from titan.v1 import common_pb2, events_pb2, trading_pb2

T0 = 1_700_000_000_000_000_000  # a fixed timestamp (ns)


def fill_event(fill_id: str, *, venue: str = "paper", price: str = "100.5", quantity: str = "0.25",
               phase_id: str = "hunter", event_id: str | None = None, ts_ns: int = T0,
               source: str = "execution", **kw: Any) -> events_pb2.Event:
    fill = trading_pb2.Fill(
        venue=venue, fill_id=fill_id, client_order_id=f"{phase_id}-s1-0", phase_id=phase_id,
        symbol="BTCUSDT", instrument=common_pb2.INSTRUMENT_KIND_PERP, side=common_pb2.SIDE_BUY,
        price=price, quantity=quantity, fee=kw.pop("fee", "0.01"), maker=False, realized_pnl="0", ts_ns=ts_ns, **kw,
    )
    return events_pb2.Event(
        event_id=event_id or new_event_id("fill", venue, fill_id), source=source, ts_ns=ts_ns, fill=fill
    )


def order_event(client_order_id: str, version: int, state: int, *, filled: str = "0",
                phase_id: str = "hunter", event_id: str | None = None) -> events_pb2.Event:
    order = trading_pb2.Order(
        client_order_id=client_order_id, phase_id=phase_id, signal_id="s1", leg=0, venue="paper",
        symbol="BTCUSDT", instrument=common_pb2.INSTRUMENT_KIND_PERP, side=common_pb2.SIDE_BUY,
        order_type=trading_pb2.ORDER_TYPE_LIMIT, price="100.5", quantity="1.5", notional_quote="150.75",
        state=state, filled_quantity=filled, average_price="", fees="0", created_at_ns=T0,
        updated_at_ns=T0 + version, version=version,
    )
    return events_pb2.Event(
        event_id=event_id or new_event_id("order", client_order_id, version), source="execution",
        ts_ns=T0 + version, order=order,
    )
