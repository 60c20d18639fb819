"""`titan up` watches the embedded PostgreSQL and NATS it started like its other children: a server
that died is started again on the same port with the same data (the components reconnect), the
outage is logged and shown, and its length recorded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from titan.core.config import Settings
from titan.core.infra import InfraError, InfraState, NatsServer, PostgresServer
from titan.core.infra.procs import port_is_free, port_open

log = logging.getLogger("titan.up")

LABELS = {"postgres": "PostgreSQL", "nats": "NATS"}


@dataclass
class ServerHealth:
    """One embedded server as `titan up` sees it."""

    name: str
    pid: int | None = None
    restarts: int = 0
    down_since: float | None = None    # monotonic time the outage was noticed
    last_outage_s: float | None = None  # how long the last outage lasted

    def describe(self) -> str:
        if self.down_since is None:
            return f"{LABELS[self.name]} up (pid {self.pid}, restarts {self.restarts})"
        return f"{LABELS[self.name]} DOWN for {time.monotonic() - self.down_since:.0f}s, restarting"


class InfraWatch:
    """Polls the servers in ``names`` (those `titan up` started) and restarts a dead one."""

    def __init__(self, settings: Settings, names: list[str], *, interval_s: float = 0.5,
                 retry_s: float = 1.0) -> None:
        self.settings = settings
        self.interval_s = interval_s
        self.retry_s = retry_s
        self.health = {name: ServerHealth(name) for name in names}
        self._servers: dict[str, Callable[[], PostgresServer | NatsServer]] = {
            "postgres": self._postgres, "nats": self._nats}
        for name, health in self.health.items():
            health.pid = self._servers[name]().pid()

    def _postgres(self) -> PostgresServer:
        saved = InfraState.load(self.settings)
        return PostgresServer(self.settings.infra_dir / "postgres", port=saved.pg_port or None)

    def _nats(self) -> NatsServer:
        saved = InfraState.load(self.settings)
        return NatsServer(self.settings.infra_dir / "nats", port=saved.nats_port or None)

    def outages(self) -> list[str]:
        return [h.describe() for h in self.health.values() if h.down_since is not None]

    def summary(self) -> dict[str, dict[str, object]]:
        return {name: {"pid": h.pid, "restarts": h.restarts, "down": h.down_since is not None,
                       "last_outage_s": h.last_outage_s} for name, h in self.health.items()}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for name, health in self.health.items():
                await asyncio.to_thread(self.check, name, health)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)

    def check(self, name: str, health: ServerHealth) -> None:
        server = self._servers[name]()
        if server.running() and port_open(server.port):
            return
        if health.down_since is None:
            health.down_since = time.monotonic()
            log.error("%s is down (pid %s gone); restarting it with its data", LABELS[name], health.pid,
                      extra={"server": name, "pid": health.pid})
        if not port_is_free(server.port):  # the components know this port: wait until it can be had again
            time.sleep(self.retry_s)
            return
        try:
            if name == "nats":
                server.start(detach=True)  # type: ignore[call-arg]
            else:
                server.start()
        except InfraError as err:
            log.warning("%s restart failed (%s); retrying", LABELS[name], str(err).splitlines()[0],
                        extra={"server": name})
            time.sleep(self.retry_s)
            return
        health.restarts += 1
        health.pid = server.pid()
        health.last_outage_s = round(time.monotonic() - health.down_since, 3)
        health.down_since = None
        log.warning("%s is back (pid %s, port %s) after %.1fs down", LABELS[name], health.pid, server.port,
                    health.last_outage_s, extra={"server": name, "pid": health.pid, "restarts": health.restarts,
                                                 "outage_s": health.last_outage_s})
