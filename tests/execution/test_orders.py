"""The order state machine: every legal move works, every other one raises and changes nothing."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from titan.execution import orders
from titan.execution.orders import IllegalTransition, ManagedOrder, OverFill, client_order_id

ALL = [
    orders.NEW,
    orders.SUBMITTED,
    orders.ACCEPTED,
    orders.PARTIALLY_FILLED,
    orders.FILLED,
    orders.CANCELED,
    orders.REJECTED,
    orders.EXPIRED,
]
LEGAL = {
    (orders.NEW, orders.SUBMITTED), (orders.NEW, orders.REJECTED),
    (orders.SUBMITTED, orders.ACCEPTED), (orders.SUBMITTED, orders.PARTIALLY_FILLED), (orders.SUBMITTED, orders.FILLED),
    (orders.SUBMITTED, orders.CANCELED), (orders.SUBMITTED, orders.REJECTED), (orders.SUBMITTED, orders.EXPIRED),
    (orders.ACCEPTED, orders.PARTIALLY_FILLED), (orders.ACCEPTED, orders.FILLED), (orders.ACCEPTED, orders.CANCELED),
    (orders.ACCEPTED, orders.EXPIRED),
    (orders.PARTIALLY_FILLED, orders.PARTIALLY_FILLED), (orders.PARTIALLY_FILLED, orders.FILLED),
    (orders.PARTIALLY_FILLED, orders.CANCELED), (orders.PARTIALLY_FILLED, orders.EXPIRED),
}


def order(qty: str = "2") -> ManagedOrder:
    return ManagedOrder(
        client_order_id="c", phase_id="hunter", signal_id="s", leg=0, venue="bybit", symbol="BTCUSDT",
        instrument=2, side=1, order_type=1, quantity=Decimal(qty), notional=Decimal(100),
    )


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(ALL, ALL)))
def test_transition_table(src, dst):
    o = order()
    o.state = src
    version = o.version
    if (src, dst) in LEGAL:
        o.transition(dst, 5)
        assert o.state == dst
        assert o.version == version + 1
        assert o.updated_at_ns == 5
    else:
        with pytest.raises(IllegalTransition):
            o.transition(dst, 5)
        assert o.state == src
        assert o.version == version


def test_terminal_states_have_no_exit():
    for state in orders.TERMINAL:
        assert orders.TRANSITIONS[state] == frozenset()


def test_fills_move_state_and_average_price():
    o = order("2")
    o.transition(orders.SUBMITTED, 1)
    o.apply_fill(Decimal("0.5"), Decimal("100"), Decimal("0.05"), 2)
    assert o.state == orders.PARTIALLY_FILLED
    o.apply_fill(Decimal("1.5"), Decimal("104"), Decimal("0.15"), 3)
    assert o.state == orders.FILLED
    assert o.filled == 2
    assert o.average_price == Decimal("103")   # (0.5*100 + 1.5*104) / 2
    assert o.fees == Decimal("0.20")
    with pytest.raises(IllegalTransition):
        o.apply_fill(Decimal("0.1"), Decimal("1"), Decimal(0), 4)


def test_overfill_is_impossible():
    o = order("1")
    o.transition(orders.SUBMITTED, 1)
    with pytest.raises(OverFill):
        o.apply_fill(Decimal("1.1"), Decimal("100"), Decimal(0), 2)
    assert o.filled == 0
    assert o.state == orders.SUBMITTED


def test_cannot_fill_a_new_order():
    with pytest.raises(IllegalTransition):
        order().apply_fill(Decimal("1"), Decimal("1"), Decimal(0), 1)


def test_client_order_id_is_deterministic_and_venue_safe():
    a = client_order_id("hunter", "sig-1", 0)
    assert a == client_order_id("hunter", "sig-1", 0)
    assert a != client_order_id("hunter", "sig-1", 1)
    assert a != client_order_id("scavenger", "sig-1", 0)
    assert a != client_order_id("hunter", "sig-2", 0)
    long_id = client_order_id("x" * 64, "y" * 128, 99)
    assert len(long_id) <= 36
    assert long_id.replace("-", "").isalnum()


def test_proto_round_trip():
    o = order("2")
    o.transition(orders.SUBMITTED, 1)
    o.apply_fill(Decimal("0.5"), Decimal("100"), Decimal("0.05"), 2)
    back = ManagedOrder.from_proto(o.to_proto())
    assert back.to_proto() == o.to_proto()
