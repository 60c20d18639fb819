"""The execution gRPC service: a thin shell around :class:`titan.execution.engine.Engine`.

* ``StreamSignals`` (bidirectional): each frame's signals are decided and executed by the engine, the
  events they produced handed to the publisher (journaled in the outbox when it has one), and then
  the SignalAcks written back; the order, fill and position updates of the phase follow once
  JetStream has them (``titan.execution.routing.phase_messages``). A stream
  receives updates of a phase only after it sent a correctly signed signal of that phase (a Hello
  alone subscribes to nothing).
* ``GetState`` (read-only), ``SetTradingState``, ``Flatten``, ``UpdateBudgets``: each needs a
  ``ControlAuth`` signed with the control key, issued within the replay window and with a fresh
  nonce; otherwise PERMISSION_DENIED (counted in ``titan_execution_control_rejects_total``).
* Budgets and the trading state also arrive from NATS KV (newer version wins, either source).
* Market data arrives on core NATS (``catalog.md_all``).
* Health checking (SERVING only after recovery) and server reflection are on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from titan.core.marketdata.events import MalformedEvent, decode, kind_of
from titan.core.metrics import (
    BUS_REJECTS,
    CONTROL_REJECTS,
    EQUITY,
    EXPOSURE,
    PNL,
    POSITION_QTY,
    SIGNAL_ACK_LATENCY,
    STREAMS_OPEN,
    TRADING_STATE,
)
from titan.core.signing import open_sealed, verify_control
from titan.execution.engine import UNAUTHENTICATED, Decision, Engine, Update
from titan.execution.orders import ManagedOrder
from titan.execution.routing import ack_update, phase_messages
from titan.v1 import common_pb2, execution_pb2, execution_pb2_grpc, trading_pb2

log = logging.getLogger("titan.execution")

SERVICE_NAME = execution_pb2.DESCRIPTOR.services_by_name["Execution"].full_name
_EOF = grpc.aio.EOF


class Sink(Protocol):
    """What the service needs from an event publisher (JetStreamPublisher, MemorySink)."""

    def submit(self, updates: list[Update]) -> None: ...


class _Stream:
    """One open StreamSignals call. A single writer task owns the stream's writes (gRPC allows one at
    a time): acks first, then order/fill/position updates, so an ack never queues behind a burst of updates
    and the reader never waits for a write. The updates JetStream acknowledged together come as one
    ``UpdateBatch`` per phase (``routing.phase_messages``)."""

    __slots__ = ("acks", "closed", "context", "phase", "updates", "wake", "writer")

    def __init__(self, context: Any) -> None:
        self.context = context
        self.phase = ""
        self.acks: deque[tuple[execution_pb2.ExecutionUpdate, int, Any]] = deque()
        self.updates: deque[execution_pb2.ExecutionUpdate] = deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.writer: asyncio.Task[None] | None = None

    def ack(self, msg: execution_pb2.ExecutionUpdate, t0: int, hist: Any) -> None:
        self.acks.append((msg, t0, hist))
        self.wake.set()

    def push(self, msgs: list[execution_pb2.ExecutionUpdate]) -> None:
        if not self.closed:
            self.updates.extend(msgs)
            self.wake.set()

    async def run(self) -> None:
        try:
            await self._run()
        except Exception as exc:  # the call ended under us: the reader sees it too
            self.closed = True
            log.debug("stream writer stopped: %s", exc)

    async def _run(self) -> None:
        write = self.context.write
        acks, updates = self.acks, self.updates
        perf = time.perf_counter_ns
        while True:
            if acks:
                msg, t0, hist = acks.popleft()
                await write(msg)
                hist.observe((perf() - t0) / 1e9)  # signal received -> its ack written
            elif updates:
                await write(updates.popleft())
            elif self.closed:
                return
            else:
                self.wake.clear()
                await self.wake.wait()

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (acks first), then stop the writer."""
        self.closed = True
        self.wake.set()
        if self.writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.writer), timeout)
            except (TimeoutError, asyncio.CancelledError, Exception):
                self.writer.cancel()


class RejectLog:
    """Counts dropped bus messages by reason and logs them: the first of a reason at once, then at
    most one line per reason every ``every_s`` seconds, saying how many were dropped meanwhile."""

    def __init__(self, consumer: str, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.consumer = consumer
        self.every_s = every_s
        self.clock = clock
        self._next: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def drop(self, reason: str, detail: str) -> None:
        BUS_REJECTS.labels(consumer=self.consumer, reason=reason).inc()
        now = self.clock()
        self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
        if now < self._next.get(reason, 0.0):
            return
        count = self._unlogged.pop(reason)
        self._next[reason] = now + self.every_s
        log.warning("%s: dropped %d malformed message%s (%s), the last: %s", self.consumer, count,
                    "" if count == 1 else "s", reason, detail[:200])


class ControlGuard:
    """Verifies signed control calls: HMAC with the control key, issued_at within the window, nonce
    never seen within the window."""

    def __init__(self, key: bytes, window_ns: int, clock: Callable[[], int] = time.time_ns) -> None:
        self.key = key
        self.window_ns = window_ns
        self.clock = clock
        self._nonces: dict[str, int] = {}
        self._order: deque[tuple[int, str]] = deque()

    def check(self, call: str, request: Any) -> str:
        """Empty string when the call may proceed, else the reason label."""
        reason = self._check(request)
        if reason:
            CONTROL_REJECTS.labels(call=call, reason=reason).inc()
        return reason

    def _check(self, request: Any) -> str:
        if not self.key:
            return "no_control_key"
        if not request.HasField("auth"):
            return "unsigned"
        auth = request.auth
        if not verify_control(request, self.key):
            return "bad_signature"
        now = self.clock()
        if abs(now - auth.issued_at_ns) > self.window_ns:
            return "stale"
        if not auth.nonce or len(auth.nonce) > 128:
            return "bad_nonce"
        horizon = now - 2 * self.window_ns
        while self._order and self._order[0][0] < horizon:
            _, n = self._order.popleft()
            self._nonces.pop(n, None)
        if auth.nonce in self._nonces:
            return "replayed"
        self._nonces[auth.nonce] = now
        self._order.append((now, auth.nonce))
        return ""


class ExecutionServicer(execution_pb2_grpc.ExecutionServicer):
    def __init__(
        self,
        engine: Engine,
        sink: Sink,
        control: ControlGuard,
        *,
        cpus: list[int] | None = None,
        mode: str = "paper",
        submit: Callable[[list[ManagedOrder], list[ManagedOrder]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.control = control
        self.cpus = cpus or []
        self.mode = mode
        self._submit = submit
        self._streams: dict[str, set[_Stream]] = {}
        self._latency: dict[str, Any] = {}
        self._md_rejects = RejectLog("execution-md")
        self.ready = asyncio.Event()

    # --- updates to phases -------------------------------------------------------------------
    def forward(self, updates: list[Update]) -> None:
        """Send order, fill and position updates to the streams of their phase. Called with what
        JetStream acknowledged, so a phase never sees a fill the bus could still lose."""
        for phase, msgs in phase_messages(updates).items():
            for stream in self._streams.get(phase, ()):
                stream.push(msgs)

    def emit(
        self, updates: list[Update], submissions: list[ManagedOrder] | None = None,
        cancels: list[ManagedOrder] | None = None,
    ) -> None:
        if updates:
            self.sink.submit(updates)
        if self._submit is not None:  # with the orders the engine created on its own (hedge steps)
            submissions = [*(submissions or ()), *self.engine.take_submissions()]
            if submissions or cancels:
                self._submit(submissions, list(cancels or ()))

    # --- StreamSignals -----------------------------------------------------------------------
    async def StreamSignals(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        await self.ready.wait()
        stream = _Stream(context)
        stream.writer = asyncio.ensure_future(stream.run())
        label = "unknown"
        keys = self.engine.gate.keys
        try:
            while True:
                req = await context.read()
                if req is _EOF:
                    break
                t0 = time.perf_counter_ns()
                received = time.time_ns()
                body = req.WhichOneof("body")
                if body == "hello":
                    if req.hello.phase_id in keys and label == "unknown":
                        label = req.hello.phase_id
                        STREAMS_OPEN.labels(phase=label).inc()
                    continue
                if body == "sealed":
                    decisions = self._decide_frame(self._opened(req.sealed.signals), received)
                elif body == "signal":
                    decisions = self._decide_frame(((req.signal, False),), received)
                elif body == "signals":
                    decisions = self._decide_frame(((signal, False) for signal in req.signals.signals), received)
                else:
                    continue
                phase, updates, submissions = self._execute_frame(decisions)
                if phase and stream.phase != phase:
                    self._bind(stream, phase)
                    if label == "unknown":  # no Hello: the first authentic signal names the stream
                        label = phase
                        STREAMS_OPEN.labels(phase=label).inc()
                if updates or submissions:
                    self.emit(updates, submissions)  # journaled in the outbox before the acks leave
                self._ack_frame(stream, decisions, t0, batched=body != "signal")
            await stream.close()
        finally:
            if stream.phase:
                self._streams.get(stream.phase, set()).discard(stream)
            if label != "unknown":
                STREAMS_OPEN.labels(phase=label).dec()
            if stream.writer is not None and not stream.writer.done():
                stream.writer.cancel()

    def _opened(self, sealed: Iterable[execution_pb2.SealedSignal]) -> Iterator[tuple[trading_pb2.Signal, bool]]:
        """Each sealed signal with whether its signature held over the bytes it came as, checked
        before they are parsed (``titan.core.signing.open_sealed``). One that fails goes on as an
        unsigned signal of the phase and id its envelope names, so the gate answers it
        ``UNKNOWN_PHASE`` or ``BAD_SIGNATURE`` under ids the phase knows; its bytes are never parsed."""
        keys = self.engine.gate.keys
        for item in sealed:
            signal = open_sealed(item, keys.get(item.phase_id))
            if signal is None:
                yield trading_pb2.Signal(phase_id=item.phase_id, signal_id=item.signal_id), False
            else:
                yield signal, True

    def _decide_frame(
        self, signals: Iterable[tuple[trading_pb2.Signal, bool]], received: int
    ) -> list[tuple[Decision, bool]]:
        """Decide every signal of one frame in order (each with whether its signature was already
        checked), each with whether it was authentic. The decisions keep their orders until
        :meth:`_execute_frame`, so a second stream's frame in between publishes none of them."""
        engine = self.engine
        keys = engine.gate.keys
        decisions: list[tuple[Decision, bool]] = []
        for signal, verified in signals:
            decision = engine.decide(signal, received, verified=verified)
            decisions.append((decision, decision.ack.reason not in UNAUTHENTICATED and decision.ack.phase_id in keys))
        return decisions

    def _ack_frame(self, stream: _Stream, decisions: list[tuple[Decision, bool]], t0: int, *, batched: bool) -> None:
        """Queue a frame's acks as one message, once the events they produced are submitted (with an
        outbox: journaled), so no ack leaves before its outcome would survive a kill."""
        first, authentic = decisions[0] if decisions else (None, False)
        key = first.ack.phase_id if first is not None and authentic else "unknown"
        hist = self._latency.get(key)
        if hist is None:
            hist = self._latency[key] = SIGNAL_ACK_LATENCY.labels(phase=key)
        if batched:
            message = execution_pb2.ExecutionUpdate(acks=execution_pb2.AckBatch(acks=[d.ack for d, _ in decisions]))
        else:
            message = ack_update(decisions[0][0].ack)
        stream.ack(message, t0, hist)

    def _execute_frame(
        self, decisions: list[tuple[Decision, bool]]
    ) -> tuple[str, list[Update], list[ManagedOrder]]:
        """Execute a frame's decisions as one input (``Engine.execute_frame``: each order and position
        once, as the frame left it). Returns the phase of the last authentic signal ("" when none
        was) and the frame's updates and venue submissions, to be emitted together."""
        updates = self.engine.execute_frame([decision for decision, _ in decisions])
        submissions: list[ManagedOrder] = []
        phase = ""
        for decision, authentic in decisions:
            submissions.extend(decision.submissions)
            if authentic:
                phase = decision.ack.phase_id
        return phase, updates, submissions

    def _bind(self, stream: _Stream, phase: str) -> None:
        if stream.phase:
            self._streams.get(stream.phase, set()).discard(stream)
        stream.phase = phase
        self._streams.setdefault(phase, set()).add(stream)

    # --- unary calls -------------------------------------------------------------------------
    async def GetState(self, request: execution_pb2.GetStateRequest, context: Any) -> execution_pb2.ExecutionState:
        reason = self.control.check("GetState", request)
        if reason:
            await self._deny(context, "GetState", reason)
        e = self.engine
        phase = request.phase_id
        snaps = e.equity()
        return execution_pb2.ExecutionState(
            trading_state=e.trading_state,
            budgets=e.budgets(phase),
            positions=e.positions(phase),
            open_orders=e.open_orders(phase),
            equity=[x for x in snaps if not phase or x.scope in (phase, "total")],
            cpus=self.cpus,
            venue=e.config.venue,
            mode=self.mode,
        )

    async def _deny(self, context: Any, call: str, reason: str) -> None:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{call}: {reason}")

    async def SetTradingState(self, request: execution_pb2.SetTradingStateRequest, context: Any) -> trading_pb2.TradingState:  # noqa: E501
        reason = self.control.check("SetTradingState", request)
        if reason:
            await self._deny(context, "SetTradingState", reason)
        applied, updates, cancels = self.engine.set_trading_state(request.state)
        if applied:
            set_mode_metric(self.engine.trading_state.mode)
        self.emit(updates, [], cancels)
        return self.engine.trading_state

    async def Flatten(self, request: execution_pb2.FlattenRequest, context: Any) -> execution_pb2.FlattenResponse:
        reason = self.control.check("Flatten", request)
        if reason:
            await self._deny(context, "Flatten", reason)
        cids, updates, submissions, cancels = self.engine.flatten(
            request.phase_id, request.symbol, request.auth.nonce
        )
        self.emit(updates, submissions, cancels)
        return execution_pb2.FlattenResponse(client_order_ids=cids)

    async def UpdateBudgets(self, request: execution_pb2.UpdateBudgetsRequest, context: Any) -> execution_pb2.UpdateBudgetsResponse:  # noqa: E501
        reason = self.control.check("UpdateBudgets", request)
        if reason:
            await self._deny(context, "UpdateBudgets", reason)
        applied = stale = 0
        for b in request.budgets:
            result = self.engine.update_budget(b)
            if result == "applied":
                applied += 1
            elif result == "stale":
                stale += 1
            else:
                CONTROL_REJECTS.labels(call="UpdateBudgets", reason="invalid_budget").inc()
        return execution_pb2.UpdateBudgetsResponse(applied=applied, ignored_stale=stale)

    # --- market data, KV, periodic -----------------------------------------------------------
    def on_market_bytes(self, data: bytes) -> None:
        """One market-data message: validated as the phases validate theirs
        (``titan.core.marketdata.events.decode``); a malformed one is dropped with its reason counted
        in ``titan_bus_rejects_total{consumer="execution-md"}`` and logged (rate-limited)."""
        try:
            ev = decode(data)
            kind_of(ev)
        except MalformedEvent as err:
            self._md_rejects.drop(err.reason, str(err))
            return
        try:
            updates = self.engine.on_market(ev)
        except Exception as exc:
            self._md_rejects.drop("invalid", f"{type(exc).__name__}: {exc}")
            return
        if updates:
            self.emit(updates)

    def tick(self) -> None:
        updates = self.engine.tick()
        cancels = self.engine.take_cancels()
        if updates or cancels:
            self.emit(updates, [], cancels)

    def publish_equity(self) -> None:
        snaps = self.engine.equity_to_publish()
        for snap in snaps:
            EQUITY.labels(scope=snap.scope).set(float(snap.equity))
            if snap.scope != "total":
                EXPOSURE.labels(phase=snap.scope).set(float(snap.exposure))
                for kind in ("realized_pnl", "unrealized_pnl", "fees", "funding"):
                    PNL.labels(phase=snap.scope, kind=kind.removesuffix("_pnl")).set(float(getattr(snap, kind)))
        for pos in self.engine.portfolio:
            POSITION_QTY.labels(phase=pos.phase_id, symbol=pos.key[2]).set(float(pos.quantity))
        self.emit(list(snaps))


def set_mode_metric(mode: int) -> None:
    for name, value in common_pb2.TradingMode.items():
        if value == common_pb2.TradingMode.TRADING_MODE_UNSPECIFIED:
            continue
        TRADING_STATE.labels(state=name.removeprefix("TRADING_MODE_").lower()).set(1 if value == mode else 0)


async def start_grpc(servicer: ExecutionServicer, host: str, port: int) -> tuple[grpc.aio.Server, int, Any]:
    """Start a grpc.aio server with the Execution, health and reflection services."""
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ]
    )
    execution_pb2_grpc.add_ExecutionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    return server, bound, health_servicer


async def mark_serving(health_servicer: Any) -> None:
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)


async def periodic(interval_s: float, fn: Callable[[], Awaitable[None] | None]) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            res = fn()
            if asyncio.iscoroutine(res):
                await res
        except Exception:
            log.exception("periodic task failed")
