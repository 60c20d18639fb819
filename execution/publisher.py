"""Events out: wrap engine updates in ``titan.v1.Event`` envelopes with ids derived from natural keys,
and publish them to JetStream asynchronously, in batches, off the ack path, without losing any.

* What one :meth:`JetStreamPublisher.submit` gets (the outcome of a frame of signals, of a market
  event, of a tick) goes as one JetStream message, a ``titan.v1.EventBatch`` (split only past
  ``BATCH_MAX_BYTES``): JetStream stores, and with ``sync_interval: always`` fsyncs, one record per
  input instead of one per event. Consumers read messages through ``titan.core.bus.unpack``.
* Event ids are deterministic (``order:<cid>:<version>``, ``fill:<venue>:<fill id>``, ...; see
  ``titan.execution.envelopes``), so a
  re-publish after a retry or a restart is dropped by JetStream's duplicate window (a batch's id
  hashes its events' ids) and by the ledger (each event's own id).
* A failed publish is retried (with backoff) until it succeeds; nothing is dropped. Events wait in
  memory meanwhile (a NATS outage grows the queue; it is logged).
* With an :class:`~titan.execution.outbox.Outbox`, :meth:`JetStreamPublisher.submit` journals the
  events (one ``write()`` per call) before it returns, so the caller may acknowledge what produced
  them; JetStream's acks move the outbox's cursor, and :meth:`JetStreamPublisher.replay` publishes
  what an earlier process journaled and JetStream never acknowledged.
* A failed journal write is logged and counted, and the events wait in memory only. The publisher
  then reports a *journal problem* (:attr:`JetStreamPublisher.journal_problem`, and each change to
  ``on_journal``) until a write succeeds again and every event that missed the journal is in
  JetStream: the gate refuses entries meanwhile (``OUTBOX_UNAVAILABLE``, see ``dependencies.py``).
* ``on_published`` is called with the bodies JetStream acknowledged: the service forwards order and
  fill updates to phases only then, so a phase never sees a fill the ledger could miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from google.protobuf.message import DecodeError

from titan.core.bus.events import batches, event_message, unpack
from titan.core.catalog import Catalog
from titan.core.metrics import OUTBOX_ERRORS, OUTBOX_UNACKNOWLEDGED
from titan.core.tasks import cancel_all, raise_if_cancelled
from titan.execution.engine import Update
from titan.execution.envelopes import envelope, to_event
from titan.execution.outbox import Outbox, Record
from titan.v1 import events_pb2

log = logging.getLogger("titan.execution.events")


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

    async def stop(self, timeout: float = 10.0) -> None:
        return None

    @property
    def pending(self) -> int:
        return 0

    @property
    def unpublished(self) -> bool:
        return False


class Outgoing(NamedTuple):
    """One message on its way to JetStream: the updates it carries (none when replayed from the
    outbox), its outbox sequence (0: not journaled), its JetStream message and how many events that
    message carries."""

    updates: tuple[Update, ...]
    seq: int
    subject: str
    payload: bytes
    headers: dict[str, str]
    events: int


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
        outbox: Outbox | None = None,
    ) -> None:
        self.js = js
        self.outbox = outbox
        self.catalog = catalog
        self.source = source
        self.batch = batch
        self.yield_every = max(1, yield_every)
        self._on_published = on_published
        self._pending: deque[Outgoing] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published = 0  # events JetStream acknowledged (a batch counts its events)
        self.messages = 0  # messages JetStream acknowledged
        self.duplicates = 0  # events JetStream already had
        self.retries = 0
        self.on_journal: Callable[[str | None], None] | None = None  # each change of journal_problem
        self._journal_error: OSError | None = None  # the last journal write's failure (None: it succeeded)
        self._unjournaled = 0  # events of failed journal writes not yet acknowledged by JetStream
        self._reported: str | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def unpublished(self) -> bool:
        """Events submitted and not yet acknowledged by JetStream (queued or in flight)."""
        return not self._idle.is_set()

    @property
    def journal_problem(self) -> str | None:
        """Why acknowledged events may not be durable: the last journal write failed, or events that
        missed the journal still wait for JetStream in memory. None with no outbox or no problem."""
        if self._journal_error is not None:
            return f"writing the outbox {self._where()} failed ({self._journal_error.strerror or self._journal_error})"
        if self._unjournaled:
            return (f"{self._unjournaled} messages the outbox {self._where()} could not journal wait in memory "
                    "for NATS")
        return None

    def _where(self) -> str:
        return str(self.outbox.directory) if self.outbox is not None else "(closed)"

    def _report_journal(self) -> None:
        problem = self.journal_problem
        if problem != self._reported:
            self._reported = problem
            if self.on_journal is not None:
                self.on_journal(problem)

    def submit(self, updates: list[Update]) -> None:
        """Queue ``updates`` for JetStream as one message (a batch unless there is one update);
        with an outbox, journaled before this returns."""
        if not updates:
            return
        messages: list[tuple[tuple[Update, ...], str, bytes, dict[str, str]]] = []
        at = 0
        for message, count in batches(updates, self.source, envelope):
            carried, at = tuple(updates[at:at + count]), at + count
            try:
                # envelope() gives each event a body and the id new_event_id gives for its keys: the
                # batch's own envelope is what is left to check
                subject, payload, headers = event_message(self.catalog, message, inner_checked=True)
            except ValueError as exc:  # pragma: no cover - the engine only builds valid events
                OUTBOX_ERRORS.labels(reason="invalid_event").inc()
                log.error("updates that make no valid event are not published: %s", exc)
                continue
            messages.append((carried, subject, payload, headers))
        first = self._journal([m[2] for m in messages])
        pending = self._pending
        for i, (carried, subject, payload, headers) in enumerate(messages):
            pending.append(Outgoing(carried, first + i if first else 0, subject, payload, headers, len(carried)))
        if self.outbox is not None and not first:
            self._unjournaled += len(messages)
        self._report_journal()
        self._idle.clear()
        self._wake_after_current()

    def _wake_after_current(self) -> None:
        """Wake the publishing task behind what the current callback schedules: the ack a stream
        queues right after submitting (journaled, so it may leave) is written before publishing runs."""
        try:
            asyncio.get_running_loop().call_soon(self._wake.set)
        except RuntimeError:  # no loop running (a synchronous caller): wake it now
            self._wake.set()

    def _journal(self, payloads: list[bytes]) -> int:
        """The outbox sequence of the first payload, 0 when there is no outbox or the write failed
        (the events then wait in memory only, as without an outbox)."""
        if self.outbox is None or not payloads:
            return 0
        try:
            first = self.outbox.append(payloads)
        except OSError as exc:
            OUTBOX_ERRORS.labels(reason="write").inc()
            if self._journal_error is None:  # one line per failing spell, the count says the rest
                log.error("journaling %d events in the outbox failed (%s): they wait in memory only",
                          len(payloads), exc)
            self._journal_error = exc
            return 0
        if self._journal_error is not None:
            log.warning("the outbox %s journals again", self.outbox.directory)
            self._journal_error = None
        return first

    async def replay(self, records: list[Record], progress_every_s: float = 10.0) -> int:
        """Publish what an earlier process journaled and JetStream never acknowledged, before anything
        new, and wait until JetStream has all of it (retrying as long as it takes). Returns how many
        events were published, a batch counting its events (a record that is no publishable event is
        skipped, logged and counted)."""
        queued = messages = 0
        for record in records:
            try:
                event = events_pb2.Event.FromString(record.payload)
                subject, _, headers = event_message(self.catalog, event)
            except (DecodeError, ValueError) as exc:  # e.g. a kind this version does not know
                OUTBOX_ERRORS.labels(reason="invalid_event").inc()
                log.error("outbox record %d is not an event this execution can publish (%s); skipped",
                          record.seq, exc)
                continue
            carried = len(unpack(event))
            self._pending.append(Outgoing((), record.seq, subject, record.payload, headers, carried))
            queued += carried
            messages += 1
        if not records:
            return 0
        log.warning("replaying %d events from the outbox (%d messages) that JetStream never acknowledged",
                    queued, messages)
        self._idle.clear()
        self._wake.set()
        await self.start()
        started = time.monotonic()
        while not await self.flush(progress_every_s):
            log.warning("outbox replay: %d messages still waiting for JetStream after %.0fs", self.pending,
                        time.monotonic() - started)
        log.info("outbox replay done: %d events in JetStream", queued)
        return queued

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
        """Publish what is queued (up to ``timeout``), stop, and close the outbox: what JetStream did
        not acknowledge by then stays journaled for the next start."""
        await self.flush(timeout)
        self._stopping = True
        self._wake.set()
        if self._task is not None:  # bounded: nats-py can swallow a cancellation (core/tasks.py)
            await cancel_all([self._task])
            self._task = None
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None

    async def _publish(self, chunk: list[Outgoing]) -> list[Any]:
        """Publish a batch without waiting between messages; then wait for every JetStream ack."""
        stream = self.catalog.events_stream.name
        if not hasattr(self.js, "publish_async"):
            return await asyncio.gather(
                *(self.js.publish(o.subject, o.payload, timeout=5.0, stream=stream, headers=o.headers)
                  for o in chunk),
                return_exceptions=True,
            )
        futures: list[Any] = []
        for n, item in enumerate(chunk, 1):
            if n % self.yield_every == 0:
                await asyncio.sleep(0)  # let signals in between: publishing must not delay acks
            try:
                fut = await self.js.publish_async(
                    item.subject, item.payload, wait_stall=None, stream=stream, headers=item.headers
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
            raise_if_cancelled()  # after the last chunk's bookkeeping: its acks are not lost
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            n = min(self.batch, len(self._pending))
            chunk = [self._pending.popleft() for _ in range(n)]
            results = await self._publish(chunk)
            done: list[Update] = []
            failed: list[Outgoing] = []
            for item, res in zip(chunk, results, strict=True):
                if isinstance(res, BaseException):
                    failed.append(item)
                else:
                    if item.updates:
                        done.extend(item.updates)
                        if not item.seq and self._unjournaled:
                            self._unjournaled -= 1
                    self.published += item.events
                    self.messages += 1
                    if getattr(res, "duplicate", False):
                        self.duplicates += item.events
            if failed:
                self._pending.extendleft(reversed(failed))
            if self.outbox is not None:
                self.outbox.acknowledge(self._cursor())
                OUTBOX_UNACKNOWLEDGED.set(self.outbox.unacknowledged)
                self._report_journal()
            if done and self._on_published is not None:
                try:
                    self._on_published(done)
                except Exception:  # a forwarding problem must not stop publishing
                    log.exception("forwarding published updates failed")
            if failed:
                self.retries += len(failed)
                log.warning("publishing %d events failed; retrying in %.2fs", len(failed), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            else:
                backoff = 0.05

    def _cursor(self) -> int:
        """The highest outbox sequence up to which JetStream acknowledged every journaled event: one
        chunk is in flight at a time and failed ones go back to the front, so it is the first queued
        journaled event's predecessor, or the newest journaled event when none is queued."""
        assert self.outbox is not None
        for item in self._pending:
            if item.seq:
                return item.seq - 1
        return self.outbox.last_seq
