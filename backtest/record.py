"""What a backtest writes to its ledger: the same events, with the same natural-key ids, that
execution and the Brain publish to JetStream in a cluster, plus the fingerprint over them.

The fingerprint is the sha256 of the canonical form of every order, fill, position, funding and
equity event, in the order the run produced them. Each contributes one record::

    <body kind> 0x1f <event id> 0x1f <hex of the body's deterministic protobuf encoding> 0x0a

Signal decisions (they embed the strategy's free-form metadata), allocations, breakers and trading
states are in the ledger but not in the fingerprint: the fingerprint pins what was traded and what
it was worth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from titan.execution.engine import Update
from titan.execution.envelopes import to_event
from titan.v1 import events_pb2, trading_pb2

FINGERPRINTED = frozenset({"order", "fill", "position", "funding", "equity"})


@dataclass(frozen=True, slots=True)
class EquityPoint:
    ts_ns: int
    equity: Decimal
    exposure: Decimal


@dataclass
class Recorder:
    """Collects the run's events (all of them when ``keep``) and what the results need of them."""

    keep: bool = True
    events: list[events_pb2.Event] = field(default_factory=list)
    fills: list[trading_pb2.Fill] = field(default_factory=list)
    funding: list[trading_pb2.FundingPayment] = field(default_factory=list)
    orders: dict[str, trading_pb2.Order] = field(default_factory=dict)
    positions: dict[tuple[str, str, str, int], trading_pb2.Position] = field(default_factory=dict)
    equity: dict[str, list[EquityPoint]] = field(default_factory=dict)
    decisions: int = 0
    accepted: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._hash = hashlib.sha256()

    @property
    def fingerprint(self) -> str:
        return self._hash.hexdigest()

    def updates(self, updates: Iterable[Update]) -> list[events_pb2.Event]:
        out = [to_event(update) for update in updates]
        for event in out:
            self.add(event)
        return out

    def add(self, event: events_pb2.Event) -> None:
        kind = event.WhichOneof("body") or ""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind in FINGERPRINTED:
            body = getattr(event, kind)
            self._hash.update(b"%s\x1f%s\x1f%s\n" % (kind.encode(), event.event_id.encode(),
                                                       body.SerializeToString(deterministic=True).hex().encode()))
        if kind == "fill":
            self.fills.append(event.fill)
        elif kind == "funding":
            self.funding.append(event.funding)
        elif kind == "order":
            self.orders[event.order.client_order_id] = event.order
        elif kind == "position":
            p = event.position
            self.positions[(p.phase_id, p.venue, p.symbol, int(p.instrument))] = p
        elif kind == "equity":
            e = event.equity
            self.equity.setdefault(e.scope or "total", []).append(
                EquityPoint(e.ts_ns, Decimal(e.equity or "0"), Decimal(e.exposure or "0")))
        elif kind == "decision":
            self.decisions += 1
            self.accepted += int(event.decision.ack.accepted)
        if self.keep:
            self.events.append(event)


__all__ = ["FINGERPRINTED", "EquityPoint", "Recorder"]
