"""Versioned schema migrations for the ledger.

Migrations are numbered and applied in order, all pending ones in one transaction, under a
PostgreSQL advisory lock (so processes starting together apply them once). Each applied migration is
recorded in ``schema_migrations`` with a checksum; a changed migration that was already applied is an
error. Running :func:`migrate` again is a no-op. Never edit a released migration: add a new one.

Conventions: amounts are NUMERIC (NULL where the wire value is empty), timestamps are BIGINT
nanoseconds (``*_ns``) with a generated ``timestamptz`` beside the main one for people, enums are
stored as their titan.v1 names (readable in psql).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

# pg_advisory_xact_lock key: "titan-ledger-migrate" folded into a signed 64-bit integer.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"titan-ledger-migrate").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def _ts(column: str) -> str:
    return f"timestamptz GENERATED ALWAYS AS (to_timestamp({column}::double precision / 1e9)) STORED"


_INITIAL = f"""
CREATE TABLE events (
    event_id        text PRIMARY KEY,
    kind            text NOT NULL,
    source          text NOT NULL,
    ts_ns           bigint NOT NULL,
    ts              {_ts("ts_ns")},
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    payload         bytea NOT NULL
);
CREATE INDEX events_kind_ts ON events (kind, ts_ns);

CREATE TABLE orders (
    client_order_id text PRIMARY KEY,
    venue_order_id  text NOT NULL,
    phase_id        text NOT NULL,
    signal_id       text NOT NULL,
    leg             integer NOT NULL,
    venue           text NOT NULL,
    symbol          text NOT NULL,
    instrument      text NOT NULL,
    side            text NOT NULL,
    order_type      text NOT NULL,
    price           numeric,
    quantity        numeric,
    notional_quote  numeric,
    reduce_only     boolean NOT NULL,
    state           text NOT NULL,
    filled_quantity numeric,
    average_price   numeric,
    fees            numeric,
    reason          text NOT NULL,
    created_at_ns   bigint NOT NULL,
    updated_at_ns   bigint NOT NULL,
    updated_at      {_ts("updated_at_ns")},
    version         bigint NOT NULL,
    event_id        text NOT NULL
);
CREATE INDEX orders_phase ON orders (phase_id, created_at_ns);
CREATE INDEX orders_open ON orders (state) WHERE state IN
    ('ORDER_STATE_NEW', 'ORDER_STATE_SUBMITTED', 'ORDER_STATE_ACCEPTED', 'ORDER_STATE_PARTIALLY_FILLED');

CREATE TABLE fills (
    venue           text NOT NULL,
    fill_id         text NOT NULL,
    client_order_id text NOT NULL,
    phase_id        text NOT NULL,
    symbol          text NOT NULL,
    instrument      text NOT NULL,
    side            text NOT NULL,
    price           numeric NOT NULL,
    quantity        numeric NOT NULL,
    fee             numeric NOT NULL,
    maker           boolean NOT NULL,
    realized_pnl    numeric NOT NULL,
    ts_ns           bigint NOT NULL,
    ts              {_ts("ts_ns")},
    event_id        text NOT NULL,
    PRIMARY KEY (venue, fill_id)
);
CREATE INDEX fills_phase_ts ON fills (phase_id, ts_ns);
CREATE INDEX fills_ts ON fills (ts_ns);
CREATE INDEX fills_order ON fills (client_order_id);

CREATE TABLE positions (
    phase_id            text NOT NULL,
    venue               text NOT NULL,
    symbol              text NOT NULL,
    instrument          text NOT NULL,
    quantity            numeric NOT NULL,
    average_entry_price numeric,
    mark_price          numeric,
    realized_pnl        numeric,
    unrealized_pnl      numeric,
    fees                numeric,
    funding             numeric,
    leverage            numeric,
    liquidation_price   numeric,
    ts_ns               bigint NOT NULL,
    ts                  {_ts("ts_ns")},
    version             bigint NOT NULL,
    event_id            text NOT NULL,
    PRIMARY KEY (phase_id, venue, symbol, instrument)
);

CREATE TABLE funding_payments (
    venue             text NOT NULL,
    symbol            text NOT NULL,
    phase_id          text NOT NULL,
    funding_time_ns   bigint NOT NULL,
    funding_time      {_ts("funding_time_ns")},
    rate              numeric NOT NULL,
    position_quantity numeric NOT NULL,
    mark_price        numeric,
    amount            numeric NOT NULL,
    event_id          text NOT NULL,
    PRIMARY KEY (venue, symbol, phase_id, funding_time_ns)
);
CREATE INDEX funding_phase_ts ON funding_payments (phase_id, funding_time_ns);

CREATE TABLE equity_snapshots (
    scope           text NOT NULL,
    ts_ns           bigint NOT NULL,
    ts              {_ts("ts_ns")},
    equity          numeric NOT NULL,
    realized_pnl    numeric,
    unrealized_pnl  numeric,
    fees            numeric,
    funding         numeric,
    exposure        numeric,
    event_id        text NOT NULL,
    PRIMARY KEY (scope, ts_ns)
);

CREATE TABLE signals (
    phase_id        text NOT NULL,
    signal_id       text NOT NULL,
    intent          text NOT NULL,
    setup           text NOT NULL,
    confidence      double precision NOT NULL,
    leg_count       integer NOT NULL,
    created_at_ns   bigint NOT NULL,
    created_at      {_ts("created_at_ns")},
    payload         bytea NOT NULL,
    event_id        text NOT NULL,
    PRIMARY KEY (phase_id, signal_id)
);

CREATE TABLE decisions (
    phase_id          text NOT NULL,
    signal_id         text NOT NULL,
    accepted          boolean NOT NULL,
    reason            text NOT NULL,
    detail            text NOT NULL,
    client_order_ids  text[] NOT NULL,
    received_at_ns    bigint NOT NULL,
    acked_at_ns       bigint NOT NULL,
    acked_at          {_ts("acked_at_ns")},
    event_id          text NOT NULL,
    PRIMARY KEY (phase_id, signal_id)
);
CREATE INDEX decisions_acked ON decisions (acked_at_ns);
CREATE INDEX decisions_reason ON decisions (reason) WHERE NOT accepted;

CREATE TABLE allocations (
    phase_id        text NOT NULL,
    ts_ns           bigint NOT NULL,
    ts              {_ts("ts_ns")},
    state           text NOT NULL,
    weight          numeric,
    notional        numeric,
    max_leverage    numeric,
    equity          numeric,
    reason          text NOT NULL,
    event_id        text NOT NULL,
    PRIMARY KEY (phase_id, ts_ns)
);
CREATE INDEX allocations_ts ON allocations (ts_ns);

CREATE TABLE breaker_events (
    breaker_id      text NOT NULL,
    ts_ns           bigint NOT NULL,
    ts              {_ts("ts_ns")},
    kind            text NOT NULL,
    tripped         boolean NOT NULL,
    reason          text NOT NULL,
    equity          numeric,
    drawdown        numeric,
    phase_id        text NOT NULL,
    event_id        text NOT NULL,
    PRIMARY KEY (breaker_id, ts_ns)
);

CREATE TABLE parameter_proposals (
    proposal_id     text PRIMARY KEY,
    phase_id        text NOT NULL,
    params_json     text NOT NULL,
    rationale       text NOT NULL,
    status          text NOT NULL,
    baseline_score  text NOT NULL,
    candidate_score text NOT NULL,
    reason          text NOT NULL,
    created_ts_ns   bigint NOT NULL,
    ts_ns           bigint NOT NULL,
    ts              {_ts("ts_ns")},
    event_id        text NOT NULL
);
CREATE INDEX proposals_phase ON parameter_proposals (phase_id, ts_ns);

CREATE TABLE trading_state_changes (
    version         bigint NOT NULL,
    ts_ns           bigint NOT NULL,
    ts              {_ts("ts_ns")},
    mode            text NOT NULL,
    reason          text NOT NULL,
    set_by          text NOT NULL,
    event_id        text NOT NULL,
    PRIMARY KEY (version, ts_ns)
);
"""

# The AI Quant's evidence: where a proposal came from, why it was refused, every walk-forward fold's
# numbers, and the versions of a phase's params it applied (rollback restores the previous one).
_PROPOSAL_EVIDENCE = f"""
ALTER TABLE parameter_proposals
    ADD COLUMN source           text NOT NULL DEFAULT '',
    ADD COLUMN reason_code      text NOT NULL DEFAULT '',
    ADD COLUMN objective        text NOT NULL DEFAULT '',
    ADD COLUMN base_params_json text NOT NULL DEFAULT '',
    ADD COLUMN changes          jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN folds            jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN model            text NOT NULL DEFAULT '',
    ADD COLUMN prompt_tokens    integer NOT NULL DEFAULT 0,
    ADD COLUMN output_tokens    integer NOT NULL DEFAULT 0,
    ADD COLUMN parsed_none      boolean NOT NULL DEFAULT false,
    ADD COLUMN elapsed_s        double precision NOT NULL DEFAULT 0;
CREATE INDEX proposals_status ON parameter_proposals (status, created_ts_ns);

CREATE TABLE parameter_versions (
    phase_id             text NOT NULL,
    version              integer NOT NULL,
    params_json          text NOT NULL,
    previous_params_json text NOT NULL,
    proposal_id          text NOT NULL,
    action               text NOT NULL,
    target               text NOT NULL,
    ts_ns                bigint NOT NULL,
    ts                   {_ts("ts_ns")},
    PRIMARY KEY (phase_id, version)
);
CREATE INDEX parameter_versions_proposal ON parameter_versions (proposal_id);
"""

# Recovery from a snapshot: fills and funding payments are numbered in the order they are recorded
# (``seq``); a snapshot holds every position folded from the fills and payments up to its numbers, so a
# restart replays only the rows recorded after it (see docs/ledger.md, "Snapshots").
_SNAPSHOTS = f"""
ALTER TABLE fills ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX fills_seq ON fills (seq);
ALTER TABLE funding_payments ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX funding_seq ON funding_payments (seq);

CREATE TABLE snapshots (
    snapshot_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fill_seq        bigint NOT NULL,
    funding_seq     bigint NOT NULL,
    taken_at_ns     bigint NOT NULL,
    taken_at        {_ts("taken_at_ns")},
    positions       integer NOT NULL,
    fills_folded    bigint NOT NULL
);

CREATE TABLE snapshot_positions (
    snapshot_id         bigint NOT NULL REFERENCES snapshots ON DELETE CASCADE,
    phase_id            text NOT NULL,
    venue               text NOT NULL,
    symbol              text NOT NULL,
    instrument          text NOT NULL,
    quantity            numeric NOT NULL,
    average_entry_price numeric NOT NULL,
    realized_pnl        numeric NOT NULL,
    fees                numeric NOT NULL,
    funding             numeric NOT NULL,
    ts_ns               bigint NOT NULL,
    version             bigint NOT NULL,
    PRIMARY KEY (snapshot_id, phase_id, venue, symbol, instrument)
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial ledger schema", _INITIAL),
    Migration(2, "parameter proposal evidence and params versions", _PROPOSAL_EVIDENCE),
    Migration(3, "position snapshots; fills and funding numbered as recorded", _SNAPSHOTS),
)


class MigrationError(RuntimeError):
    pass


def _check_order(migrations: tuple[Migration, ...]) -> None:
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise MigrationError(f"migration versions must be unique, ascending and >= 1: {versions}")


async def migrate(conn: Any, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply pending migrations on an asyncpg connection; return the versions applied now."""
    _check_order(migrations)
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now()
               )"""
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        done: dict[int, str] = {int(r["version"]): str(r["checksum"]) for r in rows}
        known = {m.version for m in migrations}
        unknown = sorted(set(done) - known)
        if unknown:
            raise MigrationError(f"database has migrations this code does not know: {unknown} (newer code?)")
        for m in migrations:
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise MigrationError(f"migration {m.version} ({m.name}) changed after it was applied")
                continue
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                m.version,
                m.name,
                m.checksum,
            )
            applied_now.append(m.version)
    return applied_now
