"""The ledger: PostgreSQL persistence of every titan.v1 Event, idempotently.

``record(event)`` runs in one transaction: insert the envelope into ``events`` (primary key
``event_id``; a repeat does nothing and returns False), then apply the body with the table's natural
idempotency key (see docs/ledger.md); ``record_many`` does the same for a batch in one transaction.
Queries return titan.v1 messages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import asyncpg

from titan.core.ledger import proposals as proposal_sql
from titan.core.ledger import rows
from titan.core.ledger.batches import PreparedBatch, RowLayouts, bulk_statement, prepare_batch
from titan.core.ledger.migrations import migrate
from titan.core.ledger.proposals import ParamsVersion, ProposalRow
from titan.core.ledger.snapshots import EMPTY, Cursor, FillTotals, Snapshot
from titan.core.ledger.statements import LedgerReject
from titan.v1 import events_pb2, trading_pb2

log = logging.getLogger("titan.ledger")

OPEN_ORDER_STATES = (
    "ORDER_STATE_NEW",
    "ORDER_STATE_SUBMITTED",
    "ORDER_STATE_ACCEPTED",
    "ORDER_STATE_PARTIALLY_FILLED",
)


class Ledger:
    """Async repository over an asyncpg pool. Open with :meth:`open` (migrates by default)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._layout: RowLayouts | None = None

    @classmethod
    async def open(cls, dsn: str, *, migrate: bool = True, min_size: int = 1, max_size: int = 4) -> Ledger:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        ledger = cls(pool)
        if migrate:
            try:
                await ledger.migrate()
            except BaseException:
                await pool.close()
                raise
        return ledger

    async def migrate(self) -> list[int]:
        """Apply pending schema migrations; returns the versions applied now (empty: up to date)."""
        async with self._pool.acquire() as conn:
            applied: list[int] = await migrate(conn)
        self._layout = None
        if applied:
            log.info("ledger schema migrated: %s", applied)
        return applied

    async def close(self) -> None:
        await self._pool.close()

    @property
    def pool(self) -> Any:
        return self._pool

    # --- writing ------------------------------------------------------------------------------
    async def record(self, event: events_pb2.Event) -> bool:
        """Store ``event``; True if it was new, False if its event_id was already recorded.

        Raises :class:`LedgerReject` (before touching the database) for an event that can never be
        stored."""
        result = (await self.record_many([event]))[0]
        if isinstance(result, LedgerReject):
            raise result
        return result

    async def record_many(self, events: Sequence[events_pb2.Event]) -> list[bool | LedgerReject]:
        """Store ``events`` in order in one transaction: for each, True (new), False (its event_id
        was already recorded, also earlier in the same batch) or the :class:`LedgerReject` that keeps
        it out (checked before the database is touched). A database error rolls back the whole
        batch and propagates. The same as ``write(prepare(events))``.

        The batch is one statement (see :func:`bulk_statement`): envelopes in, the new ids out, and each
        table's rows reduced in SQL to what applying them one by one would leave (every body
        statement is DO NOTHING or guarded by version/time, so tables are independent of each
        other). Statements that merge fields (Collapse.NONE) follow row by row."""
        return await self.write(self.prepare(events))

    def prepare(self, events: Sequence[events_pb2.Event], *, checked: bool = False) -> PreparedBatch:
        """The CPU half of :meth:`record_many` (no I/O; see :func:`prepare_batch`). A caller can
        prepare the next batch while the database writes the previous one (in a thread: the table
        layouts are read once). ``checked``: the events' envelopes were validated already (as
        ``decode_event`` validates what it parses)."""
        return prepare_batch(events, self._layout, checked=checked)

    async def write(self, batch: PreparedBatch) -> list[bool | LedgerReject]:
        """The I/O half of :meth:`record_many`: one transaction for a :meth:`prepare` d batch."""
        results = list(batch.results)
        if not batch.new:
            return results
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                layout = await self._row_layouts(conn, {st.table for st in batch.bulk})
                sql, params = batch.statement or bulk_statement(layout, batch.envelopes, batch.bulk)
                new_ids = {r[0] for r in await conn.fetch(sql, *params)}
            except (asyncpg.exceptions.DataError, asyncpg.exceptions.UndefinedColumnError,
                    asyncpg.exceptions.InvalidCachedStatementError):
                self._layout = None  # the schema changed under us: learn it again on the next call
                await conn.reload_schema_state()
                raise
            by_statement: dict[str, list[tuple[Any, ...]]] = {}
            for st in batch.one_by_one:
                if st.args[st.statement.columns.index("event_id")] in new_ids:
                    by_statement.setdefault(st.sql, []).append(st.args)
            for sql, args in by_statement.items():
                await conn.executemany(sql, args)
        for i, event_id in batch.new:
            results[i] = event_id in new_ids
        return results

    async def _row_layouts(self, conn: Any, tables: set[str]) -> RowLayouts:
        if self._layout is None or not tables <= self._layout.tables:
            self._layout = await RowLayouts.load(conn)
        return self._layout

    # --- helpers ------------------------------------------------------------------------------
    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self._pool.acquire() as conn:
            return cast(list[Any], await conn.fetch(sql, *args))

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        async with self._pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    # --- events -------------------------------------------------------------------------------
    async def has_event(self, event_id: str) -> bool:
        return bool(await self._fetchval("SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1)", event_id))

    async def event_count(self, kind: str | None = None) -> int:
        if kind is None:
            return int(await self._fetchval("SELECT count(*) FROM events"))
        return int(await self._fetchval("SELECT count(*) FROM events WHERE kind = $1", str(kind)))

    async def events(self, *, kind: str | None = None, since_ns: int = 0, limit: int = 1000) -> list[events_pb2.Event]:
        """Recorded events in time order (ts_ns, then event_id)."""
        records = await self._fetch(
            "SELECT payload FROM events WHERE ($1::text IS NULL OR kind = $1) AND ts_ns >= $2"
            " ORDER BY ts_ns, event_id LIMIT $3",
            None if kind is None else str(kind),
            since_ns,
            limit,
        )
        out = []
        for r in records:
            ev = events_pb2.Event()
            ev.ParseFromString(r["payload"])
            out.append(ev)
        return out

    # --- orders -------------------------------------------------------------------------------
    async def order(self, client_order_id: str) -> trading_pb2.Order | None:
        records = await self._fetch("SELECT * FROM orders WHERE client_order_id = $1", client_order_id)
        return rows.order_from_row(records[0]) if records else None

    async def orders(
        self,
        phase_id: str | None = None,
        *,
        states: tuple[str, ...] | None = None,
        since_ns: int = 0,
        limit: int = 1000,
    ) -> list[trading_pb2.Order]:
        """Orders (latest version of each), oldest first; ``states`` are OrderState names."""
        records = await self._fetch(
            "SELECT * FROM orders WHERE ($1::text IS NULL OR phase_id = $1)"
            " AND ($2::text[] IS NULL OR state = ANY($2)) AND created_at_ns >= $3"
            " ORDER BY created_at_ns, client_order_id LIMIT $4",
            phase_id,
            None if states is None else list(states),
            since_ns,
            limit,
        )
        return [rows.order_from_row(r) for r in records]

    async def open_orders(self, phase_id: str | None = None) -> list[trading_pb2.Order]:
        return await self.orders(phase_id, states=OPEN_ORDER_STATES, limit=100_000)

    # --- fills --------------------------------------------------------------------------------
    async def fills(
        self, phase_id: str | None = None, since_ns: int = 0, *, limit: int = 100_000
    ) -> list[trading_pb2.Fill]:
        records = await self._fetch(
            "SELECT * FROM fills WHERE ($1::text IS NULL OR phase_id = $1) AND ts_ns >= $2"
            " ORDER BY ts_ns, venue, fill_id LIMIT $3",
            phase_id,
            since_ns,
            limit,
        )
        return [rows.fill_from_row(r) for r in records]

    async def fill_count(self, phase_id: str | None = None) -> int:
        return int(
            await self._fetchval("SELECT count(*) FROM fills WHERE ($1::text IS NULL OR phase_id = $1)", phase_id)
        )

    # --- positions ----------------------------------------------------------------------------
    async def positions(self, phase_id: str | None = None, *, include_flat: bool = False) -> list[trading_pb2.Position]:
        """Latest position per (phase, venue, symbol, instrument); flat ones only if asked."""
        records = await self._fetch(
            "SELECT * FROM positions WHERE ($1::text IS NULL OR phase_id = $1) AND ($2 OR quantity <> 0)"
            " ORDER BY phase_id, venue, symbol, instrument",
            phase_id,
            include_flat,
        )
        return [rows.position_from_row(r) for r in records]

    # --- recovery: snapshots and what came after them (titan.core.ledger.snapshots) -------------
    async def cursor(self) -> Cursor:
        """The newest recorded fill and funding payment. Taken while no write to either table is in
        flight (SHARE lock), so no row numbered below it can appear later."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE fills, funding_payments IN SHARE MODE")
            record = await conn.fetchrow(
                "SELECT (SELECT coalesce(max(seq), 0) FROM fills) AS fill_seq,"
                " (SELECT coalesce(max(seq), 0) FROM funding_payments) AS funding_seq"
            )
        return Cursor(int(record["fill_seq"]), int(record["funding_seq"]))

    async def latest_snapshot(self) -> Snapshot:
        """The newest snapshot (``snapshots.EMPTY`` if none was taken)."""
        async with self._pool.acquire() as conn:
            head = await conn.fetchrow("SELECT * FROM snapshots ORDER BY snapshot_id DESC LIMIT 1")
            if head is None:
                return EMPTY
            records = await conn.fetch(
                "SELECT * FROM snapshot_positions WHERE snapshot_id = $1 ORDER BY phase_id, venue, symbol, instrument",
                head["snapshot_id"],
            )
        return Snapshot(Cursor(head["fill_seq"], head["funding_seq"]), head["taken_at_ns"],
                        tuple(rows.snapshot_position_from_row(r) for r in records), head["fills_folded"])

    async def save_snapshot(self, snapshot: Snapshot, *, keep: int = 3) -> bool:
        """Store ``snapshot`` unless one at the same or a later cursor exists (False then); the
        ``keep`` newest snapshots are kept."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE snapshots IN SHARE ROW EXCLUSIVE MODE")  # one writer at a time
            newest = await conn.fetchrow(
                "SELECT fill_seq, funding_seq FROM snapshots ORDER BY snapshot_id DESC LIMIT 1"
            )
            if newest is not None and Cursor(newest["fill_seq"], newest["funding_seq"]) >= snapshot.cursor:
                return False
            snapshot_id = await conn.fetchval(
                "INSERT INTO snapshots (fill_seq, funding_seq, taken_at_ns, positions, fills_folded)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING snapshot_id",
                snapshot.cursor.fill_seq, snapshot.cursor.funding_seq, snapshot.taken_at_ns,
                len(snapshot.positions), snapshot.fills_folded,
            )
            await conn.executemany(rows.SNAPSHOT_POSITION_INSERT,
                                   [(snapshot_id, *rows.snapshot_position_args(p)) for p in snapshot.positions])
            await conn.execute(
                "DELETE FROM snapshots WHERE snapshot_id NOT IN"
                " (SELECT snapshot_id FROM snapshots ORDER BY snapshot_id DESC LIMIT $1)", keep,
            )
        return True

    async def fills_after(self, after: Cursor, upto: Cursor) -> list[trading_pb2.Fill]:
        """Fills recorded after ``after`` up to ``upto``, in time order (ts_ns, venue, fill_id). Their
        numbers are as the database prints them (exact; trailing zeros kept): many rows, no detour
        through Decimal."""
        records = await self._fetch(
            f"SELECT {rows.FILL_TEXT_COLUMNS} FROM fills WHERE seq > $1 AND seq <= $2 ORDER BY ts_ns, venue, fill_id",
            after.fill_seq, upto.fill_seq,
        )
        return [rows.fill_from_text_row(r) for r in records]

    async def funding_after(self, after: Cursor, upto: Cursor) -> list[trading_pb2.FundingPayment]:
        """Funding payments recorded after ``after`` up to ``upto``, in funding time order."""
        records = await self._fetch(
            "SELECT * FROM funding_payments WHERE seq > $1 AND seq <= $2"
            " ORDER BY funding_time_ns, venue, symbol, phase_id",
            after.funding_seq, upto.funding_seq,
        )
        return [rows.funding_from_row(r) for r in records]

    async def fill_totals(self, since_ns: int) -> list[tuple[trading_pb2.Order, FillTotals]]:
        """Orders updated since ``since_ns`` whose filled quantity exceeds their recorded fills (a
        crash between an order event and its fill), with what their recorded fills add up to."""
        records = await self._fetch(
            "SELECT o.*, coalesce(f.quantity, 0) AS fills_quantity, coalesce(f.notional, 0) AS fills_notional,"
            " coalesce(f.fees, 0) AS fills_fees FROM orders o LEFT JOIN LATERAL ("
            "   SELECT sum(quantity) AS quantity, sum(quantity * price) AS notional, sum(fee) AS fees"
            "   FROM fills WHERE fills.client_order_id = o.client_order_id) f ON true"
            " WHERE o.updated_at_ns >= $1 AND o.filled_quantity > coalesce(f.quantity, 0)"
            " ORDER BY o.updated_at_ns, o.client_order_id",
            since_ns,
        )
        return [(rows.order_from_row(r), FillTotals(r["fills_quantity"], r["fills_notional"], r["fills_fees"]))
                for r in records]

    async def fill_ids_since(self, since_ns: int) -> set[tuple[str, str]]:
        """(venue, fill id) of the fills since ``since_ns``."""
        return {(r["venue"], r["fill_id"]) for r in
                await self._fetch("SELECT venue, fill_id FROM fills WHERE ts_ns >= $1", since_ns)}

    async def decisions_since(self, acked_since_ns: int) -> list[events_pb2.SignalDecision]:
        """Decisions acked since ``acked_since_ns``, most recent first, with their signals."""
        records = await self._fetch(
            "SELECT d.*, s.payload FROM decisions d LEFT JOIN signals s USING (phase_id, signal_id)"
            " WHERE d.acked_at_ns >= $1 ORDER BY d.acked_at_ns DESC, d.phase_id, d.signal_id",
            acked_since_ns,
        )
        return [rows.decision_from_row(r) for r in records]

    async def unit_signals(self, orders_since_ns: int) -> list[trading_pb2.Signal]:
        """Recorded signals of two or more legs with an order created since ``orders_since_ns``."""
        records = await self._fetch(
            "SELECT s.payload FROM signals s WHERE s.leg_count >= 2 AND EXISTS (SELECT 1 FROM orders o"
            " WHERE o.phase_id = s.phase_id AND o.signal_id = s.signal_id AND o.created_at_ns >= $1)"
            " ORDER BY s.created_at_ns, s.phase_id, s.signal_id",
            orders_since_ns,
        )
        out = []
        for r in records:
            signal = trading_pb2.Signal()
            signal.ParseFromString(r["payload"])
            out.append(signal)
        return out

    # --- funding ------------------------------------------------------------------------------
    async def funding_payments(
        self, phase_id: str | None = None, since_ns: int = 0
    ) -> list[trading_pb2.FundingPayment]:
        records = await self._fetch(
            "SELECT * FROM funding_payments WHERE ($1::text IS NULL OR phase_id = $1) AND funding_time_ns >= $2"
            " ORDER BY funding_time_ns, venue, symbol, phase_id",
            phase_id,
            since_ns,
        )
        return [rows.funding_from_row(r) for r in records]

    # --- equity -------------------------------------------------------------------------------
    async def latest_equity(self, scope: str = "total") -> trading_pb2.EquitySnapshot | None:
        records = await self._fetch(
            "SELECT * FROM equity_snapshots WHERE scope = $1 ORDER BY ts_ns DESC LIMIT 1", scope
        )
        return rows.equity_from_row(records[0]) if records else None

    async def equity_series(self, scope: str = "total", since_ns: int = 0) -> list[trading_pb2.EquitySnapshot]:
        records = await self._fetch(
            "SELECT * FROM equity_snapshots WHERE scope = $1 AND ts_ns >= $2 ORDER BY ts_ns", scope, since_ns
        )
        return [rows.equity_from_row(r) for r in records]

    # --- signals and decisions ----------------------------------------------------------------
    async def decisions(
        self, phase_id: str | None = None, *, limit: int = 100, accepted: bool | None = None
    ) -> list[events_pb2.SignalDecision]:
        """Most recent decisions first."""
        records = await self._fetch(
            "SELECT d.*, s.payload FROM decisions d"
            " LEFT JOIN signals s USING (phase_id, signal_id)"
            " WHERE ($1::text IS NULL OR d.phase_id = $1) AND ($2::boolean IS NULL OR d.accepted = $2)"
            " ORDER BY d.acked_at_ns DESC, d.phase_id, d.signal_id LIMIT $3",
            phase_id,
            accepted,
            limit,
        )
        return [rows.decision_from_row(r) for r in records]

    async def seen_signal(self, phase_id: str, signal_id: str) -> bool:
        """True if a decision about this signal was recorded (replay protection across restarts)."""
        return bool(
            await self._fetchval(
                "SELECT EXISTS (SELECT 1 FROM decisions WHERE phase_id = $1 AND signal_id = $2)", phase_id, signal_id
            )
        )

    # --- allocations, breakers, proposals, trading state ---------------------------------------
    async def allocations(
        self, phase_id: str | None = None, since_ns: int = 0, *, limit: int = 10_000
    ) -> list[events_pb2.Allocation]:
        records = await self._fetch(
            "SELECT * FROM allocations WHERE ($1::text IS NULL OR phase_id = $1) AND ts_ns >= $2"
            " ORDER BY ts_ns, phase_id LIMIT $3",
            phase_id,
            since_ns,
            limit,
        )
        return [rows.allocation_from_row(r) for r in records]

    async def latest_allocations(self) -> dict[str, events_pb2.Allocation]:
        records = await self._fetch(
            "SELECT DISTINCT ON (phase_id) * FROM allocations ORDER BY phase_id, ts_ns DESC"
        )
        return {r["phase_id"]: rows.allocation_from_row(r) for r in records}

    async def breaker_events(self, since_ns: int = 0) -> list[events_pb2.BreakerEvent]:
        records = await self._fetch(
            "SELECT * FROM breaker_events WHERE ts_ns >= $1 ORDER BY ts_ns, breaker_id", since_ns
        )
        return [rows.breaker_from_row(r) for r in records]

    async def proposals(
        self, phase_id: str | None = None, *, status: str | None = None
    ) -> list[events_pb2.ParameterProposal]:
        records = await self._fetch(
            "SELECT * FROM parameter_proposals WHERE ($1::text IS NULL OR phase_id = $1)"
            " AND ($2::text IS NULL OR status = $2) ORDER BY created_ts_ns, proposal_id",
            phase_id,
            status,
        )
        return [rows.proposal_from_row(r) for r in records]

    async def proposal(self, proposal_id: str) -> events_pb2.ParameterProposal | None:
        records = await self._fetch("SELECT * FROM parameter_proposals WHERE proposal_id = $1", proposal_id)
        return rows.proposal_from_row(records[0]) if records else None

    async def trading_states(self, since_ns: int = 0) -> list[trading_pb2.TradingState]:
        records = await self._fetch(
            "SELECT * FROM trading_state_changes WHERE ts_ns >= $1 ORDER BY ts_ns, version", since_ns
        )
        return [rows.trading_state_from_row(r) for r in records]

    async def latest_trading_state(self) -> trading_pb2.TradingState | None:
        records = await self._fetch(
            "SELECT * FROM trading_state_changes ORDER BY version DESC, ts_ns DESC LIMIT 1"
        )
        return rows.trading_state_from_row(records[0]) if records else None

    # --- the AI Quant's proposals and params versions (titan.core.ledger.proposals) ---------------
    async def save_proposal(self, row: ProposalRow) -> bool:
        """Store a proposal with its evidence; False if its id was already stored (kept as it was)."""
        async with self._pool.acquire() as conn:
            status = await conn.execute(proposal_sql.INSERT_PROPOSAL, *proposal_sql.proposal_args(row))
        return bool(status.endswith(" 1"))

    async def set_proposal_status(self, proposal_id: str, status: str, reason_code: str, reason: str,
                                  ts_ns: int) -> bool:
        """Move a proposal to ``status``; False if it does not exist or a newer change is stored."""
        async with self._pool.acquire() as conn:
            result = await conn.execute(proposal_sql.UPDATE_STATUS, proposal_id, status, reason_code, reason, ts_ns)
        return bool(result.endswith(" 1"))

    async def proposal_record(self, proposal_id: str) -> ProposalRow | None:
        records = await self._fetch("SELECT * FROM parameter_proposals WHERE proposal_id = $1", proposal_id)
        return proposal_sql.proposal_from_record(records[0]) if records else None

    async def proposal_records(
        self, phase_id: str | None = None, *, status: str | None = None, limit: int = 100
    ) -> list[ProposalRow]:
        """Newest first."""
        records = await self._fetch(
            "SELECT * FROM parameter_proposals WHERE ($1::text IS NULL OR phase_id = $1)"
            " AND ($2::text IS NULL OR status = $2) ORDER BY created_ts_ns DESC, proposal_id LIMIT $3",
            phase_id,
            status,
            limit,
        )
        return [proposal_sql.proposal_from_record(r) for r in records]

    async def add_params_version(
        self, phase_id: str, params_json: str, previous_params_json: str, proposal_id: str, action: str,
        target: str, ts_ns: int,
    ) -> ParamsVersion:
        """Record the next version of a phase's params (numbered per phase, under a lock)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('titan-params:' || $1))", phase_id)
            record = await conn.fetchrow(proposal_sql.INSERT_VERSION, phase_id, params_json, previous_params_json,
                                         proposal_id, action, target, ts_ns)
        return proposal_sql.version_from_record(record)

    async def params_versions(self, phase_id: str | None = None, *, proposal_id: str | None = None
                              ) -> list[ParamsVersion]:
        """Oldest first."""
        records = await self._fetch(
            "SELECT * FROM parameter_versions WHERE ($1::text IS NULL OR phase_id = $1)"
            " AND ($2::text IS NULL OR proposal_id = $2) ORDER BY phase_id, version",
            phase_id,
            proposal_id,
        )
        return [proposal_sql.version_from_record(r) for r in records]
