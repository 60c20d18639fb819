"""Pure conversions between titan.v1 event bodies and ledger rows (no I/O).

Wire decimals become Decimal (an empty string becomes NULL, or zero where a value is required to
be a number); enums are stored by name. A body that cannot be stored raises :class:`LedgerReject`.
Orders, fills and positions are specs (:class:`~titan.core.ledger.statements.Table`): the same spec
gives one body's row here and a whole batch's columns (``COLUMNAR``, plain numbers kept as text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from titan.core.ledger.statements import (
    Check,
    Field,
    LedgerReject,
    Table,
    Upsert,
    enum_name,
    enum_value,
    num,
    opt_num,
    required,
    statement_for,
    text,
)
from titan.v1 import common_pb2, events_pb2, trading_pb2


def _insert(
    table: str,
    row: Mapping[str, Any],
    conflict: Sequence[str],
    update: Sequence[str] | None = (),
    where: str = "",
    update_sql: Mapping[str, str] | None = None,
    guard: Sequence[str] = (),
) -> Upsert:
    """The row's upsert (see :func:`statement_for`)."""
    return Upsert(statement_for(table, tuple(row), conflict, update, where, update_sql, guard), tuple(row.values()))


# --- body -> statements -------------------------------------------------------------------------
ORDERS = Table(
    "order", "orders",
    (
        Field("client_order_id", Check.REQUIRED), Field("venue_order_id"), Field("phase_id"), Field("signal_id"),
        Field("leg"), Field("venue"), Field("symbol"), Field("instrument", enum=common_pb2.InstrumentKind),
        Field("side", enum=common_pb2.Side), Field("order_type", enum=trading_pb2.OrderType),
        Field("price", Check.NUMBER_OR_NULL), Field("quantity", Check.NUMBER_OR_NULL),
        Field("notional_quote", Check.NUMBER_OR_NULL), Field("reduce_only"),
        Field("state", enum=trading_pb2.OrderState), Field("filled_quantity", Check.NUMBER_OR_NULL),
        Field("average_price", Check.NUMBER_OR_NULL), Field("fees", Check.NUMBER_OR_NULL), Field("reason"),
        Field("created_at_ns"), Field("updated_at_ns"), Field("version"),
    ),
    ("client_order_id",),
    update=None,  # every column outside the key
    # Latest version wins: an older (or equal) order version never overwrites a newer one.
    where="(cur.version, cur.updated_at_ns) < (EXCLUDED.version, EXCLUDED.updated_at_ns)",
    guard=("version", "updated_at_ns"),
)


def order_rows(o: trading_pb2.Order, event_id: str) -> list[Upsert]:
    return [ORDERS.row(o, event_id)]


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


# A fill happens once: (venue, fill_id) is its identity; a repeat is a no-op.
FILLS = Table(
    "fill", "fills",
    (
        Field("venue", Check.REQUIRED), Field("fill_id", Check.REQUIRED), Field("client_order_id"),
        Field("phase_id"), Field("symbol"), Field("instrument", enum=common_pb2.InstrumentKind),
        Field("side", enum=common_pb2.Side), Field("price", Check.NUMBER), Field("quantity", Check.NUMBER),
        Field("fee", Check.NUMBER_OR_ZERO), Field("maker"), Field("realized_pnl", Check.NUMBER_OR_ZERO),
        Field("ts_ns"),
    ),
    ("venue", "fill_id"),
)


def fill_rows(f: trading_pb2.Fill, event_id: str) -> list[Upsert]:
    return [FILLS.row(f, event_id)]


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


POSITIONS = Table(
    "position", "positions",
    (
        Field("phase_id", Check.REQUIRED), Field("venue", Check.REQUIRED), Field("symbol", Check.REQUIRED),
        Field("instrument", enum=common_pb2.InstrumentKind), Field("quantity", Check.NUMBER_OR_ZERO),
        *(Field(name, Check.NUMBER_OR_NULL) for name in _POSITION_NUMS),
        Field("ts_ns"), Field("version"),
    ),
    _POSITION_KEY,
    update=None,
    where="(cur.version, cur.ts_ns) < (EXCLUDED.version, EXCLUDED.ts_ns)",
    guard=("version", "ts_ns"),
)


def position_rows(p: trading_pb2.Position, event_id: str) -> list[Upsert]:
    return [POSITIONS.row(p, event_id)]


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


_SIGNALS = statement_for(
    "signals",
    ("phase_id", "signal_id", "intent", "setup", "confidence", "leg_count", "created_at_ns", "payload", "event_id"),
    ("phase_id", "signal_id"),
)
# The first decision about a signal is final (a replayed signal's rejection does not replace it).
_DECISIONS = statement_for(
    "decisions",
    ("phase_id", "signal_id", "accepted", "reason", "detail", "client_order_ids", "received_at_ns", "acked_at_ns",
     "event_id"),
    ("phase_id", "signal_id"),
)


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
        out.append(Upsert(_SIGNALS, (
            phase_id, signal_id, enum_name(trading_pb2.Intent, sig.intent), sig.setup, float(sig.confidence),
            len(sig.legs), sig.created_at_ns, sig.SerializeToString(deterministic=True), event_id,
        )))
    out.append(Upsert(_DECISIONS, (
        phase_id, signal_id, ack.accepted, enum_name(trading_pb2.RejectReason, ack.reason), ack.detail,
        list(ack.client_order_ids), ack.received_at_ns, ack.acked_at_ns, event_id,
    )))
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


# The kinds whose bodies a batch turns into columns at once (Table.columns), by event kind.
COLUMNAR: dict[str, Table] = {"order": ORDERS, "fill": FILLS, "position": POSITIONS}
