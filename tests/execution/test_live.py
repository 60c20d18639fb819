"""The ccxt live venue against recorded Bybit v5 payloads served on loopback (no network)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.execution.fake_venue import FakeBinance, FakeBybit, live_bybit
from tests.execution.helpers import PERP, SPOT, OrderType, RejectReason, leg, make_engine, signal, top, updates_of
from titan.execution import orders as order_states
from titan.execution.engine import EngineConfig
from titan.execution.live import LiveVenue, ccxt_symbol, fee_in_quote, make_exchange, split_symbol


@pytest.fixture
async def bybit():
    fake = FakeBybit()
    await fake.start()
    ex = make_exchange("bybit", "TESTKEY", "TESTSECRET", testnet=True)
    fake.point(ex)
    engine, clock = make_engine(config=EngineConfig(venue="bybit"))
    emitted: list = []
    venue = LiveVenue("bybit", ex)
    await venue.start(engine, lambda updates, *a: emitted.extend(updates), poll=False)
    yield fake, venue, engine, clock, emitted
    await venue.close()
    await fake.stop()


def test_symbol_mapping():
    assert split_symbol("BTCUSDT") == ("BTC", "USDT")
    assert ccxt_symbol("ETHUSDT", PERP) == "ETH/USDT:USDT"
    assert ccxt_symbol("ETHUSDC", SPOT) == "ETH/USDC"
    with pytest.raises(ValueError, match="cannot split"):
        split_symbol("USDT")


def test_fees_are_converted_to_quote():
    assert fee_in_quote({"cost": "0.5", "currency": "USDT"}, "BTC", "USDT", Decimal("50000")) == Decimal("0.5")
    assert fee_in_quote({"cost": "0.00001", "currency": "BTC"}, "BTC", "USDT", Decimal("50000")) == Decimal("0.50000")
    assert fee_in_quote({"cost": "0.001", "currency": "BNB"}, "BTC", "USDT", Decimal("50000")) == 0
    assert fee_in_quote(None, "BTC", "USDT", Decimal("1")) == 0


async def test_market_order_is_placed_with_its_client_id_and_fills_map_into_the_state_machine(bybit):
    fake, venue, engine, clock, emitted = bybit
    d = engine.on_signal(signal(clock, leg(size="500")))  # 0.01 BTC at 50000
    assert d.ack.accepted, d.ack.detail
    (order,) = d.submissions
    assert order.state == order_states.SUBMITTED
    await venue.submit(order)
    create = [r for r in fake.requests if r[1] == "/v5/order/create"]
    assert len(create) == 1
    assert f'"orderLinkId":"{order.client_order_id}"' in create[0][3]
    assert '"qty":"0.01"' in create[0][3]
    assert order.state == order_states.ACCEPTED
    assert order.venue_order_id
    await venue.reconcile()
    assert order.state == order_states.FILLED
    assert order.filled == Decimal("0.010")
    assert order.fees == Decimal("0.275")  # 0.165 + 0.11 from the two recorded executions
    pos = engine.portfolio.get(("hunter", "bybit", "BTCUSDT", PERP))
    assert pos.quantity == Decimal("0.010")
    assert pos.average_entry == Decimal("50000")
    fills = [u for u in emitted if u.__class__.__name__ == "Fill"]
    assert sorted(f.fill_id for f in fills) == sorted(
        ["e0cbe81d-0f18-5866-9415-cf319b5dab3b", "a1b2c3d4-0f18-5866-9415-cf319b5dab3c"]
    )
    # polling again books nothing twice
    n = len(fills)
    await venue.reconcile()
    assert len([u for u in emitted if u.__class__.__name__ == "Fill"]) == n
    assert pos.quantity == Decimal("0.010")


async def test_venue_rejection_is_a_rejected_order(bybit):
    fake, venue, engine, clock, _emitted = bybit
    fake.behavior = "reject"
    d = engine.on_signal(signal(clock, leg(size="500")))
    (order,) = d.submissions
    await venue.submit(order)
    assert order.state == order_states.REJECTED
    assert "InsufficientFunds" in order.reason
    assert engine.open_book.count("hunter", "BTCUSDT") == 0


async def test_network_failure_while_placing_is_reconciled_by_client_order_id(bybit):
    fake, venue, engine, clock, _emitted = bybit
    fake.behavior = "down"
    d = engine.on_signal(signal(clock, leg(size="500")))
    (order,) = d.submissions
    await venue.submit(order)
    assert order.state == order_states.SUBMITTED  # unknown outcome: kept open
    assert venue.errors == 1
    # the venue did get it (the answer was lost): reconcile finds it by orderLinkId
    fake.behavior = "fill"
    fake.orders["999"] = {"link": order.client_order_id, "status": "Filled", "fills": 2,
                          "req": {"qty": "0.01", "side": "Buy", "orderType": "Market"}}
    await venue.reconcile()
    assert order.state == order_states.FILLED
    assert order.venue_order_id == "999"
    assert any(r[2].get("orderLinkId") == order.client_order_id for r in fake.requests)


async def test_order_unknown_to_the_venue_is_rejected_after_the_grace_period(bybit):
    fake, venue, engine, clock, _emitted = bybit
    fake.behavior = "down"
    (order,) = engine.on_signal(signal(clock, leg(size="500"))).submissions
    await venue.submit(order)
    fake.behavior = "fill"
    await venue.reconcile()
    assert order.state == order_states.SUBMITTED
    clock.advance(venue.unknown_grace_ns)
    await venue.reconcile()
    assert order.state == order_states.REJECTED


async def test_resting_limit_order_is_canceled_on_halt(bybit):
    fake, venue, engine, clock, _emitted = bybit
    fake.behavior = "rest"
    d = engine.on_signal(signal(clock, leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="49900", size="499")))
    assert d.ack.accepted, d.ack.detail
    (order,) = d.submissions
    await venue.submit(order)
    await venue.reconcile()
    assert order.state == order_states.ACCEPTED
    from tests.execution.helpers import MODE, trading_state
    _, _, cancels = engine.set_trading_state(trading_state(MODE.TRADING_MODE_HALTED, 5))
    assert cancels == [order]
    await venue.cancel(order)
    assert order.state == order_states.CANCELED
    cancel_calls = [r for r in fake.requests if r[1] == "/v5/order/cancel"]
    assert order.venue_order_id in cancel_calls[0][3]
    # and nothing new gets through while halted
    assert engine.on_signal(signal(clock, leg(size="500"))).ack.reason == RejectReason.REJECT_REASON_HALTED


async def test_cancel_after_a_partial_fill_books_the_fill_first(bybit):
    fake, venue, engine, clock, emitted = bybit
    fake.behavior = "partial"
    d = engine.on_signal(signal(clock, leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="50000", size="500")))
    (order,) = d.submissions
    await venue.submit(order)
    await venue.cancel(order)  # the venue had filled 0.006 before the cancel
    assert order.state == order_states.CANCELED
    assert order.filled == Decimal("0.006")
    assert engine.portfolio.get(("hunter", "bybit", "BTCUSDT", PERP)).quantity == Decimal("0.006")
    assert [f.quantity for f in emitted if f.__class__.__name__ == "Fill"] == ["0.006"]


async def test_expired_venue_order_is_canceled_at_the_venue(bybit):
    fake, venue, engine, clock, _emitted = bybit
    fake.behavior = "rest"
    d = engine.on_signal(
        signal(clock, leg(order_type=OrderType.ORDER_TYPE_LIMIT, limit="49900", size="499"), ttl_ms=1000)
    )
    (order,) = d.submissions
    await venue.submit(order)
    engine.tick()
    assert engine.take_cancels() == []
    clock.advance(10**9)
    engine.tick()
    cancels = engine.take_cancels()
    assert cancels == [order]
    assert order.is_open  # still open until the venue confirms
    engine.tick()
    assert engine.take_cancels() == []  # asked once
    await venue.cancel(order)
    assert order.state == order_states.CANCELED


async def test_same_signal_twice_is_one_venue_order(bybit):
    fake, venue, engine, clock, _emitted = bybit
    sig = signal(clock, leg(size="500"))
    d = engine.on_signal(sig)
    venue.dispatch(d.submissions, [])
    d2 = engine.on_signal(sig)
    assert d2.ack.reason == RejectReason.REJECT_REASON_REPLAYED
    assert not d2.submissions
    import asyncio
    await asyncio.gather(*venue._tasks)
    assert len([r for r in fake.requests if r[1] == "/v5/order/create"]) == 1


@pytest.fixture
async def binance():
    fake = FakeBinance()
    await fake.start()
    ex = make_exchange("binance", "TESTKEY", "TESTSECRET", testnet=True)
    fake.point(ex)
    engine, clock = make_engine(config=EngineConfig(venue="binance"))
    engine.on_market(top("50000", "10", "50000", "10", venue="binance", instrument=SPOT))
    emitted: list = []
    venue = LiveVenue("binance", ex)
    await venue.start(engine, lambda updates, *a: emitted.extend(updates), poll=False)
    yield fake, venue, engine, clock, emitted
    await venue.close()
    await fake.stop()


async def test_binance_spot_market_order_fills_from_the_full_response(binance):
    fake, venue, engine, clock, emitted = binance
    d = engine.on_signal(signal(clock, leg(venue="binance", instrument=SPOT, size="500")))
    assert d.ack.accepted, d.ack.detail
    (order,) = d.submissions
    await venue.submit(order)
    body = next(r[3] for r in fake.requests if r[1] == "/api/v3/order")
    assert f"newClientOrderId={order.client_order_id}" in body
    assert "quantity=0.01" in body
    assert order.state == order_states.FILLED
    assert order.venue_order_id == "4127283"
    # commissions were paid in BTC: converted at each fill's price
    assert order.fees == Decimal("0.00000600") * Decimal("50000") + Decimal("0.00000400") * Decimal("50007.5")
    pos = engine.portfolio.get(("hunter", "binance", "BTCUSDT", SPOT))
    assert pos.quantity == Decimal("0.01")
    assert pos.average_entry == Decimal("50003")  # (0.006*50000 + 0.004*50007.5) / 0.01
    assert sorted(f.fill_id for f in emitted if f.__class__.__name__ == "Fill") == ["1932514", "1932515"]


async def test_binance_rejection(binance):
    fake, venue, engine, clock, _emitted = binance
    fake.behavior = "reject"
    (order,) = engine.on_signal(signal(clock, leg(venue="binance", instrument=SPOT, size="500"))).submissions
    await venue.submit(order)
    assert order.state == order_states.REJECTED
    assert "InsufficientFunds" in order.reason


async def test_live_mode_through_the_service(tmp_path):
    """mode=live wiring: a signed signal over gRPC becomes a venue order; its fills come back on the
    stream once the poller saw them."""
    import asyncio
    import time

    import grpc

    from tests.execution.helpers import KEYS, MODE, budget
    from titan.core.signing import sign_control
    from titan.execution.runtime import ExecutionRuntime, RuntimeOptions
    from titan.v1 import execution_pb2, execution_pb2_grpc, trading_pb2

    fake, venue, settings = await live_bybit(tmp_path, "control-key-0123456789abcdef")
    rt = ExecutionRuntime(settings, RuntimeOptions(keys=dict(KEYS), metrics=False, freeze_gc=False,
                                                   live_venue=venue))
    port = await rt.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = execution_pb2_grpc.ExecutionStub(channel)
        req = execution_pb2.SetTradingStateRequest(
            state=trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=1))
        req.auth.issued_at_ns, req.auth.nonce = time.time_ns(), "n1"
        await stub.SetTradingState(sign_control(req, b"control-key-0123456789abcdef"))
        rt.engine.update_budget(budget(version=1, expires_at_ns=time.time_ns() + 10**12))
        rt.servicer.on_market_bytes(top("50000", "10", "50000", "10").SerializeToString())

        class Wall:
            def now_ns(self):
                return time.time_ns()

        call = stub.StreamSignals()
        await call.write(execution_pb2.StreamRequest(signal=signal(Wall(), leg(size="500"))))
        ack = await asyncio.wait_for(updates_of(call).read(), 5)
        assert ack.ack.accepted, ack.ack.detail
        fills = []
        while len(fills) < 2:
            msg = await asyncio.wait_for(updates_of(call).read(), 10)
            if msg.WhichOneof("body") == "fill":
                fills.append(msg.fill)
        assert sum(Decimal(f.quantity) for f in fills) == Decimal("0.010")
        assert any(r[1] == "/v5/order/create" for r in fake.requests)
        get = execution_pb2.GetStateRequest()
        get.auth.issued_at_ns, get.auth.nonce = time.time_ns(), "n2"
        state = await stub.GetState(sign_control(get, b"control-key-0123456789abcdef"))
        assert state.mode == "live" and state.venue == "bybit"
        assert [p.quantity for p in state.positions] == ["0.01"]
        await call.done_writing()
    finally:
        await channel.close()
        await rt.stop()
        await fake.stop()
