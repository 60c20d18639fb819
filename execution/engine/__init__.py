"""The execution core: signals, market events, control changes and venue reports in; acks, order,
fill, position, funding and equity updates out. Deterministic, clock injected, no I/O.

The gRPC service, the backtest driver and the local driver are thin shells around :class:`Engine`,
a facade over the modules of this package, one idea each:

* ``state``          — configuration, the books (:class:`EngineState`), decisions, venue reports;
* ``outputs``        — the updates of one input in publishing order, metric counters;
* ``signals``        — the risk gate's verdict, acks, order creation, remembered signal ids;
* ``lifecycle``      — order registration, resting, fill booking, terminal bookkeeping;
* ``matching``       — the paper venue: immediate matching and resting orders on market data;
* ``funding``        — liquidations and funding settlement of perpetuals;
* ``control``        — trading state, budgets, keys, flatten;
* ``venue_reports``  — external venue reports (live);
* ``timers``         — expiry, funding due, day roll, forgetting;
* ``recovery``       — rebuilding from the ledger.

Idempotency: a signal id is decided once (a repeat is answered REPLAYED with the original order
ids), client order ids derive from (phase, signal id, leg), and venue fills are booked once per
(venue, fill id). A signal is accepted or rejected as a whole: every leg passes the gate before any
order exists.
"""

from __future__ import annotations

from collections.abc import Iterable

from titan.core.ledger.snapshots import FillTotals
from titan.execution.engine import control, hedge, matching, recovery, signals, timers, venue_reports
from titan.execution.engine.outputs import Update, reason_label
from titan.execution.engine.recovery import DecidedSignal
from titan.execution.engine.signals import UNAUTHENTICATED
from titan.execution.engine.state import Decision, EngineConfig, EngineState, VenueReport
from titan.execution.orders import ManagedOrder
from titan.execution.portfolio import Position
from titan.v1 import market_pb2, trading_pb2

UNPRICED_GRACE_NS = 120 * 10**9  # after start, how long equity waits for restored positions' prices


class Engine(EngineState):
    """The engine's public calls; each delegates to the module that owns the idea."""

    # --- signals ----------------------------------------------------------------------------
    def on_signal(self, signal: trading_pb2.Signal, received_ns: int | None = None) -> Decision:
        """Decide and execute: the ack plus every update it caused."""
        decision = signals.decide(self, signal, received_ns)
        signals.execute(self, decision)
        return decision

    def decide(self, signal: trading_pb2.Signal, received_ns: int | None = None, *,
               verified: bool = False) -> Decision:
        return signals.decide(self, signal, received_ns, verified=verified)

    def execute(self, decision: Decision) -> list[Update]:
        return signals.execute(self, decision)

    def execute_frame(self, decisions: list[Decision]) -> list[Update]:
        return signals.execute_frame(self, decisions)

    # --- market data and time -------------------------------------------------------------
    def on_market(self, event: market_pb2.MarketEvent) -> list[Update]:
        updates = matching.on_market(self, event)
        if updates and self.hedges:  # a leg filled by the market settles its unit now, not at a tick
            hedge.on_tick(self, self.clock.now_ns())
            updates.extend(self.outputs.flush())
        return updates

    def tick(self) -> list[Update]:
        """Expire orders, settle funding whose time has passed, roll the day, forget old ids."""
        return timers.tick(self)

    def next_due_ns(self) -> int:
        """The earliest time :meth:`tick` has work to do. Drivers that skip idle time (the backtest)
        tick then; the service ticks on its cadence regardless."""
        return timers.next_due_ns(self)

    def take_cancels(self) -> list[ManagedOrder]:
        return timers.take_cancels(self)

    def take_submissions(self) -> list[ManagedOrder]:
        """External venue orders the engine created on its own (hedge steps): the caller sends them."""
        return self.outputs.take_submissions()

    # --- control ----------------------------------------------------------------------------
    def set_trading_state(self, state: trading_pb2.TradingState) -> tuple[bool, list[Update], list[ManagedOrder]]:
        return control.set_trading_state(self, state)

    def update_budget(self, budget: trading_pb2.Budget) -> str:
        return control.update_budget(self, budget)

    def remove_budget(self, phase_id: str) -> bool:
        return control.remove_budget(self, phase_id)

    def set_keys(self, keys: dict[str, bytes]) -> None:
        control.set_keys(self, keys)

    def flatten(
        self, phase: str, symbol: str, tag: str
    ) -> tuple[list[str], list[Update], list[ManagedOrder], list[ManagedOrder]]:
        return control.flatten(self, phase, symbol, tag)

    # --- external venue ---------------------------------------------------------------------
    def on_venue_report(self, report: VenueReport) -> list[Update]:
        return venue_reports.on_venue_report(self, report)

    # --- recovery and read-outs -------------------------------------------------------------
    def restore(
        self,
        positions: Iterable[trading_pb2.Position],
        open_orders: Iterable[trading_pb2.Order],
        fills: Iterable[trading_pb2.Fill] = (),
        decided: Iterable[DecidedSignal] = (),
        funding: Iterable[trading_pb2.FundingPayment] = (),
        known_orders: Iterable[trading_pb2.Order] = (),
        *,
        base: Iterable[trading_pb2.Position] = (),
        incomplete: Iterable[tuple[trading_pb2.Order, FillTotals]] | None = None,
    ) -> list[Update]:
        """See ``titan.execution.engine.recovery.restore``: ``fills``/``funding`` are those
        recorded after the snapshot ``base``."""
        return recovery.restore(self, positions, open_orders, fills, decided, funding, known_orders,
                                base=base, incomplete=incomplete)

    def recover_hedges(self, signals: Iterable[trading_pb2.Signal],
                       known_orders: Iterable[trading_pb2.Order]) -> list[Update]:
        """After :meth:`restore`: settle the hedged units a crash left with an orphan leg (see
        ``titan.execution.engine.hedge.recover``); returns the updates of the steps taken."""
        hedge.recover(self, signals, known_orders, self.clock.now_ns())
        return self.outputs.flush()

    def equity(self) -> list[trading_pb2.EquitySnapshot]:
        return self.portfolio.equity_snapshots(self.clock.now_ns())

    def equity_to_publish(self) -> list[trading_pb2.EquitySnapshot]:
        """:meth:`equity`, except while a position restored from the ledger has no price from the
        market yet (after a restart, until the feed catches up; at most ``UNPRICED_GRACE_NS`` after
        start): an equity of stale marks would be a jump the Brain and the ledger take for real."""
        now = self.clock.now_ns()
        if now - self.started_ns < UNPRICED_GRACE_NS and any(
                self._unpriced(position) for position in self.portfolio if position.quantity):
            return []
        return self.portfolio.equity_snapshots(now)

    def _unpriced(self, position: Position) -> bool:
        _, venue, symbol, instrument = position.key
        market = self.market.get((venue, symbol, instrument))
        return market is None or market.reference_price() is None

    def positions(self, phase: str = "") -> list[trading_pb2.Position]:
        mmr = self.config.paper.maintenance_margin_rate
        return [p.to_proto(mmr) for p in self.portfolio if not phase or p.phase_id == phase]

    def open_orders(self, phase: str = "") -> list[trading_pb2.Order]:
        return [o.to_proto() for o in self.orders.values() if o.is_open and (not phase or o.phase_id == phase)]

    def budgets(self, phase: str = "") -> list[trading_pb2.Budget]:
        return [b.proto for k, b in sorted(self.gate.budgets.items()) if not phase or k == phase]


__all__ = [
    "UNAUTHENTICATED",
    "Decision",
    "Engine",
    "EngineConfig",
    "EngineState",
    "Update",
    "VenueReport",
    "reason_label",
]
