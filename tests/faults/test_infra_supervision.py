"""Supervised infrastructure: SIGKILL the embedded PostgreSQL postmaster, then nats-server, under a
running `titan up`; each is started again on its port with its data within seconds, the outage is
logged, the ledger keeps growing afterwards (the ledger writer and execution reconnected), and
`titan up` still stops cleanly with exit 0. A child killed while the organism is still starting is
restarted at once, and the phases come up without waiting out their readiness timeouts."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ..util import wait_for
from .organism import Organism, running_organism

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


async def kill_and_wait_back(organism: Organism, label: str, pid: int, port: int) -> float:
    before = await wait_for(organism.event_count, timeout=60, interval=0.5)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    await wait_for(lambda: organism.said(f"{label} is back"), timeout=60, interval=0.1)
    recovery = time.monotonic() - killed
    assert organism.said(f"{label} is down"), organism.tail()
    await ledger_grows(organism, before, f"{label} came back")
    return recovery


async def ledger_grows(organism: Organism, before: int, since: str) -> None:
    """Events flow again: execution -> JetStream -> ledger writer -> PostgreSQL."""
    try:
        await wait_for(lambda: _grew(organism, before), timeout=90, interval=0.5)
    except AssertionError as stuck:  # say why: the organism's log shows who is still refusing or retrying
        raise AssertionError(f"the ledger did not grow past {before} events after {since}: {stuck}\n"
                             f"{organism.tail(12000)}") from None
    assert organism.proc.returncode is None, organism.tail()


def _summaries(organism: Organism) -> list[dict[str, object]]:
    return [m for m in organism.messages() if m.get("msg") == "organism"]


async def _grew(organism: Organism, before: int) -> bool:
    return await organism.event_count() > before


async def test_postgres_and_nats_are_restarted_with_their_data() -> None:
    async with running_organism("--source", "sim", "--duration", "400s") as organism:
        await wait_for(lambda: organism.said("starting organism"), timeout=120, interval=0.2)
        # every child started (the first summary follows start-up), so the faults hit a trading organism;
        # a crash during start-up is the supervisor's own test (tests/cli/test_supervisor_ready.py)
        await wait_for(lambda: _summaries(organism), timeout=180, interval=0.5)
        await wait_for(organism.event_count, timeout=90, interval=0.5)
        pg = organism.postgres()
        pg_pid, pg_port = pg.pid(), pg.port
        assert pg_pid is not None
        pg_recovery = await kill_and_wait_back(organism, "PostgreSQL", pg_pid, pg_port)
        assert organism.postgres().pid() not in (None, pg_pid) and organism.state().pg_port == pg_port

        nats = organism.nats()
        nats_pid, nats_port = nats.pid(), organism.state().nats_port
        assert nats_pid is not None
        nats_recovery = await kill_and_wait_back(organism, "NATS", nats_pid, nats_port)
        assert organism.nats().pid() not in (None, nats_pid) and organism.state().nats_port == nats_port

        assert any("servers" in m for m in _summaries(organism)), organism.tail()
        print(f"\nrecovery: PostgreSQL {pg_recovery:.1f}s, NATS {nats_recovery:.1f}s")
        assert await organism.stop() == 0, organism.tail()
        assert not organism.said("child failed"), organism.tail()


async def test_a_child_killed_while_the_organism_starts_is_restarted_at_once() -> None:
    # as when execution crashes opening the ledger while PostgreSQL is coming back: the first phase
    # waits for a stream to execution, which only a restart of execution gives it
    async with running_organism("--source", "sim", "--duration", "300s") as organism:
        await wait_for(lambda: organism.said("started phase-"), timeout=120, interval=0.02)
        execution = next(m for m in organism.messages() if str(m.get("msg", "")).startswith("started execution"))
        os.kill(int(str(execution["pid"])), signal.SIGKILL)
        await wait_for(lambda: _summaries(organism), timeout=180, interval=0.5)  # every child started
        assert organism.said("execution exited with -9; restart 1"), organism.tail(12000)
        assert not organism.said("not ready after"), organism.tail(12000)  # no phase waited out its timeout
        before = await wait_for(organism.event_count, timeout=60, interval=0.5)
        await ledger_grows(organism, before, "execution was restarted during the start")
        assert await organism.stop() == 0, organism.tail()
        assert not organism.said("child failed"), organism.tail()
