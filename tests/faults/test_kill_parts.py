"""The fault suite: one `titan up --headless --source sim` with a load phase sending a steady flow of
signals; SIGKILL, mid-stream, each of the Scavenger phase, the Brain, the ledger writer, execution,
NATS and PostgreSQL in turn, then a SIGSTOP/SIGCONT pause of NATS. After each: the part is back
(restarted by `titan up`), execution accepts again and the ledger grows again — the time that took
is the recovery time. At the end the ledger is held against execution's own answers to the load
(accepted acks, streamed fills): orders and fills lost or duplicated, positions against the fills.

While the ledger writer, NATS or PostgreSQL is down (or NATS paused), execution accepts entries for
at most its grace (``TITAN_DEGRADED_GRACE_MS``, 5 s by default), then refuses them (LEDGER_UNAVAILABLE,
BUS_UNAVAILABLE, LEASE_LOST) while reductions go on: no entry is accepted later than the grace (plus
``GRACE_SLACK_S`` for the ack's way to the load) after the fault began, until the part is back. A dead
Brain or phase is not one of execution's dependencies (budgets fail closed by their own expiry).
Prints the recovery table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from titan.core.ledger import Ledger
from titan.v1 import trading_pb2

from ..util import wait_for
from .load import Load
from .organism import Organism, running_organism

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PARTS = ("phase-scavenger", "brain", "ledger", "execution", "nats", "postgres")
NATS_PAUSE_S = 10.0  # the fault itself: how long nats-server is stopped
GRACE_S = 5.0  # execution's default TITAN_DEGRADED_GRACE_MS
GRACE_SLACK_S = 0.5  # an ack decided within the grace may reach the load this much later
NOT_DEPENDENCIES = ("phase-scavenger", "brain")  # parts whose absence does not degrade execution
DEGRADED_REASONS = {trading_pb2.REJECT_REASON_LEDGER_UNAVAILABLE, trading_pb2.REJECT_REASON_BUS_UNAVAILABLE,
                    trading_pb2.REJECT_REASON_LEASE_LOST}
SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"


def organism_for_load(data_dir: Path) -> None:
    """The sample organism, with risk limits that let the load's ~2 orders/s of round trips (each a
    small loss to fees) run for minutes: more orders per minute, the SOFT breaker past that many losses."""
    target = Path(shutil.copytree(SAMPLES, data_dir / "organism"))
    brain_file = target / "titanbrain.yaml"
    brain = yaml.safe_load(brain_file.read_text())
    brain["spec"]["riskPolicy"].update(maxOrdersPerMinute=600, consecutiveLosses=100, lossWindowSeconds=60)
    brain_file.write_text(yaml.safe_dump(brain))


@dataclass
class Recovery:
    part: str
    killed_at: float
    back_at: float = 0.0  # the part runs again
    recovered_at: float = 0.0  # ... and execution accepts and the ledger grows again
    accepted_while_down: int = 0
    accepted_beyond_grace: int = 0  # entries accepted later than the grace after the fault, while it lasted
    lost: int = 0
    duplicated: int = 0

    @property
    def seconds(self) -> float:
        return self.recovered_at - self.killed_at

    def count_entries(self, load: Load) -> None:
        """Entries the load saw accepted while the part was down, and those beyond the grace."""
        self.accepted_while_down = load.accepted_since(self.killed_at) - load.accepted_since(self.back_at)
        beyond = self.killed_at + GRACE_S + GRACE_SLACK_S
        self.accepted_beyond_grace = max(0, load.accepted_since(beyond) - load.accepted_since(self.back_at))


def child_pids(organism: Organism, name: str) -> list[int]:
    pids = []
    for msg in organism.messages():
        m = re.fullmatch(rf"started {re.escape(name)} \(pid (\d+)\)", str(msg.get("msg", "")))
        if m:
            pids.append(int(m.group(1)))
    return pids


def said_count(organism: Organism, fragment: str) -> int:
    return sum(1 for m in organism.messages() if fragment in str(m.get("msg", "")))


async def kill(organism: Organism, load: Load, part: str) -> Recovery:
    events_before = await wait_for(organism.event_count, timeout=60, interval=0.5)
    if part in ("nats", "postgres"):
        label = "NATS" if part == "nats" else "PostgreSQL"
        server = organism.nats() if part == "nats" else organism.postgres()
        pid, backs = server.pid(), said_count(organism, f"{label} is back")
        assert pid is not None

        def back() -> bool:
            return said_count(organism, f"{label} is back") > backs
    else:
        pid = child_pids(organism, part)[-1]

        def back() -> bool:
            return child_pids(organism, part)[-1] != pid

    os.kill(pid, signal.SIGKILL)
    rec = Recovery(part, time.monotonic())
    await wait_for(back, timeout=120, interval=0.1)
    rec.back_at = time.monotonic()
    rec.count_entries(load)
    await recovered(organism, load, rec, events_before)
    return rec


async def pause_nats(organism: Organism, load: Load) -> Recovery:
    events_before = await wait_for(organism.event_count, timeout=60, interval=0.5)
    pid = organism.nats().pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    rec = Recovery("nats (SIGSTOP)", time.monotonic())
    try:
        await asyncio.sleep(NATS_PAUSE_S)  # the length of the fault, not a wait for something
    finally:
        os.kill(pid, signal.SIGCONT)
    rec.back_at = time.monotonic()
    rec.count_entries(load)
    await recovered(organism, load, rec, events_before)
    return rec


async def recovered(organism: Organism, load: Load, rec: Recovery, events_before: int) -> None:
    async def flowing() -> bool:
        return load.last_accepted() > rec.back_at and await organism.event_count() > events_before

    try:
        await wait_for(flowing, timeout=180, interval=0.2)
    except AssertionError:
        last = [(a.accepted, a.reason) for a in load.acks[-5:]]
        raise AssertionError(f"{rec.part}: no recovery within 180 s (last acks {last}, ledger events "
                             f"{await organism.event_count()} vs {events_before}):\n{organism.tail(3000)}") from None
    rec.recovered_at = time.monotonic()
    assert organism.proc.returncode is None, organism.tail()


def attribute(records: list[Recovery], load: Load, lost_ids: set[str], duplicated_ids: set[str]) -> None:
    """Each lost/duplicated order counts against the fault whose window (kill .. next kill) acked it."""
    starts = [r.killed_at for r in records]
    for ack in load.acks:
        for cid in ack.client_order_ids:
            if cid not in lost_ids and cid not in duplicated_ids:
                continue
            index = max((i for i, t in enumerate(starts) if t <= ack.at), default=0)
            if cid in lost_ids:
                records[index].lost += 1
            else:
                records[index].duplicated += 1


def table(records: list[Recovery]) -> str:
    head = f"{'part killed':16} {'recovery s':>10} {'lost':>5} {'duplicated':>10}"
    beyond = f"... beyond the {GRACE_S:g} s grace"
    lines = [f"{head} {'entries accepted while down':>28} {beyond:>27}"]
    for r in records:
        late = "n/a (budgets)" if r.part in NOT_DEPENDENCIES else str(r.accepted_beyond_grace)
        lines.append(f"{r.part:16} {r.seconds:10.1f} {r.lost:5d} {r.duplicated:10d} {r.accepted_while_down:28d}"
                     f" {late:>27}")
    return "\n".join(lines)


async def test_kill_each_part_mid_stream() -> None:
    async with running_organism("--source", "sim", "--duration", "900s", prefix="titan-faults-",
                                prepare=organism_for_load) as organism:
        run_file = organism.data_dir / "run" / "organism.json"
        await wait_for(lambda: run_file.exists() and organism.said("gateway"), timeout=180, interval=0.2)
        info = json.loads(run_file.read_text())
        key = (organism.data_dir / "keys" / "scavenger.key").read_text().strip().encode()
        load = Load(info["execution"], key, interval_s=0.5)
        runner = asyncio.create_task(load.run())
        records: list[Recovery] = []
        try:
            await wait_for(lambda: sum(a.accepted for a in load.acks) >= 4, timeout=120, interval=0.2)
            for part in PARTS:
                records.append(await kill(organism, load, part))
            records.append(await pause_nats(organism, load))
            await wait_for(lambda: load.last_accepted() > records[-1].recovered_at, timeout=60, interval=0.2)
        finally:
            load.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(runner, timeout=30)
        mine = load.client_order_ids()
        ledger = await Ledger.open(organism.postgres().dsn(), migrate=False)
        try:
            async def all_in_ledger() -> bool:
                orders = {o.client_order_id for o in await ledger.orders("scavenger", limit=100_000)}
                return mine <= orders

            with contextlib.suppress(AssertionError):  # what never arrives is counted as lost below
                await wait_for(all_in_ledger, timeout=60, interval=0.5)
            orders = {o.client_order_id: o for o in await ledger.orders("scavenger", limit=100_000)}
            fills = await ledger.fills("scavenger", limit=100_000)
            positions = {p.symbol: Decimal(p.quantity) for p in await ledger.positions("scavenger", include_flat=True)}
        finally:
            await ledger.close()
        assert await organism.stop() == 0, organism.tail()

    lost = mine - set(orders)
    fill_ids = [f.fill_id for f in fills]
    lost_fills = set(load.fills) - set(fill_ids)
    filled: dict[str, Decimal] = {}
    for f in fills:
        filled[f.client_order_id] = filled.get(f.client_order_id, Decimal(0)) + Decimal(f.quantity)
    duplicated = {cid for cid in mine & set(orders) if filled.get(cid, Decimal(0)) > Decimal(orders[cid].quantity)}
    attribute(records, load, lost, duplicated)
    net: dict[str, Decimal] = {}
    for f in fills:
        signed = Decimal(f.quantity) if f.side == 1 else -Decimal(f.quantity)
        net[f.symbol] = net.get(f.symbol, Decimal(0)) + signed
    print(f"\n{table(records)}\nload: {load.sent} signals sent, {len(load.acks)} acks "
          f"({sum(a.accepted for a in load.acks)} accepted, {len(mine)} orders), {load.fill_receipts} fills streamed, "
          f"{load.reconnects} reconnects; ledger: {len(orders)} scavenger orders, {len(fills)} fills")
    assert len(records) == len(PARTS) + 1 and all(r.seconds > 0 for r in records)
    late = {r.part: r.accepted_beyond_grace for r in records
            if r.part not in NOT_DEPENDENCIES and r.accepted_beyond_grace}
    assert not late, f"entries accepted later than the {GRACE_S:g} s grace while a dependency was down: {late}"
    assert any(a.reason in DEGRADED_REASONS for a in load.acks if a.opening), "no entry was refused as degraded"
    assert not lost, f"acked orders missing from the ledger: {sorted(lost)[:10]}"
    assert not lost_fills, f"streamed fills missing from the ledger: {sorted(lost_fills)[:10]}"
    assert len(fill_ids) == len(set(fill_ids)) and not duplicated, duplicated
    assert {s: q for s, q in positions.items() if q} == {s: q for s, q in net.items() if q}, (positions, net)
