"""The harness every long-running Titan process uses: logging, a Prometheus /metrics endpoint,
a /healthz endpoint, uvloop when available, and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

from prometheus_client import start_http_server

from titan.core.config import Settings
from titan.core.logging import setup_logging
from titan.core.tasks import waiting_in

log = logging.getLogger("titan.service")

# True/False, or (ok, details) answered as a JSON object with ``ok`` and the details.
HealthCheck = Callable[[], bool | tuple[bool, dict[str, Any]]]


class _HealthHandler(BaseHTTPRequestHandler):
    check: HealthCheck = staticmethod(lambda: True)

    def do_GET(self) -> None:
        if self.path.rstrip("/") not in ("/healthz", "/livez", "/readyz"):
            self.send_error(404)
            return
        ok, body, content_type = False, b"unhealthy\n", "text/plain"
        with contextlib.suppress(Exception):
            answer = type(self).check()
            if isinstance(answer, tuple):
                ok, details = bool(answer[0]), answer[1]
                body, content_type = json.dumps({"ok": ok, **details}).encode() + b"\n", "application/json"
            else:
                ok = bool(answer)
                body = b"ok\n" if ok else b"unhealthy\n"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def serve_health(port: int, check: HealthCheck, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    handler = type("Health", (_HealthHandler,), {"check": staticmethod(check)})
    server = ThreadingHTTPServer((host, port), handler)
    Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional on non-Linux
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def run_service(
    name: str,
    settings: Settings,
    main: Callable[[asyncio.Event], Awaitable[None]],
    *,
    health: HealthCheck | None = None,
    json_logs: bool = False,
    metrics: bool = True,
) -> int:
    """Run ``main(stop_event)`` until it returns or SIGTERM/SIGINT sets ``stop_event``."""
    setup_logging(settings.log_level, json_lines=json_logs)
    stacks_on_request()
    uv = install_uvloop()
    if metrics and settings.metrics_port:
        start_http_server(settings.metrics_port)
    health_server = serve_health(settings.health_port, health or (lambda: True)) if settings.health_port else None
    log.info(
        "%s starting (metrics :%s, health :%s, uvloop %s)", name, settings.metrics_port, settings.health_port, uv
    )

    async def runner() -> None:
        await main(stop_on_signals())

    try:
        asyncio.run(runner())
    finally:
        if health_server is not None:
            health_server.shutdown()
    log.info("%s stopped", name)
    return 0


def stacks_on_request() -> None:
    """``kill -USR1 <pid>`` writes every thread's stack to stderr (the log) and the process goes on:
    how to see where a hung service waits."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets (handlers on the running loop, where it supports them).
    On that loop, ``kill -USR1`` also writes where every asyncio task waits (:func:`tasks_on_request`)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    tasks_on_request(loop)
    return stop


def tasks_on_request(loop: asyncio.AbstractEventLoop) -> None:
    """``kill -USR1 <pid>`` writes every thread's stack and, once the loop runs again, every asyncio
    task's await chain to stderr: a hung stop waits in a coroutine, which a thread's stack does not
    show. The threads' dump comes first and does not need the loop, so a blocked loop still shows."""
    # registered again on top of the loop's handler; it returns whether it was registered (typeshed: None)
    threads_dump = faulthandler.unregister(signal.SIGUSR1)  # type: ignore[func-returns-value]
    try:
        loop.add_signal_handler(signal.SIGUSR1, write_task_stacks)
    except (NotImplementedError, RuntimeError, ValueError):  # a loop without signal support, or not the main thread
        if threads_dump:
            faulthandler.register(signal.SIGUSR1, all_threads=True)
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):  # stderr without a file descriptor
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=True)


def write_task_stacks() -> None:
    tasks = sorted(asyncio.all_tasks(), key=lambda task: task.get_name())
    lines = [f"--- {len(tasks)} asyncio tasks, where each waits ---"]
    lines += [f"task {task.get_name()}: {waiting_in(task)}" for task in tasks]
    print("\n".join(lines), file=sys.stderr, flush=True)


async def until_stopped(stop: asyncio.Event) -> None:
    await stop.wait()
