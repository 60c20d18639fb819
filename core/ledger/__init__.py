"""The ledger: PostgreSQL schema (versioned migrations), an async repository over titan.v1 events,
and the writer that persists JetStream events idempotently."""

from titan.core.ledger.migrations import MIGRATIONS, Migration, MigrationError, migrate
from titan.core.ledger.proposals import ParamsVersion, ProposalRow
from titan.core.ledger.repository import OPEN_ORDER_STATES, Ledger
from titan.core.ledger.statements import LedgerReject
from titan.core.ledger.writer import LedgerWriter

__all__ = [
    "MIGRATIONS",
    "OPEN_ORDER_STATES",
    "Ledger",
    "LedgerReject",
    "LedgerWriter",
    "Migration",
    "MigrationError",
    "ParamsVersion",
    "ProposalRow",
    "migrate",
]
