"""Background tasks: run one forever, cancel them in bounded time, run the steps of a stop with a
time limit each, and tell where a task waits.

Client libraries can swallow a cancellation: nats-py catches a ``CancelledError`` that lands while a
call waits inside the client (a publish or a subscribe waiting for its flush, for one) and returns
normally, so the task goes on as if never cancelled and a stop waits forever (a KV watch cancelled
while it subscribed ran on, and an idle execution then ignored SIGTERM). The request stays counted
on the task (``Task.cancelling()``): every loop that calls such a library raises it again once per
turn (:func:`raise_if_cancelled`), and a stop never waits on a task or a step without a limit."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("titan.service")

# How long one step of a stop may take unless it says otherwise: a service's steps together end well
# within a pod's 30 s termination grace even when one of them hangs.
STOP_STEP_S = 3.0


def raise_if_cancelled() -> None:
    """Raise the current task's pending cancellation, if any."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def keep_running(name: str, body: Callable[[], Awaitable[None]], *, pause_s: float = 1.0) -> None:
    """Run ``body`` forever (a watcher, a consumer loop): when it ends or fails, log it and start it
    again after ``pause_s``. Cancellation stops it, also one that ``body`` swallowed."""
    while True:
        raise_if_cancelled()
        try:
            await body()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed (%s: %s); restarting in %.1fs", name, type(exc).__name__, exc, pause_s)
        await asyncio.sleep(pause_s)


async def cancel_all(tasks: list[asyncio.Task[Any]], timeout_s: float = 5.0) -> None:
    """Cancel background tasks and wait up to ``timeout_s`` for them to finish (their errors are not
    re-raised), then empty the list. A task still running then (one whose cancellation a library
    swallowed) is named in the log and left behind, so a stop always ends."""
    for task in tasks:
        task.cancel()
    if tasks:
        _, running = await asyncio.wait(tasks, timeout=timeout_s)
        for task in running:
            log.warning("stopping: task %s did not end within %g s of its cancellation; left behind, waiting in %s",
                        task.get_name(), timeout_s, waiting_in(task))
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: its error was logged where it happened, or does not matter now
    tasks.clear()


async def shutdown_step(step: str, awaitable: Awaitable[Any], timeout_s: float = STOP_STEP_S) -> None:
    """Run one step of a stop, giving it ``timeout_s``: a step that fails or overruns is logged and
    left behind (cancelled, not awaited), and the stop goes on to the next step. A stop made of
    such steps ends in bounded time even when a client library hangs or swallows a cancellation."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()
        log.warning("stopping: %s did not finish within %g s; going on without it", step, timeout_s)
    elif not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("stopping: %s failed (%s: %s)", step, type(exc).__name__, exc)


def waiting_in(task: asyncio.Task[Any]) -> str:
    """Where a task waits: its await chain, outermost first (``function (file:line) > ...``), followed
    through coroutines, generators and the async generators that ``async for`` waits on."""
    links: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(links) < 40:
        if type(awaited).__name__ == "async_generator_asend":  # an ``async for``: on to its generator
            awaited = next((ref for ref in gc.get_referents(awaited) if inspect.isasyncgen(ref)), None)
            continue
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None) \
            or getattr(awaited, "ag_frame", None)
        if frame is None:
            links.append(type(awaited).__name__)
            break
        links.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno})")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None) \
            or getattr(awaited, "ag_await", None)
    return " > ".join(links) or "(nothing)"
