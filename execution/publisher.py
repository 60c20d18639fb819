"""Events out: wrap engine updates in ``titan.v1.Event`` envelopes with ids derived from natural keys,
and publish them to JetStream asynchronously, in batches, off the ack path, without losing any.

* Event ids are deterministic (``order:<cid>:<version>``, ``fill:<venue>:<fill id>``, ...), so a
  re-publish after a retry or a restart is dropped by JetStream's duplicate window and by the ledger.
* A failed publish is retried (with backoff) until it succeeds; nothing is dropped. Events wait in
  memory meanwhile (a NATS outage grows the queue; it is logged).
* ``on_published`` is called with the bodies JetStream acknowledged: the service forwards order and
  fill updates to phases only then, so a phase never sees a fill the ledger could miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from titan.core.bus.events import event_message, new_event_id, publish_event
from titan.core.catalog import Catalog
from titan.execution.engine import Update
from titan.v1 import events_pb2, trading_pb2

log = logging.getLogger("titan.execution.events")

_SAFE = re.compile(r"^[\x21-\x7e]{1,128}$")


def _safe(part: str) -> str:
    return part if _SAFE.match(part) else "h" + hashlib.sha256(part.encode()).hexdigest()[:32]


def to_event(body: Any, source: str = "execution") -> events_pb2.Event:
    """The envelope for one engine update, with its natural-key event id."""
    ev = events_pb2.Event(source=source)
    if isinstance(body, trading_pb2.Order):
        ev.event_id = new_event_id("order", body.client_order_id, body.version)
        ev.ts_ns = body.updated_at_ns
        ev.order.CopyFrom(body)
    elif isinstance(body, trading_pb2.Fill):
        ev.event_id = new_event_id("fill", body.venue, _safe(body.fill_id))
        ev.ts_ns = body.ts_ns
        ev.fill.CopyFrom(body)
    elif isinstance(body, trading_pb2.Position):
        ev.event_id = new_event_id("position", body.phase_id, body.venue, body.symbol, body.instrument, body.version)
        ev.ts_ns = body.ts_ns
        ev.position.CopyFrom(body)
    elif isinstance(body, trading_pb2.FundingPayment):
        ev.event_id = new_event_id("funding", body.venue, body.symbol, body.phase_id, body.funding_time_ns)
        ev.ts_ns = body.funding_time_ns
        ev.funding.CopyFrom(body)
    elif isinstance(body, trading_pb2.EquitySnapshot):
        ev.event_id = new_event_id("equity", body.scope, body.ts_ns)
        ev.ts_ns = body.ts_ns
        ev.equity.CopyFrom(body)
    elif isinstance(body, events_pb2.SignalDecision):
        ev.event_id = new_event_id("decision", _safe(body.ack.phase_id), _safe(body.ack.signal_id))
        ev.ts_ns = body.ack.acked_at_ns
        ev.decision.CopyFrom(body)
    elif isinstance(body, trading_pb2.HedgeOutcome):
        ev.event_id = new_event_id("hedge", _safe(body.phase_id), _safe(body.signal_id))
        ev.ts_ns = body.ts_ns
        ev.hedge.CopyFrom(body)
    elif isinstance(body, trading_pb2.TradingState):
        ev.event_id = new_event_id("trading_state", body.version, body.ts_ns or 0)
        ev.ts_ns = body.ts_ns
        ev.trading_state.CopyFrom(body)
    else:  # pragma: no cover - the engine only emits the types above
        raise TypeError(f"not an event body: {type(body).__name__}")
    return ev


class MemorySink:
    """Keeps events in memory and 'publishes' at once (backtests, benchmarks without a bus)."""

    def __init__(self, on_published: Callable[[list[Update]], None] | None = None, keep: bool = True) -> None:
        self.events: list[events_pb2.Event] = []
        self._keep = keep
        self._on_published = on_published

    def submit(self, updates: list[Update]) -> None:
        if self._keep:
            self.events.extend(to_event(u) for u in updates)
        if self._on_published is not None:
            self._on_published(updates)

    async def flush(self, timeout: float = 5.0) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    @property
    def pending(self) -> int:
        return 0


class JetStreamPublisher:
    """Batches engine updates to JetStream (TITAN_EVENTS) with message ids; never drops one."""

    def __init__(
        self,
        js: Any,
        catalog: Catalog,
        *,
        on_published: Callable[[list[Update]], None] | None = None,
        batch: int = 256,
        source: str = "execution",
        yield_every: int = 8,
    ) -> None:
        self.js = js
        self.catalog = catalog
        self.source = source
        self.batch = batch
        self.yield_every = max(1, yield_every)
        self._on_published = on_published
        self._pending: deque[tuple[Update, events_pb2.Event]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published = 0
        self.duplicates = 0
        self.retries = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, updates: list[Update]) -> None:
        for u in updates:
            self._pending.append((u, to_event(u, self.source)))
        if updates:
            self._idle.clear()
            self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="execution-publisher")

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted event is acknowledged by JetStream."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self, timeout: float = 10.0) -> None:
        await self.flush(timeout)
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _publish(self, chunk: list[tuple[Update, events_pb2.Event]]) -> list[Any]:
        """Publish a batch without waiting between messages; then wait for every JetStream ack."""
        if not hasattr(self.js, "publish_async"):
            return await asyncio.gather(
                *(publish_event(self.js, self.catalog, ev, ack_timeout_s=5.0) for _, ev in chunk),
                return_exceptions=True,
            )
        stream = self.catalog.events_stream.name
        futures: list[Any] = []
        for n, (_, ev) in enumerate(chunk, 1):
            if n % self.yield_every == 0:
                await asyncio.sleep(0)  # let signals in between: publishing must not delay acks
            try:
                subject, payload, headers = event_message(self.catalog, ev)
                fut = await self.js.publish_async(
                    subject, payload, wait_stall=None, stream=stream, headers=headers
                )
                futures.append(fut)
            except Exception as exc:
                futures.append(exc)

        pending = [f for f in futures if not isinstance(f, BaseException)]
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(pending, timeout=10.0)
        results: list[Any] = []
        for f in futures:
            if isinstance(f, BaseException):
                results.append(f)
            elif not f.done():
                f.cancel()
                results.append(TimeoutError("no JetStream ack"))
            elif f.cancelled():
                results.append(asyncio.CancelledError())
            else:
                results.append(f.exception() or f.result())
        return results

    async def _run(self) -> None:
        backoff = 0.05
        while not self._stopping:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            n = min(self.batch, len(self._pending))
            chunk = [self._pending.popleft() for _ in range(n)]
            results = await self._publish(chunk)
            done: list[Update] = []
            failed: list[tuple[Update, events_pb2.Event]] = []
            for item, res in zip(chunk, results, strict=True):
                if isinstance(res, BaseException):
                    failed.append(item)
                else:
                    done.append(item[0])
                    self.published += 1
                    if getattr(res, "duplicate", False):
                        self.duplicates += 1
            if done and self._on_published is not None:
                try:
                    self._on_published(done)
                except Exception:  # a forwarding problem must not stop publishing
                    log.exception("forwarding published updates failed")
            if failed:
                self.retries += len(failed)
                self._pending.extendleft(reversed(failed))
                log.warning("publishing %d events failed; retrying in %.2fs", len(failed), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            else:
                backoff = 0.05
