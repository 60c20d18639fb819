"""A real `titan up --headless` for the fault tests: started on a fresh data dir, its embedded
servers found from <data>/infra, its log read as JSON lines, stopped by its pid."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from titan.core.config import Settings
from titan.core.infra import InfraState, NatsServer, PostgresServer

from ..e2e.procs import TITAN, clean_env


@dataclass
class Organism:
    data_dir: Path
    proc: asyncio.subprocess.Process
    log: Path

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir)

    def state(self) -> InfraState:
        return InfraState.load(self.settings)

    def postgres(self) -> PostgresServer:
        return PostgresServer(self.settings.infra_dir / "postgres", port=self.state().pg_port or None)

    def nats(self) -> NatsServer:
        return NatsServer(self.settings.infra_dir / "nats", port=self.state().nats_port or None)

    def messages(self) -> list[dict[str, object]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict):
                    out.append(doc)
        return out

    def said(self, fragment: str) -> bool:
        return any(fragment in str(m.get("msg", "")) for m in self.messages())

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    async def event_count(self) -> int:
        """Events in the ledger now, or -1 while PostgreSQL does not answer."""
        try:
            conn = await asyncpg.connect(self.postgres().dsn(), timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return -1
        try:
            return int(await conn.fetchval("SELECT count(*) FROM events"))
        except asyncpg.PostgresError:
            return -1
        finally:
            await conn.close()

    async def stop(self, timeout: float = 90.0) -> int:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode


@contextlib.asynccontextmanager
async def running_organism(*args: str, prefix: str = "titan-fault-",
                           prepare: Callable[[Path], None] | None = None) -> AsyncIterator[Organism]:
    """`titan up --headless ARGS` on a fresh data dir (``prepare`` may put files there first); stopped
    (and its servers with it) afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(data_dir, 0o755)  # PostgreSQL's unprivileged user must be able to enter it
    if prepare is not None:
        prepare(data_dir)
    log = data_dir / "titan-up.log"
    with log.open("ab") as fh:
        proc = await asyncio.create_subprocess_exec(
            *TITAN, "up", "--headless", *args, env=clean_env(TITAN_DATA_DIR=str(data_dir)),
            stdin=asyncio.subprocess.DEVNULL, stdout=fh, stderr=asyncio.subprocess.STDOUT)
    organism = Organism(data_dir, proc, log)
    try:
        yield organism
    finally:
        await organism.stop()
        for server in (organism.postgres(), organism.nats()):  # in case titan up itself was killed
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
