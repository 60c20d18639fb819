"""Recovery in the pure core: a crash can cut the event stream after any event; restoring from
whatever prefix was stored, and re-sending every signal, never loses or doubles a fill and leaves
positions equal to their fills."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.execution.helpers import (
    KEYS,
    MODE,
    PERP,
    REDUCE,
    SELL,
    budget,
    leg,
    make_engine,
    mark,
    signal,
    top,
    trading_state,
)
from titan.execution.engine import Engine, recovery
from titan.v1 import events_pb2, trading_pb2


class MiniLedger:
    """What the ledger keeps, from a list of engine updates: latest version wins, fills by id."""

    def __init__(self, updates):
        self.orders, self.positions, self.fills, self.decisions = {}, {}, {}, {}
        for u in updates:
            self.add(u)

    def add(self, u):
        if isinstance(u, trading_pb2.Order):
            cur = self.orders.get(u.client_order_id)
            if cur is None or cur.version < u.version:
                self.orders[u.client_order_id] = u
        elif isinstance(u, trading_pb2.Position):
            k = (u.phase_id, u.venue, u.symbol, u.instrument)
            cur = self.positions.get(k)
            if cur is None or cur.version < u.version:
                self.positions[k] = u
        elif isinstance(u, trading_pb2.Fill):
            self.fills.setdefault((u.venue, u.fill_id), u)
        elif isinstance(u, events_pb2.SignalDecision):
            self.decisions.setdefault((u.ack.phase_id, u.ack.signal_id), u.ack)

    def restore_into(self, engine: Engine):
        open_orders = [o for o in self.orders.values() if o.state in (1, 2, 3, 4)]
        decided = [(a.phase_id, a.signal_id, a.acked_at_ns, a.accepted, tuple(a.client_order_ids))
                   for a in self.decisions.values()]
        fills = sorted(self.fills.values(), key=lambda f: (f.ts_ns, f.venue, f.fill_id))
        return engine.restore(list(self.positions.values()), open_orders, fills, decided, (),
                              list(self.orders.values()))


def _session():
    engine, clock = make_engine()
    sigs, updates = [], []
    for i in range(6):
        clock.advance(1_000)
        if i % 3 == 2:
            sig = signal(clock, leg(side=SELL, size="10000"), intent=REDUCE, signal_id=f"s{i}")
        else:
            sig = signal(clock, leg(size=str(20000 + 1000 * i)), signal_id=f"s{i}")
        sigs.append(sig)
        d = engine.on_signal(sig)
        assert d.ack.accepted, d.ack.detail
        updates.extend(d.updates)
        if i == 3:  # the market moves
            updates.extend(engine.on_market(top("50100", "10", "50100", "10")))
            updates.extend(engine.on_market(mark("50100")))
    return sigs, updates


SIGS, UPDATES = _session()


@pytest.mark.parametrize("cut", range(len(UPDATES) + 1))
def test_any_crash_point_recovers_without_losing_or_doubling(cut):
    ledger = MiniLedger(UPDATES[:cut])
    engine, clock = make_engine()
    engine2 = Engine(clock, dict(KEYS), engine.config)
    engine2.set_trading_state(trading_state(MODE.TRADING_MODE_ACTIVE, 1))
    engine2.update_budget(budget())
    engine2.on_market(top("50100", "10", "50100", "10"))
    engine2.on_market(mark("50100"))
    for u in ledger.restore_into(engine2):
        ledger.add(u)
    # every signal is re-sent after the restart (a phase retrying)
    for sig in SIGS:
        d = engine2.on_signal(sig)
        for u in d.updates:
            ledger.add(u)
    fills = list(ledger.fills.values())
    # no fill doubled: per order, fills add up to its filled quantity and never exceed the order
    per_order = {}
    for f in fills:
        per_order[f.client_order_id] = per_order.get(f.client_order_id, Decimal(0)) + Decimal(f.quantity)
    for cid, q in per_order.items():
        order = ledger.orders[cid]
        assert q == Decimal(order.filled_quantity) <= Decimal(order.quantity)
    # positions equal their fills, in the engine and in the ledger
    signed = sum((Decimal(f.quantity) if f.side == 1 else -Decimal(f.quantity) for f in fills), Decimal(0))
    key = ("hunter", "bybit", "BTCUSDT", PERP)
    assert engine2.portfolio.quantity(key) == signed
    assert Decimal(ledger.positions[key].quantity) == signed
    assert Decimal(ledger.positions[key].fees) == sum((Decimal(f.fee) for f in fills), Decimal(0))
    # every signal executed exactly once overall
    assert {o.signal_id for o in ledger.orders.values()} == {s.signal_id for s in SIGS}
    assert len(ledger.orders) == len(SIGS)


# --- from a snapshot ------------------------------------------------------------------------------
def _state(engine: Engine) -> dict[tuple, tuple]:
    return {key: (p.quantity, p.average_entry, p.realized, p.fees, p.funding)
            for key, p in engine.portfolio.positions.items()}


def _fresh_engine() -> Engine:
    engine, clock = make_engine()
    restored = Engine(clock, dict(KEYS), engine.config)
    restored.set_trading_state(trading_state(MODE.TRADING_MODE_ACTIVE, 1))
    return restored


@pytest.mark.parametrize("split", range(7))
def test_a_snapshot_and_the_fills_after_it_restore_what_all_fills_restore(split):
    """Fold the first ``split`` fills into a snapshot; restoring from it and the rest gives the
    positions, and the corrections, of restoring from every fill."""
    ledger = MiniLedger(UPDATES)
    fills = sorted(ledger.fills.values(), key=lambda f: (f.ts_ns, f.venue, f.fill_id))
    assert len(fills) == 6
    stale = {k: trading_pb2.Position(phase_id=p.phase_id, venue=p.venue, symbol=p.symbol, instrument=p.instrument,
                                     quantity="0", ts_ns=p.ts_ns, version=1)
             for k, p in ledger.positions.items()}  # rows that lag their fills: both must correct them
    folded = recovery.fold((), fills[:split])
    base = [recovery.snapshot_position(folded[key]) for key in sorted(folded)]
    full, from_snapshot = _fresh_engine(), _fresh_engine()
    corrected_full = full.restore(list(stale.values()), [], fills, [], (), list(ledger.orders.values()))
    corrected_snap = from_snapshot.restore(
        list(stale.values()),
        [],
        fills[split:],
        [],
        (),
        list(ledger.orders.values()),
        base=base,
        incomplete=[
            (
                o,
                recovery.fill_totals(fills).get(
                    o.client_order_id, recovery.FillTotals(Decimal(0), Decimal(0), Decimal(0))
                ),
            )
            for o in ledger.orders.values()
        ],
    )
    assert _state(from_snapshot) == _state(full)
    assert [(p.quantity, p.realized_pnl, p.fees) for p in corrected_snap] == [
        (p.quantity, p.realized_pnl, p.fees) for p in corrected_full]
    assert corrected_full  # the stale rows were corrected


@pytest.mark.parametrize("cut", range(len(UPDATES) + 1))
def test_a_crash_after_a_snapshot_is_repaired(cut):
    """The crash test again, restoring from a snapshot of half of the stored fills plus the rest,
    with the orders whose fills may be missing found from every stored fill (as the ledger does)."""
    ledger = MiniLedger(UPDATES[:cut])
    fills = sorted(ledger.fills.values(), key=lambda f: (f.ts_ns, f.venue, f.fill_id))
    half = len(fills) // 2
    folded = recovery.fold((), fills[:half])
    totals = recovery.fill_totals(fills)
    nothing = recovery.FillTotals(Decimal(0), Decimal(0), Decimal(0))
    engine2 = _fresh_engine()
    engine2.update_budget(budget())
    engine2.on_market(top("50100", "10", "50100", "10"))
    engine2.on_market(mark("50100"))
    open_orders = [o for o in ledger.orders.values() if o.state in (1, 2, 3, 4)]
    decided = [(a.phase_id, a.signal_id, a.acked_at_ns, a.accepted, tuple(a.client_order_ids))
               for a in ledger.decisions.values()]
    for u in engine2.restore(list(ledger.positions.values()), open_orders, fills[half:], decided, (),
                             list(ledger.orders.values()),
                             base=[recovery.snapshot_position(p) for p in folded.values()],
                             incomplete=[(o, totals.get(o.client_order_id, nothing)) for o in ledger.orders.values()]):
        ledger.add(u)
    for sig in SIGS:
        for u in engine2.on_signal(sig).updates:
            ledger.add(u)
    fills = list(ledger.fills.values())
    for cid in {f.client_order_id for f in fills}:
        total = sum((Decimal(f.quantity) for f in fills if f.client_order_id == cid), Decimal(0))
        assert total == Decimal(ledger.orders[cid].filled_quantity) <= Decimal(ledger.orders[cid].quantity)
    signed = sum((Decimal(f.quantity) if f.side == 1 else -Decimal(f.quantity) for f in fills), Decimal(0))
    key = ("hunter", "bybit", "BTCUSDT", PERP)
    assert engine2.portfolio.quantity(key) == signed == Decimal(ledger.positions[key].quantity)
    assert Decimal(ledger.positions[key].fees) == sum((Decimal(f.fee) for f in fills), Decimal(0))
    assert len(ledger.orders) == len(SIGS)


def test_equity_waits_for_the_market_to_price_restored_positions():
    """After a restart the restored positions carry the mark of their last update; equity valued at
    it would jump (and jump back when the feed arrives), so none is published until the market prices
    them — or, for a symbol no feed prices any more, until the grace after start has passed."""
    from titan.execution.engine import UNPRICED_GRACE_NS

    held = trading_pb2.Position(phase_id="hunter", venue="bybit", symbol="BTCUSDT", instrument=PERP,
                                quantity="0.5", average_entry_price="50000", mark_price="50000", ts_ns=1, version=3)
    restarted, clock = make_engine(book=False)
    restarted.restore([held], [])
    assert restarted.equity() and not restarted.equity_to_publish()
    restarted.on_market(mark("48000"))
    (total,) = [s for s in restarted.equity_to_publish() if s.scope == "total"]
    assert Decimal(total.unrealized_pnl) == Decimal(-1000)
    unfed, clock = make_engine(book=False)
    unfed.restore([held], [])
    clock.advance(UNPRICED_GRACE_NS)
    assert unfed.equity_to_publish()
