"""One execution per ledger, with two real execution processes on one real PostgreSQL ledger (and real
NATS with a ledger writer): the second is refused — exit code 1, one line naming the first's host
and pid, no traceback — while the first serves and says so on /healthz; once the first is killed,
the second takes the ledger over (its lease freed with its session)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.procs import Procs, clean_env, free_port
from tests.execution.helpers import KEY
from tests.util import wait_for
from titan.core.catalog import Catalog
from titan.core.ledger import Ledger
from titan.core.ledger.writer import LedgerWriter

pytestmark = pytest.mark.timeout(180)

CONTROL_KEY = "lease-control-key-0123456789abcdef"


def execution_env(pg_dsn: str, nats_url: str, catalog: Catalog, health_port: int) -> dict[str, str]:
    return clean_env(
        TITAN_PG_DSN=pg_dsn, TITAN_NATS_URL=nats_url, TITAN_NAMESPACE=catalog.namespace,
        TITAN_EXECUTION_HOST="127.0.0.1", TITAN_EXECUTION_PORT=str(free_port()), TITAN_METRICS_PORT="0",
        TITAN_HEALTH_PORT=str(health_port), TITAN_CONTROL_KEY=CONTROL_KEY, TITAN_PHASE_KEY_HUNTER=KEY.decode(),
        TITAN_LOG_LEVEL="INFO",
    )


def healthz(port: int) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        return response.status, json.loads(response.read())


async def serving_health(port: int) -> dict[str, object] | None:
    try:
        status, body = await asyncio.to_thread(healthz, port)
    except OSError:
        return None
    return body if status == 200 else None


async def test_a_second_execution_on_the_same_ledger_is_refused_until_the_first_is_gone(
    pg_dsn: str, nats_url: str, catalog: Catalog, ledger: Ledger, bus_nc, bus_js, tmp_path: Path
) -> None:
    procs = Procs(tmp_path)
    writer = LedgerWriter(bus_nc, catalog, ledger)
    await writer.start()
    try:
        first_health = free_port()
        first = await procs.start("first", [sys.executable, "-m", "titan.execution"],
                                  execution_env(pg_dsn, nats_url, catalog, first_health))
        await wait_for(lambda: "execution listening on" in first.output() or first.proc.returncode is not None,
                       timeout=90, interval=0.1)
        assert first.proc.returncode is None, first.output()
        body = await wait_for(lambda: serving_health(first_health), timeout=30, interval=0.1)
        assert body["status"] == "ok" and body["entries"] == "accepted", body

        second_health = free_port()
        second = await procs.start("second", [sys.executable, "-m", "titan.execution"],
                                   execution_env(pg_dsn, nats_url, catalog, second_health))
        code = await asyncio.wait_for(second.proc.wait(), timeout=60)
        output = second.output()
        assert code == 1, output
        refusals = [line for line in output.splitlines() if line.startswith("execution: ")]
        assert len(refusals) == 1, output
        assert f"titan-execution@{socket.gethostname()}:{first.pid}" in refusals[0], refusals
        assert "another execution already uses this ledger" in refusals[0]
        assert "Traceback" not in output, output
        assert first.proc.returncode is None
        assert (await serving_health(first_health) or {}).get("status") == "ok"

        os.kill(first.pid, signal.SIGKILL)  # its session ends with it, and the lease with the session
        await first.proc.wait()
        again = await procs.start("second-again", [sys.executable, "-m", "titan.execution"],
                                  execution_env(pg_dsn, nats_url, catalog, second_health))
        await wait_for(lambda: "execution listening on" in again.output() or again.proc.returncode is not None,
                       timeout=90, interval=0.1)
        assert again.proc.returncode is None, again.output()
        body = await wait_for(lambda: serving_health(second_health), timeout=30, interval=0.1)
        assert body["status"] == "ok", body
        assert "holding the ledger's lease as titan-execution@" in again.output()
        assert await procs.stop(again) == 0, again.output()
    finally:
        await procs.stop_all()
        await writer.stop()
