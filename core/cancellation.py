"""Cancellation that client libraries swallow.

nats-py catches a ``CancelledError`` that lands while a call waits inside the client (a publish or a
subscribe waiting for its flush, for one) and returns normally, so the task goes on as if never
cancelled, and a stop waits forever (a KV watch cancelled while it subscribed ran on; an idle
execution then ignored SIGTERM). The request stays counted on the task (``Task.cancelling()``):
every loop that calls such a library raises it again once per turn."""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise the current task's pending cancellation, if any."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
