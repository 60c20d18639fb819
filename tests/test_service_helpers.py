"""The process helpers in titan.core.service: restarting a loop that ends or fails, and the
SIGTERM/SIGINT stop event."""

from __future__ import annotations

import asyncio
import os
import signal

from titan.core.service import keep_running, stop_on_signals

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


async def test_stop_on_signals_sets_the_event_on_sigterm() -> None:
    stop = stop_on_signals()
    loop = asyncio.get_running_loop()
    try:
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_for(stop.is_set)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
