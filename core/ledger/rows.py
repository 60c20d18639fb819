"""Pure conversions between titan.v1 event bodies and ledger rows (no I/O).

Wire decimals become Decimal (an empty string becomes NULL, or zero where a value is required to
be a number); enums are stored by name. A body that cannot be stored raises :class:`LedgerReject`.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from titan.core.money import D, MoneyError, s
from titan.v1 import common_pb2, events_pb2, trading_pb2


class LedgerReject(ValueError):
    """An event the ledger can never store (malformed body). ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class _Enum(Protocol):
    def Name(self, number: int) -> str: ...
    def Value(self, name: str) -> int: ...


@functools.lru_cache(maxsize=1024)
def enum_name(enum: _Enum, number: int) -> str:
    """The enum value's name; an unknown number (from a newer producer) is kept as its digits."""
    try:
        return enum.Name(number)
    except ValueError:
        return str(number)


def enum_value(enum: _Enum, name: str) -> Any:
    """The enum number for a stored name (typed Any: protobuf's stubs want each enum's own ValueType)."""
    try:
        return enum.Value(name)
    except ValueError:
        return int(name) if name.lstrip("-").isdigit() else 0


def opt_num(value: str, field: str) -> Decimal | None:
    if value == "":
        return None
    try:
        parsed: Decimal = D(value)
    except MoneyError:
        raise LedgerReject("bad_decimal", f"{field}={value[:40]!r}") from None
    return parsed


def num(value: str, field: str, *, empty_is_zero: bool = False) -> Decimal:
    if value == "" and empty_is_zero:
        return Decimal(0)
    d = opt_num(value, field)
    if d is None:
        raise LedgerReject("missing", f"{field} is required")
    return d


def text(value: Decimal | None) -> str:
    return "" if value is None else s(value)


def required(value: str, field: str) -> str:
    if not value:
        raise LedgerReject("missing", f"{field} is required")
    return value


class Collapse(enum.Enum):
    """How rows of one statement with the same conflict key in one batch reduce to one row, giving
    the result of applying them one after another."""

    FIRST = "first"      # DO NOTHING: the first row wins
    NEWEST = "newest"    # DO UPDATE guarded by ``(cur.guard) < (EXCLUDED.guard)``: the greatest guard
    #                      wins, the first among equals
    NONE = "none"        # anything else: applied row by row


@dataclass(frozen=True)
class Statement:
    """One INSERT ... ON CONFLICT into ``table``: its single-row form (``sql``) and its bulk form
    (``bulk_sql``)."""

    table: str
    columns: tuple[str, ...]
    conflict: tuple[str, ...]
    on_conflict: str
    collapse: Collapse
    guard: tuple[str, ...] = ()

    @property
    def sql(self) -> str:
        values = ", ".join(f"${i}" for i in range(1, len(self.columns) + 1))
        return f"INSERT INTO {self.table} AS cur ({', '.join(self.columns)}) VALUES ({values}) {self.on_conflict}"

    def bulk_sql(self, source: str, values: str) -> str:
        """A CTE applying rows read from ``source`` (a FROM item named ``r`` with the statement's
        columns and an ``ordinality``; ``values`` selects them), for the events new to the ledger
        (``ev``), reduced to one row per key as applying them in order would leave it."""
        key = ", ".join(self.conflict)
        order = ", ".join([*self.conflict, *(f"{g} DESC" for g in self.guard), "ordinality"])
        return (f"INSERT INTO {self.table} AS cur ({', '.join(self.columns)}) SELECT DISTINCT ON ({key}) {values}"
                f" FROM {source} WHERE r.event_id IN (SELECT event_id FROM ev) ORDER BY {order} {self.on_conflict}")


@dataclass(frozen=True)
class Upsert:
    """One INSERT ... ON CONFLICT statement with its arguments."""

    statement: Statement
    args: tuple[Any, ...]

    @property
    def sql(self) -> str:
        return self.statement.sql


@functools.lru_cache(maxsize=256)
def _statement(
    table: str,
    columns: tuple[str, ...],
    conflict: tuple[str, ...],
    update: tuple[str, ...],
    where: str,
    update_sql: tuple[tuple[str, str], ...],
    guard: tuple[str, ...],
) -> Statement:
    sets = [f"{c} = EXCLUDED.{c}" for c in update] + [f"{c} = {e}" for c, e in update_sql]
    on_conflict = f"ON CONFLICT ({', '.join(conflict)}) "
    if sets:
        on_conflict += "DO UPDATE SET " + ", ".join(sets) + (f" WHERE {where}" if where else "")
        collapse = Collapse.NEWEST if guard and not update_sql else Collapse.NONE
    else:
        on_conflict += "DO NOTHING"
        collapse = Collapse.FIRST
    return Statement(table, columns, conflict, on_conflict, collapse, guard if collapse is Collapse.NEWEST else ())


_STATEMENTS: dict[tuple[str, tuple[str, ...], str], Statement] = {}  # by table, columns and guard clause


def _insert(
    table: str,
    row: Mapping[str, Any],
    conflict: Sequence[str],
    update: Sequence[str] | None = (),
    where: str = "",
    update_sql: Mapping[str, str] | None = None,
    guard: Sequence[str] = (),
) -> Upsert:
    """``update``: the columns a conflict updates (None: every column outside the key).
    ``guard``: the columns ``where`` compares as ``(cur.g...) < (EXCLUDED.g...)`` (newest wins)."""
    columns = tuple(row)
    key = (table, columns, where)
    statement = _STATEMENTS.get(key)
    if statement is None:
        updated = tuple(c for c in columns if c not in conflict) if update is None else tuple(update)
        statement = _STATEMENTS[key] = _statement(table, columns, tuple(conflict), updated, where,
                                                  tuple((update_sql or {}).items()), tuple(guard))
    return Upsert(statement, tuple(row.values()))


# --- body -> statements -------------------------------------------------------------------------
def order_rows(o: trading_pb2.Order, event_id: str) -> list[Upsert]:
    row = {
        "client_order_id": required(o.client_order_id, "order.client_order_id"),
        "venue_order_id": o.venue_order_id,
        "phase_id": o.phase_id,
        "signal_id": o.signal_id,
        "leg": o.leg,
        "venue": o.venue,
        "symbol": o.symbol,
        "instrument": enum_name(common_pb2.InstrumentKind, o.instrument),
        "side": enum_name(common_pb2.Side, o.side),
        "order_type": enum_name(trading_pb2.OrderType, o.order_type),
        "price": opt_num(o.price, "order.price"),
        "quantity": opt_num(o.quantity, "order.quantity"),
        "notional_quote": opt_num(o.notional_quote, "order.notional_quote"),
        "reduce_only": o.reduce_only,
        "state": enum_name(trading_pb2.OrderState, o.state),
        "filled_quantity": opt_num(o.filled_quantity, "order.filled_quantity"),
        "average_price": opt_num(o.average_price, "order.average_price"),
        "fees": opt_num(o.fees, "order.fees"),
        "reason": o.reason,
        "created_at_ns": o.created_at_ns,
        "updated_at_ns": o.updated_at_ns,
        "version": o.version,
        "event_id": event_id,
    }
    # Latest version wins: an older (or equal) order version never overwrites a newer one.
    where = "(cur.version, cur.updated_at_ns) < (EXCLUDED.version, EXCLUDED.updated_at_ns)"
    return [_insert("orders", row, ("client_order_id",), None, where, guard=("version", "updated_at_ns"))]


def order_from_row(r: Mapping[str, Any]) -> trading_pb2.Order:
    return trading_pb2.Order(
        client_order_id=r["client_order_id"],
        venue_order_id=r["venue_order_id"],
        phase_id=r["phase_id"],
        signal_id=r["signal_id"],
        leg=r["leg"],
        venue=r["venue"],
        symbol=r["symbol"],
        instrument=enum_value(common_pb2.InstrumentKind, r["instrument"]),
        side=enum_value(common_pb2.Side, r["side"]),
        order_type=enum_value(trading_pb2.OrderType, r["order_type"]),
        price=text(r["price"]),
        quantity=text(r["quantity"]),
        notional_quote=text(r["notional_quote"]),
        reduce_only=r["reduce_only"],
        state=enum_value(trading_pb2.OrderState, r["state"]),
        filled_quantity=text(r["filled_quantity"]),
        average_price=text(r["average_price"]),
        fees=text(r["fees"]),
        reason=r["reason"],
        created_at_ns=r["created_at_ns"],
        updated_at_ns=r["updated_at_ns"],
        version=r["version"],
    )


def fill_rows(f: trading_pb2.Fill, event_id: str) -> list[Upsert]:
    row = {
        "venue": required(f.venue, "fill.venue"),
        "fill_id": required(f.fill_id, "fill.fill_id"),
        "client_order_id": f.client_order_id,
        "phase_id": f.phase_id,
        "symbol": f.symbol,
        "instrument": enum_name(common_pb2.InstrumentKind, f.instrument),
        "side": enum_name(common_pb2.Side, f.side),
        "price": num(f.price, "fill.price"),
        "quantity": num(f.quantity, "fill.quantity"),
        "fee": num(f.fee, "fill.fee", empty_is_zero=True),
        "maker": f.maker,
        "realized_pnl": num(f.realized_pnl, "fill.realized_pnl", empty_is_zero=True),
        "ts_ns": f.ts_ns,
        "event_id": event_id,
    }
    # A fill happens once: (venue, fill_id) is its identity; a repeat is a no-op.
    return [_insert("fills", row, ["venue", "fill_id"])]


def fill_from_row(r: Mapping[str, Any]) -> trading_pb2.Fill:
    return trading_pb2.Fill(
        venue=r["venue"],
        fill_id=r["fill_id"],
        client_order_id=r["client_order_id"],
        phase_id=r["phase_id"],
        symbol=r["symbol"],
        instrument=enum_value(common_pb2.InstrumentKind, r["instrument"]),
        side=enum_value(common_pb2.Side, r["side"]),
        price=text(r["price"]),
        quantity=text(r["quantity"]),
        fee=text(r["fee"]),
        maker=r["maker"],
        realized_pnl=text(r["realized_pnl"]),
        ts_ns=r["ts_ns"],
    )


FILL_TEXT_COLUMNS = (
    "venue, fill_id, client_order_id, phase_id, symbol, instrument, side, price::text AS price,"
    " quantity::text AS quantity, fee::text AS fee, maker, realized_pnl::text AS realized_pnl, ts_ns"
)


def fill_from_text_row(r: Sequence[Any]) -> trading_pb2.Fill:
    """A fill from :data:`FILL_TEXT_COLUMNS` (numbers already text)."""
    return trading_pb2.Fill(
        venue=r[0], fill_id=r[1], client_order_id=r[2], phase_id=r[3], symbol=r[4],
        instrument=enum_value(common_pb2.InstrumentKind, r[5]), side=enum_value(common_pb2.Side, r[6]),
        price=r[7], quantity=r[8], fee=r[9], maker=r[10], realized_pnl=r[11], ts_ns=r[12],
    )


_POSITION_NUMS = (
    "average_entry_price",
    "mark_price",
    "realized_pnl",
    "unrealized_pnl",
    "fees",
    "funding",
    "leverage",
    "liquidation_price",
)


_POSITION_KEY = ("phase_id", "venue", "symbol", "instrument")


def position_rows(p: trading_pb2.Position, event_id: str) -> list[Upsert]:
    row: dict[str, Any] = {
        "phase_id": required(p.phase_id, "position.phase_id"),
        "venue": required(p.venue, "position.venue"),
        "symbol": required(p.symbol, "position.symbol"),
        "instrument": enum_name(common_pb2.InstrumentKind, p.instrument),
        "quantity": num(p.quantity, "position.quantity", empty_is_zero=True),
    }
    for name in _POSITION_NUMS:
        row[name] = opt_num(getattr(p, name), f"position.{name}")
    row.update(ts_ns=p.ts_ns, version=p.version, event_id=event_id)
    where = "(cur.version, cur.ts_ns) < (EXCLUDED.version, EXCLUDED.ts_ns)"
    return [_insert("positions", row, _POSITION_KEY, None, where, guard=("version", "ts_ns"))]


def position_from_row(r: Mapping[str, Any]) -> trading_pb2.Position:
    p = trading_pb2.Position(
        phase_id=r["phase_id"],
        venue=r["venue"],
        symbol=r["symbol"],
        instrument=enum_value(common_pb2.InstrumentKind, r["instrument"]),
        quantity=text(r["quantity"]),
        ts_ns=r["ts_ns"],
        version=r["version"],
    )
    for name in _POSITION_NUMS:
        setattr(p, name, text(r[name]))
    return p


SNAPSHOT_POSITION_INSERT = (
    "INSERT INTO snapshot_positions (snapshot_id, phase_id, venue, symbol, instrument, quantity,"
    " average_entry_price, realized_pnl, fees, funding, ts_ns, version)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)


def snapshot_position_args(p: trading_pb2.Position) -> tuple[Any, ...]:
    return (
        p.phase_id, p.venue, p.symbol, enum_name(common_pb2.InstrumentKind, p.instrument),
        num(p.quantity, "snapshot.quantity", empty_is_zero=True),
        num(p.average_entry_price, "snapshot.average_entry_price", empty_is_zero=True),
        num(p.realized_pnl, "snapshot.realized_pnl", empty_is_zero=True),
        num(p.fees, "snapshot.fees", empty_is_zero=True),
        num(p.funding, "snapshot.funding", empty_is_zero=True),
        p.ts_ns, p.version,
    )


def snapshot_position_from_row(r: Mapping[str, Any]) -> trading_pb2.Position:
    return trading_pb2.Position(
        phase_id=r["phase_id"], venue=r["venue"], symbol=r["symbol"],
        instrument=enum_value(common_pb2.InstrumentKind, r["instrument"]),
        quantity=text(r["quantity"]), average_entry_price=text(r["average_entry_price"]),
        realized_pnl=text(r["realized_pnl"]), fees=text(r["fees"]), funding=text(r["funding"]),
        ts_ns=r["ts_ns"], version=r["version"],
    )


def funding_rows(f: trading_pb2.FundingPayment, event_id: str) -> list[Upsert]:
    if f.funding_time_ns <= 0:
        raise LedgerReject("missing", "funding.funding_time_ns is required")
    row = {
        "venue": required(f.venue, "funding.venue"),
        "symbol": required(f.symbol, "funding.symbol"),
        "phase_id": f.phase_id,
        "funding_time_ns": f.funding_time_ns,
        "rate": num(f.rate, "funding.rate"),
        "position_quantity": num(f.position_quantity, "funding.position_quantity"),
        "mark_price": opt_num(f.mark_price, "funding.mark_price"),
        "amount": num(f.amount, "funding.amount"),
        "event_id": event_id,
    }
    return [_insert("funding_payments", row, ["venue", "symbol", "phase_id", "funding_time_ns"])]


def funding_from_row(r: Mapping[str, Any]) -> trading_pb2.FundingPayment:
    return trading_pb2.FundingPayment(
        venue=r["venue"],
        symbol=r["symbol"],
        phase_id=r["phase_id"],
        rate=text(r["rate"]),
        position_quantity=text(r["position_quantity"]),
        mark_price=text(r["mark_price"]),
        amount=text(r["amount"]),
        funding_time_ns=r["funding_time_ns"],
    )


_EQUITY_NUMS = ("realized_pnl", "unrealized_pnl", "fees", "funding", "exposure")


def equity_rows(e: trading_pb2.EquitySnapshot, event_id: str) -> list[Upsert]:
    row: dict[str, Any] = {
        "scope": required(e.scope, "equity.scope"),
        "ts_ns": e.ts_ns,
        "equity": num(e.equity, "equity.equity"),
    }
    for name in _EQUITY_NUMS:
        row[name] = opt_num(getattr(e, name), f"equity.{name}")
    row["event_id"] = event_id
    return [_insert("equity_snapshots", row, ["scope", "ts_ns"])]


def equity_from_row(r: Mapping[str, Any]) -> trading_pb2.EquitySnapshot:
    e = trading_pb2.EquitySnapshot(scope=r["scope"], equity=text(r["equity"]), ts_ns=r["ts_ns"])
    for name in _EQUITY_NUMS:
        setattr(e, name, text(r[name]))
    return e


def decision_rows(d: events_pb2.SignalDecision, event_id: str) -> list[Upsert]:
    if not d.HasField("ack"):
        raise LedgerReject("missing", "decision.ack is required")
    ack = d.ack
    phase_id = ack.phase_id or d.signal.phase_id
    signal_id = ack.signal_id or d.signal.signal_id
    required(phase_id, "decision.phase_id")
    required(signal_id, "decision.signal_id")
    out: list[Upsert] = []
    if d.HasField("signal"):
        sig = d.signal
        if (sig.phase_id, sig.signal_id) != (phase_id, signal_id):
            raise LedgerReject("mismatch", "decision.signal and decision.ack name different signals")
        out.append(
            _insert(
                "signals",
                {
                    "phase_id": phase_id,
                    "signal_id": signal_id,
                    "intent": enum_name(trading_pb2.Intent, sig.intent),
                    "setup": sig.setup,
                    "confidence": float(sig.confidence),
                    "leg_count": len(sig.legs),
                    "created_at_ns": sig.created_at_ns,
                    "payload": sig.SerializeToString(deterministic=True),
                    "event_id": event_id,
                },
                ["phase_id", "signal_id"],
            )
        )
    # The first decision about a signal is final (a replayed signal's rejection does not replace it).
    out.append(
        _insert(
            "decisions",
            {
                "phase_id": phase_id,
                "signal_id": signal_id,
                "accepted": ack.accepted,
                "reason": enum_name(trading_pb2.RejectReason, ack.reason),
                "detail": ack.detail,
                "client_order_ids": list(ack.client_order_ids),
                "received_at_ns": ack.received_at_ns,
                "acked_at_ns": ack.acked_at_ns,
                "event_id": event_id,
            },
            ["phase_id", "signal_id"],
        )
    )
    return out


def decision_from_row(r: Mapping[str, Any]) -> events_pb2.SignalDecision:
    ack = trading_pb2.SignalAck(
        phase_id=r["phase_id"],
        signal_id=r["signal_id"],
        accepted=r["accepted"],
        reason=enum_value(trading_pb2.RejectReason, r["reason"]),
        detail=r["detail"],
        client_order_ids=list(r["client_order_ids"]),
        received_at_ns=r["received_at_ns"],
        acked_at_ns=r["acked_at_ns"],
    )
    out = events_pb2.SignalDecision(ack=ack)
    if r["payload"] is not None:
        out.signal.ParseFromString(r["payload"])
    return out


def allocation_rows(a: events_pb2.Allocation, event_id: str) -> list[Upsert]:
    row = {
        "phase_id": required(a.phase_id, "allocation.phase_id"),
        "ts_ns": a.ts_ns,
        "state": enum_name(common_pb2.PhaseState, a.state),
        "weight": opt_num(a.weight, "allocation.weight"),
        "notional": opt_num(a.notional, "allocation.notional"),
        "max_leverage": opt_num(a.max_leverage, "allocation.max_leverage"),
        "equity": opt_num(a.equity, "allocation.equity"),
        "reason": a.reason,
        "event_id": event_id,
    }
    return [_insert("allocations", row, ["phase_id", "ts_ns"])]


def allocation_from_row(r: Mapping[str, Any]) -> events_pb2.Allocation:
    return events_pb2.Allocation(
        phase_id=r["phase_id"],
        state=enum_value(common_pb2.PhaseState, r["state"]),
        weight=text(r["weight"]),
        notional=text(r["notional"]),
        max_leverage=text(r["max_leverage"]),
        equity=text(r["equity"]),
        reason=r["reason"],
        ts_ns=r["ts_ns"],
    )


def breaker_rows(b: events_pb2.BreakerEvent, event_id: str) -> list[Upsert]:
    row = {
        "breaker_id": required(b.breaker_id, "breaker.breaker_id"),
        "ts_ns": b.ts_ns,
        "kind": enum_name(events_pb2.BreakerKind, b.kind),
        "tripped": b.tripped,
        "reason": b.reason,
        "equity": opt_num(b.equity, "breaker.equity"),
        "drawdown": opt_num(b.drawdown, "breaker.drawdown"),
        "phase_id": b.phase_id,
        "event_id": event_id,
    }
    return [_insert("breaker_events", row, ["breaker_id", "ts_ns"])]


def breaker_from_row(r: Mapping[str, Any]) -> events_pb2.BreakerEvent:
    return events_pb2.BreakerEvent(
        breaker_id=r["breaker_id"],
        kind=enum_value(events_pb2.BreakerKind, r["kind"]),
        tripped=r["tripped"],
        reason=r["reason"],
        equity=text(r["equity"]),
        drawdown=text(r["drawdown"]),
        phase_id=r["phase_id"],
        ts_ns=r["ts_ns"],
    )


def proposal_rows(p: events_pb2.ParameterProposal, event_id: str) -> list[Upsert]:
    row = {
        "proposal_id": required(p.proposal_id, "proposal.proposal_id"),
        "phase_id": p.phase_id,
        "params_json": p.params_json,
        "rationale": p.rationale,
        "status": required(p.status, "proposal.status"),
        "baseline_score": p.baseline_score,
        "candidate_score": p.candidate_score,
        "reason": p.reason,
        "created_ts_ns": p.ts_ns,
        "ts_ns": p.ts_ns,
        "event_id": event_id,
    }
    # Status updates: the newest one wins; fields a status update leaves empty keep their value.
    keep = {c: f"COALESCE(NULLIF(EXCLUDED.{c}, ''), cur.{c})" for c in
            ("phase_id", "params_json", "rationale", "baseline_score", "candidate_score")}
    return [
        _insert(
            "parameter_proposals",
            row,
            ["proposal_id"],
            ["status", "reason", "ts_ns", "event_id"],
            "cur.ts_ns <= EXCLUDED.ts_ns",
            keep,
        )
    ]


def proposal_from_row(r: Mapping[str, Any]) -> events_pb2.ParameterProposal:
    return events_pb2.ParameterProposal(
        proposal_id=r["proposal_id"],
        phase_id=r["phase_id"],
        params_json=r["params_json"],
        rationale=r["rationale"],
        status=r["status"],
        baseline_score=r["baseline_score"],
        candidate_score=r["candidate_score"],
        reason=r["reason"],
        ts_ns=r["ts_ns"],
    )


def trading_state_rows(t: trading_pb2.TradingState, event_id: str) -> list[Upsert]:
    row = {
        "version": t.version,
        "ts_ns": t.ts_ns,
        "mode": enum_name(common_pb2.TradingMode, t.mode),
        "reason": t.reason,
        "set_by": t.set_by,
        "event_id": event_id,
    }
    return [_insert("trading_state_changes", row, ["version", "ts_ns"])]


def trading_state_from_row(r: Mapping[str, Any]) -> trading_pb2.TradingState:
    return trading_pb2.TradingState(
        mode=enum_value(common_pb2.TradingMode, r["mode"]),
        reason=r["reason"],
        set_by=r["set_by"],
        ts_ns=r["ts_ns"],
        version=r["version"],
    )


def body_rows(event: events_pb2.Event) -> list[Upsert]:
    """The statements that apply an event's body (raises LedgerReject for a malformed body)."""
    field = event.WhichOneof("body")
    eid = event.event_id
    if field == "order":
        return order_rows(event.order, eid)
    if field == "fill":
        return fill_rows(event.fill, eid)
    if field == "position":
        return position_rows(event.position, eid)
    if field == "funding":
        return funding_rows(event.funding, eid)
    if field == "equity":
        return equity_rows(event.equity, eid)
    if field == "decision":
        return decision_rows(event.decision, eid)
    if field == "allocation":
        return allocation_rows(event.allocation, eid)
    if field == "breaker":
        return breaker_rows(event.breaker, eid)
    if field == "proposal":
        return proposal_rows(event.proposal, eid)
    if field == "trading_state":
        return trading_state_rows(event.trading_state, eid)
    if field == "hedge":  # a hedged unit's outcome: kept as the event itself (events.payload)
        return []
    if field == "batch":  # the writer records a batch's events (titan.core.bus.unpack), never the batch
        raise LedgerReject("batch", f"event {eid!r} is a batch: record its events one by one")
    raise LedgerReject("no_body", f"event {eid!r} has no body")
