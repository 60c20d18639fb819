"""Events to JetStream and recovery from the ledger, with real NATS and PostgreSQL.

The execution service runs as a separate process. It is SIGKILLed in the middle of a signal stream
and restarted; afterwards its positions and PnL equal the ledger's, every fill the phase was sent
is in the ledger, no fill is booked twice, and re-sent signals never create a second order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal as signals
import socket
import sys
import time
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.execution.helpers import (
    KEY,
    MODE,
    PERP,
    REDUCE,
    SELL,
    RejectReason,
    budget,
    control,
    leg,
    mark,
    top,
    updates_of,
)
from tests.util import wait_for
from titan.core.bus import StateStore
from titan.core.ledger import LedgerWriter
from titan.core.signing import sign_signal
from titan.v1 import execution_pb2, execution_pb2_grpc, trading_pb2

pytestmark = pytest.mark.slow

RECOVERY_CONTROL_KEY = b"control-key-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        out = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "titan.execution", env=self.env, stdout=out, stderr=out
        )
        out.close()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        health = health_pb2_grpc.HealthStub(channel)

        async def serving() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"service exited: {self.log.read_text()[-3000:]}")
            try:
                r = await health.Check(health_pb2.HealthCheckRequest(service="titan.v1.Execution"), timeout=0.5)
                return r.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.aio.AioRpcError:
                return False

        try:
            await wait_for(serving, timeout=60, interval=0.1)
        finally:
            await channel.close()

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signals.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signals.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def make_signal(i: int, created_ns: int) -> trading_pb2.Signal:
    if i % 3 == 2:
        legs = [leg(side=SELL, size="1000")]
        intent = REDUCE
    else:
        legs = [leg(size=str(1000 + 250 * (i % 4)))]
        intent = trading_pb2.Intent.INTENT_OPEN
    sig = trading_pb2.Signal(phase_id="hunter", signal_id=f"r-{i}", intent=intent, legs=legs, confidence=0.5,
                             created_at_ns=created_ns, leverage="2")
    return sign_signal(sig, KEY)


async def test_kill_mid_stream_and_recover_from_the_ledger(nats_url, pg_dsn, catalog, ledger, bus_nc, bus_js,
                                                           tmp_path):
    store = StateStore(bus_js, catalog)
    await store.put_trading_state(trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=1,
                                                           ts_ns=time.time_ns()))
    await store.put_budget(budget(version=1, expires_at_ns=time.time_ns() + 3600 * 10**9,
                                  max_orders_per_minute=10_000, max_notional="10000000",
                                  max_daily_loss=""))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")}
    env.update(
        TITAN_NATS_URL=nats_url, TITAN_PG_DSN=pg_dsn, TITAN_NAMESPACE=catalog.namespace,
        TITAN_EXECUTION_PORT=str(port), TITAN_EXECUTION_HOST="127.0.0.1",
        TITAN_METRICS_PORT="0", TITAN_HEALTH_PORT="0",
        TITAN_CONTROL_KEY=RECOVERY_CONTROL_KEY.decode(), TITAN_PHASE_KEY_HUNTER=KEY.decode(),
        TITAN_REPLAY_WINDOW_MS="60000", TITAN_LOG_LEVEL="INFO", TITAN_DATA_DIR=str(tmp_path / "data"),
    )
    service = Service(env, port, tmp_path / "execution.log")
    writer = LedgerWriter(bus_nc, catalog, ledger)
    await writer.start()

    # market data keeps flowing on core NATS the whole time
    price = ["50000"]

    async def feed() -> None:
        while True:
            for ev in (top(price[0], "100", price[0], "100"), mark(price[0])):
                await bus_nc.publish(catalog.md_subject("bybit", "BTCUSDT", "top"), ev.SerializeToString())
            await asyncio.sleep(0.05)

    feeder = asyncio.create_task(feed())
    received_fills: dict[str, trading_pb2.Fill] = {}
    sent: list[trading_pb2.Signal] = []
    channel = None
    try:
        await service.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = execution_pb2_grpc.ExecutionStub(channel)
        call = stub.StreamSignals()
        acks: dict[str, trading_pb2.SignalAck] = {}

        async def reader() -> None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
                while True:
                    msg = await updates_of(call).read()
                    if msg is grpc.aio.EOF:
                        return
                    body = msg.WhichOneof("body")
                    if body == "ack":
                        acks[msg.ack.signal_id] = msg.ack
                    elif body == "fill":
                        received_fills[msg.fill.fill_id] = msg.fill

        read_task = asyncio.create_task(reader())
        now = time.time_ns()
        for i in range(300):
            sig = make_signal(i, now)
            sent.append(sig)
            await call.write(execution_pb2.StreamRequest(signal=sig))
            if i == 40:
                price[0] = "50100"
            if i == 150:
                await wait_for(lambda: len(acks) >= 100, timeout=30)
                await service.kill()  # mid-stream: signals 100..150 are in flight
                break
        read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await read_task
        assert len(acks) >= 100
        assert all(a.accepted for a in acks.values()), {a.signal_id: a.detail for a in acks.values() if not a.accepted}

        await service.start()  # recovers from the ledger before serving
        call = stub.StreamSignals()
        acks2: dict[str, trading_pb2.SignalAck] = {}

        async def reader2() -> None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
                while True:
                    msg = await updates_of(call).read()
                    if msg is grpc.aio.EOF:
                        return
                    if msg.WhichOneof("body") == "ack":
                        acks2[msg.ack.signal_id] = msg.ack
                    elif msg.WhichOneof("body") == "fill":
                        received_fills[msg.fill.fill_id] = msg.fill

        read_task = asyncio.create_task(reader2())
        # re-send everything sent before the kill (a phase retrying after a reconnect) and 30 new ones
        for sig in sent:
            await call.write(execution_pb2.StreamRequest(signal=sig))
        now = time.time_ns()
        for i in range(300, 330):
            await call.write(execution_pb2.StreamRequest(signal=make_signal(i, now)))
        await wait_for(lambda: len(acks2) == len(sent) + 30, timeout=30)
        await call.done_writing()
        await read_task

        for sig in sent:
            ack2 = acks2[sig.signal_id]
            if sig.signal_id in acks and acks[sig.signal_id].accepted:
                # decided before the kill: either remembered (REPLAYED) or, if its events never reached
                # JetStream, decided again onto the very same client order id
                assert ack2.reason in (RejectReason.REJECT_REASON_REPLAYED, RejectReason.REJECT_REASON_UNSPECIFIED), (
                    ack2
                )
                assert list(ack2.client_order_ids) == list(acks[sig.signal_id].client_order_ids)
        replayed = sum(1 for a in acks2.values() if a.reason == RejectReason.REJECT_REASON_REPLAYED)
        assert replayed >= 1

        # the ledger catches up with everything the service published
        async def caught_up() -> bool:
            info = await bus_js.consumer_info(catalog.ledger_consumer.stream, catalog.ledger_consumer.durable)
            return not info.num_pending and not info.num_ack_pending

        state = None

        async def consistent() -> bool:
            nonlocal state
            if not await caught_up():
                return False
            state = await stub.GetState(control(execution_pb2.GetStateRequest(phase_id="hunter"), RECOVERY_CONTROL_KEY))
            led = await ledger.positions("hunter", include_flat=True)
            mine = {(p.venue, p.symbol): (p.quantity, p.realized_pnl, p.fees, p.version) for p in state.positions}
            theirs = {(p.venue, p.symbol): (p.quantity, p.realized_pnl, p.fees, p.version) for p in led}
            return mine == theirs and bool(mine)

        await wait_for(consistent, timeout=30, interval=0.2)
        assert state is not None

        fills = await ledger.fills("hunter")
        # no fill lost: every fill the phase was told about is in the ledger, identical
        by_id = {f.fill_id: f for f in fills}
        for fid, f in received_fills.items():
            assert by_id[fid] == f
        # no fill doubled: per order, filled quantity never exceeds the order, and positions add up
        per_order: dict[str, Decimal] = {}
        signed = Decimal(0)
        for f in fills:
            per_order[f.client_order_id] = per_order.get(f.client_order_id, Decimal(0)) + Decimal(f.quantity)
            signed += Decimal(f.quantity) if f.side == 1 else -Decimal(f.quantity)
        for cid, qty in per_order.items():
            order = await ledger.order(cid)
            assert order is not None
            assert qty == Decimal(order.filled_quantity) <= Decimal(order.quantity)
        (pos,) = [p for p in state.positions if p.instrument == PERP]
        assert Decimal(pos.quantity) == signed
        assert Decimal(pos.realized_pnl) == sum((Decimal(f.realized_pnl) for f in fills), Decimal(0))
        assert Decimal(pos.fees) == sum((Decimal(f.fee) for f in fills), Decimal(0))
        # one decision per signal id
        decisions = await ledger.decisions("hunter", limit=10_000)
        assert len({d.ack.signal_id for d in decisions}) == len(decisions)
        assert "recovered 1 positions" in (tmp_path / "execution.log").read_text()
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        if channel is not None:
            await channel.close()
        await service.stop()
        await writer.stop()
