"""Small test helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_for(
    predicate: Callable[[], Awaitable[T]] | Callable[[], T], timeout: float = 10.0, interval: float = 0.02
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        result = predicate()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result  # type: ignore[misc]
        if result:
            return result  # type: ignore[return-value]
        last = result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)


def wait_for_sync(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {result!r})")
        time.sleep(interval)


async def http_get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of GET ``path`` on 127.0.0.1:``port``; (0, "") when nothing answers."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0, ""
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
    except OSError:
        return 0, ""
    finally:
        writer.close()
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    parts = head.split()
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), body


async def stored_events(js: Any, catalog: Any, kind: str, source: str = "execution") -> list[Any]:
    """Every event of ``kind`` from ``source`` that TITAN_EVENTS holds, in stream order, batches
    unpacked (a kind's events travel alone on its subject or inside batches)."""
    from nats.js.api import DeliverPolicy

    from titan.core.bus import decode_event, unpack

    sub = await js.subscribe(catalog.event_filter(source, "*"), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    found: list[Any] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1)
            except TimeoutError:
                return found
            found.extend(e for e in unpack(decode_event(msg.data)) if e.WhichOneof("body") == kind)
    finally:
        await sub.unsubscribe()
