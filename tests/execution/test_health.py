"""Degraded mode of a running execution on real PostgreSQL and NATS, with a real ledger writer: the
lease's session cut (as by a PostgreSQL restart) is taken again; taken meanwhile by another
execution, entries are refused (LEASE_LOST) until it is free; the ledger writer stopped, entries are
refused past the grace (LEDGER_UNAVAILABLE) and come back with its heartbeat. Exposure-reducing
signals pass throughout; /healthz says degraded with the reason."""

from __future__ import annotations

import contextlib
import os
import time

import asyncpg
import pytest

from tests.execution.helpers import KEYS, MODE, REDUCE, SELL, leg, mark, signal, top, trading_state
from tests.util import wait_for
from titan.core.bus import StateStore
from titan.core.config import Settings
from titan.core.ledger import Ledger
from titan.core.ledger.writer import LedgerWriter
from titan.execution.lease import LOCK_CLASS, LOCK_EXECUTION, LedgerLease
from titan.execution.runtime import ExecutionRuntime, RuntimeOptions
from titan.v1 import trading_pb2

from .helpers import RejectReason, budget

pytestmark = pytest.mark.timeout(120)

GRACE_MS = 1_000


class Wall:
    def now_ns(self) -> int:
        return time.time_ns()


@pytest.fixture(scope="module")
async def writer(bus_nc, bus_js, catalog, ledger: Ledger):
    w = LedgerWriter(bus_nc, catalog, ledger, heartbeat_s=0.2)
    await w.start()
    yield w
    await w.stop()


@pytest.fixture(scope="module")
async def runtime(nats_url, pg_dsn, catalog, bus_js, writer):
    settings = Settings(nats_url=nats_url, pg_dsn=pg_dsn, namespace=catalog.namespace, execution_port=0,
                        metrics_port=0, control_key="control-key-0123456789abcdef", degraded_grace_ms=GRACE_MS)
    rt = ExecutionRuntime(settings, RuntimeOptions(keys=dict(KEYS), metrics=False, freeze_gc=False,
                                                   health_interval_s=0.05, ledger_wait_s=5))
    await rt.start()
    engine = rt.engine
    engine.set_trading_state(trading_state(MODE.TRADING_MODE_ACTIVE, 1))
    engine.update_budget(budget(expires_at_ns=time.time_ns() + 3600 * 10**9, max_daily_loss=""))
    yield rt
    await rt.stop()


def fresh_market(rt: ExecutionRuntime) -> None:
    for event in (top("50000", "10", "50000", "10"), mark("50000")):
        rt.engine.on_market(event)


def open_signal(rt: ExecutionRuntime) -> trading_pb2.SignalAck:
    fresh_market(rt)
    return rt.engine.on_signal(signal(Wall(), leg(size="1000"))).ack


def reduce_signal(rt: ExecutionRuntime) -> trading_pb2.SignalAck:
    fresh_market(rt)
    return rt.engine.on_signal(signal(Wall(), leg(side=SELL, size="100"), intent=REDUCE)).ack


async def lease_backend(dsn: str) -> int | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::int4::oid"
            " AND objid = $2::int4::oid AND objsubid = 2", LOCK_CLASS, LOCK_EXECUTION)
    finally:
        await conn.close()


async def cut_lease_session(dsn: str) -> int:
    """End the lease's PostgreSQL session from outside, as a server restart would."""
    pid = await lease_backend(dsn)
    assert pid is not None
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await conn.close()
    return pid


async def test_serving_with_every_dependency_up(runtime):
    assert runtime.lease is not None and runtime.lease.held
    ok, body = runtime.health()
    assert ok and body == {"status": "ok", "entries": "accepted"}, body
    ack = open_signal(runtime)
    assert ack.accepted, ack.detail


async def test_the_lease_is_taken_again_after_its_session_is_cut(runtime, pg_dsn):
    before = await cut_lease_session(pg_dsn)
    await wait_for(lambda: lease_backend(pg_dsn), timeout=20, interval=0.1)
    assert await lease_backend(pg_dsn) != before
    # the new session holds the lock a moment before the runtime confirms it (on a busy machine
    # past the lease's grace, so it may say LEASE_LOST in between): ok once confirmed
    await wait_for(lambda: runtime.health()[1]["status"] == "ok", timeout=20, interval=0.05)
    assert open_signal(runtime).accepted


async def test_a_lease_taken_by_another_execution_refuses_entries_until_it_is_free(runtime, pg_dsn):
    await cut_lease_session(pg_dsn)
    rival = LedgerLease(pg_dsn, name="titan-execution@rival:4242")
    await rival.acquire(wait_s=5)  # first, before the runtime's next confirmation
    try:
        # unconfirmed first (past the 1 s grace it already says LEASE_LOST), then known to be held elsewhere
        await wait_for(lambda: "titan-execution@rival:4242" in runtime.health()[1].get("detail", ""), timeout=20,
                       interval=0.05)
        ok, body = runtime.health()
        assert ok and body["status"] == "degraded" and body["entries"] == "refused" and body["reason"] == "LEASE_LOST"
        ack = open_signal(runtime)
        assert not ack.accepted and ack.reason == RejectReason.REJECT_REASON_LEASE_LOST, ack
        assert reduce_signal(runtime).accepted
    finally:
        await rival.release()
    await wait_for(lambda: runtime.health()[1]["status"] == "ok", timeout=20, interval=0.05)
    assert runtime.lease.held and open_signal(runtime).accepted


async def test_a_silent_ledger_writer_refuses_entries_after_the_grace(runtime, writer, bus_js, catalog):
    await writer.stop()
    try:
        await wait_for(lambda: runtime.health()[1].get("reason") == "LEDGER_UNAVAILABLE", timeout=20,
                       interval=0.05)
        assert runtime.health()[1]["unavailable_for_s"] >= GRACE_MS / 1000  # only past the grace
        ack = open_signal(runtime)
        assert ack.reason == RejectReason.REJECT_REASON_LEDGER_UNAVAILABLE, ack
        assert reduce_signal(runtime).accepted
        async with contextlib.aclosing(StateStore(bus_js, catalog).watch_ledger_heartbeat()) as heartbeats:
            last = await anext(heartbeats)  # the last one the writer put before it stopped
        assert 0 < last.writing_at_ns <= last.ts_ns and last.writer.endswith(f":{os.getpid()}")
    finally:
        await writer.start()
    await wait_for(lambda: runtime.health()[1]["status"] == "ok", timeout=20, interval=0.05)
    assert open_signal(runtime).accepted
