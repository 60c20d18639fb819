"""Thousands of random and malformed signals: the engine never raises and answers every one."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.execution.helpers import KEY, OTHER_KEY, T0, RejectReason, make_engine
from titan.core.signing import sign_signal
from titan.execution.orders import OPEN as OPEN_STATES
from titan.v1 import trading_pb2

decimals = st.one_of(
    st.sampled_from(["", "0", "-1", "1", "100", "1000", "5000.5", "1e9", "1e40", "NaN", "inf", "abc", "0.00000001",
                     "49900", "50000", "50100", "1_000", " 7 ", "-0", "1e-30"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**6, max_value=10**7).map(str),
    st.text(max_size=12),
)
legs = st.builds(
    trading_pb2.Leg,
    venue=st.sampled_from(["bybit", "binance", "", "bad venue", "sim"]),
    symbol=st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT", "", "BTC.USDT"]),
    instrument=st.integers(0, 3),
    side=st.integers(0, 3),
    size_quote=decimals,
    order_type=st.integers(0, 6),
    limit_price=decimals,
)
signals = st.builds(
    trading_pb2.Signal,
    phase_id=st.sampled_from(["hunter", "scavenger", "ghost", "", "hunter "]),
    signal_id=st.one_of(st.text(max_size=20), st.sampled_from(["dup-1", "dup-2", "x" * 200])),
    intent=st.integers(0, 4),
    legs=st.lists(legs, max_size=6),
    stop_price=decimals,
    target_prices=st.lists(decimals, max_size=3),
    confidence=st.floats(allow_nan=True, allow_infinity=True),
    leverage=decimals,
    ttl_ms=st.integers(-(2**40), 2**40),
    created_at_ns=st.one_of(st.just(T0), st.integers(0, 2**62)),
    max_slippage_bps=st.integers(0, 2**32 - 1),
)
signing = st.sampled_from(["key", "other", "none", "garbage"])


def sign_as(sig, how, garbage=b"\x00"):
    """Sign ``sig`` as ``signing`` drew: its phase's key, another phase's, not at all, or garbage bytes."""
    if how == "key":
        sign_signal(sig, KEY)
    elif how == "other":
        sign_signal(sig, OTHER_KEY)
    elif how == "garbage":
        sig.signature = garbage * 32
    return sig


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(signals, signing), min_size=1, max_size=15))
def test_every_signal_is_answered_and_nothing_crashes(batch):
    engine, clock = make_engine()
    for sig, how in batch:
        d = engine.on_signal(sign_as(sig, how))
        ack = d.ack
        assert ack.phase_id == sig.phase_id
        assert ack.signal_id == sig.signal_id
        assert ack.accepted == (ack.reason == RejectReason.REJECT_REASON_UNSPECIFIED)
        assert ack.reason != RejectReason.REJECT_REASON_INTERNAL, ack.detail
        if ack.accepted:
            assert len(ack.client_order_ids) == len(sig.legs)
            assert how == "key" and sig.phase_id == "hunter"
        if how in ("none", "garbage"):
            assert not ack.accepted
        clock.advance(1_000)
        engine.tick()
    # invariants of the books after the run
    for order in engine.orders.values():
        assert order.filled <= order.quantity
    open_counts = {}
    for order in engine.orders.values():
        if order.state in OPEN_STATES:
            k = (order.phase_id, order.symbol)
            open_counts[k] = open_counts.get(k, 0) + 1
    assert open_counts == engine.open_book.counts


plausible_legs = st.builds(
    trading_pb2.Leg,
    venue=st.just("bybit"),
    symbol=st.just("BTCUSDT"),
    instrument=st.just(2),
    side=st.integers(1, 2),
    size_quote=st.integers(1, 40_000).map(str),
    order_type=st.integers(0, 4),
    limit_price=st.integers(49_000, 51_000).map(str),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(plausible_legs, st.integers(1, 3), st.integers(0, 3)), min_size=1, max_size=25))
def test_plausible_flows_keep_books_consistent(steps):
    """Mostly-valid signals with market moves in between: fills add up to positions, no overfill,
    every ack answered, reduce-only never flips a position."""
    engine, clock = make_engine()
    signed_qty = {}
    for i, (leg, intent, move) in enumerate(steps):
        sig = trading_pb2.Signal(phase_id="hunter", signal_id=f"p{i}", intent=intent, legs=[leg], confidence=0.5,
                                 created_at_ns=clock.now_ns(), leverage="3")
        sign_signal(sig, KEY)
        before = engine.portfolio.quantity(("hunter", "bybit", "BTCUSDT", 2))
        d = engine.on_signal(sig)
        assert d.ack.reason != RejectReason.REJECT_REASON_INTERNAL, d.ack.detail
        after = engine.portfolio.quantity(("hunter", "bybit", "BTCUSDT", 2))
        if d.ack.accepted and intent != 1:
            assert before * after >= 0 and abs(after) <= abs(before)
        for u in d.updates:
            if isinstance(u, trading_pb2.Fill):
                q = signed_qty.get(u.client_order_id, 0)
                from decimal import Decimal
                signed_qty[u.client_order_id] = q + (Decimal(u.quantity) if u.side == 1 else -Decimal(u.quantity))
        clock.advance(10**6)
        px = 50_000 + (move - 1) * 50
        from tests.execution.helpers import mark, top
        for u in engine.on_market(top(str(px - 5), "0.3", str(px + 5), "0.3")) + engine.on_market(mark(str(px))):
            if isinstance(u, trading_pb2.Fill):
                from decimal import Decimal
                q = signed_qty.get(u.client_order_id, 0)
                signed_qty[u.client_order_id] = q + (Decimal(u.quantity) if u.side == 1 else -Decimal(u.quantity))
    total = sum(signed_qty.values())
    assert engine.portfolio.quantity(("hunter", "bybit", "BTCUSDT", 2)) == total
    for order in engine.orders.values():
        assert 0 <= order.filled <= order.quantity


@settings(max_examples=300, deadline=None)
@given(signals, st.sampled_from([b"", b"k" * 32]), st.booleans())
def test_fast_signature_check_agrees_with_the_core_one(sig, key, sign):
    from titan.core.signing import verify_signal as core_verify
    from titan.execution.gate import verify_signal as fast_verify

    if sign and key:
        sign_signal(sig, key)
    before = sig.SerializeToString(deterministic=True)
    k = key or KEY
    assert fast_verify(sig, k) == core_verify(sig, k)
    assert sig.SerializeToString(deterministic=True) == before  # the message is left as it was


@settings(max_examples=500, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**12), max_value=10**12),
       st.sampled_from(["0.000001", "0.001", "1", "0.5", "0.25"]))
def test_fast_number_helpers_agree_with_the_core_ones(value, step):
    from decimal import Decimal

    from titan.core.money import quantize_down, to_wire
    from titan.execution.numbers import fmt
    from titan.execution.paper import PaperConfig, PaperVenue

    if len(value.as_tuple().digits) <= 38:  # within the canonical precision: exact and the same text
        assert fmt(value) == to_wire(value)
        assert Decimal(fmt(value)) == value
    else:  # beyond it: either exact or the canonical rounding
        assert Decimal(fmt(value)) == value or fmt(value) == to_wire(value)
    venue = PaperVenue(PaperConfig(lot_step=Decimal(step)))
    assert venue.round_quantity("X", abs(value)) == quantize_down(abs(value), Decimal(step))
