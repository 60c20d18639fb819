"""The paper venue against hand-computed cases: fees, depth walking, partial fills, spread model,
resting orders, post-only, funding settlement and mark-price liquidation."""

from __future__ import annotations

from decimal import Decimal

from tests.execution.helpers import (
    PERP,
    SELL,
    T0,
    OrderState,
    OrderType,
    depth,
    fills_of,
    funding,
    leg,
    make_engine,
    mark,
    orders_of,
    positions_of,
    signal,
    top,
    trade,
)
from titan.core.money import to_wire
from titan.execution.engine import EngineConfig
from titan.execution.paper import PaperConfig

KEY = ("hunter", "bybit", "BTCUSDT", PERP)
TAKER = Decimal("0.00055")   # bybit default taker
MAKER = Decimal("0.0002")


def _engine():
    engine, clock = make_engine(book=False)
    engine.on_market(mark("50005"))
    return engine, clock


def test_market_buy_walks_the_depth_and_pays_taker_fees_per_level():
    engine, clock = _engine()
    engine.on_market(depth([("50000", "1")], [("50010", "0.5"), ("50020", "0.3")]))
    d = engine.on_signal(signal(clock, leg(size="30006")))  # 30006 / 50010 = 0.6 BTC
    assert d.ack.accepted, d.ack.detail
    fills = fills_of(d.updates)
    assert [(f.price, f.quantity, f.fee, f.maker) for f in fills] == [
        ("50010", "0.5", to_wire(Decimal("25005") * TAKER), False),
        ("50020", "0.1", to_wire(Decimal("5002") * TAKER), False),
    ]
    order = orders_of(d.updates)[0]
    assert order.state == OrderState.ORDER_STATE_FILLED
    assert Decimal(order.fees) == Decimal("13.75275") + Decimal("2.7511")
    pos = engine.portfolio.get(KEY)
    assert pos.quantity == Decimal("0.6")
    assert pos.average_entry * Decimal("0.6") == Decimal("30007")  # 25005 + 5002
    assert pos.fees == Decimal("16.50385")


def test_size_beyond_displayed_depth_fills_partially_then_on_the_next_book():
    engine, clock = _engine()
    engine.on_market(depth([("50000", "1")], [("50010", "0.5"), ("50020", "0.3")]))
    d = engine.on_signal(signal(clock, leg(size="50010")))  # 1 BTC at the best ask
    order = orders_of(d.updates)[0]
    assert order.state == OrderState.ORDER_STATE_PARTIALLY_FILLED
    assert Decimal(order.filled_quantity) == Decimal("0.8")
    # a second order before the book changes cannot take the same displayed size
    d2 = engine.on_signal(signal(clock, leg(size="500.1")))
    assert not fills_of(d2.updates)
    assert orders_of(d2.updates)[0].state == OrderState.ORDER_STATE_ACCEPTED
    # next book: the first order's remainder (0.2) fills at 50030, then the second (0.01)
    out = engine.on_market(depth([("50000", "1")], [("50030", "1")]))
    fills = fills_of(out)
    assert [(f.client_order_id, f.price, f.quantity) for f in fills] == [
        (order.client_order_id, "50030", "0.2"),
        (orders_of(d2.updates)[0].client_order_id, "50030", "0.01"),
    ]
    assert {o.state for o in orders_of(out)} == {OrderState.ORDER_STATE_FILLED}
    assert engine.portfolio.get(KEY).quantity == Decimal("1.01")


def test_resting_orders_skipped_within_a_book_update_only_when_a_less_aggressive_one_found_nothing():
    """Within one book update, an order whose limit is no more aggressive than one that just found
    nothing is not walked again; a more aggressive order behind it still fills."""
    engine, clock = _engine()
    engine.on_market(depth([("49990", "1")], [("50100", "1")]))
    low = engine.on_signal(signal(clock, leg(size="4998", order_type=OrderType.ORDER_TYPE_LIMIT, limit="49980")))
    high = engine.on_signal(signal(clock, leg(size="5004", order_type=OrderType.ORDER_TYPE_LIMIT, limit="50040")))
    lower = engine.on_signal(signal(clock, leg(size="4997", order_type=OrderType.ORDER_TYPE_LIMIT, limit="49970")))
    assert not any(fills_of(d.updates) for d in (low, high, lower))
    out = engine.on_market(depth([("49990", "1")], [("50030", "0.05"), ("50035", "1")]))
    fills = fills_of(out)
    assert [(f.client_order_id, f.price, f.quantity, f.maker) for f in fills] == [
        (high.ack.client_order_ids[0], "50040", "0.1", True)]  # 0.05 at 50030 + 0.05 at 50035, at its limit
    # the next update reaches the two lower limits, oldest first
    out = engine.on_market(depth([("49960", "1")], [("49965", "0.2"), ("49980", "1")]))
    assert [(f.client_order_id, f.quantity) for f in fills_of(out)] == [
        (low.ack.client_order_ids[0], "0.1"), (lower.ack.client_order_ids[0], "0.1")]


def test_a_book_update_both_sides_emptied_fills_each_resting_order_it_can_and_no_more():
    engine, clock = _engine()
    engine.on_market(depth([("49900", "1")], [("50100", "1")]))
    limit = OrderType.ORDER_TYPE_LIMIT
    buys = [engine.on_signal(signal(clock, leg(size="5004", order_type=limit, limit="50040"))) for _ in range(2)]
    sells = [engine.on_signal(signal(clock, leg(side=SELL, size="4996", order_type=limit, limit="49960")))
             for _ in range(2)]
    assert all(d.ack.accepted and not fills_of(d.updates) for d in buys + sells)
    out = engine.on_market(depth([("49970", "0.1")], [("50030", "0.1")]))
    assert [(f.client_order_id, f.price, f.quantity) for f in fills_of(out)] == [
        (buys[0].ack.client_order_ids[0], "50040", "0.1"), (sells[0].ack.client_order_ids[0], "49960", "0.1")]
    # the two filled during the walk left the working orders after it; the others kept their order
    assert list(engine.working[("bybit", "BTCUSDT", PERP)]) == [
        buys[1].ack.client_order_ids[0], sells[1].ack.client_order_ids[0]]
    out = engine.on_market(depth([("49970", "0.1")], [("50030", "0.1")]))  # a new book: the next two
    assert [f.client_order_id for f in fills_of(out)] == [buys[1].ack.client_order_ids[0],
                                                          sells[1].ack.client_order_ids[0]]


def test_market_remainder_expires():
    engine, clock = _engine()
    engine.on_market(top("50000", "1", "50010", "0.5"))
    d = engine.on_signal(signal(clock, leg(size="50010")))
    cid = d.ack.client_order_ids[0]
    clock.advance(engine.config.paper.market_remainder_ttl_ns)
    out = engine.tick()
    assert engine.orders[cid].state == OrderState.ORDER_STATE_EXPIRED
    assert orders_of(out)[0].filled_quantity == "0.5"
    assert engine.open_book.count("hunter", "BTCUSDT") == 0


def test_slippage_cap_stops_a_market_order():
    engine, clock = _engine()
    engine.on_market(depth([("50000", "1")], [("50000", "0.1"), ("50100", "5")]))
    # cap 10 bps of 50000 = 50050: the 50100 level is out of reach
    d = engine.on_signal(signal(clock, leg(size="10000"), max_slippage_bps=10))
    assert [f.price for f in fills_of(d.updates)] == ["50000"]
    assert orders_of(d.updates)[0].state == OrderState.ORDER_STATE_PARTIALLY_FILLED


def test_spread_model_without_a_book():
    engine, clock = make_engine(book=False)
    engine.on_market(trade("100", venue="sim", symbol="BTCUSDT"))
    engine.update_budget(engine.gate.budgets["hunter"].proto.__class__(
        **{**_budget_fields(engine), "version": 9}))
    d = engine.on_signal(signal(clock, leg(venue="sim", size="1000.3")))
    assert d.ack.accepted, d.ack.detail
    (f,) = fills_of(d.updates)
    # last 100 moved by half spread (1 bps) + slippage (2 bps) = 100.03; 1000.3 / 100.03 = 10
    assert (f.price, f.quantity) == ("100.03", "10")
    assert Decimal(f.fee) == Decimal("1000.3") * Decimal("0.0005")  # default taker for an unlisted venue


def _budget_fields(engine):
    b = engine.gate.budgets["hunter"].proto
    return {f.name: getattr(b, f.name) for f in b.DESCRIPTOR.fields if f.name != "symbols"} | {
        "symbols": list(b.symbols)
    }


def test_ioc_cancels_its_remainder():
    engine, clock = _engine()
    engine.on_market(top("50000", "1", "50010", "0.5"))
    d = engine.on_signal(signal(clock, leg(order_type=OrderType.ORDER_TYPE_IOC, limit="50010", size="50010")))
    o = orders_of(d.updates)[0]
    assert o.state == OrderState.ORDER_STATE_CANCELED
    assert o.filled_quantity == "0.5"


def test_limit_rests_then_fills_as_maker_on_a_trade_through():
    engine, clock = _engine()
    engine.on_market(top("50000", "1", "50010", "1"))
    d = engine.on_signal(signal(clock, leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="49990", size="49990")))
    assert orders_of(d.updates)[0].state == OrderState.ORDER_STATE_ACCEPTED
    assert not engine.on_market(trade("49990", "5"))  # at the limit: not through
    out = engine.on_market(trade("49980", "0.4"))
    (f,) = fills_of(out)
    assert (f.price, f.quantity, f.maker) == ("49990", "0.4", True)
    assert Decimal(f.fee) == Decimal("49990") * Decimal("0.4") * MAKER
    assert orders_of(out)[0].state == OrderState.ORDER_STATE_PARTIALLY_FILLED
    out = engine.on_market(top("49970", "1", "49985", "3"))  # ask moved through the limit
    (f,) = fills_of(out)
    assert (f.price, f.quantity, f.maker) == ("49990", "0.6", True)
    assert orders_of(out)[0].state == OrderState.ORDER_STATE_FILLED


def test_marketable_limit_takes_then_rests():
    engine, clock = _engine()
    engine.on_market(depth([("50000", "1")], [("50010", "0.5"), ("50020", "0.3")]))
    d = engine.on_signal(signal(clock, leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="50010", size="50010")))
    assert [(f.price, f.quantity, f.maker) for f in fills_of(d.updates)] == [("50010", "0.5", False)]
    assert orders_of(d.updates)[0].state == OrderState.ORDER_STATE_PARTIALLY_FILLED


def test_post_only_that_would_take_is_rejected():
    engine, clock = _engine()
    engine.on_market(top("50000", "1", "50010", "1"))
    d = engine.on_signal(signal(clock, leg(order_type=OrderType.ORDER_TYPE_POST_ONLY, limit="50010", size="5001")))
    assert d.ack.accepted  # the signal passed the gate; the venue rejected the order
    o = orders_of(d.updates)[0]
    assert o.state == OrderState.ORDER_STATE_REJECTED
    assert "post-only" in o.reason
    d = engine.on_signal(signal(clock, leg(order_type=OrderType.ORDER_TYPE_POST_ONLY, limit="50000", size="5000")))
    assert orders_of(d.updates)[0].state == OrderState.ORDER_STATE_ACCEPTED


def _long_one_btc(engine, clock, leverage="10"):
    engine.on_market(top("50000", "10", "50000", "10"))
    engine.on_market(mark("50000"))
    d = engine.on_signal(signal(clock, leg(size="50000"), leverage=leverage))
    assert d.ack.accepted, d.ack.detail
    pos = engine.portfolio.get(KEY)
    assert (pos.quantity, pos.average_entry, pos.fees) == (Decimal(1), Decimal(50000), Decimal("27.5"))
    return pos


def test_funding_settles_once_on_the_settlement_event():
    engine, clock = _engine()
    pos = _long_one_btc(engine, clock)
    ft = T0 + 3_600 * 10**9
    out = engine.on_market(funding("0.0001", ft, True))
    (pay,) = [u for u in out if u.__class__.__name__ == "FundingPayment"]
    assert (pay.amount, pay.rate, pay.mark_price, pay.position_quantity) == ("-5", "0.0001", "50000", "1")
    assert pos.funding == Decimal(-5)
    out = engine.on_market(funding("0.0001", ft, True))
    assert not [u for u in out if u.__class__.__name__ == "FundingPayment"]
    assert pos.funding == Decimal(-5)


def test_funding_settles_when_the_clock_passes_the_funding_time_and_shorts_receive():
    engine, clock = _engine()
    engine.on_market(top("50000", "10", "50000", "10"))
    engine.on_market(mark("50000"))
    assert engine.on_signal(signal(clock, leg(side=SELL, size="25000"))).ack.accepted  # short 0.5
    ft = T0 + 10**9
    engine.on_market(funding("0.0002", ft, False))
    assert not engine.tick() or engine.portfolio.get(KEY).funding == 0
    clock.advance(10**9)
    out = engine.tick()
    (pay,) = [u for u in out if u.__class__.__name__ == "FundingPayment"]
    assert pay.amount == "5"  # -(-0.5) * 50000 * 0.0002
    assert positions_of(out)[0].funding == "5"
    assert not [u for u in engine.tick() if u.__class__.__name__ == "FundingPayment"]


def test_mark_price_liquidation_of_a_leveraged_long():
    engine, clock = _engine()
    pos = _long_one_btc(engine, clock, leverage="10")
    # liquidation price = 50000 * (1 - 1/10 + 0.005) = 45250
    assert engine.positions()[0].liquidation_price == "45250"
    assert not fills_of(engine.on_market(mark("45251")))
    out = engine.on_market(mark("45250"))
    (f,) = fills_of(out)
    assert (f.side, f.price, f.quantity, f.realized_pnl) == (SELL, "45250", "1", "-4750")
    assert Decimal(f.fee) == Decimal("45250") * TAKER
    assert pos.quantity == 0
    assert pos.realized == Decimal(-4750)
    assert pos.fees == Decimal("27.5") + Decimal("45250") * TAKER


def test_short_liquidation_price_and_unleveraged_spot_is_never_liquidated():
    cfg = EngineConfig(paper=PaperConfig(maintenance_margin_rate=Decimal("0.01")))
    engine, clock = make_engine(config=cfg)
    assert engine.on_signal(signal(clock, leg(side=SELL, size="50000"), leverage="5")).ack.accepted
    # 50000 * (1 + 1/5 - 0.01) = 59500
    assert engine.positions()[0].liquidation_price == "59500"
    assert not fills_of(engine.on_market(mark("59499")))
    assert fills_of(engine.on_market(mark("59500")))


def test_reduce_only_never_flips_a_position():
    engine, clock = _engine()
    _long_one_btc(engine, clock)
    from tests.execution.helpers import REDUCE
    d = engine.on_signal(signal(clock, leg(side=SELL, size="80000"), intent=REDUCE))
    assert d.ack.accepted
    (f,) = fills_of(d.updates)
    assert f.quantity == "1"
    assert engine.portfolio.get(KEY).quantity == 0


def test_funding_is_paid_only_by_positions_held_at_the_funding_time():
    """A feed replaying its past (the simulator's prelude after a restart) announces settlements from
    before the position existed: they pay nothing, and a later one pays as usual."""
    engine, clock = _engine()
    pos = _long_one_btc(engine, clock)
    assert not [u for u in engine.on_market(funding("0.0001", T0 - 8 * 3_600 * 10**9, True))
                if u.__class__.__name__ == "FundingPayment"]
    assert pos.funding == 0
    clock.advance(3_600 * 10**9)
    (pay,) = [u for u in engine.on_market(funding("0.0001", clock.now_ns(), True))
              if u.__class__.__name__ == "FundingPayment"]
    assert pay.amount == "-5" and pos.funding == Decimal(-5)
