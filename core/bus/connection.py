"""Connecting to NATS: quiet errors, reconnect forever once connected."""

from __future__ import annotations

import logging

from nats.aio.client import Client
from nats.errors import NoServersError

log = logging.getLogger("titan.bus")

# Reconnect settings: wait 1 s between attempts, never give up once the first connection succeeded
# (a component keeps its subscriptions and in-flight state across a NATS restart).
RECONNECT_WAIT_S = 1
CONNECT_TIMEOUT_S = 2
PING_INTERVAL_S = 20
MAX_OUTSTANDING_PINGS = 3


async def connect(url: str, name: str, *, initial_retries: int = 10) -> Client:
    """Connect to NATS at ``url`` (comma-separated for a cluster) as client ``name``.

    The first connection is tried ``initial_retries + 1`` times per server (1 s apart), then
    :class:`ConnectionError` is raised; once connected, the client reconnects forever. Connection
    problems are logged as one line each (no tracebacks)."""
    if initial_retries < 1:
        raise ValueError("initial_retries must be >= 1")  # nats-py treats 0 as "retry forever"

    async def on_error(exc: Exception) -> None:
        log.warning("nats %s: %s: %s", name, type(exc).__name__, exc or "error")

    async def on_disconnected() -> None:
        if not (nc.is_closed or nc.is_draining):
            log.warning("nats %s: disconnected", name)

    async def on_reconnected() -> None:
        log.info("nats %s: reconnected to %s", name, nc.connected_url.netloc if nc.connected_url else "?")

    async def on_closed() -> None:
        log.debug("nats %s: closed", name)

    nc = Client()
    servers = [u.strip() for u in url.split(",") if u.strip()]
    try:
        await nc.connect(
            servers=servers,
            name=name,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            closed_cb=on_closed,
            allow_reconnect=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            reconnect_time_wait=RECONNECT_WAIT_S,
            max_reconnect_attempts=initial_retries,
            ping_interval=PING_INTERVAL_S,
            max_outstanding_pings=MAX_OUTSTANDING_PINGS,
        )
    except NoServersError:
        raise ConnectionError(
            f"cannot connect to NATS at {url} after {initial_retries + 1} attempts"
        ) from None
    # Connected: from now on never stop reconnecting.
    nc.options["max_reconnect_attempts"] = -1
    return nc


__all__ = ["connect"]
