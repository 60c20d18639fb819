"""`titan infra up|down|status`: embedded PostgreSQL + NATS under the data dir, or the ones named by
TITAN_PG_DSN / TITAN_NATS_URL (then nothing is started). Restarting keeps the data."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from titan.core.config import Settings
from titan.core.infra.nats import NatsServer
from titan.core.infra.postgres import PostgresServer
from titan.core.infra.procs import port_open


@dataclass
class InfraState:
    pg_dsn: str = ""
    nats_url: str = ""
    pg_embedded: bool = False
    nats_embedded: bool = False
    pg_port: int = 0
    nats_port: int = 0
    notes: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # what this call started ("postgres", "nats")

    @staticmethod
    def path(settings: Settings) -> Path:
        return settings.infra_dir / "state.json"

    @classmethod
    def load(cls, settings: Settings) -> InfraState:
        try:
            raw = json.loads(cls.path(settings).read_text())
        except (OSError, ValueError):
            return cls()
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, settings: Settings) -> None:
        path = self.path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data.pop("notes")
        data.pop("started")
        path.write_text(json.dumps(data, indent=2) + "\n")


def _postgres(settings: Settings, saved: InfraState) -> PostgresServer:
    return PostgresServer(settings.infra_dir / "postgres", port=saved.pg_port or None)


def _nats(settings: Settings, saved: InfraState) -> NatsServer:
    return NatsServer(settings.infra_dir / "nats", port=saved.nats_port or None)


def infra_up(settings: Settings) -> InfraState:
    """Start what is not given by DSN/URL (or find it already running); return where things are."""
    saved = InfraState.load(settings)
    state = InfraState()
    if settings.pg_dsn:
        state.pg_dsn = settings.pg_dsn
        state.notes.append("PostgreSQL: using TITAN_PG_DSN (nothing started)")
    else:
        pg = _postgres(settings, saved)
        if pg.running() and saved.pg_port and port_open(saved.pg_port):
            state.notes.append(f"PostgreSQL: already running (pid {pg.pid()})")
        else:
            fresh = not pg.initialized()
            pg.start()
            state.started.append("postgres")
            state.notes.append(
                f"PostgreSQL: {'initialised and ' if fresh else ''}started (pid {pg.pid()}, data {pg.data_dir})"
            )
        state.pg_embedded, state.pg_port, state.pg_dsn = True, pg.port, pg.dsn()
    if settings.nats_url:
        state.nats_url = settings.nats_url
        state.notes.append("NATS: using TITAN_NATS_URL (nothing started)")
    else:
        nats = _nats(settings, saved)
        if nats.running() and saved.nats_port and port_open(saved.nats_port):
            nats.port = saved.nats_port
            state.notes.append(f"NATS: already running (pid {nats.pid()})")
        else:
            nats.start(detach=True)
            state.started.append("nats")
            state.notes.append(f"NATS: started with JetStream (pid {nats.pid()}, store {nats.store_dir})")
            state.notes += [f"NATS: {note}" for note in nats.notes]
        state.nats_embedded, state.nats_port, state.nats_url = True, nats.port, nats.url
    state.save(settings)
    return state


def embedded_nats_monitor_url(settings: Settings) -> str:
    """The monitoring endpoint of the embedded NATS when TITAN_NATS_URL names it (as `titan up` sets
    it for its children); "" otherwise."""
    saved = InfraState.load(settings)
    if not saved.nats_embedded or saved.nats_url != settings.nats_url:
        return ""
    return _nats(settings, saved).monitor_url


def infra_down(settings: Settings, only: Collection[str] = ("postgres", "nats")) -> list[str]:
    """Stop the embedded servers (those named in ``only``); the data stays."""
    saved = InfraState.load(settings)
    notes = []
    for name, label, server in (("postgres", "PostgreSQL", _postgres(settings, saved)),
                                ("nats", "NATS", _nats(settings, saved))):
        if name not in only:
            continue
        if server.running():
            server.stop()
            notes.append(f"{label}: stopped (data kept)")
        else:
            notes.append(f"{label}: not running")
    return notes


def embedded_ledger_exists(settings: Settings) -> bool:
    """Whether the embedded PostgreSQL under the data dir was ever initialised (so holds a ledger)."""
    return _postgres(settings, InfraState.load(settings)).initialized()


@contextmanager
def infra_while_needed(settings: Settings) -> Iterator[InfraState]:
    """The infrastructure for a short task (`titan status`, `titan report`): running servers are
    reused, missing ones started, and only those this call started are stopped afterwards."""
    state = infra_up(settings)
    try:
        yield state
    finally:
        if state.started:
            infra_down(settings, only=state.started)


def infra_status(settings: Settings) -> dict[str, dict[str, object]]:
    saved = InfraState.load(settings)
    pg = _postgres(settings, saved)
    nats = _nats(settings, saved)
    pg_external, nats_external = bool(settings.pg_dsn), bool(settings.nats_url)
    return {
        "postgres": {
            "mode": "external" if pg_external else "embedded",
            "running": (not pg_external) and pg.running(),
            "pid": None if pg_external else pg.pid(),
            "dsn": settings.pg_dsn if pg_external else (saved.pg_dsn or None),
            "data": None if pg_external else str(pg.data_dir),
        },
        "nats": {
            "mode": "external" if nats_external else "embedded",
            "running": (not nats_external) and nats.running(),
            "pid": None if nats_external else nats.pid(),
            "url": settings.nats_url if nats_external else (saved.nats_url or None),
            "data": None if nats_external else str(nats.store_dir),
        },
    }
