"""A small process supervisor for `titan up`: starts children in order, restarts a crashed child
with exponential backoff (and reports it) until its restart budget is spent (then it is marked
failed and the run ends), and on shutdown stops them in reverse order — SIGTERM, then SIGKILL after
a grace period — so nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("titan.up")

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if the supervisor dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setsid()


@dataclass
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    log_file: Path | None = None
    restart: bool = True
    grace_s: float = 10.0
    # Optional readiness probe: start() waits (up to ready_timeout_s) until it returns True before it
    # starts the next child, so a child that must not start early (e.g. a publisher whose
    # subscribers must be listening) can be placed after the ones it depends on.
    ready: Callable[[], Awaitable[bool]] | None = None
    ready_timeout_s: float = 60.0


@dataclass
class ChildState:
    spec: ChildSpec
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0  # time.monotonic() of its last spawn; 0 until start() first spawns it
    last_exit: int | None = None
    next_start_at: float = 0.0
    failed: bool = False  # crashed more often in a row than the restart budget allows

    @property
    def launched(self) -> bool:
        """start() has spawned it once: from then on watch() keeps it running."""
        return self.started_at > 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
        stable_after_s: float = 60.0,
        max_restarts: int = 5,
        on_event: Callable[[str, ChildState], None] | None = None,
    ) -> None:
        self.children = [ChildState(s) for s in specs]
        # Crashes in a row (without running stable_after_s in between) a child may have before it
        # is given up on: past it the supervisor stops restarting it and failed() names it.
        self.max_restarts = max_restarts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stable_after_s = stable_after_s
        self.on_event = on_event or (lambda _kind, _child: None)
        self._stopping = asyncio.Event()

    def child(self, name: str) -> ChildState:
        return next(c for c in self.children if c.spec.name == name)

    def failed(self) -> list[ChildState]:
        """Children whose restart budget is spent."""
        return [c for c in self.children if c.failed]

    async def _spawn(self, child: ChildState) -> None:
        spec = child.spec
        env = dict(os.environ)
        env.update(spec.env)
        stdout: int | object = asyncio.subprocess.DEVNULL
        handle = None
        if spec.log_file is not None:
            spec.log_file.parent.mkdir(parents=True, exist_ok=True)
            handle = open(spec.log_file, "ab")  # noqa: SIM115, ASYNC230 - handed to the child, opened once
            stdout = handle
        try:
            child.proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,  # type: ignore[arg-type]
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
            )
        finally:
            if handle is not None:
                handle.close()
        child.started_at = time.monotonic()
        log.info("started %s (pid %s)", spec.name, child.proc.pid, extra={"child": spec.name, "pid": child.proc.pid})
        self.on_event("started", child)

    async def start(self, until: asyncio.Event | None = None) -> None:
        """Start the children in order, each after the one before reported ready. Run watch() beside
        it, so that a child crashing meanwhile (one whose backend is still coming up, say) is started
        again while a later child waits for it. ``until``: once set (a stop request), no further
        child is started and no readiness is waited for; stop() then stops those already started."""
        def stopping() -> bool:
            return self._stopping.is_set() or (until is not None and until.is_set())

        for child in self.children:
            if stopping():
                return
            await self._spawn(child)
            if child.spec.ready is not None:
                await self._wait_ready(child, stopping)

    async def _wait_ready(self, child: ChildState, stopping: Callable[[], bool]) -> None:
        probe = child.spec.ready
        assert probe is not None
        deadline = time.monotonic() + child.spec.ready_timeout_s
        while time.monotonic() < deadline and not stopping() and self._may_come_up(child):
            with contextlib.suppress(Exception):
                if child.running and await probe():
                    log.info("%s ready", child.spec.name, extra={"child": child.spec.name})
                    return
            await asyncio.sleep(0.1)
        if stopping():
            return
        if not self._may_come_up(child):
            code = child.last_exit if child.proc is None else child.proc.returncode
            log.warning("%s ended before it was ready (exit %s); starting the next children anyway", child.spec.name,
                        code, extra={"child": child.spec.name})
            return
        log.warning("%s not ready after %.0fs; starting the next children anyway", child.spec.name,
                    child.spec.ready_timeout_s, extra={"child": child.spec.name})

    @staticmethod
    def _may_come_up(child: ChildState) -> bool:
        """Running, or crashed and due to be started again by watch()."""
        return child.running or (child.spec.restart and not child.failed)

    def _backoff(self, child: ChildState) -> float:
        return float(min(self.backoff_max_s, self.backoff_initial_s * (2 ** max(0, child.restarts - 1))))

    async def watch(self) -> None:
        """Restart crashed children until stop() is called."""
        while not self._stopping.is_set():
            now = time.monotonic()
            for child in self.children:
                if child.proc is None:
                    if child.launched and now >= child.next_start_at and child.spec.restart and not child.failed:
                        await self._spawn(child)
                    continue
                code = child.proc.returncode
                if code is None:
                    if child.restarts and now - child.started_at > self.stable_after_s:
                        child.restarts = 0  # ran long enough: the next crash starts the backoff again
                    continue
                child.last_exit = code
                child.proc = None
                if not child.spec.restart:
                    if code != 0:  # it had one run (e.g. a replay's gateway): a failure ends the run
                        child.failed = True
                        log.error("%s failed with exit code %s (not restarted)", child.spec.name, code,
                                  extra={"child": child.spec.name, "exit_code": code})
                        self.on_event("failed", child)
                        continue
                    log.warning("%s exited with %s (not restarted)", child.spec.name, code)
                    self.on_event("exited", child)
                    continue
                if child.restarts >= self.max_restarts:
                    child.failed = True
                    log.error(
                        "%s keeps crashing: exited with %s after %d restarts; not restarted again",
                        child.spec.name, code, child.restarts,
                        extra={"child": child.spec.name, "exit_code": code, "restarts": child.restarts},
                    )
                    self.on_event("failed", child)
                    continue
                child.restarts += 1
                delay = self._backoff(child)
                child.next_start_at = now + delay
                log.error(
                    "%s exited with %s; restart %d in %.1fs", child.spec.name, code, child.restarts, delay,
                    extra={"child": child.spec.name, "exit_code": code, "restarts": child.restarts},
                )
                self.on_event("crashed", child)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=0.1)

    async def stop(self) -> None:
        """Stop every child in reverse start order."""
        self._stopping.set()
        for child in reversed(self.children):
            proc = child.proc
            if proc is None or proc.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=child.spec.grace_s)
            except TimeoutError:
                log.warning("%s ignored SIGTERM for %.0fs; killing it", child.spec.name, child.spec.grace_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            child.last_exit = proc.returncode
            self.on_event("stopped", child)
            log.info("stopped %s (exit %s)", child.spec.name, proc.returncode)
