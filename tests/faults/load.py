"""A load phase for the fault suite: a steady flow of small signed signals (open, then reduce, on the
simulator's BTCUSDT perp) on execution's gRPC stream as the Scavenger, reconnecting whenever the
stream breaks. It keeps its own record of what execution answered — every ack, the client order ids
of accepted ones and every fill streamed back — to hold the ledger against afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import grpc

from tests.execution.helpers import updates_of
from titan.core.signing import sign_signal
from titan.v1 import common_pb2, execution_pb2, execution_pb2_grpc, trading_pb2

PHASE = "scavenger"
SIZE_QUOTE = "25"


@dataclass
class Ack:
    signal_id: str
    opening: bool
    accepted: bool
    reason: int
    client_order_ids: tuple[str, ...]
    at: float  # monotonic


@dataclass
class Load:
    address: str
    key: bytes
    interval_s: float = 0.25
    acks: list[Ack] = field(default_factory=list)
    fills: dict[str, trading_pb2.Fill] = field(default_factory=dict)
    fill_receipts: int = 0
    sent: int = 0
    reconnects: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def signal(self, i: int) -> trading_pb2.Signal:
        opening = i % 2 == 0
        leg = trading_pb2.Leg(venue="sim", symbol="BTCUSDT", instrument=common_pb2.INSTRUMENT_KIND_PERP,
                              side=common_pb2.SIDE_BUY if opening else common_pb2.SIDE_SELL, size_quote=SIZE_QUOTE,
                              order_type=trading_pb2.ORDER_TYPE_MARKET)
        sig = trading_pb2.Signal(phase_id=PHASE, signal_id=f"fault-load-{time.time_ns()}-{i}",
                                 intent=trading_pb2.INTENT_OPEN if opening else trading_pb2.INTENT_REDUCE,
                                 legs=[leg], confidence=0.5, created_at_ns=time.time_ns(), setup="fault-load")
        return sign_signal(sig, self.key)

    def accepted_since(self, since: float, *, opening: bool = True) -> int:
        return sum(1 for a in self.acks if a.accepted and a.at >= since and a.opening == opening)

    def last_accepted(self) -> float:
        return max((a.at for a in self.acks if a.accepted), default=0.0)

    def client_order_ids(self) -> set[str]:
        return {cid for a in self.acks if a.accepted for cid in a.client_order_ids}

    async def run(self) -> None:
        i = 0
        while not self._stop.is_set():
            with contextlib.suppress(grpc.aio.AioRpcError, OSError):
                i = await self._session(i)
            self.reconnects += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=0.5)

    async def _session(self, i: int) -> int:
        async with grpc.aio.insecure_channel(self.address) as channel:
            call = execution_pb2_grpc.ExecutionStub(channel).StreamSignals()
            await call.write(execution_pb2.StreamRequest(hello=execution_pb2.Hello(phase_id=PHASE,
                                                                                   instance="fault-load")))
            pending: dict[str, bool] = {}
            reader = asyncio.create_task(self._read(call, pending))
            try:
                while not self._stop.is_set() and not reader.done():
                    sig = self.signal(i)
                    pending[sig.signal_id] = sig.intent == trading_pb2.INTENT_OPEN
                    await call.write(execution_pb2.StreamRequest(signal=sig))
                    self.sent += 1
                    i += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)
                if self._stop.is_set():
                    await call.done_writing()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(reader), timeout=5)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await reader
        return i

    async def _read(self, call: grpc.aio.StreamStreamCall, pending: dict[str, bool]) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            while True:
                msg = await updates_of(call).read()
                if msg is grpc.aio.EOF:
                    return
                body = msg.WhichOneof("body")
                acks = [msg.ack] if body == "ack" else list(msg.acks.acks) if body == "acks" else []
                for ack in acks:
                    self.acks.append(Ack(ack.signal_id, pending.pop(ack.signal_id, False), ack.accepted,
                                         int(ack.reason), tuple(ack.client_order_ids), time.monotonic()))
                if body == "fill":
                    self.fill_receipts += 1
                    self.fills[msg.fill.fill_id] = msg.fill

    def stop(self) -> None:
        self._stop.set()
