"""The Scavenger as a process (`python -m titan.phases.scavenger`): it connects to NATS and to
execution's stream, serves /healthz and /metrics, and stops cleanly on SIGTERM. Also the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from typer.testing import CliRunner

from titan.cli.phase_cmd import app as phase_app
from titan.core.catalog import Catalog

from ..util import http_get, wait_for
from .exec_server import ExecServer, TinyExecution

KEY = b"scavenger-process-key-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])



async def test_scavenger_process_runs_and_stops(nats_url: str, catalog: Catalog, tmp_path: Path) -> None:
    key_file = tmp_path / "scavenger.key"
    key_file.write_bytes(KEY)
    params = tmp_path / "params.yaml"
    params.write_text("symbols: [BTCUSDT, ETHUSDT]\nvenue: sim\n")
    servicer = TinyExecution({"scavenger": KEY})
    server = ExecServer(servicer)
    target = await server.start()
    http_port = _free_port()
    env = {**os.environ, "TITAN_NATS_URL": nats_url, "TITAN_NAMESPACE": catalog.namespace, "TITAN_LOG_LEVEL": "INFO"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "titan.phases.scavenger", "--key-file", str(key_file), "--params", str(params),
        "--execution", target, "--http-port", str(http_port),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for(lambda: servicer.hellos, timeout=30)
        assert servicer.hellos[0].phase_id == "scavenger"
        status, body = await wait_for(lambda: _ok(http_port), timeout=30)
        assert '"stream_connected": true' in body and '"entry_block": "no_budget"' in body
        status, metrics = await http_get(http_port, "/metrics")
        assert status == 200 and 'titan_phase_stream_connected{phase="scavenger"} 1.0' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), timeout=30)
        assert proc.stderr is not None
        err = (await proc.stderr.read()).decode()
        await server.stop()
    assert rc == 0, err


async def _ok(port: int) -> tuple[int, str] | None:
    status, body = await http_get(port, "/healthz")
    return (status, body) if status == 200 else None


def test_cli_lists_and_refuses_unknown_phases() -> None:
    runner = CliRunner()
    res = runner.invoke(phase_app, ["list"])
    assert res.exit_code == 0 and "scavenger" in res.output
    res = runner.invoke(phase_app, ["run", "nope"])
    assert res.exit_code == 2


def test_cli_run_fails_closed_without_a_key(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(phase_app, ["run", "scavenger"], env={"TITAN_NATS_URL": "nats://127.0.0.1:1",
                                                             "TITAN_HMAC_KEYS_DIR": str(tmp_path)})
    assert res.exit_code == 2
