"""Hedged units on a ccxt venue, offline: execution in live mode against the recorded Bybit v5
payloads served on loopback (``fake_venue``). The steps the engine takes on its own — a re-quote, an
unwind, the deadline's cancels — reach the venue through the same dispatch as a signal's orders, and
the unit's outcome reaches the phase on its gRPC stream.

The Bybit account trades linear perpetuals only, so the unit's spot leg is refused by the venue (ccxt:
no such market) while its perp leg fills or rests: the unit must not keep the naked perp."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.execution.fake_venue import FakeBybit, live_bybit
from tests.execution.helpers import BUY, KEYS, MODE, PERP, SELL, SPOT, budget, leg, signal, top, updates_of
from titan.core.signing import sign_control, sign_signal
from titan.execution import orders as order_states
from titan.execution.runtime import ExecutionRuntime, RuntimeOptions
from titan.v1 import execution_pb2, execution_pb2_grpc, trading_pb2

SENTINEL_KEY = b"sentinel-test-key-0123456789abcd"
CONTROL_KEY = b"control-key-0123456789abcdef"


class Wall:
    def now_ns(self) -> int:
        return time.time_ns()


@pytest.fixture
async def live(tmp_path: Path) -> Any:
    fake, venue, settings = await live_bybit(tmp_path, CONTROL_KEY.decode())
    rt = ExecutionRuntime(settings, RuntimeOptions(keys={**KEYS, "sentinel": SENTINEL_KEY}, metrics=False,
                                                   freeze_gc=False, tick_interval_s=0.05, live_venue=venue))
    port = await rt.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = execution_pb2_grpc.ExecutionStub(channel)
    req = execution_pb2.SetTradingStateRequest(state=trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=1))
    req.auth.issued_at_ns, req.auth.nonce = time.time_ns(), "n1"
    await stub.SetTradingState(sign_control(req, CONTROL_KEY))
    assert rt.engine is not None and rt.servicer is not None
    rt.engine.update_budget(budget("sentinel", version=1, expires_at_ns=time.time_ns() + 10**12))
    for instrument in (SPOT, PERP):
        rt.servicer.on_market_bytes(top("50000", "10", "50000", "10", instrument=instrument).SerializeToString())
    try:
        yield fake, rt, stub
    finally:
        await channel.close()
        await rt.stop()
        await fake.stop()


def hedged_unit(policy: str, deadline_ms: int = 5_000) -> trading_pb2.Signal:
    sig = signal(Wall(), leg(side=BUY, size="500", instrument=SPOT), leg(side=SELL, size="500", instrument=PERP),  # type: ignore[arg-type]
                 phase="sentinel", key=None, max_slippage_bps=20, leverage="2")
    sig.metadata["hedge"] = policy
    sig.metadata["hedge_deadline_ms"] = str(deadline_ms)
    sign_signal(sig, SENTINEL_KEY)
    return sig


async def outcome_on_stream(call: Any) -> tuple[trading_pb2.SignalAck, trading_pb2.HedgeOutcome, list[Any]]:
    """The ack, then every update until the unit's outcome arrives."""
    ack = (await asyncio.wait_for(updates_of(call).read(), 5)).ack
    seen: list[Any] = []
    while True:
        msg = await asyncio.wait_for(updates_of(call).read(), 10)
        if msg.WhichOneof("body") == "hedge":
            return ack, msg.hedge, seen
        seen.append(getattr(msg, msg.WhichOneof("body")))


def created(fake: FakeBybit) -> list[dict[str, Any]]:
    import json

    return [json.loads(r[3]) for r in fake.requests if r[1] == "/v5/order/create"]


@pytest.mark.parametrize("policy", ["unwind", "complete"])
async def test_the_unwind_of_a_naked_perp_is_sent_to_the_venue(live: Any, policy: str) -> None:
    fake, rt, stub = live
    call = stub.StreamSignals()
    sig = hedged_unit(policy)
    await call.write(execution_pb2.StreamRequest(signal=sig))
    ack, outcome, updates = await outcome_on_stream(call)
    assert ack.accepted, ack.detail
    orders = rt.engine.orders
    spot_leg, perp_leg = ack.client_order_ids
    steps = [cid for cid, o in orders.items() if o.signal_id == sig.signal_id and o.leg >= 2]
    assert orders[spot_leg].state == order_states.REJECTED and "BadSymbol" in orders[spot_leg].reason
    assert orders[perp_leg].state == order_states.FILLED
    # the perp reached the venue as leg 1, and the unwind — created by the engine on a tick, not by a
    # signal — reached it too, as a reduce-only buy of what the perp leg sold
    bodies = {b["orderLinkId"]: b for b in created(fake)}
    unwind = [cid for cid in steps if orders[cid].reduce_only]
    assert len(unwind) == 1 and unwind[0] in bodies
    sent = bodies[unwind[0]]
    assert (sent["side"], sent["qty"], sent["reduceOnly"]) == ("Buy", "0.01", True)
    assert orders[unwind[0]].state == order_states.FILLED
    if policy == "complete":  # the spot re-quote went out first (and the venue refused it too)
        requote = [cid for cid in steps if not orders[cid].reduce_only]
        assert len(requote) == 1 and orders[requote[0]].state == order_states.REJECTED
        assert orders[requote[0]].order_type == trading_pb2.ORDER_TYPE_IOC
    # the phase learns the outcome on its stream, after the fills that led to it
    assert outcome.result == trading_pb2.HEDGE_RESULT_UNWOUND
    assert (outcome.signal_id, outcome.symbol, outcome.spot_quantity, outcome.perp_quantity, outcome.residual) == (
        sig.signal_id, "BTCUSDT", "0", "0", "0")
    assert any(isinstance(u, trading_pb2.Fill) and u.client_order_id == unwind[0] for u in updates)
    assert rt.engine.portfolio.quantity(("sentinel", "bybit", "BTCUSDT", PERP)) == 0
    assert not rt.engine.hedges
    await call.done_writing()


async def test_at_the_deadline_the_resting_leg_is_canceled_at_the_venue(live: Any) -> None:
    fake, rt, stub = live
    fake.behavior = "rest"  # the perp leg rests at the venue, unfilled
    call = stub.StreamSignals()
    sig = hedged_unit("complete", deadline_ms=300)
    await call.write(execution_pb2.StreamRequest(signal=sig))
    ack, outcome, _ = await outcome_on_stream(call)
    perp_leg = rt.engine.orders[ack.client_order_ids[1]]
    cancels = [r for r in fake.requests if r[1] == "/v5/order/cancel"]
    # asked at the venue (by its id there, or by ours when its acknowledgement is still on the way)
    assert cancels and (perp_leg.venue_order_id in cancels[-1][3] or perp_leg.client_order_id in cancels[-1][3])
    assert perp_leg.state == order_states.CANCELED
    assert outcome.result == trading_pb2.HEDGE_RESULT_UNFILLED and outcome.residual == "0"
    assert [b["orderLinkId"] for b in created(fake)] == [perp_leg.client_order_id]  # nothing else was needed
    await call.done_writing()
