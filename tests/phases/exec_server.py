"""A tiny Execution servicer for phase tests: a real grpc.aio server on loopback that verifies each
signal's HMAC, records it and acks it (accepted when the signature holds). Tests can push further
updates (positions) to the connected phase."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from titan.core.signing import open_sealed, verify_signal
from titan.v1 import execution_pb2, execution_pb2_grpc, trading_pb2


class TinyExecution(execution_pb2_grpc.ExecutionServicer):
    def __init__(self, keys: dict[str, bytes], reject_reason: int = 0) -> None:
        self.keys = keys
        self.reject_reason = reject_reason
        self.signals: list[trading_pb2.Signal] = []
        self.hellos: list[execution_pb2.Hello] = []
        self.bad_signatures = 0
        self.streams_opened = 0
        self.outgoing: asyncio.Queue[execution_pb2.ExecutionUpdate] = asyncio.Queue()

    async def StreamSignals(
        self, request_iterator: AsyncIterator[execution_pb2.StreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[execution_pb2.ExecutionUpdate]:
        self.streams_opened += 1
        out: asyncio.Queue[execution_pb2.ExecutionUpdate | None] = asyncio.Queue()

        async def read() -> None:
            async for req in request_iterator:
                body = req.WhichOneof("body")
                if body == "hello":
                    self.hellos.append(req.hello)
                elif body == "sealed":  # what the phase runtime sends: one AckBatch per frame
                    acks = [self._ack(*self._open(item)) for item in req.sealed.signals]
                    await out.put(execution_pb2.ExecutionUpdate(acks=execution_pb2.AckBatch(acks=acks)))
                else:
                    key = self.keys.get(req.signal.phase_id)
                    await out.put(execution_pb2.ExecutionUpdate(
                        ack=self._ack(req.signal, key is not None and verify_signal(req.signal, key))))
            await out.put(None)

        async def pump() -> None:
            while True:
                await out.put(await self.outgoing.get())

        reader = asyncio.ensure_future(read())
        pusher = asyncio.ensure_future(pump())
        try:
            while True:
                item = await out.get()
                if item is None:
                    break
                yield item
        finally:
            reader.cancel()
            pusher.cancel()

    def _open(self, item: execution_pb2.SealedSignal) -> tuple[trading_pb2.Signal, bool]:
        signal = open_sealed(item, self.keys.get(item.phase_id))
        if signal is None:
            return trading_pb2.Signal(phase_id=item.phase_id, signal_id=item.signal_id), False
        return signal, True

    def _ack(self, sig: trading_pb2.Signal, ok: bool) -> trading_pb2.SignalAck:
        """Record the signal; accepted when its signature held and no reject reason is set."""
        if not ok:
            self.bad_signatures += 1
        self.signals.append(sig)
        accepted = ok and not self.reject_reason
        reason = 0
        if not accepted:
            reason = trading_pb2.REJECT_REASON_BAD_SIGNATURE if not ok else self.reject_reason
        return trading_pb2.SignalAck(phase_id=sig.phase_id, signal_id=sig.signal_id, accepted=accepted, reason=reason)


class ExecServer:
    """Start/stop a TinyExecution on a fixed loopback port (restartable on the same port)."""

    def __init__(self, servicer: TinyExecution, port: int = 0) -> None:
        self.servicer = servicer
        self.port = port
        self.server: grpc.aio.Server | None = None

    async def start(self) -> str:
        server = grpc.aio.server()
        execution_pb2_grpc.add_ExecutionServicer_to_server(self.servicer, server)  # type: ignore[no-untyped-call]
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self.server = server
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=None)
            self.server = None
