"""Execution's outbox against the fault it exists for, with real processes: nats-server, the ledger
writer (`titan ledger writer`) and execution (`python -m titan.execution`) on a real PostgreSQL.

NATS is SIGKILLed; signals sent meanwhile are accepted and filled (execution still has a fresh
market), their events wait for JetStream; execution is SIGKILLed while NATS is still down. NATS comes
back on its store, execution is restarted on the same data dir: it replays its outbox before it
serves, and the ledger ends with every acknowledged decision, order and fill exactly once, positions
equal to what execution reported before the kill."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.procs import TITAN, Proc, Procs, clean_env, free_port
from tests.execution.helpers import KEY, MODE, SELL, RejectReason, budget, control, leg, mark, top
from tests.util import wait_for
from titan.core.bus import StateStore, connect, ensure_jetstream
from titan.core.catalog import Catalog
from titan.core.infra import NatsServer
from titan.core.ledger import Ledger
from titan.core.signing import sign_signal
from titan.v1 import execution_pb2, execution_pb2_grpc, trading_pb2

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CONTROL_KEY = b"control-key-0123456789abcdef"
PHASE = "hunter"
BEFORE, DURING = 4, 6  # signals sent while NATS is up, then while it is down


def make_signal(name: str, i: int) -> trading_pb2.Signal:
    """Alternately open (buy) and reduce (sell) a small BTCUSDT perp position."""
    opening = i % 2 == 0
    legs = [leg(size="1000")] if opening else [leg(side=SELL, size="500")]
    intent = trading_pb2.INTENT_OPEN if opening else trading_pb2.INTENT_REDUCE
    sig = trading_pb2.Signal(phase_id=PHASE, signal_id=f"{name}-{i}", intent=intent, legs=legs, confidence=0.5,
                             created_at_ns=time.time_ns())
    return sign_signal(sig, KEY)


class Organism:
    """nats-server, the ledger writer and execution of one namespace, on one data dir."""

    def __init__(self, base: Path, pg_dsn: str) -> None:
        self.base = base
        self.nats = NatsServer(base / "nats", durable=False)
        self.procs = Procs(base / "logs")
        self.catalog = Catalog(namespace=f"ob{uuid.uuid4().hex[:10]}")
        self.port = free_port()
        self.pg_dsn = pg_dsn
        self.execution: Proc | None = None

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(TITAN_NATS_URL=self.nats.url, TITAN_PG_DSN=self.pg_dsn, TITAN_NAMESPACE=self.catalog.namespace,
                         TITAN_DATA_DIR=str(self.base / "data"), TITAN_METRICS_PORT="0", TITAN_HEALTH_PORT="0",
                         TITAN_LOG_LEVEL="INFO", **extra)

    @property
    def outbox(self) -> Path:
        return self.base / "data" / "outbox" / self.catalog.namespace

    async def start_execution(self) -> Proc:
        env = self.env(TITAN_EXECUTION_HOST="127.0.0.1", TITAN_EXECUTION_PORT=str(self.port),
                       TITAN_CONTROL_KEY=CONTROL_KEY.decode(), TITAN_PHASE_KEY_HUNTER=KEY.decode(),
                       TITAN_REPLAY_WINDOW_MS="600000", TITAN_DEGRADED_GRACE_MS="600000")
        self.execution = proc = await self.procs.start("execution", [TITAN[0], "-m", "titan.execution"], env)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def serving() -> bool:
                if proc.proc.returncode is not None:
                    raise AssertionError(f"execution exited:\n{proc.output()[-3000:]}")
                with contextlib.suppress(grpc.aio.AioRpcError):
                    request = health_pb2.HealthCheckRequest(service="titan.v1.Execution")
                    answer = await health.Check(request, timeout=0.5)
                    return answer.status == health_pb2.HealthCheckResponse.SERVING
                return False

            await wait_for(serving, timeout=90, interval=0.1)
        return proc

    async def sigkill(self, proc: Proc) -> None:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.proc.wait()


@contextlib.asynccontextmanager
async def organism(pg_dsn: str) -> AsyncIterator[Organism]:
    base = Path(tempfile.mkdtemp(prefix="titan-outbox-"))
    org = Organism(base, pg_dsn)
    org.nats.start()
    try:
        yield org
    finally:
        await org.procs.stop_all()
        org.nats.destroy()
        shutil.rmtree(base, ignore_errors=True)


async def prepare(org: Organism) -> None:
    """Streams, an ACTIVE trading state and the phase's budget in KV."""
    nc = await connect(org.nats.url, "outbox-test-setup")
    try:
        js = nc.jetstream()
        await ensure_jetstream(js, org.catalog)
        store = StateStore(js, org.catalog)
        await store.put_trading_state(trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=1,
                                                               ts_ns=time.time_ns()))
        await store.put_budget(budget(version=1, expires_at_ns=time.time_ns() + 3600 * 10**9,
                                      max_orders_per_minute=10_000, max_notional="10000000", max_daily_loss=""))
    finally:
        await nc.close()


async def feed_market(org: Organism, stop: asyncio.Event) -> None:
    """Book top and mark on core NATS every 50 ms until ``stop`` (or NATS goes away)."""
    nc = await connect(org.nats.url, "outbox-test-market")
    try:
        while not stop.is_set():
            for ev in (top("50000", "100", "50000", "100"), mark("50000")):
                await nc.publish(org.catalog.md_subject("bybit", "BTCUSDT", ev.WhichOneof("payload")),
                                 ev.SerializeToString())
            await nc.flush(timeout=1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def send(stub: execution_pb2_grpc.ExecutionStub,
               signals: list[trading_pb2.Signal]) -> list[trading_pb2.SignalAck]:
    """Each signal on one stream, waiting for its ack before the next."""
    call = stub.StreamSignals()
    acks = []
    for sig in signals:
        await call.write(execution_pb2.StreamRequest(signal=sig))
        while True:
            msg = await asyncio.wait_for(call.read(), 10)
            if msg.WhichOneof("body") == "ack":
                acks.append(msg.ack)
                break
    await call.done_writing()
    call.cancel()
    return acks


async def test_acked_events_survive_sigkill_of_execution_while_nats_is_down(pg_dsn: str) -> None:
    async with organism(pg_dsn) as org:
        await prepare(org)
        writer = await org.procs.start("ledger", [*TITAN, "ledger", "writer"], org.env())
        await org.start_execution()
        stop_market = asyncio.Event()
        market = asyncio.create_task(feed_market(org, stop_market))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{org.port}") as channel:
            stub = execution_pb2_grpc.ExecutionStub(channel)

            tries: list[trading_pb2.SignalAck] = []

            async def market_arrived() -> bool:  # a fresh signal id each try: a repeat would be REPLAYED
                (ack,) = await send(stub, [make_signal(f"warm-up{len(tries)}", 0)])
                tries.append(ack)
                assert ack.accepted or ack.reason == RejectReason.REJECT_REASON_MARKET_DATA_STALE, ack
                return ack.accepted

            await wait_for(market_arrived, timeout=30, interval=0.2)
            before = [tries[-1], *await send(stub, [make_signal("before", i) for i in range(1, BEFORE)])]

            # NATS dies; execution keeps its last market (fresh for 10 s) and accepts on it
            stop_market.set()
            await market
            nats_pid = org.nats.pid()
            assert nats_pid is not None
            os.kill(nats_pid, signal.SIGKILL)
            during = await send(stub, [make_signal("during", i) for i in range(DURING)])
            reported = await stub.GetState(control(execution_pb2.GetStateRequest(phase_id=PHASE), CONTROL_KEY))
        assert all(a.accepted for a in before + during), [(a.signal_id, a.detail) for a in before + during]
        assert org.execution is not None
        await org.sigkill(org.execution)  # SIGKILL while its events still wait for NATS
        assert sorted(org.outbox.glob("*.seg")), "nothing journaled"

        org.nats.start()  # back on the same port and store
        ledger = await Ledger.open(pg_dsn, migrate=False)
        try:
            outage = {a.signal_id for a in during}
            recorded = {d.ack.signal_id for d in await ledger.decisions(PHASE, limit=1000)}
            assert not outage & recorded  # only the outbox has them now

            started = time.monotonic()
            restarted = await org.start_execution()
            replayed = re.search(r"replaying (\d+) events from the outbox", restarted.output())
            assert replayed is not None, restarted.output()[-3000:]
            # each outage signal: at least its order, fill, position and decision
            assert int(replayed.group(1)) >= 4 * DURING
            acked = {a.signal_id for a in [*tries, *before, *during]}  # the rejected warm-ups too

            async def all_recorded() -> bool:
                decided = {d.ack.signal_id for d in await ledger.decisions(PHASE, limit=1000)}
                return acked <= decided

            await wait_for(all_recorded, timeout=60, interval=0.2)
            await check_ledger(ledger, [*before, *during], reported)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{org.port}") as channel:
                stub = execution_pb2_grpc.ExecutionStub(channel)
                (again,) = await send(stub, [make_signal("during", 0)])  # remembered from the replayed decision
                assert again.reason == RejectReason.REJECT_REASON_REPLAYED, again
                after = await stub.GetState(control(execution_pb2.GetStateRequest(phase_id=PHASE), CONTROL_KEY))
            assert positions(after) == positions(reported)
            print(f"\noutbox: {replayed.group(1)} events replayed; execution serving and the ledger complete "
                  f"{time.monotonic() - started:.1f} s after its restart; {len(before)} signals acked before and "
                  f"{len(during)} during the NATS outage, all in the ledger once")
        finally:
            await ledger.close()
        assert writer.proc.returncode is None, writer.output()[-3000:]


def positions(state: execution_pb2.ExecutionState) -> dict[str, tuple[str, str, str]]:
    return {p.symbol: (p.quantity, p.realized_pnl, p.fees) for p in state.positions}


async def check_ledger(ledger: Ledger, acks: list[trading_pb2.SignalAck],
                       reported: execution_pb2.ExecutionState) -> None:
    """Every acknowledged decision, order and fill once; positions as execution reported them."""
    decisions = await ledger.decisions(PHASE, limit=1000)
    ids = [d.ack.signal_id for d in decisions]
    assert len(ids) == len(set(ids))
    cids = {cid for a in acks for cid in a.client_order_ids}
    orders = {o.client_order_id: o for o in await ledger.orders(PHASE, limit=1000)}
    assert cids <= set(orders), sorted(cids - set(orders))
    fills = await ledger.fills(PHASE)
    assert len({f.fill_id for f in fills}) == len(fills)
    filled: dict[str, Decimal] = {}
    for f in fills:
        filled[f.client_order_id] = filled.get(f.client_order_id, Decimal(0)) + Decimal(f.quantity)
    for cid in cids:  # each order filled, and by its recorded fills exactly (none missing, none twice)
        order = orders[cid]
        assert Decimal(order.filled_quantity) == Decimal(order.quantity) == filled[cid], (cid, order, filled.get(cid))
    ledger_positions = {p.symbol: (p.quantity, p.realized_pnl, p.fees) for p in await ledger.positions(PHASE)}
    assert ledger_positions == positions(reported)
