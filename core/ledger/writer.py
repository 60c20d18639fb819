"""The ledger writer: a durable JetStream consumer that persists every event, acking after commit."""

from __future__ import annotations

import logging
from collections import Counter

from nats.js import JetStreamContext

from titan.core.bus.consumer import DurableConsumer, Reject
from titan.core.bus.events import InvalidEvent, decode_event, event_kind
from titan.core.catalog import Catalog
from titan.core.clock import NS_PER_S, Clock, WallClock
from titan.core.ledger.repository import Ledger
from titan.core.ledger.rows import LedgerReject
from titan.core.metrics import LEDGER_EVENTS, LEDGER_LAG
from titan.v1 import events_pb2

log = logging.getLogger("titan.ledger")


class LedgerWriter:
    """Consumes ``catalog.ledger_consumer`` and records each event in the :class:`Ledger`.

    Every fetch (up to ``batch`` events) is committed in one transaction and then acked. A
    redelivered event changes nothing (the ledger is idempotent); a malformed one is terminated and
    counted (``titan_bus_rejects_total``, ``titan_ledger_events_total{result="rejected"}``). When a
    batch fails in the database, its events are retried one by one at once, so one bad event cannot
    hold its neighbours back; an event that still fails is naked and JetStream redelivers it later."""

    def __init__(
        self,
        js: JetStreamContext,
        catalog: Catalog,
        ledger: Ledger,
        *,
        clock: Clock | None = None,
        batch: int = 256,
        nak_delay_s: float = 0.5,
    ) -> None:
        self.ledger = ledger
        self.catalog = catalog
        self._clock: Clock = clock or WallClock()
        self.consumer: DurableConsumer[events_pb2.Event] = DurableConsumer(
            js, catalog.ledger_consumer, None, self._decode, batch_handler=self._handle_batch, batch=batch,
            nak_delay_s=nak_delay_s,
        )
        self.applied = 0
        self.duplicates = 0
        self.batches = 0
        self.retried_singly = 0  # events retried on their own after their batch failed

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def __aenter__(self) -> LedgerWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @staticmethod
    def _decode(data: bytes) -> events_pb2.Event:
        try:
            return decode_event(data)
        except InvalidEvent:
            LEDGER_EVENTS.labels(kind="unknown", result="rejected").inc()
            raise

    async def _record(self, events: list[events_pb2.Event]) -> list[bool | Exception]:
        try:
            return list(await self.ledger.record_many(events))
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

    async def _handle_batch(self, events: list[events_pb2.Event]) -> list[Exception | None]:
        self.batches += 1
        outcomes: list[Exception | None] = []
        counts: Counter[tuple[str, str]] = Counter()  # (kind, result): the metric moved once per batch
        last = 0
        for event, result in zip(events, await self._record(events), strict=True):
            kind = str(event_kind(event))
            if isinstance(result, LedgerReject):
                counts[kind, "rejected"] += 1
                outcomes.append(Reject(result.reason, str(result)))
            elif isinstance(result, Exception):
                counts[kind, "error"] += 1
                outcomes.append(result)
            else:
                if result:
                    self.applied += 1
                else:
                    self.duplicates += 1
                counts[kind, "applied" if result else "duplicate"] += 1
                outcomes.append(None)
                last = max(last, event.ts_ns)
        for (kind, outcome), n in counts.items():
            LEDGER_EVENTS.labels(kind=kind, result=outcome).inc(n)
        if last > 0:
            LEDGER_LAG.set(max(0, self._clock.now_ns() - last) / NS_PER_S)
        return outcomes
