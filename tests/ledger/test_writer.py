"""LedgerWriter end to end: JetStream events -> PostgreSQL, exactly once in effect."""

from __future__ import annotations

import uuid

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from titan.core.bus import publish_event
from titan.core.bus.events import batch_event
from titan.core.catalog import Catalog
from titan.core.clock import NS_PER_S, ManualClock
from titan.core.ledger import Ledger, LedgerWriter
from titan.core.ledger.batches import PreparedBatch
from titan.core.ledger.statements import LedgerReject

from ..util import wait_for
from .builders import T0, fill_event


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class LostAckLedger(Ledger):
    """Commits, then fails for the batch holding one event id and for that event retried alone:
    what a connection lost between commit and ack looks like."""

    def __init__(self, inner: Ledger, fail_event_id: str) -> None:
        super().__init__(inner.pool)
        self.fail_event_id = fail_event_id
        self.failures = 0

    async def write(self, batch: PreparedBatch) -> list[bool | LedgerReject]:
        results = await super().write(batch)
        if self.failures < 2 and any(e.event_id == self.fail_event_id for e in batch.events):
            self.failures += 1
            raise ConnectionError("connection lost before the ack")
        return results


class PoisonLedger(Ledger):
    """The database refuses one event (whatever batch it is in); every other event is fine."""

    def __init__(self, inner: Ledger, poison_id: str) -> None:
        super().__init__(inner.pool)
        self.poison_id = poison_id
        self.refused = 0

    async def write(self, batch: PreparedBatch) -> list[bool | LedgerReject]:
        if any(e.event_id == self.poison_id for e in batch.events):
            self.refused += 1
            raise ConnectionError("server closed the connection unexpectedly")
        return await super().write(batch)


async def test_published_events_land_in_the_ledger(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog, ledger: Ledger
) -> None:
    clock = ManualClock(T0 + 3 * NS_PER_S)
    before_applied = _metric("titan_ledger_events_total", kind="fill", result="applied")
    async with LedgerWriter(bus_nc, catalog, ledger, clock=clock) as writer:
        for i in range(5):
            await publish_event(bus_js, catalog, fill_event(f"e2e-{i}", phase_id="e2e", ts_ns=T0 + i))
        await wait_for(lambda: writer.applied == 5)
        assert [f.fill_id for f in await ledger.fills("e2e")] == [f"e2e-{i}" for i in range(5)]
    assert _metric("titan_ledger_events_total", kind="fill", result="applied") == before_applied + 5
    assert _metric("titan_ledger_lag_seconds") == pytest.approx(3 - 4 / NS_PER_S)  # clock minus last ts


async def test_redelivered_event_is_written_once(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog, ledger: Ledger
) -> None:
    phase = f"p{uuid.uuid4().hex[:6]}"
    ev = fill_event("redeliver-1", phase_id=phase)
    flaky = LostAckLedger(ledger, ev.event_id)
    before_dup = _metric("titan_ledger_events_total", kind="fill", result="duplicate")
    async with LedgerWriter(bus_nc, catalog, flaky, nak_delay_s=0.05) as writer:
        ack = await publish_event(bus_js, catalog, ev)
        # the same event id published again inside the duplicate window: JetStream drops it
        assert (await publish_event(bus_js, catalog, ev)).duplicate
        # ... and once more as a separate message (e.g. republished after the window): stored twice
        await bus_js.publish(catalog.event_subject("execution", "fill"), ev.SerializeToString())
        # first delivery: committed, then "lost" (naked); redelivery and the copy find it recorded
        await wait_for(lambda: writer.duplicates == 2)
        assert flaky.failures == 2 and writer.retried_singly >= 1
        assert writer.consumer.naked == 1
        assert writer.applied == 0
    assert [f.fill_id for f in await ledger.fills(phase)] == ["redeliver-1"]
    assert await ledger.event_count("fill") >= 1 and await ledger.has_event(ev.event_id)
    assert _metric("titan_ledger_events_total", kind="fill", result="duplicate") == before_dup + 2
    info = await bus_js.consumer_info(catalog.ledger_consumer.stream, catalog.ledger_consumer.durable)
    assert info.num_ack_pending == 0 and ack.seq <= info.ack_floor.stream_seq


async def test_malformed_events_are_terminated_and_the_writer_keeps_going(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog, ledger: Ledger
) -> None:
    durable = catalog.ledger_consumer.durable
    subject = catalog.event_subject("execution", "fill")
    before = {
        "decode": _metric("titan_bus_rejects_total", consumer=durable, reason="decode"),
        "bad_decimal": _metric("titan_bus_rejects_total", consumer=durable, reason="bad_decimal"),
        "rejected": _metric("titan_ledger_events_total", kind="fill", result="rejected"),
    }
    events_before = await ledger.event_count()
    async with LedgerWriter(bus_nc, catalog, ledger) as writer:
        await bus_js.publish(subject, b"\x12\x34 not an event")
        await publish_event(bus_js, catalog, fill_event("bad-price", price="1e", phase_id="mal"))
        await publish_event(bus_js, catalog, fill_event("after-bad", phase_id="mal"))
        await wait_for(lambda: writer.consumer.terminated == 2)
        await wait_for(lambda: writer.applied == 1)
        assert writer.consumer.running
    assert [f.fill_id for f in await ledger.fills("mal")] == ["after-bad"]
    assert await ledger.event_count() == events_before + 1
    assert _metric("titan_bus_rejects_total", consumer=durable, reason="decode") == before["decode"] + 1
    assert _metric("titan_bus_rejects_total", consumer=durable, reason="bad_decimal") == before["bad_decimal"] + 1
    assert _metric("titan_ledger_events_total", kind="fill", result="rejected") == before["rejected"] + 1


async def test_a_fetch_is_committed_as_one_batch(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog, ledger: Ledger,
) -> None:
    phase = f"b{uuid.uuid4().hex[:6]}"
    for i in range(300):  # waiting in the stream before the writer starts: a few large fetches
        await publish_event(bus_js, catalog, fill_event(f"{phase}-{i}", phase_id=phase, ts_ns=T0 + i))
    async with LedgerWriter(bus_nc, catalog, ledger, batch=128) as writer:
        await wait_for(lambda: writer.applied == 300)
        assert 3 <= writer.batches < 300 and writer.retried_singly == 0 and writer.duplicates == 0
    assert [f.fill_id for f in await ledger.fills(phase, limit=1000)] == [f"{phase}-{i}" for i in range(300)]


async def test_one_event_the_database_refuses_does_not_hold_back_its_batch(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog, ledger: Ledger
) -> None:
    phase = f"x{uuid.uuid4().hex[:6]}"
    events = [fill_event(f"{phase}-{i}", phase_id=phase, ts_ns=T0 + i) for i in range(10)]
    poison = PoisonLedger(ledger, events[4].event_id)
    for ev in events:
        await publish_event(bus_js, catalog, ev)
    async with LedgerWriter(bus_nc, catalog, poison, nak_delay_s=0.05) as writer:
        await wait_for(lambda: writer.applied == 9)
        await wait_for(lambda: writer.consumer.naked >= 2)  # the refused one comes back, and is refused again
        landed = {f.fill_id for f in await ledger.fills(phase)}
        assert landed == {e.fill.fill_id for i, e in enumerate(events) if i != 4}
        poison.poison_id = ""  # the database accepts it now: the next redelivery lands it
        await wait_for(lambda: writer.applied == 10)
    assert len(await ledger.fills(phase)) == 10


async def test_a_batch_is_recorded_as_its_events_and_a_bad_one_refuses_only_itself(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog, ledger: Ledger
) -> None:
    phase = f"bt{uuid.uuid4().hex[:6]}"
    durable = catalog.ledger_consumer.durable
    rejects = _metric("titan_bus_rejects_total", consumer=durable, reason="bad_decimal")
    good = [fill_event(f"{phase}-{i}", phase_id=phase, ts_ns=T0 + i) for i in range(3)]
    bad = fill_event(f"{phase}-bad", price="1e", phase_id=phase)
    async with LedgerWriter(bus_nc, catalog, ledger) as writer:
        await publish_event(bus_js, catalog, batch_event(good[:2], "execution"))
        await publish_event(bus_js, catalog, batch_event([bad, good[2]], "execution"))
        await wait_for(lambda: writer.applied == 3 and writer.consumer.terminated == 1)
        await publish_event(bus_js, catalog, batch_event(good, "execution"))  # another batch, the same events
        await wait_for(lambda: writer.duplicates == 3)
    assert [f.fill_id for f in await ledger.fills(phase)] == [f"{phase}-{i}" for i in range(3)]
    assert not await ledger.has_event(bad.event_id)
    assert _metric("titan_bus_rejects_total", consumer=durable, reason="bad_decimal") == rejects + 1


async def test_a_large_fetch_is_split_into_transactions_at_message_boundaries(
    bus_nc: Client, bus_js: JetStreamContext, catalog: Catalog, ledger: Ledger
) -> None:
    """Messages of 4 events under a cap of 10 events per transaction: two messages per transaction,
    a message bigger than the cap alone in its own, every event once and in order."""
    phase = f"cap{uuid.uuid4().hex[:6]}"
    events = [fill_event(f"{phase}-{i:02d}", phase_id=phase, ts_ns=T0 + i) for i in range(36)]
    messages = [batch_event(events[i:i + 4], "execution") for i in range(0, 24, 4)]
    messages.append(batch_event(events[24:36], "execution"))  # 12 events: above the cap, alone
    for message in messages:  # waiting in the stream before the writer starts: one fetch
        await publish_event(bus_js, catalog, message)
    ledger_writes: list[int] = []

    class CountingLedger(Ledger):
        async def write(self, batch: PreparedBatch) -> list[bool | LedgerReject]:
            ledger_writes.append(len(batch.events))
            return await super().write(batch)

    async with LedgerWriter(bus_nc, catalog, CountingLedger(ledger.pool), max_events=10) as writer:
        await wait_for(lambda: writer.applied == 36)
        assert writer.transactions == len(ledger_writes) >= 4 and writer.duplicates == 0
    # one fetch (the usual case) writes [8, 8, 8, 12]; a fetch cut short by timing only splits more
    assert sum(ledger_writes) == 36 and 12 in ledger_writes
    assert all(n <= 10 or n == 12 for n in ledger_writes), ledger_writes
    assert [f.fill_id for f in await ledger.fills(phase, limit=100)] == [e.fill.fill_id for e in events]
    with pytest.raises(ValueError, match="max_events"):
        LedgerWriter(bus_nc, catalog, ledger, max_events=0)
