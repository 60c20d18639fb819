"""`titan up` end to end, as a user runs it: a fresh data dir, embedded PostgreSQL and NATS started
by `titan up` itself, the scenario replayed rebased to now, one enabled phase (the Scavenger).

* one headless 60 s run: signals produced and answered, fills and equity snapshots in the ledger,
  allocations equal to the Brain core's for the equity reached, and no process left behind;
* a second run on the same data dir continues the ledger (no duplicate fills, equity carried over);
* `titan halt` during a run: no entry is accepted after the halt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from titan.core.config import Settings
from titan.core.infra.manager import InfraState
from titan.core.infra.postgres import PostgresServer
from titan.core.infra.procs import pid_alive
from titan.core.ledger import Ledger
from titan.core.money import to_decimal
from titan.operator.brain import BrainCore, parse_brain_spec, parse_phase_spec
from titan.v1 import common_pb2, events_pb2, trading_pb2

from ..util import wait_for
from .procs import TITAN, clean_env
from .scenario import SYMBOL, Scenario, build_scenario, write_organism

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 240.0


def fresh_dir(prefix: str) -> Path:
    # Not pytest's tmp_path: PostgreSQL's unprivileged user must be able to enter it.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A :func:`fresh_dir`, removed afterwards."""
    path = fresh_dir(prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Run:
    """One `titan up` process and what its log says it started."""

    data_dir: Path
    proc: asyncio.subprocess.Process
    log: Path
    started_ns: int
    exit_code: int | None = None
    ended_ns: int = 0
    pids: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def scan_pids(self) -> dict[str, int]:
        """Children ("started NAME (pid N)") and the embedded servers ("PostgreSQL: ... (pid N", ...)."""
        for line in self.text().splitlines():
            try:
                msg = str(json.loads(line).get("msg", ""))
            except ValueError:
                msg = line
            m = re.search(r"started (\S+) \(pid (\d+)\)", msg)
            if m:
                self.pids[f"child:{m.group(1)}:{m.group(2)}"] = int(m.group(2))
            m = re.match(r"(PostgreSQL|NATS): .*\(pid (\d+)", msg)
            if m:
                self.pids[m.group(1)] = int(m.group(2))
        return self.pids


async def start_up(data_dir: Path, scenario: Scenario, organism: Path, duration: str, tag: str) -> Run:
    log = data_dir / f"titan-up-{tag}.log"
    env = clean_env(TITAN_DATA_DIR=str(data_dir))
    with log.open("ab") as fh:
        proc = await asyncio.create_subprocess_exec(
            *TITAN, "up", "--headless", "--duration", duration, "--source", f"replay:{scenario.path}",
            "--phases", str(organism), stdin=asyncio.subprocess.DEVNULL, stdout=fh, stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    return Run(data_dir, proc, log, time.time_ns())


async def finish(run: Run, timeout: float = RUN_TIMEOUT_S) -> Run:
    """Wait for `titan up` to end (SIGTERM, then SIGKILL of the process, past ``timeout``)."""
    try:
        await asyncio.wait_for(run.proc.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(run.proc.wait(), 60)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(run.proc.pid, signal.SIGKILL)
            await run.proc.wait()
    run.exit_code = run.proc.returncode
    run.ended_ns = time.time_ns()
    run.scan_pids()
    return run


@contextlib.asynccontextmanager
async def ledger_of(data_dir: Path) -> AsyncIterator[Ledger]:
    """The run's ledger, read after `titan up` stopped its embedded PostgreSQL: start it again."""
    settings = Settings(data_dir=data_dir)
    state = InfraState.load(settings)
    server = PostgresServer(settings.infra_dir / "postgres", port=state.pg_port or None)
    server.start()
    try:
        ledger = await Ledger.open(server.dsn(), migrate=False)
        try:
            yield ledger
        finally:
            await ledger.close()
    finally:
        server.stop()


def brain_allocation(organism: Path, equity: Decimal, ts_ns: int) -> events_pb2.Allocation:
    """What the Brain core allocates to the Scavenger at ``equity`` (a fresh core)."""
    brain = yaml.safe_load((organism / "titanbrain.yaml").read_text())
    phase = yaml.safe_load((organism / "titanphase-scavenger.yaml").read_text())
    core = BrainCore()
    core.observe_equity("total", equity, ts_ns)
    decision = core.decide(ts_ns, parse_brain_spec(brain["spec"]), [parse_phase_spec("scavenger", phase["spec"])])
    return decision.allocation("scavenger")


def assert_nothing_left(run: Run) -> None:
    assert run.pids, run.text()[-3000:]
    kinds = {k.split(":")[0] for k in run.pids}
    assert {"child", "PostgreSQL", "NATS"} <= kinds, run.pids
    children = {k.split(":")[1] for k in run.pids if k.startswith("child:")}
    assert {"ledger", "execution", "brain", "phase-scavenger", "gateway"} <= children
    left = {k: pid for k, pid in run.pids.items() if pid_alive(pid)}
    assert not left and not pid_alive(run.proc.pid), left


@pytest.fixture(scope="module")
def scenario() -> Iterator[Scenario]:
    with scratch_dir("titan-e2e-scenario-") as where:
        yield build_scenario(where / "scenario.tmd")


@pytest.fixture(scope="module")
def organism_dir() -> Iterator[Path]:
    with scratch_dir("titan-e2e-organism-") as where:
        yield write_organism(where / "organism")


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    with scratch_dir("titan-e2e-data-") as where:
        yield where


@pytest.fixture(scope="module")
async def first_run(data_dir: Path, scenario: Scenario, organism_dir: Path) -> Run:
    # --phases is edited by `titan halt` in place: each organism gets its own copy.
    organism = shutil.copytree(organism_dir, data_dir / "organism")
    run = await start_up(data_dir, scenario, organism, "60s", "1")
    return await finish(run)


async def test_titan_up_headless_60s(first_run: Run, data_dir: Path) -> None:
    run = first_run
    assert run.exit_code == 0, run.text()[-4000:]
    assert_nothing_left(run)
    assert "child crashed" not in run.text()
    async with ledger_of(data_dir) as ledger:
        decisions = await ledger.decisions("scavenger", limit=1000)
        assert decisions, (data_dir / "logs" / "phase-scavenger.log").read_text()[-3000:]
        accepted = [d for d in decisions if d.ack.accepted]
        assert accepted and all(d.ack.acked_at_ns >= d.ack.received_at_ns > 0 for d in decisions)
        sig = accepted[0].signal
        assert sig.setup == "trap.breakout" and sig.legs[0].symbol == SYMBOL
        assert run.started_ns <= sig.created_at_ns <= run.ended_ns  # rebased: this run's time
        fills = await ledger.fills("scavenger")
        assert fills and {f.client_order_id for f in fills} <= {c for d in accepted for c in d.ack.client_order_ids}
        equity = await ledger.equity_series("total")
        assert len(equity) >= 2 and all(run.started_ns <= e.ts_ns <= run.ended_ns for e in equity)
        allocations = await ledger.allocations("scavenger")
        assert allocations
        # The latest allocation is the core's for the equity it was computed from ...
        last = allocations[-1]
        mine = brain_allocation(data_dir / "organism", to_decimal(last.equity), last.ts_ns)
        assert (last.state, last.weight, last.notional, last.max_leverage) == (
            mine.state, mine.weight, mine.notional, mine.max_leverage)
        assert last.state == common_pb2.PHASE_STATE_ACTIVE and to_decimal(last.weight) == 1
        # ... which is equity execution reported, and the core gives the same weight, leverage and
        # state for the equity finally reached.
        assert to_decimal(last.equity) in {to_decimal(e.equity) for e in equity} | {Decimal(1000)}
        final = brain_allocation(data_dir / "organism", to_decimal(equity[-1].equity), equity[-1].ts_ns)
        assert (final.state, final.weight, final.max_leverage) == (last.state, last.weight, last.max_leverage)


async def test_restart_continues_the_ledger(first_run: Run, data_dir: Path, scenario: Scenario) -> None:
    assert first_run.exit_code == 0
    async with ledger_of(data_dir) as ledger:
        fills_1 = await ledger.fills("scavenger")
        equity_1 = await ledger.equity_series("total")
        positions_1 = await ledger.positions("scavenger")
    assert fills_1 and equity_1 and positions_1
    second = await finish(await start_up(data_dir, scenario, data_dir / "organism", "45s", "2"))
    assert second.exit_code == 0, second.text()[-4000:]
    assert_nothing_left(second)
    async with ledger_of(data_dir) as ledger:
        fills = await ledger.fills("scavenger")
        equity = await ledger.equity_series("total")
        decisions = await ledger.decisions("scavenger", limit=1000)
    ids = [(f.venue, f.fill_id) for f in fills]
    assert len(ids) == len(set(ids))  # no fill twice
    old = {(f.venue, f.fill_id): f for f in fills_1}
    assert all(ids.count(k) == 1 for k in old)  # run 1's fills kept once, unchanged
    assert all(f == old[(f.venue, f.fill_id)] for f in fills if (f.venue, f.fill_id) in old)
    new = [f for f in fills if (f.venue, f.fill_id) not in old]
    # Run 2's fills come from run 2's own signals (the tape replayed at a new time), never from
    # re-processing run 1's: each belongs to an order of a signal decided during run 2.
    run2_orders = {c for d in decisions if d.ack.acked_at_ns >= second.started_ns for c in d.ack.client_order_ids}
    assert {f.client_order_id for f in new} <= run2_orders
    assert len(fills) == len(fills_1) + len(new)
    # Equity carried over: the first snapshot of run 2 equals the last of run 1, up to what run 2's
    # own trading (fees, PnL of its fills and of the position valued at run 2's prices) changed.
    eq_2 = [e for e in equity if e.ts_ns >= second.started_ns]
    assert eq_2, "run 2 wrote no equity snapshot"
    last_1, first_2 = equity_1[-1], eq_2[0]
    run2_fees = sum((to_decimal(f.fee) for f in new if f.ts_ns <= first_2.ts_ns), Decimal(0))
    change = to_decimal(first_2.equity) - to_decimal(last_1.equity)
    exposure = to_decimal(last_1.exposure) + sum(
        (to_decimal(f.quantity) * to_decimal(f.price) for f in new), Decimal(0)
    )
    # Bounded by the fees paid plus a move of 0.5% of the gross exposure (the scenario's tape spans
    # 0.3%): nowhere near a restart from the initial 1,000 or a doubled position.
    assert abs(change) <= run2_fees + exposure * Decimal("0.005"), (last_1, first_2)
    assert to_decimal(first_2.realized_pnl) <= to_decimal(last_1.realized_pnl) + Decimal("0.01")
    assert to_decimal(first_2.fees) >= to_decimal(last_1.fees)  # fees are cumulative: carried, not restarted


async def test_halt_stops_new_entries(scenario: Scenario, organism_dir: Path) -> None:
    data_dir = fresh_dir("titan-e2e-halt-")
    run: Run | None = None
    try:
        organism = shutil.copytree(organism_dir, data_dir / "organism")
        run = await start_up(data_dir, scenario, organism, "60s", "halt")
        logs = data_dir / "logs"

        def gateway_started() -> bool:
            return (logs / "gateway.log").exists()

        await wait_for(gateway_started, timeout=120, interval=0.1)
        # The tape reaches the tripwire ~22 s after the gateway started: halt now.
        halt = await asyncio.create_subprocess_exec(
            *TITAN, "halt", "--reason", "e2e", env=clean_env(TITAN_DATA_DIR=str(data_dir)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(halt.communicate(), 60)
        halted_ns = time.time_ns()
        assert halt.returncode == 0, out.decode()
        assert b"execution: trading state TRADING_MODE_HALTED" in out, out.decode()
        phase_log = logs / "phase-scavenger.log"

        def confirmed() -> bool:
            return phase_log.exists() and "TRAP_CONFIRMED" in phase_log.read_text(errors="replace")

        await wait_for(confirmed, timeout=90, interval=0.25)  # the burst came after the halt

        def decided() -> bool:
            """The phase's answer to the confirmed trap is in its log: aborted (no budget, or
            execution's reject) or an entry its gate did not send."""
            after = phase_log.read_text(errors="replace").split("TRAP_CONFIRMED", 1)[1]
            return "TRAP_ABORTED" in after or " not sent: " in after

        await wait_for(decided, timeout=30, interval=0.1)
        os.kill(run.proc.pid, signal.SIGTERM)  # Ctrl-C: no need to wait for the full minute
        run = await finish(run)
        assert run.exit_code == 0, run.text()[-4000:]
        assert_nothing_left(run)
        async with ledger_of(data_dir) as ledger:
            states = await ledger.trading_states()
            decisions = await ledger.decisions("scavenger", limit=1000)
        halts = [s for s in states if s.mode == common_pb2.TRADING_MODE_HALTED]
        assert halts, states
        halt_ts = min(s.ts_ns for s in halts)
        assert halt_ts <= halted_ns
        # Nothing accepted more than a second after the trading-state update ...
        late = [d for d in decisions if d.ack.accepted and d.ack.received_at_ns > halt_ts + 10**9]
        assert not late, late
        # ... and the trap the burst confirmed after the halt became no entry: the Halted budget
        # (no notional) leaves nothing to size, the phase's entry gate blocks a signal, or
        # execution rejects it HALTED.
        text = phase_log.read_text(errors="replace")
        after = text[text.index("TRAP_CONFIRMED"):]
        no_budget = re.search(r"TRAP_ABORTED BTCUSDT .*'reason': 'NO_BUDGET'", after)
        blocked = re.search(r"entry scavenger-BTCUSDT-\S+ not sent: (\S*halt\S*)", after)
        rejected = [d for d in decisions if not d.ack.accepted and d.ack.reason == trading_pb2.REJECT_REASON_HALTED]
        assert no_budget or blocked or rejected, after[:3000]
        assert not [d for d in decisions if d.ack.accepted], decisions
    finally:
        if run is not None and run.proc.returncode is None:
            run.proc.kill()
            await run.proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
