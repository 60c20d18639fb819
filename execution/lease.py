"""One execution per ledger: a PostgreSQL session-level advisory lock, held on a connection of its own.

Budgets are enforced by the execution that books the orders, across every venue of the ledger; two
executions writing one ledger would each enforce them only for themselves. So an execution takes
the ledger's lease before it recovers anything, and a second one is refused with the holder's
name (``titan-execution@<host>:<pid>``, the lock session's ``application_name``).

* The lock lives as long as its session: a killed execution's lease frees when PostgreSQL sees the
  connection close (at once for a process death on the same host; TCP keepalives, set on the
  session, bound it for a vanished host).
* :meth:`LedgerLease.keep` confirms the session every ``interval_s``. When the session is lost
  (PostgreSQL restarted, the network broke) it reconnects and takes the lock again; a stale session
  of this very process still holding it is terminated first. If another execution took it
  meanwhile, ``on_lost`` is told its name and entries stay refused until the lease is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

log = logging.getLogger("titan.execution.lease")

# pg_try_advisory_lock(key1 int4, key2 int4): the class "TITN" and the execution lease within it.
LOCK_CLASS = 0x5449544E
LOCK_EXECUTION = 1
_TAKE = "SELECT pg_try_advisory_lock($1::int4, $2::int4)"
_HOLDER = """
SELECT a.pid, coalesce(a.application_name, '') AS name, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int4::oid AND l.objid = $2::int4::oid
  AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_KEEPALIVES = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}
_CONNECT_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


def lease_name(host: str | None = None, pid: int | None = None) -> str:
    """This process's name on the lease session (``application_name`` keeps 63 bytes)."""
    tail = f":{os.getpid() if pid is None else pid}"
    host = (host or socket.gethostname()).encode("ascii", "replace").decode()
    return f"titan-execution@{host[: 63 - len('titan-execution@') - len(tail)]}{tail}"


@dataclass(frozen=True)
class Holder:
    """The session holding the lease: its name (host and pid of the execution) and since when."""

    name: str
    backend_pid: int
    since: str

    def describe(self) -> str:
        who = self.name or f"an unnamed session (PostgreSQL backend {self.backend_pid})"
        return f"{who}, holding it since {self.since}" if self.since else who


class LeaseHeld(Exception):
    """Another execution holds the ledger's lease."""

    def __init__(self, holder: Holder) -> None:
        self.holder = holder
        super().__init__(
            f"another execution already uses this ledger: {holder.describe()}. One execution per ledger: "
            "stop that one first (or point this one at its own ledger)"
        )


class LedgerLease:
    """The advisory lock that makes this execution the ledger's only one."""

    def __init__(self, dsn: str, *, name: str | None = None, interval_s: float = 1.0, timeout_s: float = 5.0) -> None:
        self.dsn = dsn
        self.name = name or lease_name()
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._conn: Any = None

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def acquire(self, wait_s: float = 30.0) -> None:
        """Take the lease, waiting up to ``wait_s`` for PostgreSQL to answer; raises
        :class:`LeaseHeld` when another execution holds it."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            try:
                holder = await self._take()
                break
            except _CONNECT_ERRORS as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise ConnectionError(f"the ledger did not answer for {wait_s:.0f}s to take its lease: "
                                          f"{type(exc).__name__}: {exc}") from None
                await asyncio.sleep(0.25)
        if holder is not None:
            raise LeaseHeld(holder)
        log.info("holding the ledger's lease as %s", self.name)

    async def keep(self, on_confirmed: Callable[[], None], on_lost: Callable[[str], None]) -> None:
        """Forever: confirm the session, or take the lease again when it was lost. Unconfirmed
        (PostgreSQL unreachable) neither callback runs: the gate's grace decides."""
        lost_to: str | None = None
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                if self.held:
                    await self._conn.fetchval("SELECT 1", timeout=self.timeout_s)
                    holder = None
                else:
                    holder = await self._take()
                    if holder is None:
                        log.warning("holding the ledger's lease again as %s", self.name)
            except _CONNECT_ERRORS as exc:
                await self._drop(exc)
                continue
            if holder is None:
                lost_to = None
                on_confirmed()
            else:
                if lost_to != holder.name:
                    log.error("the ledger's lease is held by %s: refusing entries", holder.describe())
                lost_to = holder.name
                on_lost(holder.describe())

    async def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=self.timeout_s)
            self._conn = None

    # ------------------------------------------------------------------------------------------
    async def _take(self) -> Holder | None:
        """Connect if needed and try the lock: None when this session holds it, else its holder."""
        if not self.held:
            self._conn = await asyncpg.connect(
                self.dsn, timeout=self.timeout_s,
                server_settings={"application_name": self.name, **_KEEPALIVES},
            )
        conn = self._conn
        if await conn.fetchval(_TAKE, LOCK_CLASS, LOCK_EXECUTION, timeout=self.timeout_s):
            return None
        row = await conn.fetchrow(_HOLDER, LOCK_CLASS, LOCK_EXECUTION, timeout=self.timeout_s)
        if row is None:  # released in between: try once more
            if await conn.fetchval(_TAKE, LOCK_CLASS, LOCK_EXECUTION, timeout=self.timeout_s):
                return None
            return Holder("", 0, "")
        holder = Holder(str(row["name"]), int(row["pid"]),
                        row["backend_start"].isoformat(timespec="seconds") if row["backend_start"] else "")
        if holder.name == self.name:  # an earlier session of this process, not yet noticed dead
            log.warning("ending a stale lease session of this process (backend %d)", holder.backend_pid)
            await conn.execute("SELECT pg_terminate_backend($1)", holder.backend_pid, timeout=self.timeout_s)
            if await conn.fetchval(_TAKE, LOCK_CLASS, LOCK_EXECUTION, timeout=self.timeout_s):
                return None
        return holder

    async def _drop(self, exc: BaseException) -> None:
        if self._conn is not None:
            log.warning("the ledger's lease session is gone (%s: %s); taking it again when PostgreSQL answers",
                        type(exc).__name__, exc)
            with contextlib.suppress(Exception):
                self._conn.terminate()
            self._conn = None
