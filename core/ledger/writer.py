"""The ledger writer: a durable JetStream consumer that persists every event, acking after commit,
and publishes a heartbeat saying when the ledger was last known to be writing."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter

from nats.aio.client import Client

from titan.core.bus.consumer import DurableConsumer, Reject
from titan.core.bus.events import InvalidEvent, decode_event, event_kind, unpack
from titan.core.bus.state import StateStore
from titan.core.catalog import Catalog
from titan.core.clock import NS_PER_S, Clock, WallClock
from titan.core.ledger.batches import PreparedBatch
from titan.core.ledger.repository import Ledger
from titan.core.ledger.statements import LedgerReject
from titan.core.metrics import LEDGER_EVENTS, LEDGER_LAG
from titan.core.tasks import cancel_all, raise_if_cancelled
from titan.v1 import events_pb2

log = logging.getLogger("titan.ledger")
# Events per transaction: a fetch of 256 messages of 192 events (64-signal frames) is ~49,000 events,
# which would hold locks and memory for one long transaction.
MAX_EVENTS_PER_TRANSACTION = 8192


class LedgerWriter:
    """Consumes ``catalog.ledger_consumer`` and records each event in the :class:`Ledger`.

    Every fetch (up to ``batch`` messages; a ``titan.v1.EventBatch`` brings its inner events) is
    committed in transactions of at most ``max_events`` events (cut at message boundaries) and then
    acked. Two fetches are in hand at once: the next one is decoded and prepared (``Ledger.prepare``)
    while the database commits the previous one, and waits for that commit before its own write, so
    fetches are written one at a time, in the order they were fetched (retries included). A
    redelivered event changes nothing (the ledger is idempotent); a malformed one is terminated and
    counted (``titan_bus_rejects_total``, ``titan_ledger_events_total{result="rejected"}``). When a
    transaction fails in the database, its events are retried one by one at once, so one bad event
    cannot hold its neighbours back; an event that still fails is naked (with its whole message) and
    JetStream redelivers it later.

    Every ``heartbeat_s`` (0 = never) it puts a ``LedgerHeartbeat`` in the control bucket: the last
    time a batch committed or, when none committed within the interval, the database accepted a
    write probe (``pg_current_xact_id()``: it fails on a server that cannot write). Execution refuses
    entries when that time grows older than its grace (``REJECT_REASON_LEDGER_UNAVAILABLE``)."""

    def __init__(
        self,
        nc: Client,
        catalog: Catalog,
        ledger: Ledger,
        *,
        clock: Clock | None = None,
        batch: int = 256,
        max_events: int = MAX_EVENTS_PER_TRANSACTION,
        nak_delay_s: float = 0.5,
        heartbeat_s: float = 1.0,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.ledger = ledger
        self.max_events = max_events
        self.heartbeat_s = heartbeat_s
        self.writing_at_ns = 0  # last commit or successful write probe
        self.failing_since_ns = 0  # 0, or when commits (or probes) started failing
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self._heartbeat: asyncio.Task[None] | None = None
        self.catalog = catalog
        self._clock: Clock = clock or WallClock()
        self.consumer: DurableConsumer[events_pb2.Event] = DurableConsumer(
            nc, catalog.ledger_consumer, None, self._decode, batch_handler=self._handle_batch, batch=batch,
            pipeline=2, nak_delay_s=nak_delay_s,
        )
        self._store = StateStore(self.consumer.js, catalog)  # the consumer's JetStream context
        self._previous_written: asyncio.Event | None = None  # set once the previous batch was written
        self.applied = 0
        self.duplicates = 0
        self.batches = 0
        self.transactions = 0  # transactions written: a fetch takes one or more
        self.retried_singly = 0  # events retried on their own after their batch failed

    async def start(self) -> None:
        await self.consumer.start()
        if self.heartbeat_s > 0 and self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat_forever(), name="ledger-heartbeat")

    async def stop(self) -> None:
        if self._heartbeat is not None:
            await cancel_all([self._heartbeat])
            self._heartbeat = None
        await self.consumer.stop()

    async def __aenter__(self) -> LedgerWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- heartbeat ------------------------------------------------------------------------------
    async def _beat_forever(self) -> None:
        while True:
            raise_if_cancelled()  # publishing the heartbeat may swallow a stop
            await self.beat()
            await asyncio.sleep(self.heartbeat_s)

    async def beat(self) -> events_pb2.LedgerHeartbeat:
        """Probe the database when nothing committed within the interval, then publish (each bounded
        by the interval; a failure is logged on its transition and retried at the next beat)."""
        now = self._clock.now_ns()
        if now - self.writing_at_ns >= self.heartbeat_s * NS_PER_S:
            try:
                await asyncio.wait_for(self.ledger.pool.fetchval("SELECT pg_current_xact_id()"),
                                       max(self.heartbeat_s, 1.0))
                self._writing(self._clock.now_ns())
            except Exception as exc:
                self._failing(now, exc)
        heartbeat = events_pb2.LedgerHeartbeat(writing_at_ns=self.writing_at_ns, ts_ns=self._clock.now_ns(),
                                               writer=self.identity, failing_since_ns=self.failing_since_ns)
        try:
            await asyncio.wait_for(self._store.put_ledger_heartbeat(heartbeat), max(self.heartbeat_s, 1.0))
        except Exception as exc:
            log.debug("ledger heartbeat not published (%s: %s)", type(exc).__name__, exc)
        return heartbeat

    def _writing(self, now_ns: int) -> None:
        if self.failing_since_ns:
            log.warning("ledger: writing again after %.1fs", (now_ns - self.failing_since_ns) / NS_PER_S)
        self.writing_at_ns = max(self.writing_at_ns, now_ns)
        self.failing_since_ns = 0

    def _failing(self, now_ns: int, exc: BaseException) -> None:
        if not self.failing_since_ns:
            self.failing_since_ns = now_ns
            log.warning("ledger: not writing (%s: %s); execution refuses entries after its grace",
                        type(exc).__name__, exc)

    @staticmethod
    def _decode(data: bytes) -> events_pb2.Event:
        try:
            return decode_event(data)
        except InvalidEvent:
            LEDGER_EVENTS.labels(kind="unknown", result="rejected").inc()
            raise

    async def _record(self, batch: PreparedBatch) -> list[bool | Exception]:
        events = batch.events
        try:
            return list(await self.ledger.write(batch))
        except Exception as exc:
            log.warning("ledger: a batch of %d failed (%s: %s); retrying one by one", len(events),
                        type(exc).__name__, exc)
        results: list[bool | Exception] = []
        for event in events:
            self.retried_singly += 1
            try:
                results.append(await self.ledger.record(event))
            except Exception as exc:  # LedgerReject included
                results.append(exc)
        return results

    async def _write_chunks(self, first: PreparedBatch, rest: list[list[events_pb2.Event]]) -> list[bool | Exception]:
        """Write prepared transactions one after the other, in order; each next one is prepared in a
        worker thread while the database executes the one before (the event loop only waits on the
        socket meanwhile, so the two overlap: Python on one core, PostgreSQL on another)."""
        results: list[bool | Exception] = []
        batch = first
        for chunk in rest:
            writing = asyncio.ensure_future(self._record(batch))
            try:
                batch = await asyncio.to_thread(self.ledger.prepare, chunk, checked=True)
            finally:
                results.extend(await writing)  # awaited even when preparing failed: no write is left behind
                self.transactions += 1
        results.extend(await self._record(batch))
        self.transactions += 1
        return results

    async def _handle_batch(self, messages: list[events_pb2.Event]) -> list[Exception | None]:
        """Write the events of a fetch (a batch message counts as its inner events) in transactions of
        at most ``max_events`` events (a bigger message alone), one after the other; one outcome per
        message: an error if any of its events failed (the message is redelivered; what was written
        is then a duplicate), else a reject if any was refused."""
        self.batches += 1
        events: list[events_pb2.Event] = []
        owners: list[int] = []  # per event: the index of its message
        chunks: list[list[events_pb2.Event]] = [[]]  # the events of each transaction
        for m, message in enumerate(messages):
            inner = unpack(message)
            if chunks[-1] and len(chunks[-1]) + len(inner) > self.max_events:
                chunks.append([])
            chunks[-1].extend(inner)
            events.extend(inner)
            owners.extend([m] * len(inner))
        # decode_event validated every envelope; no await before: overlaps the previous fetch's write
        first = self.ledger.prepare(chunks[0], checked=True)
        previous, written = self._previous_written, asyncio.Event()
        self._previous_written = written
        try:
            if previous is not None:
                await previous.wait()
            results = await self._write_chunks(first, chunks[1:])
        finally:
            written.set()
        outcomes: list[Exception | None] = [None] * len(messages)
        counts: Counter[tuple[str, str]] = Counter()  # (kind, result): the metric moved once per batch
        last = 0
        failure: Exception | None = None
        for owner, event, result in zip(owners, events, results, strict=True):
            kind = str(event_kind(event))
            if isinstance(result, LedgerReject):
                counts[kind, "rejected"] += 1
                if outcomes[owner] is None:
                    outcomes[owner] = Reject(result.reason, str(result))
            elif isinstance(result, Exception):
                counts[kind, "error"] += 1
                outcomes[owner] = failure = result
            else:
                if result:
                    self.applied += 1
                else:
                    self.duplicates += 1
                counts[kind, "applied" if result else "duplicate"] += 1
                last = max(last, event.ts_ns)
        now = self._clock.now_ns()
        if any(not isinstance(r, Exception) for r in results):
            self._writing(now)
        elif failure is not None:
            self._failing(now, failure)
        for (kind, outcome), n in counts.items():
            LEDGER_EVENTS.labels(kind=kind, result=outcome).inc(n)
        if last > 0:
            LEDGER_LAG.set(max(0, self._clock.now_ns() - last) / NS_PER_S)
        return outcomes
