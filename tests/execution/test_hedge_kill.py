"""A real kill between the legs of a hedged unit: the execution process is SIGKILLed while the spot
leg is filled and the perp leg only partly (its remainder cannot fill: the perp bid moved beyond the
slippage bound). Restarted, it finds the orphan leg in the ledger and settles the unit before
anything else: the ledger ends with 0 unhedged exposure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from decimal import Decimal

import grpc
import pytest

from tests.execution.helpers import BUY, MODE, PERP, SELL, SPOT, budget, leg, top
from tests.execution.test_recovery import RECOVERY_CONTROL_KEY, Service
from tests.util import wait_for
from titan.core.bus import StateStore
from titan.core.ledger import LedgerWriter
from titan.core.signing import sign_signal
from titan.execution.orders import client_order_id
from titan.v1 import execution_pb2, execution_pb2_grpc, trading_pb2

pytestmark = pytest.mark.slow
KEY = b"sentinel-test-key-0123456789abcd"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hedged_signal(created_ns: int) -> trading_pb2.Signal:
    sig = trading_pb2.Signal(
        phase_id="sentinel", signal_id="carry-kill-1", intent=trading_pb2.INTENT_OPEN, confidence=0.8,
        created_at_ns=created_ns, leverage="2", max_slippage_bps=20, ttl_ms=60_000,
        legs=[leg(side=BUY, size="5000", instrument=SPOT), leg(side=SELL, size="5000", instrument=PERP)],
    )
    sig.metadata["hedge"] = "complete"
    sig.metadata["hedge_deadline_ms"] = "600000"   # the unit is still pending when the process dies
    return sign_signal(sig, KEY)


async def test_sigkill_between_the_legs_leaves_no_orphan_exposure(nats_url, pg_dsn, catalog, ledger, bus_nc,
                                                                  bus_js, tmp_path):
    store = StateStore(bus_js, catalog)
    await store.put_trading_state(trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=1,
                                                           ts_ns=time.time_ns()))
    await store.put_budget(budget("sentinel", version=1, expires_at_ns=time.time_ns() + 3600 * 10**9,
                                  max_notional="1000000", max_daily_loss=""))
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")}
    env.update(
        TITAN_NATS_URL=nats_url, TITAN_PG_DSN=pg_dsn, TITAN_NAMESPACE=catalog.namespace,
        TITAN_EXECUTION_PORT=str(port), TITAN_EXECUTION_HOST="127.0.0.1", TITAN_METRICS_PORT="0",
        TITAN_HEALTH_PORT="0", TITAN_CONTROL_KEY=RECOVERY_CONTROL_KEY.decode(),
        TITAN_PHASE_KEY_SENTINEL=KEY.decode(), TITAN_REPLAY_WINDOW_MS="60000", TITAN_LOG_LEVEL="INFO",
    )
    service = Service(env, port, tmp_path / "execution.log")
    writer = LedgerWriter(bus_nc, catalog, ledger)
    await writer.start()
    subject = catalog.md_subject("bybit", "BTCUSDT", "top")

    async def feed() -> None:  # spot liquidity keeps coming; the perp book is published by the test
        while True:
            await bus_nc.publish(subject, top("49990", "10", "50000", "10", instrument=SPOT).SerializeToString())
            await asyncio.sleep(0.05)

    async def perp_top(bid: str, bid_size: str) -> None:
        await bus_nc.publish(subject, top(bid, bid_size, "50060", "10", instrument=PERP).SerializeToString())
        await bus_nc.flush()

    feeder = asyncio.create_task(feed())
    channel = None
    spot_cid = client_order_id("sentinel", "carry-kill-1", 0)
    perp_cid = client_order_id("sentinel", "carry-kill-1", 1)
    try:
        await service.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = execution_pb2_grpc.ExecutionStub(channel)
        await perp_top("50050", "0.04")   # a thin perp bid: the perp leg can fill only 0.04 now

        async def fresh_market() -> bool:  # execution has applied both books (a sub-lot probe, never placed)
            call = stub.StreamSignals()
            probe = hedged_signal(time.time_ns())
            probe.signal_id = f"probe-{time.time_ns()}"
            del probe.metadata["hedge"]
            probe.legs[0].size_quote = probe.legs[1].size_quote = "0.00000001"
            sign_signal(probe, KEY)
            await call.write(execution_pb2.StreamRequest(signal=probe))
            msg = await call.read()
            await call.done_writing()
            assert msg.ack.reason in (trading_pb2.REJECT_REASON_MARKET_DATA_STALE, trading_pb2.REJECT_REASON_MALFORMED)
            return msg.ack.reason == trading_pb2.REJECT_REASON_MALFORMED

        await wait_for(fresh_market, timeout=30, interval=0.2)
        call = stub.StreamSignals()
        await call.write(execution_pb2.StreamRequest(signal=hedged_signal(time.time_ns())))
        msg = await call.read()
        assert msg.ack.accepted, msg.ack
        await perp_top("49000", "10")   # the perp bid falls 2 %: beyond the remainder's cap and the 20 bps bound

        async def between_the_legs() -> bool:
            spot, perp = await ledger.order(spot_cid), await ledger.order(perp_cid)
            return (spot is not None and perp is not None and spot.state == trading_pb2.ORDER_STATE_FILLED
                    and Decimal(perp.filled_quantity or "0") < Decimal(spot.filled_quantity))

        await wait_for(between_the_legs, timeout=30, interval=0.1)
        await service.kill()  # SIGKILL: the perp leg is short of the spot leg
        spot_row = await ledger.order(spot_cid)
        assert spot_row is not None
        with contextlib.suppress(grpc.aio.AioRpcError):
            await call.done_writing()

        await service.start()  # recovers from the ledger, settles the unit

        async def hedged() -> bool:
            info = await bus_js.consumer_info(catalog.ledger_consumer.stream, catalog.ledger_consumer.durable)
            if info.num_pending or info.num_ack_pending:
                return False
            rows = await ledger.positions("sentinel", include_flat=True)
            qty = {p.instrument: Decimal(p.quantity) for p in rows}
            return bool(qty) and qty.get(SPOT, Decimal(0)) + qty.get(PERP, Decimal(0)) == 0

        await wait_for(hedged, timeout=60, interval=0.2)
        rows = {p.instrument: Decimal(p.quantity) for p in await ledger.positions("sentinel", include_flat=True)}
        assert rows[PERP] < 0 and rows[SPOT] == -rows[PERP]   # the hedged part stays, the orphan is gone
        orders = await ledger.orders("sentinel", limit=100)
        steps = [o for o in orders if o.signal_id == "carry-kill-1" and o.leg >= 2]
        assert any(o.instrument == SPOT and o.reduce_only and o.state == trading_pb2.ORDER_STATE_FILLED
                   for o in steps), steps
        perp_row = await ledger.order(perp_cid)
        assert perp_row is not None and perp_row.state == trading_pb2.ORDER_STATE_CANCELED
        assert "orphan leg" in (tmp_path / "execution.log").read_text()
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        if channel is not None:
            await channel.close()
        await service.stop()
        await writer.stop()
