"""The Brain's performance tilt survives a restart: closed trades its durable consumer had already
acked are replayed from JetStream on start, whichever order the drivers restore and start in, and
nothing counts twice. Real NATS JetStream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from tests.util import wait_for
from titan.core.bus import StateStore, connect, new_event_id, publish_event
from titan.core.bus.events import batch_event
from titan.core.catalog import BRAIN_CARRY_KEY, Catalog
from titan.core.clock import NS_PER_S, ManualClock, WallClock
from titan.operator.brain import BrainPolicy
from titan.operator.runtime import BrainRuntime
from titan.v1 import common_pb2, events_pb2, trading_pb2

PHASE = "scavenger"
POLICY = BrainPolicy().performance
PNLS = ["3", "1.5", "2", "-0.5", "2.5", "1", "4", "0.5", "2", "3", "1", "2.2"]  # 12 closing trades


def closing_fill(i: int, pnl: str, ts_ns: int) -> events_pb2.Event:
    fill = trading_pb2.Fill(
        venue="paper", fill_id=f"perf-{i}", client_order_id=f"{PHASE}-s{i}-0", phase_id=PHASE, symbol="BTCUSDT",
        instrument=common_pb2.INSTRUMENT_KIND_PERP, side=common_pb2.SIDE_SELL, price="100", quantity="1",
        fee="0.1", maker=False, realized_pnl=pnl, ts_ns=ts_ns,
    )
    return events_pb2.Event(event_id=new_event_id("fill", "paper", fill.fill_id), source="execution", ts_ns=ts_ns,
                            fill=fill)


def trades(rt: BrainRuntime) -> list[Decimal]:
    return [t.pnl for t in rt.core.performance.window(PHASE, time.time_ns(), POLICY.window_s)]


def funding_paid(amount: str, ts_ns: int) -> events_pb2.Event:
    payment = trading_pb2.FundingPayment(venue="paper", symbol="BTCUSDT", phase_id=PHASE, amount=amount,
                                         funding_time_ns=ts_ns)
    return events_pb2.Event(event_id=new_event_id("funding", "paper", "BTCUSDT", PHASE, ts_ns), source="execution",
                            ts_ns=ts_ns, funding=payment)


async def consumed(js: JetStreamContext, catalog: Catalog, delivered: int = 0) -> bool:
    """The Brain's durable has acked everything stored (and was delivered at least ``delivered``)."""
    spec = catalog.brain_consumer
    info = await js.consumer_info(spec.stream, spec.durable)
    return info.num_ack_pending == 0 and info.num_pending == 0 and info.delivered.stream_seq >= delivered


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    conn = await connect(nats_url, "titan-tests-brain-perf")
    yield conn
    await conn.close()


@pytest.fixture
async def fresh(nc: Client) -> AsyncIterator[Catalog]:
    """A namespace of its own: the Brain's durable starts with this test."""
    catalog = Catalog(namespace=f"perf{time.time_ns() % 10**9}")
    yield catalog
    js = nc.jetstream()
    for stream in catalog.streams:
        await js.delete_stream(stream.name)
    for bucket in catalog.buckets:
        await js.delete_key_value(bucket.name)


async def test_the_tilt_survives_restarts(nc: Client, catalog: Catalog) -> None:
    js = nc.jetstream()
    now = time.time_ns()
    first = BrainRuntime(nc, catalog, WallClock())
    await first.start()
    # An old closing fill (outside the 7-day window) counts for nothing; an opening one (no realized
    # PnL) is no trade, its fee belongs to the trade the next closing fill ends.
    await publish_event(js, catalog, closing_fill(100, "9", now - 8 * 86_400 * NS_PER_S))
    await publish_event(js, catalog, closing_fill(101, "0", now))
    for i, pnl in enumerate(PNLS):
        await publish_event(js, catalog, closing_fill(i, pnl, now - (len(PNLS) - i) * 60 * NS_PER_S))
    net = [Decimal(p) - Decimal("0.1") for p in PNLS]
    net[0] -= Decimal("0.1")  # the opening fill's fee
    await wait_for(lambda: trades(first) == net)
    tilt = first.core.performance.modifier(PHASE, time.time_ns(), POLICY)
    assert tilt > 1  # a profitable run tilts the weight up
    state = first.core.to_dict()
    await wait_for(lambda: consumed(js, catalog))  # (an ack still in flight would only be redelivered later)
    await first.close()

    # The kopf driver starts the runtime, then restores the TitanBrain's status.core.
    second = BrainRuntime(nc, catalog, WallClock())
    await second.start()
    second.restore(state)
    assert trades(second) == net
    assert second.core.performance.modifier(PHASE, time.time_ns(), POLICY) == tilt
    await publish_event(js, catalog, closing_fill(12, "1", now))  # the durable goes on from where it was
    await wait_for(lambda: trades(second) == [*net, Decimal("0.9")])
    await second.close()

    # The local driver restores its saved core first, then starts.
    third = BrainRuntime(nc, catalog, WallClock())
    third.restore(state)
    await third.start()
    assert trades(third) == [*net, Decimal("0.9")]  # each trade once
    await third.close()


@pytest.mark.parametrize("batched", [False, True], ids=["single-events", "batches"])
async def test_the_replay_includes_the_funding_a_position_carried(nc: Client, fresh: Catalog, batched: bool) -> None:
    """Opened (fee 0.1), paid 0.3 of funding, closed (+2, fee 0.1): one trade of 1.5, before and
    after a restart; the same when the events travel in batches (as execution publishes them)."""
    js = nc.jetstream()
    now = time.time_ns()
    first = BrainRuntime(nc, fresh, WallClock())
    try:
        await first.start()
        opening = closing_fill(200, "0", now - 120 * NS_PER_S)  # no PnL: it opens
        funding = funding_paid("-0.3", now - 60 * NS_PER_S)
        closing = closing_fill(201, "2", now)
        messages = ([batch_event([opening, funding], "execution"), batch_event([closing], "execution")] if batched
                    else [opening, funding, closing])
        for message in messages:
            await publish_event(js, fresh, message)
        await wait_for(lambda: trades(first) == [Decimal("1.5")])
        await wait_for(lambda: consumed(js, fresh))
        state = first.core.to_dict()
        await first.close()
        second = BrainRuntime(nc, fresh, WallClock())
        await second.start()
        second.restore(state)
        assert trades(second) == [Decimal("1.5")]
        await second.close()
    finally:
        await first.close()


async def test_a_first_start_replays_nothing(nc: Client, fresh: Catalog) -> None:
    rt = BrainRuntime(nc, fresh, WallClock())
    try:
        await rt.start()  # no durable consumer yet: it will deliver every event itself
        assert trades(rt) == []
    finally:
        await rt.close()


async def test_an_event_in_two_batches_counts_once_and_a_restart_keeps_what_positions_carried(
        nc: Client, fresh: Catalog) -> None:
    """Execution's outbox, replayed after JetStream's duplicate window, can publish an event again
    inside a batch with another id: the Brain counts it once. An opening fill and a funding payment
    replayed at a restart in kopf's order (start, then restore) still belong to the trade that closes
    after it."""
    js = nc.jetstream()
    now = time.time_ns()
    first = BrainRuntime(nc, fresh, WallClock())
    try:
        await first.start()
        opening = closing_fill(300, "0", now - 120 * NS_PER_S)  # fee 0.1
        again = batch_event([opening, funding_paid("-0.3", now - 60 * NS_PER_S)], "execution")
        for message in (batch_event([opening], "execution"), again):  # two batches, two ids, one opening fill
            await publish_event(js, fresh, message)
        await wait_for(lambda: consumed(js, fresh, delivered=2))
        assert first.events_seen == 3 and trades(first) == []
        state = first.core.to_dict()
        await first.close()

        second = BrainRuntime(nc, fresh, WallClock())
        await second.start()   # replays both batches: the opening fee once, the funding once
        second.restore(state)
        await publish_event(js, fresh, batch_event([closing_fill(301, "2", now), opening], "execution"))
        await wait_for(lambda: trades(second) == [Decimal("2") - Decimal("0.1") - Decimal("0.3") - Decimal("0.1")])
        await second.close()
    finally:
        await first.close()


DAY_NS = 86_400 * NS_PER_S


async def carried_by_the_first_brain(js: JetStreamContext, catalog: Catalog, nc: Client, now: int) -> dict[str, object]:
    """A Brain sees a position open (fee 0.1) and pay 0.3 of funding, in a batch as execution
    publishes them, and stops; returns its persisted core."""
    first = BrainRuntime(nc, catalog, WallClock())
    try:
        await first.start()
        opening = closing_fill(400, "0", now - 120 * NS_PER_S)
        await publish_event(js, catalog, batch_event([opening, funding_paid("-0.3", now - 60 * NS_PER_S)], "execution"))
        await wait_for(lambda: consumed(js, catalog, delivered=1))
        assert first.events_seen == 2 and trades(first) == []
        return first.core.to_dict()
    finally:
        await first.close()


async def test_a_position_opened_before_the_window_closes_with_all_it_carried(nc: Client, fresh: Catalog) -> None:
    """A restart eight days after a position opened (its fee and funding stored before the 7-day
    window) still closes it with both: the replay carries from the stream's start, and checkpoints
    the carry, so the restart after that needs none of those messages any more."""
    js = nc.jetstream()
    now = time.time_ns()
    state = await carried_by_the_first_brain(js, fresh, nc, now)

    second = BrainRuntime(nc, fresh, ManualClock(now + 8 * DAY_NS))
    try:
        await second.start()  # kopf's order: start, then restore
        second.restore(state)
        stored = await StateStore(js, fresh).get_brain_carry()
        assert stored is not None and stored.through_seq == 1
        assert [(c.phase_id, c.symbol, Decimal(c.amount)) for c in stored.carried] == [
            (PHASE, "BTCUSDT", Decimal("-0.4"))]
    finally:
        await second.close()

    # The messages the checkpoint covers are gone: only the checkpoint knows what the position carried.
    await js.purge_stream(fresh.events_stream.name, seq=stored.through_seq + 1)
    third = BrainRuntime(nc, fresh, ManualClock(now + 9 * DAY_NS))
    try:
        third.restore(state)  # the local driver's order: restore, then start
        await third.start()
        await publish_event(js, fresh, closing_fill(401, "2", now + 9 * DAY_NS))
        await wait_for(lambda: trades(third) == [Decimal("2") - Decimal("0.1") - Decimal("0.3") - Decimal("0.1")])
    finally:
        await third.close()


async def test_an_unreadable_checkpoint_replays_from_the_start(nc: Client, fresh: Catalog) -> None:
    js = nc.jetstream()
    now = time.time_ns()
    state = await carried_by_the_first_brain(js, fresh, nc, now)
    kv = await js.key_value(fresh.control_bucket.name)
    await kv.put(BRAIN_CARRY_KEY, b"\xff not a BrainCarry")
    rt = BrainRuntime(nc, fresh, ManualClock(now + 8 * DAY_NS))
    try:
        await rt.start()
        rt.restore(state)
        await publish_event(js, fresh, closing_fill(401, "2", now + 8 * DAY_NS))
        await wait_for(lambda: trades(rt) == [Decimal("1.5")])
        stored = await StateStore(js, fresh).get_brain_carry()
        assert stored is not None and stored.through_seq == 1  # written again
    finally:
        await rt.close()


async def test_the_replay_counts_trades_over_the_window_of_the_policy_it_follows_under(
        nc: Client, fresh: Catalog) -> None:
    """The kopf driver opens the runtime at start and follows the stream at the first reconcile,
    under the TitanBrain's policy: a 10-day window counts a trade stored 8 days before the restart,
    the default 7-day one does not."""
    js = nc.jetstream()
    now = time.time_ns()
    first = BrainRuntime(nc, fresh, WallClock())
    try:
        await first.start()
        await publish_event(js, fresh, closing_fill(500, "2", now))
        await wait_for(lambda: consumed(js, fresh, delivered=1))
    finally:
        await first.close()
    for days, expected in ((7, []), (10, [Decimal("1.9")])):
        rt = BrainRuntime(nc, fresh, ManualClock(now + 8 * DAY_NS))
        try:
            await rt.open()
            rt.policy = BrainPolicy(performance=replace(POLICY, window_s=days * 86_400))
            await rt.follow()
            assert trades(rt) == expected
        finally:
            await rt.close()
        kv = await js.key_value(fresh.control_bucket.name)
        await kv.delete(BRAIN_CARRY_KEY)  # each restart replays from the start


async def test_a_running_brain_moves_its_checkpoint_up_to_the_window(nc: Client, fresh: Catalog) -> None:
    """A Brain that runs on moves its carry checkpoint over what it acked before the performance
    window (on a scratch core: its own state is untouched), so a restart after the messages were
    purged still closes the position with all it carried."""
    js = nc.jetstream()
    now = time.time_ns()
    state = await carried_by_the_first_brain(js, fresh, nc, now)
    clock = ManualClock(now + 8 * DAY_NS)
    rt = BrainRuntime(nc, fresh, clock)
    try:
        await rt.start()  # checkpoint: through 1, -0.4
        rt.restore(state)
        await publish_event(js, fresh, funding_paid("-0.2", now))
        await wait_for(lambda: consumed(js, fresh, delivered=2))
        assert rt.core.carried() == {(PHASE, "paper", "BTCUSDT", common_pb2.INSTRUMENT_KIND_PERP): Decimal("-0.6")}
        upto = await rt.replay.ack_floor()
        assert upto == 2
        assert await rt.replay.advance(now - DAY_NS, upto, clock.now_ns()) is None  # stored inside that window
        assert await rt.replay.advance(clock.now_ns() - 7 * DAY_NS, upto, clock.now_ns()) == 2
        stored = await StateStore(js, fresh).get_brain_carry()
        assert stored is not None and [Decimal(c.amount) for c in stored.carried] == [Decimal("-0.6")]
        assert rt.core.carried() == {(PHASE, "paper", "BTCUSDT", common_pb2.INSTRUMENT_KIND_PERP): Decimal("-0.6")}
    finally:
        await rt.close()

    await js.purge_stream(fresh.events_stream.name, seq=3)
    last = BrainRuntime(nc, fresh, ManualClock(now + 9 * DAY_NS))
    try:
        await last.start()
        await publish_event(js, fresh, closing_fill(401, "2", now + 9 * DAY_NS))
        # its own fee, and all the position carried: the opening fee and both funding payments
        await wait_for(lambda: trades(last) == [Decimal("2") - Decimal("0.1") - Decimal("0.6")])
    finally:
        await last.close()


async def test_a_brain_that_never_restarted_makes_its_first_checkpoint_while_it_runs(
        nc: Client, fresh: Catalog) -> None:
    js = nc.jetstream()
    now = time.time_ns()
    rt = BrainRuntime(nc, fresh, WallClock())
    try:
        await rt.start()  # the first start: no durable yet, no replay, no checkpoint
        opened = [closing_fill(600, "0", now), funding_paid("-0.3", now)]  # fee 0.1, funding 0.3
        await publish_event(js, fresh, batch_event(opened, "execution"))
        await wait_for(lambda: consumed(js, fresh, delivered=1))
        assert await StateStore(js, fresh).get_brain_carry() is None
        upto = await rt.replay.ack_floor()
        assert upto == 1
        assert await rt.replay.advance(now - DAY_NS, upto, now) is None  # the message is inside the window
        assert await rt.replay.advance(time.time_ns() + DAY_NS, upto, now) == 1
        stored = await StateStore(js, fresh).get_brain_carry()
        assert stored is not None and [Decimal(c.amount) for c in stored.carried] == [Decimal("-0.4")]
    finally:
        await rt.close()
