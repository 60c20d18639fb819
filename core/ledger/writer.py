"""The ledger writer: a durable JetStream consumer that persists every event, acking after commit."""

from __future__ import annotations

import logging

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

    A redelivered event changes nothing (the ledger is idempotent); a malformed one is terminated
    and counted (``titan_bus_rejects_total``, ``titan_ledger_events_total{result="rejected"}``);
    a database failure naks the message so JetStream redelivers it later."""

    def __init__(
        self,
        js: JetStreamContext,
        catalog: Catalog,
        ledger: Ledger,
        *,
        clock: Clock | None = None,
        batch: int = 64,
        nak_delay_s: float = 0.5,
    ) -> None:
        self.ledger = ledger
        self.catalog = catalog
        self._clock: Clock = clock or WallClock()
        self.consumer: DurableConsumer[events_pb2.Event] = DurableConsumer(
            js, catalog.ledger_consumer, self._handle, self._decode, batch=batch, nak_delay_s=nak_delay_s
        )
        self.applied = 0
        self.duplicates = 0

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

    async def _handle(self, event: events_pb2.Event) -> None:
        kind = str(event_kind(event))
        try:
            applied = await self.ledger.record(event)
        except LedgerReject as exc:
            LEDGER_EVENTS.labels(kind=kind, result="rejected").inc()
            raise Reject(exc.reason, str(exc)) from None
        except Exception:
            LEDGER_EVENTS.labels(kind=kind, result="error").inc()
            raise
        if applied:
            self.applied += 1
        else:
            self.duplicates += 1
        LEDGER_EVENTS.labels(kind=kind, result="applied" if applied else "duplicate").inc()
        if event.ts_ns > 0:
            LEDGER_LAG.set(max(0, self._clock.now_ns() - event.ts_ns) / NS_PER_S)
