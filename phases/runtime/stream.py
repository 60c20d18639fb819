"""The phase's one signed gRPC stream to execution, with reconnect and backoff.

Signals are queued (bounded) and written on the open stream; every update coming back (acks, orders,
fills, positions) goes to ``on_update``. When the stream breaks, the client reconnects with
exponential backoff (``min_backoff_s`` doubling up to ``max_backoff_s``, reset after a connection that
stayed up). Queued signals whose TTL has passed are dropped instead of sent late. Whatever is
queued when the stream is ready to write goes out as one frame, a ``SealedBatch`` of up to
``max_batch`` signals, each as the bytes its signature covers (``titan.core.signing.seal_signal``:
execution checks the signature before it parses them); a frame's acks come back in one ``AckBatch``
and reach ``on_update`` one by one; so do the order, fill and position updates of an ``UpdateBatch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc

from titan.core.clock import NS_PER_MS, Clock, WallClock
from titan.core.metrics import PHASE_STREAM_DROPPED, PHASE_STREAM_RECONNECTS, PHASE_STREAM_UP
from titan.core.signing import seal_signal
from titan.v1 import execution_pb2, execution_pb2_grpc, trading_pb2

log = logging.getLogger("titan.phases.stream")

UpdateHandler = Callable[[execution_pb2.ExecutionUpdate], Awaitable[None] | None]


@dataclass(frozen=True)
class StreamConfig:
    target: str                      # host:port of the execution service
    phase_id: str
    instance: str = ""
    min_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    queue_size: int = 1000
    max_batch: int = 256             # signals per frame at most


class SignalStream:
    """Keeps one ``StreamSignals`` call open. ``send`` never blocks; ``run`` loops until ``stop``."""

    def __init__(self, config: StreamConfig, on_update: UpdateHandler, clock: Clock | None = None) -> None:
        self.config = config
        self.on_update = on_update
        self.clock = clock or WallClock()
        self._buffer: deque[trading_pb2.Signal] = deque()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.connected = asyncio.Event()
        self.connects = 0
        self.sent = 0
        self.dropped = 0
        self._call: grpc.aio.StreamStreamCall | None = None
        PHASE_STREAM_UP.labels(phase=config.phase_id).set(0)

    # --- public ---------------------------------------------------------------------------------
    def send(self, signal: trading_pb2.Signal) -> bool:
        """Queue a (signed) signal; False (and counted) when the queue is full."""
        if len(self._buffer) >= self.config.queue_size:
            self._drop("queue_full")
            return False
        self._buffer.append(signal)
        self._wake.set()
        return True

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def stop(self) -> None:
        self._stopping.set()
        call = self._call
        if call is not None:
            call.cancel()

    async def run(self) -> None:
        backoff = self.config.min_backoff_s
        while not self._stopping.is_set():
            started = asyncio.get_running_loop().time()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as err:
                log.warning("execution stream %s: %s %s", self.config.target, err.code().name, err.details() or "")
            except Exception as err:  # never let the stream task die
                log.warning("execution stream %s: %s: %s", self.config.target, type(err).__name__, err)
            finally:
                self._set_connected(False)
            if self._stopping.is_set():
                break
            if asyncio.get_running_loop().time() - started > 2 * self.config.max_backoff_s:
                backoff = self.config.min_backoff_s  # it stayed up for a while: start over
            PHASE_STREAM_RECONNECTS.labels(phase=self.config.phase_id).inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            backoff = min(backoff * 2, self.config.max_backoff_s)

    # --- internals -------------------------------------------------------------------------------
    def _drop(self, reason: str) -> None:
        self.dropped += 1
        PHASE_STREAM_DROPPED.labels(phase=self.config.phase_id, reason=reason).inc()

    def _set_connected(self, up: bool) -> None:
        if up:
            self.connected.set()
        else:
            self.connected.clear()
        PHASE_STREAM_UP.labels(phase=self.config.phase_id).set(1 if up else 0)

    async def _requests(self, done: asyncio.Event) -> AsyncIterator[execution_pb2.StreamRequest]:
        """Hello, then queued signals until ``done``: a finished session never takes a signal off
        the queue, so nothing queued is lost across a reconnect."""
        yield execution_pb2.StreamRequest(
            hello=execution_pb2.Hello(phase_id=self.config.phase_id, instance=self.config.instance)
        )
        while not done.is_set():
            if not self._buffer:
                self._wake.clear()
                waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(done.wait())}
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
                continue
            frame = self._take_frame()
            if not frame:
                continue
            self.sent += len(frame)
            yield execution_pb2.StreamRequest(
                sealed=execution_pb2.SealedBatch(signals=[seal_signal(signal) for signal in frame]))

    def _take_frame(self) -> list[trading_pb2.Signal]:
        """The queued signals still within their TTL, oldest first, up to ``max_batch``."""
        frame: list[trading_pb2.Signal] = []
        now = self.clock.now_ns()
        while self._buffer and len(frame) < self.config.max_batch:
            signal = self._buffer.popleft()
            if signal.ttl_ms and now > signal.created_at_ns + signal.ttl_ms * NS_PER_MS:
                self._drop("ttl_expired")
                continue
            frame.append(signal)
        return frame

    async def _deliver(self, update: execution_pb2.ExecutionUpdate) -> None:
        body = update.WhichOneof("body")
        if body == "acks":
            for ack in update.acks.acks:
                await self._deliver(execution_pb2.ExecutionUpdate(ack=ack))
            return
        if body == "updates":
            for inner in update.updates.updates:
                await self._deliver(inner)
            return
        result = self.on_update(update)
        if result is not None:
            await result

    async def _session(self) -> None:
        async with grpc.aio.insecure_channel(self.config.target) as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=max(self.config.max_backoff_s, 1.0))
            stub = execution_pb2_grpc.ExecutionStub(channel)  # type: ignore[no-untyped-call]
            done = asyncio.Event()
            call = stub.StreamSignals(self._requests(done))
            self._call = call
            try:
                await call.wait_for_connection()
                self.connects += 1
                self._set_connected(True)
                log.info("execution stream to %s open", self.config.target)
                async for update in call:
                    await self._deliver(update)
            finally:
                done.set()
                self._call = None
                call.cancel()
