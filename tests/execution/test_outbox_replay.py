"""The publisher with an outbox, on real JetStream and PostgreSQL: events are journaled before
``submit`` returns, leave the outbox once JetStream acknowledged them, and what a killed process left
unacknowledged is replayed to the ledger exactly once — also when replayed twice (a lost cursor) and
when the ledger receives the same events again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import REGISTRY

from tests.execution.helpers import fills_of, leg, make_engine, orders_of, positions_of, signal
from tests.util import wait_for
from titan.core.bus import unpack
from titan.core.catalog import Catalog
from titan.core.ledger import Ledger, LedgerWriter
from titan.execution.engine import Update
from titan.execution.envelopes import to_event
from titan.execution.outbox import Outbox, scan
from titan.execution.publisher import JetStreamPublisher
from titan.v1 import events_pb2, trading_pb2


def outcomes(prefix: str, n: int, symbol: str = "BTCUSDT") -> list[Update]:
    """The updates of ``n`` accepted, filled signals (order, fill, position, decision each)."""
    engine, clock = make_engine()
    updates: list[Update] = []
    for i in range(n):
        decision = engine.on_signal(signal(clock, leg(symbol, size="1000"), signal_id=f"{prefix}-{i}"))
        assert decision.ack.accepted, decision.ack.detail
        updates += decision.updates
    return updates


def kill(box: Outbox) -> None:
    """What the kernel does to a killed process's outbox: descriptors closed, nothing else."""
    os.close(box._fd)
    os.close(box._lock_fd)


async def test_submit_journals_and_jetstream_acks_empty_the_outbox(bus_js, catalog: Catalog, tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "outbox")
    publisher = JetStreamPublisher(bus_js, catalog, outbox=box)
    updates = outcomes("ack", 3, "ETHUSDT")  # the other test's ledger sees these: another position
    publisher.submit(updates)  # not started yet: nothing can have been published
    assert box.unacknowledged == 1  # one submit, one journaled message carrying all 12 events
    (record,) = scan(box.segments()[0].read_bytes()).events
    assert [e.event_id for e in unpack(events_pb2.Event.FromString(record.payload))] == [
        to_event(u).event_id for u in updates]
    await publisher.start()
    assert await publisher.flush(10)
    assert box.acked == box.last_seq == 1 and publisher.published == len(updates) and publisher.messages == 1
    await publisher.stop()
    assert not (tmp_path / "outbox").exists()  # nothing to replay: nothing left behind


async def test_a_killed_process_events_reach_the_ledger_exactly_once(
    bus_nc, bus_js, catalog: Catalog, ledger: Ledger, tmp_path: Path
) -> None:
    directory = tmp_path / "outbox"
    updates = outcomes("kill", 4)
    first = Outbox.open(directory)
    for i in range(0, len(updates), 4):  # one frame per signal: journaled, acked to the phase ...
        JetStreamPublisher(bus_js, catalog, outbox=first).submit(updates[i:i + 4])
    kill(first)  # ... and the process dies before JetStream had any of them

    async def decided() -> list[events_pb2.SignalDecision]:
        return [d for d in await ledger.decisions("hunter", limit=100) if d.ack.signal_id.startswith("kill-")]

    async def filled() -> list[trading_pb2.Fill]:
        return [f for f in await ledger.fills("hunter") if f.symbol == "BTCUSDT"]

    kept = tmp_path / "copy"
    shutil.copytree(directory, kept)  # the same journal, as if the cursor record were lost

    writer = LedgerWriter(bus_nc, catalog, ledger)
    await writer.start()
    try:
        second = Outbox.open(directory)
        assert len(second.backlog) == 4  # one message per signal's outcome
        publisher = JetStreamPublisher(bus_js, catalog, outbox=second)
        assert await publisher.replay(second.take_backlog()) == len(updates) == publisher.published
        assert second.acked == second.last_seq
        await publisher.stop()

        cids = {o.client_order_id for o in orders_of(updates)}

        async def recorded() -> bool:
            return len(await decided()) == 4 and len(await filled()) == len(fills_of(updates))

        await wait_for(recorded, timeout=30, interval=0.1)

        # replayed again (the cursor lost): JetStream drops them as duplicates, the ledger is unchanged
        (kept / "LOCK").unlink()
        third = Outbox.open(kept)
        again = JetStreamPublisher(bus_js, catalog, outbox=third)
        await again.replay(third.take_backlog())
        assert again.duplicates == len(updates)
        await again.stop()
    finally:
        await writer.stop()

    # and the ledger itself drops every one of them by event id (past JetStream's duplicate window)
    events = [to_event(u) for u in updates]
    assert await ledger.record_many(events) == [False] * len(events)
    orders = [o for o in await ledger.orders("hunter", limit=100) if o.symbol == "BTCUSDT"]
    assert sorted(o.client_order_id for o in orders) == sorted(cids)
    assert sorted(f.fill_id for f in await filled()) == sorted(f.fill_id for f in fills_of(updates))
    assert sorted(d.ack.signal_id for d in await decided()) == [f"kill-{i}" for i in range(4)]
    (position,) = [p for p in await ledger.positions("hunter") if p.symbol == "BTCUSDT"]
    assert position == positions_of(updates)[-1]


async def test_a_record_that_is_no_event_is_skipped_with_a_reason(bus_js, catalog: Catalog, tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    updates = outcomes("odd", 1, "ETHUSDT")
    first = Outbox.open(directory)
    first.append([b"\x08\x96\x01 not an event", to_event(updates[0]).SerializeToString(deterministic=True)])
    kill(first)
    second = Outbox.open(directory)
    publisher = JetStreamPublisher(bus_js, catalog, outbox=second)
    skipped = REGISTRY.get_sample_value("titan_execution_outbox_errors_total", {"reason": "invalid_event"}) or 0
    assert await publisher.replay(second.take_backlog()) == 1
    assert publisher.published == 1
    assert REGISTRY.get_sample_value("titan_execution_outbox_errors_total", {"reason": "invalid_event"}) == skipped + 1
    await publisher.stop()


async def test_a_failed_journal_write_is_counted_and_the_events_still_published(
    bus_js, catalog: Catalog, tmp_path: Path
) -> None:
    box = Outbox.open(tmp_path / "outbox")
    publisher = JetStreamPublisher(bus_js, catalog, outbox=box)
    await publisher.start()
    failures = REGISTRY.get_sample_value("titan_execution_outbox_errors_total", {"reason": "write"}) or 0
    os.close(box._fd)  # the journal's file gone under it: the next write() fails (EBADF)
    lost_journal = outcomes("nojournal", 1, "ETHUSDT")
    publisher.submit(lost_journal)
    assert REGISTRY.get_sample_value("titan_execution_outbox_errors_total", {"reason": "write"}) == failures + 1
    assert await publisher.flush(10) and publisher.published == len(lost_journal)  # from memory
    publisher.submit(outcomes("journal-again", 1, "ETHUSDT"))  # a new segment takes the next batch
    (segment,) = box.segments()  # (the broken one held no event: deleted)
    assert [r.seq for r in scan(segment.read_bytes()).events] == [1]  # its 4 events in one record
    assert await publisher.flush(10)
    await publisher.stop()
    assert not (tmp_path / "outbox").exists()
