"""The supervisor's readiness probe: a child with ``ready`` must report ready before the next child
starts; a probe that never succeeds delays the next child by at most ``ready_timeout_s``. With
watch() beside start() (as `titan up` runs them), a child that crashes meanwhile is restarted at once;
a stop request cuts the start short."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.util import wait_for
from titan.cli.supervisor import ChildSpec, ChildState, Supervisor

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"]


async def never_ready() -> bool:
    return False


@contextlib.asynccontextmanager
async def watched(sup: Supervisor) -> AsyncIterator[Supervisor]:
    """``sup`` with watch() running beside what the block does; stopped afterwards."""
    watcher = asyncio.create_task(sup.watch())
    try:
        yield sup
    finally:
        await sup.stop()
        await watcher


async def test_next_child_starts_only_after_the_probe_succeeds(tmp_path: Path) -> None:
    marker = tmp_path / "listening"
    writer = [sys.executable, "-c", f"import pathlib, time\ntime.sleep(0.5)\npathlib.Path({str(marker)!r}).touch()\n"
              "while True: time.sleep(0.05)"]
    started: dict[str, float] = {}
    ready_seen: list[float] = []

    def record(kind: str, child: ChildState) -> None:
        if kind == "started":
            started[child.spec.name] = time.monotonic()

    async def probe() -> bool:
        if marker.exists():
            ready_seen.append(time.monotonic())
            return True
        return False

    sup = Supervisor([ChildSpec("subscriber", writer, ready=probe), ChildSpec("publisher", SLEEPER)], on_event=record)
    try:
        await sup.start()
        assert ready_seen and started["publisher"] >= ready_seen[0] >= started["subscriber"]
    finally:
        await sup.stop()
    assert all(c.proc is not None and c.proc.returncode is not None for c in sup.children)


async def test_a_probe_that_never_succeeds_times_out() -> None:
    sup = Supervisor([ChildSpec("slow", SLEEPER, ready=never_ready, ready_timeout_s=0.3), ChildSpec("next", SLEEPER)])
    try:
        await sup.start()
        assert sup.child("next").running  # started anyway, after the timeout
    finally:
        await sup.stop()


async def test_a_child_crashing_during_start_is_restarted_while_the_next_waits(tmp_path: Path) -> None:
    # "backend" dies on its first run (as execution does when PostgreSQL is down while it starts);
    # "client" is ready only once a backend runs. With watch() beside start(), the backend is
    # started again and the client comes up well before its readiness timeout.
    crashed, serving = tmp_path / "crashed-once", tmp_path / "serving"
    backend = [sys.executable, "-c",
               f"import pathlib, sys, time\nc, s = pathlib.Path({str(crashed)!r}), pathlib.Path({str(serving)!r})\n"
               "if not c.exists():\n    c.touch(); sys.exit(2)\ns.touch()\nwhile True: time.sleep(0.05)"]

    async def client_ready() -> bool:
        return serving.exists()

    specs = [ChildSpec("backend", backend), ChildSpec("client", SLEEPER, ready=client_ready, ready_timeout_s=30),
             ChildSpec("last", SLEEPER)]
    async with watched(Supervisor(specs, backoff_initial_s=0.2)) as sup:
        began = time.monotonic()
        await sup.start()
        assert time.monotonic() - began < 15  # ready after the restart, not after the 30 s timeout
        assert serving.exists() and sup.child("backend").restarts == 1 and sup.child("backend").running
        assert sup.child("last").running


async def test_watch_leaves_children_that_start_has_not_reached_alone() -> None:
    specs = [ChildSpec("slow", SLEEPER, ready=never_ready, ready_timeout_s=3.0), ChildSpec("next", SLEEPER)]
    async with watched(Supervisor(specs)) as sup:
        starting = asyncio.create_task(sup.start())
        await wait_for(lambda: sup.child("slow").running, timeout=10)
        assert sup.child("next").proc is None  # still waiting for "slow": watch() did not start it early
        await starting
        assert sup.child("next").running


async def test_a_child_that_ends_for_good_is_not_waited_for(caplog: pytest.LogCaptureFixture) -> None:
    quitter = [sys.executable, "-c", "import sys; sys.exit(4)"]
    specs = [ChildSpec("quitter", quitter, restart=False, ready=never_ready, ready_timeout_s=30),
             ChildSpec("next", SLEEPER)]
    async with watched(Supervisor(specs)) as sup:
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="titan.up"):
            await sup.start()
        assert time.monotonic() - began < 15 and sup.child("next").running  # not the 30 s timeout
        assert "quitter ended before it was ready (exit 4)" in caplog.text


async def test_a_stop_request_cuts_the_start_short() -> None:
    # a phase that never gets ready (say, misconfigured) must not hold a Ctrl-C for its whole timeout
    specs = [ChildSpec("stuck", SLEEPER, ready=never_ready, ready_timeout_s=60), ChildSpec("next", SLEEPER)]
    stop = asyncio.Event()
    async with watched(Supervisor(specs)) as sup:
        starting = asyncio.create_task(sup.start(until=stop))
        await wait_for(lambda: sup.child("stuck").running, timeout=10)
        stop.set()
        await asyncio.wait_for(starting, timeout=10)  # not the 60 s readiness timeout
        assert sup.child("next").proc is None  # nothing started after the request
    stuck = sup.child("stuck").proc
    assert stuck is not None and stuck.returncode is not None  # stopped with the rest
