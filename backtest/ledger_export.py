"""Write a backtest's ledger into PostgreSQL: the same events, through the same
:meth:`titan.core.ledger.Ledger.record_many` the ledger writer uses, so the rows are the ones a
cluster would have written (idempotent: a second export of the same run adds nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from titan.core.ledger import Ledger
from titan.core.ledger.statements import LedgerReject
from titan.v1 import events_pb2

BATCH = 1_000


@dataclass(frozen=True)
class ExportReport:
    written: int
    already_there: int
    refused: tuple[str, ...]   # "event id: reason" of events the ledger cannot store


async def export_events(dsn: str, events: Sequence[events_pb2.Event]) -> ExportReport:
    ledger = await Ledger.open(dsn)
    written = already = 0
    refused: list[str] = []
    try:
        for start in range(0, len(events), BATCH):
            batch = events[start:start + BATCH]
            for event, result in zip(batch, await ledger.record_many(batch), strict=True):
                if isinstance(result, LedgerReject):
                    refused.append(f"{event.event_id}: {result}")
                elif result:
                    written += 1
                else:
                    already += 1
    finally:
        await ledger.close()
    return ExportReport(written, already, tuple(refused))


__all__ = ["ExportReport", "export_events"]
