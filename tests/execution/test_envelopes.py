"""Engine updates' event ids: the plain ids built as one string are exactly what new_event_id gives for
the same natural keys, whatever the keys hold (empty, spaces, control or non-ASCII characters, ids long
enough to be hashed)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from titan.core.bus import new_event_id, validate_event
from titan.execution.envelopes import decision_id, fill_id, order_id, position_id, safe_part, to_event
from titan.v1 import events_pb2, trading_pb2

# Keys as the engine makes them, and keys no one should send but someone may.
usual = st.sampled_from(["bybit", "BTCUSDT", "bench-0", "T0123456789abcdef0123456789ab-0", "sig-1", "x"])
awkward = st.one_of(
    st.sampled_from(["", " ", "a b", "tab\there", "new\nline", "ünïcode", "\x7f", "colon:inside", "#"]),
    st.text(min_size=0, max_size=8),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=120, max_size=210),
)
keys = st.one_of(usual, awkward)
numbers = st.integers(min_value=0, max_value=2**32 - 1)  # uint32 versions


@settings(max_examples=400, deadline=None)
@given(venue=keys, venue_fill_id=keys, cid=keys, version=numbers, phase=keys, signal=keys, symbol=keys,
       instrument=st.integers(min_value=0, max_value=3))
def test_each_id_is_the_one_new_event_id_gives(venue: str, venue_fill_id: str, cid: str, version: int,
                                                phase: str, signal: str, symbol: str, instrument: int) -> None:
    def expected(*parts: str | int) -> str | type[ValueError]:
        try:
            return new_event_id(*parts)
        except ValueError:
            return ValueError

    def got(make: object, body: object) -> str | type[ValueError]:
        try:
            return make(body)  # type: ignore[operator, no-any-return]
        except ValueError:
            return ValueError

    fill = trading_pb2.Fill(venue=venue, fill_id=venue_fill_id)
    assert got(fill_id, fill) == expected("fill", venue, safe_part(venue_fill_id))
    order = trading_pb2.Order(client_order_id=cid, version=version)
    assert got(order_id, order) == expected("order", cid, version)
    position = trading_pb2.Position(phase_id=phase, venue=venue, symbol=symbol, instrument=instrument,  # type: ignore[arg-type]
                                    version=version)
    assert got(position_id, position) == expected("position", phase, venue, symbol, instrument, version)
    decision = events_pb2.SignalDecision(ack=trading_pb2.SignalAck(phase_id=phase, signal_id=signal))
    assert got(decision_id, decision) == expected("decision", safe_part(phase), safe_part(signal))


def test_an_engine_update_becomes_a_valid_event_under_its_id() -> None:
    fill = trading_pb2.Fill(venue="bybit", fill_id="T0123-0-1", phase_id="p", ts_ns=5)
    event = to_event(fill)
    assert (event.event_id, event.ts_ns, event.fill, event.source) == ("fill:bybit:T0123-0-1", 5, fill, "execution")
    assert str(validate_event(event)) == "fill"
    spaced = to_event(trading_pb2.Fill(venue="bybit", fill_id="has space"))
    assert spaced.event_id == "fill:bybit:" + safe_part("has space") and spaced.event_id.startswith("fill:bybit:h")
