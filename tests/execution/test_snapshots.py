"""Recovery from a ledger snapshot, on real PostgreSQL: the runtime's restore from the newest
snapshot plus the rows recorded after it equals a restore from every fill, and a crash between a
fill and its position row is still repaired."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.execution.helpers import KEYS, PERP
from tests.execution.test_restore import SIGS, UPDATES, MiniLedger, _fresh_engine, _state
from titan.core.bus import new_event_id
from titan.core.config import Settings
from titan.core.ledger import Ledger
from titan.execution import snapshots
from titan.execution.runtime import ExecutionRuntime, RuntimeOptions
from titan.v1 import events_pb2, trading_pb2

KEY = ("hunter", "bybit", "BTCUSDT", PERP)


def as_event(update: object) -> events_pb2.Event:
    if isinstance(update, trading_pb2.Order):
        return events_pb2.Event(event_id=new_event_id("order", update.client_order_id, update.version),
                                source="execution", ts_ns=update.updated_at_ns, order=update)
    if isinstance(update, trading_pb2.Fill):
        return events_pb2.Event(event_id=new_event_id("fill", update.venue, update.fill_id), source="execution",
                                ts_ns=update.ts_ns, fill=update)
    if isinstance(update, trading_pb2.Position):
        return events_pb2.Event(event_id=new_event_id("position", update.phase_id, update.symbol, update.version),
                                source="execution", ts_ns=update.ts_ns, position=update)
    assert isinstance(update, events_pb2.SignalDecision)
    return events_pb2.Event(event_id=new_event_id("decision", update.ack.phase_id, update.ack.signal_id),
                            source="execution", ts_ns=update.ack.acked_at_ns, decision=update)


@pytest.fixture
async def empty_ledger(ledger: Ledger) -> Ledger:
    """The module's ledger with nothing recorded (each test starts from zero)."""
    async with ledger.pool.acquire() as conn:
        await conn.execute("TRUNCATE events, orders, fills, positions, funding_payments, decisions, signals,"
                           " snapshots, snapshot_positions RESTART IDENTITY")
    return ledger


def runtime(dsn: str) -> ExecutionRuntime:
    return ExecutionRuntime(Settings(nats_url="", pg_dsn=dsn, execution_port=0, metrics_port=0,
                                     control_key="control-key-0123456789abcdef"),
                            RuntimeOptions(keys=dict(KEYS), metrics=False, freeze_gc=False))


async def restore(ledger: Ledger, dsn: str) -> tuple[ExecutionRuntime, object]:
    rt, engine = runtime(dsn), _fresh_engine()
    last = max(u.ts_ns if hasattr(u, "ts_ns") else 0 for u in UPDATES)
    await rt._restore(engine, ledger, last + 1_000)
    return rt, engine


async def test_snapshot_plus_later_rows_restores_what_every_fill_restores(empty_ledger: Ledger, pg_dsn: str) -> None:
    events = [as_event(u) for u in UPDATES]
    fill_at = [i for i, e in enumerate(events) if e.WhichOneof("body") == "fill"]
    cut = fill_at[len(fill_at) // 2]  # half of the fills before the snapshot
    assert all(await empty_ledger.record_many(events[:cut]))
    snapshot = await snapshots.take(empty_ledger, 1)
    assert snapshot is not None and snapshot.fills_folded == len(fill_at) // 2 and snapshot.positions
    assert await snapshots.take(empty_ledger, 2) is None  # nothing recorded since
    assert all(await empty_ledger.record_many(events[cut:]))
    later = await empty_ledger.fills_after((await empty_ledger.latest_snapshot()).cursor, await empty_ledger.cursor())
    assert len(later) == len(fill_at) - len(fill_at) // 2

    rt, engine = await restore(empty_ledger, pg_dsn)
    full = _fresh_engine()
    MiniLedger(UPDATES).restore_into(full)
    assert _state(engine) == _state(full)
    assert engine.portfolio.quantity(KEY) != 0 and engine.portfolio.get(KEY).realized != 0
    assert rt._startup_updates == []  # the rows agree with the fills: nothing to repair

    second = await snapshots.take(empty_ledger, 3)  # the next snapshot folds the rest
    assert second is not None and second.fills_folded == len(fill_at)
    rt, again = await restore(empty_ledger, pg_dsn)
    assert _state(again) == _state(full)


async def test_a_crash_between_a_fill_and_its_position_row_is_repaired(empty_ledger: Ledger, pg_dsn: str) -> None:
    events = [as_event(u) for u in UPDATES]
    last_fill = max(i for i, e in enumerate(events) if e.WhichOneof("body") == "fill")
    lost = [i for i, e in enumerate(events) if i > last_fill and e.WhichOneof("body") == "position"]
    assert lost  # the position row after the last fill: never recorded (the crash)
    first_fill = min(i for i, e in enumerate(events) if e.WhichOneof("body") == "fill")
    assert all(await empty_ledger.record_many(events[:first_fill + 1]))
    assert await snapshots.take(empty_ledger, 1) is not None
    assert all(await empty_ledger.record_many([e for i, e in enumerate(events[first_fill + 1:], first_fill + 1)
                                               if i not in lost]))
    stale = next(p for p in await empty_ledger.positions() if (p.phase_id, p.symbol) == KEY[:1] + KEY[2:3])
    fills = await empty_ledger.fills("hunter")
    signed = sum((Decimal(f.quantity) if f.side == 1 else -Decimal(f.quantity) for f in fills), Decimal(0))
    assert Decimal(stale.quantity) != signed

    rt, engine = await restore(empty_ledger, pg_dsn)
    assert engine.portfolio.quantity(KEY) == signed
    [repaired] = [u for u in rt._startup_updates if isinstance(u, trading_pb2.Position)]
    assert Decimal(repaired.quantity) == signed and repaired.version > stale.version
    assert len(SIGS) == len({f.client_order_id for f in fills})


async def test_a_crash_between_an_order_and_its_fill_is_repaired_across_a_snapshot(
    empty_ledger: Ledger, pg_dsn: str
) -> None:
    """The order row says filled, its last fill was never recorded, and its other fills are inside
    the snapshot: the ledger's sums find the missing fill, which is rebuilt and booked."""
    events = [as_event(u) for u in UPDATES]
    fill_at = [i for i, e in enumerate(events) if e.WhichOneof("body") == "fill"]
    lost = fill_at[-1]
    cid = events[lost].fill.client_order_id
    assert all(await empty_ledger.record_many([e for i, e in enumerate(events) if i != lost]))
    assert await snapshots.take(empty_ledger, 1) is not None  # every recorded fill in the snapshot
    rt, engine = await restore(empty_ledger, pg_dsn)
    [rebuilt] = [u for u in rt._startup_updates if isinstance(u, trading_pb2.Fill)]
    assert rebuilt.client_order_id == cid and Decimal(rebuilt.quantity) == Decimal(events[lost].fill.quantity)
    full = _fresh_engine()
    MiniLedger(UPDATES).restore_into(full)
    assert engine.portfolio.quantity(KEY) == full.portfolio.quantity(KEY)
