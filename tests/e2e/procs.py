"""Real processes for the end-to-end tests: start `titan ...` commands with their output in a log
file, probe HTTP endpoints, stop them by PID and check that nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

TITAN = [sys.executable, "-m", "titan.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any TITAN_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Proc:
    name: str
    proc: asyncio.subprocess.Process
    log: Path
    exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Procs:
    """Processes started by one test; ``stop_all`` (in ``finally``) ends each by its PID."""

    log_dir: Path
    started: list[Proc] = field(default_factory=list)

    async def start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        """Start ``argv``; without a ``TITAN_DATA_DIR`` in ``env`` it gets one under the log dir, so its
        state (an execution's outbox) never lands in the user's or the machine's data dir."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        if "TITAN_DATA_DIR" not in env:
            env = {**env, "TITAN_DATA_DIR": str(self.log_dir / "data")}
        with log.open("ab") as fh:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=fh, stderr=asyncio.subprocess.STDOUT, env=env,
            )
        p = Proc(name, proc, log)
        self.started.append(p)
        return p

    async def stop(self, p: Proc, timeout: float = 30.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not stop in time. Returns the exit code; how it ended
        is written at the end of its log (so a failure message that shows the log says it)."""
        if p.proc.returncode is not None:
            ending = f"had exited on its own with code {p.proc.returncode} before it was stopped"
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(p.proc.wait(), timeout)
                ending = f"exited with code {p.proc.returncode} after SIGTERM"
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGUSR1)  # a titan service dumps its threads' stacks into its log
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(p.proc.wait(), 2.0)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                await p.proc.wait()
                ending = f"did not stop within {timeout:.0f} s of SIGTERM: killed (its stacks are above)"
        p.exit_code = p.proc.returncode
        assert p.exit_code is not None
        with contextlib.suppress(OSError), p.log.open("a") as fh:
            fh.write(f"[test harness] {p.name} (pid {p.pid}) {ending}\n")
        return p.exit_code

    async def stop_all(self) -> dict[str, int]:
        codes: dict[str, int] = {}
        for p in reversed(self.started):
            codes[p.name] = await self.stop(p)
        return codes
