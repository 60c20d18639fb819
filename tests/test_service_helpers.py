"""The process helpers in titan.core.service and titan.core.tasks: restarting a loop that ends or
fails, the SIGTERM/SIGINT stop event, stops that end in bounded time even when a cancellation is
swallowed, and where tasks wait on SIGUSR1."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from titan.core.service import stop_on_signals
from titan.core.tasks import cancel_all, keep_running, shutdown_step

from .util import wait_for


async def test_keep_running_restarts_a_body_that_fails_or_ends_and_stops_on_cancel() -> None:
    runs: list[int] = []

    async def body() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ConnectionError("watcher lost")  # a failure: logged, started again
        # the second run ends normally: started again as well

    task = asyncio.create_task(keep_running("test loop", body, pause_s=0.01))
    await wait_for(lambda: len(runs) >= 3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_keep_running_stops_when_its_body_swallowed_the_cancellation() -> None:
    """A body that catches the cancellation and returns (as a nats-py call does inside the client)
    would otherwise be started again, forever."""
    entered = asyncio.Event()

    async def swallowing_body() -> None:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return

    task = asyncio.create_task(keep_running("swallowing loop", swallowing_body, pause_s=0.01))
    await entered.wait()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done and task.cancelled()


async def test_stop_on_signals_sets_the_event_on_sigterm() -> None:
    stop = stop_on_signals()
    loop = asyncio.get_running_loop()
    try:
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_for(stop.is_set)
    finally:
        faulthandler.unregister(signal.SIGUSR1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            loop.remove_signal_handler(sig)


class Stubborn:
    """A coroutine that swallows every cancellation until released, as nats-py does when one lands
    while a publish waits for a forced flush."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.cancellations = 0

    async def run(self) -> None:
        while not self.released.is_set():
            try:
                await self.released.wait()
            except asyncio.CancelledError:
                self.cancellations += 1


async def test_a_shutdown_step_that_swallows_its_cancellation_is_left_behind_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stubborn = Stubborn()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="titan.service"):
        await shutdown_step("the stubborn step", stubborn.run(), timeout_s=0.2)
    assert time.monotonic() - started < 5
    assert "the stubborn step did not finish within 0.2 s" in caplog.text
    await wait_for(lambda: stubborn.cancellations == 1)  # it was cancelled, and swallowed it
    stubborn.released.set()


async def test_a_failing_shutdown_step_is_logged_and_the_stop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise ConnectionResetError("peer gone")

    with caplog.at_level(logging.WARNING, logger="titan.service"):
        await shutdown_step("closing the pool", broken(), timeout_s=1.0)
    assert "closing the pool failed (ConnectionResetError: peer gone)" in caplog.text


async def test_cancel_all_ends_in_bounded_time_and_names_a_task_that_would_not_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stubborn = Stubborn()

    async def obedient() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(stubborn.run(), name="stubborn-publisher"),
             asyncio.create_task(obedient(), name="obedient-watch")]
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="titan.service"):
        await cancel_all(tasks, timeout_s=0.2)
    assert tasks == []
    assert "task stubborn-publisher did not end within 0.2 s" in caplog.text
    assert "left behind, waiting in run (test_service_helpers.py:" in caplog.text  # where it waits
    assert "obedient-watch" not in caplog.text
    stubborn.released.set()


SERVICE = textwrap.dedent("""
    import asyncio
    from titan.core.service import stacks_on_request, stop_on_signals

    async def the_venue_answers():
        await asyncio.sleep(3600)

    async def waiting_for_the_venue():
        await the_venue_answers()

    async def main():
        stop = stop_on_signals()  # after stacks_on_request, as in every service (core.service.run_service)
        task = asyncio.create_task(waiting_for_the_venue(), name="venue-call")
        print("ready", flush=True)
        await stop.wait()
        task.cancel()

    stacks_on_request()
    asyncio.run(main())
""")


def test_sigusr1_writes_where_every_task_waits_and_the_service_goes_on(tmp_path: Path) -> None:
    err = tmp_path / "stderr"
    with err.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", SERVICE], stdout=subprocess.PIPE, stderr=stderr)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while "the_venue_answers" not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        dump = err.read_text()
        assert "Current thread" in dump or "Thread 0x" in dump  # the threads' stacks (faulthandler)
        chain = next((line for line in dump.splitlines() if line.startswith("task venue-call: ")), "")
        assert "waiting_for_the_venue (<string>:" in chain and "> the_venue_answers (<string>:" in chain, dump
        assert proc.poll() is None  # and the service goes on
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
