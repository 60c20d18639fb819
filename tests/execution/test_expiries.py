"""Resting orders expire from a heap of expiries: in the order a walk over the working orders would
meet them, each once, skipping what filled in between; the engine says when the next is due; and the
heap sheds entries of orders that left, keeping those that rest."""

from __future__ import annotations

from tests.execution.helpers import (
    SELL,
    OrderState,
    OrderType,
    budget,
    depth,
    leg,
    make_engine,
    mark,
    orders_of,
    signal,
)

SECOND = 1_000_000_000
ROOMY = {"max_open_orders_per_symbol": 10_000, "max_orders_per_minute": 100_000, "max_notional": "100000000"}


def _engine():
    engine, clock = make_engine(book=False)
    assert engine.update_budget(budget(version=2, **ROOMY)) == "applied"
    engine.on_market(mark("50000"))
    engine.on_market(depth([("49800", "1")], [("50200", "1")]))
    return engine, clock


def _rest(engine, clock, n: int, ttl_s: int, *, sell: bool = False) -> list[str]:
    """``n`` limit orders of 0.1 BTC that rest on the book above (buys at 49900, sells at 50100)."""
    cids = []
    for _ in range(n):
        order_leg = (leg(side=SELL, size="5010", order_type=OrderType.ORDER_TYPE_LIMIT, limit="50100") if sell
                     else leg(size="4990", order_type=OrderType.ORDER_TYPE_LIMIT, limit="49900"))
        d = engine.on_signal(signal(clock, order_leg, ttl_ms=ttl_s * 1000))
        assert d.ack.accepted and not any(o.state == OrderState.ORDER_STATE_FILLED for o in orders_of(d.updates))
        cids.append(d.ack.client_order_ids[0])
    return cids


def _expired(updates) -> list[str]:
    return [o.client_order_id for o in orders_of(updates) if o.state == OrderState.ORDER_STATE_EXPIRED]


def test_expiries_come_in_rest_order_each_once_and_skip_what_filled() -> None:
    engine, clock = _engine()
    start = clock.now_ns()
    late = _rest(engine, clock, 2, ttl_s=9)
    early = _rest(engine, clock, 3, ttl_s=3)
    sells = _rest(engine, clock, 2, ttl_s=3, sell=True)
    assert engine.next_due_ns() == start + 3 * SECOND
    out = engine.on_market(depth([("49800", "1")], [("49900", "0.1")]))  # the oldest resting buy takes it
    assert {o.client_order_id for o in orders_of(out) if o.state == OrderState.ORDER_STATE_FILLED} == {late[0]}
    clock.advance(3 * SECOND)
    assert _expired(engine.tick()) == [*early, *sells]
    assert _expired(engine.tick()) == []  # each once
    assert engine.next_due_ns() == start + 9 * SECOND
    clock.advance(6 * SECOND)
    assert _expired(engine.tick()) == [late[1]]  # the filled one is not expired again


def test_the_heap_sheds_orders_that_left_and_keeps_those_that_rest() -> None:
    engine, clock = _engine()
    buys = _rest(engine, clock, 1000, ttl_s=60)
    sells = _rest(engine, clock, 4000, ttl_s=60, sell=True)
    assert len(engine.expiries) == 5000
    out = engine.on_market(depth([("50100", "400")], [("50200", "1")]))  # every sell fills, no buy does
    assert len([o for o in orders_of(out) if o.state == OrderState.ORDER_STATE_FILLED]) == len(sells)
    assert engine.next_due_ns() == clock.now_ns() + 60 * SECOND
    assert len(engine.expiries) == 1000  # rebuilt from what still rests
    clock.advance(60 * SECOND)
    assert _expired(engine.tick()) == buys
