"""What one input (a signal, a market event, a tick, a control call) changed, in publishing order,
and the engine's metric counters (label children resolved once, not per event).

Publishing order: order snapshots, fills and funding, positions, then hedged units' outcomes,
decisions and trading states.
Whatever prefix of it reached JetStream before a crash can be completed at restart (see
``titan.execution.engine.recovery``): a fill implies its order row, a decision implies everything of
that signal; fills missing behind an order row and position rows lagging their fills are repaired
from what was stored."""

from __future__ import annotations

from decimal import Decimal

from titan.core.metrics import FILLS, ORDERS, REJECTS, SIGNALS
from titan.execution import enums
from titan.execution.orders import ManagedOrder
from titan.execution.portfolio import Position, PositionKey
from titan.v1 import events_pb2, trading_pb2

RejectReason = enums.RejectReason

Update = (
    trading_pb2.Order
    | trading_pb2.Fill
    | trading_pb2.Position
    | trading_pb2.FundingPayment
    | trading_pb2.EquitySnapshot
    | events_pb2.SignalDecision
    | trading_pb2.TradingState
    | trading_pb2.HedgeOutcome
)


def reason_label(reason: int) -> str:
    """Metric label of a reject reason: ``REJECT_REASON_BAD_SIGNATURE`` -> ``bad_signature``."""
    return str(RejectReason.Name(reason))[len("REJECT_REASON_"):].lower()


class Outputs:
    """The updates of the input being handled; :meth:`flush` hands them over in publishing order."""

    __slots__ = ("events", "maintenance_margin_rate", "orders", "positions", "submissions", "tail")

    def __init__(self, maintenance_margin_rate: Decimal) -> None:
        self.maintenance_margin_rate = maintenance_margin_rate
        self.orders: dict[str, ManagedOrder] = {}
        self.events: list[Update] = []    # fills and funding, in the order they happened
        self.positions: dict[PositionKey, Position] = {}
        self.tail: list[Update] = []      # outcomes, decisions, trading states: published after everything else
        self.submissions: list[ManagedOrder] = []  # orders an external venue must be sent (kept until taken)

    def touch(self, order: ManagedOrder) -> None:
        self.orders[order.client_order_id] = order

    def take_orders(self) -> list[tuple[ManagedOrder, int]]:
        """Hand the touched orders (with their versions) to a decision, which gives them back when it
        is executed: another input handled in between (a second stream's signal, a market event) then
        never publishes them early, so each signal's orders are published once, with their final
        snapshot."""
        taken = [(order, order.version) for order in self.orders.values()]
        self.orders = {}
        return taken

    def give_back(self, orders: list[tuple[ManagedOrder, int]]) -> None:
        """Touch the orders again unless an input in between changed them (and so published them)."""
        for order, version in orders:
            if order.version == version:
                self.orders.setdefault(order.client_order_id, order)

    def submit(self, order: ManagedOrder) -> None:
        """An order the engine created on its own (a hedge step) for an external venue: the driver
        takes it with :meth:`take_submissions` and sends it like a signal's orders."""
        self.touch(order)
        self.submissions.append(order)

    def take_submissions(self) -> list[ManagedOrder]:
        out, self.submissions = self.submissions, []
        return out

    def touch_position(self, position: Position) -> None:
        self.positions[position.key] = position

    def flush(self) -> list[Update]:
        mmr = self.maintenance_margin_rate
        out: list[Update] = [o.to_proto() for o in self.orders.values()]
        out.extend(self.events)
        out.extend(p.to_proto(mmr) for p in self.positions.values())
        out.extend(self.tail)
        self.clear()
        return out

    def clear(self) -> None:
        self.orders.clear()
        self.positions.clear()
        self.events = []
        self.tail = []


class EngineMetrics:
    """The engine's Prometheus counters (``titan.core.metrics.Tally``: an increment is a dict addition)."""

    def __init__(self) -> None:
        self.rejects = {v: (reason_label(v),) for v in RejectReason.values()}
        for labels in self.rejects.values():  # every reason is exported, at 0 until it happens
            REJECTS.counts.setdefault(labels, 0)
        self.order_states: dict[int, str] = {}

    def signal(self, phase: str, ack: trading_pb2.SignalAck) -> None:
        if ack.accepted:
            SIGNALS.add((phase, "accepted"))
        else:
            SIGNALS.add((phase, "rejected"))
            REJECTS.add(self.rejects[ack.reason])

    def fill(self, phase: str, venue: str, fills: int = 1) -> None:
        FILLS.add((phase, venue), fills)

    def order_closed(self, venue: str, state: int) -> None:
        label = self.order_states.get(state)
        if label is None:
            label = self.order_states[state] = enums.OrderState.Name(state)[len("ORDER_STATE_"):].lower()
        ORDERS.add((venue, label))
