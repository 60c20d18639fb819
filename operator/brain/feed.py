"""What the Brain reads from the event stream and what its decisions publish, as pure functions.

Both drivers call these: the NATS shell (:class:`titan.operator.runtime.BrainRuntime`) feeds each
JetStream event through :func:`observe_event` and publishes :meth:`DecisionOutbox.plan`'s events;
the backtest driver does the same in one process on a simulated clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from titan.core.bus.events import new_event_id
from titan.core.money import to_decimal
from titan.operator.brain.engine import BrainCore, Decision, breaker_event
from titan.operator.brain.performance import Trade
from titan.operator.brain.policy import BrainPolicy
from titan.v1 import common_pb2, events_pb2, trading_pb2

SOURCE = "brain"
_PERP = int(common_pb2.INSTRUMENT_KIND_PERP)  # funding is paid on perpetuals only


def closing_trade(event: events_pb2.Event) -> Trade | None:
    """The trade a closing fill ends (net PnL: realized minus fee; :func:`observe_event` adds what
    its position carried: the opening fills' fees and the perp's funding), else None. Its unit is
    the signal of the fill's order (client order ids are ``<signal part>-<leg>``): the tracker sums
    the closing fills of one signal, e.g. both legs of a hedged unit, into one trade."""
    if event.WhichOneof("body") != "fill":
        return None
    fill = event.fill
    realized = to_decimal(fill.realized_pnl or "0")
    if realized == 0 or not fill.phase_id:  # only a closing fill ends (part of) a trade
        return None
    unit = fill.client_order_id.rpartition("-")[0]
    return Trade(fill.phase_id, fill.ts_ns or event.ts_ns, realized - to_decimal(fill.fee or "0"), unit)


def carry_funding(core: BrainCore, event: events_pb2.Event) -> bool:
    """A funding payment is carried to the trade its perp position closes next; False for any
    other event."""
    if event.WhichOneof("body") != "funding" or not event.funding.phase_id:
        return False
    if not core.counted.first(event.event_id):
        return True  # a copy: carried already
    payment = event.funding
    core.carry(payment.phase_id, payment.venue, payment.symbol, _PERP, to_decimal(payment.amount or "0"))
    return True


def replayed_trade(core: BrainCore, event: events_pb2.Event) -> Trade | None:
    """The runtime's replay after a restart: fills and funding payments as :func:`observe_event`
    takes them, for the performance tracker only (the breakers' state is persisted with the core).
    Returns the trade a closing fill ends."""
    if carry_funding(core, event):
        return None
    return fill_trade(core, event)


def observe_event(core: BrainCore, event: events_pb2.Event, policy: BrainPolicy) -> bool:
    """Feed one ledger event into the core: equity snapshots, funding payments and fills count,
    everything else is ignored. A closing fill's trade includes what its position carried since its
    previous closing fill: the fees of the fills that opened it and the funding it paid or received.
    Returns whether the event was used. Raises MoneyError on a malformed amount."""
    body = event.WhichOneof("body")
    if body == "equity":
        eq = event.equity
        core.observe_equity(
            eq.scope or "total",
            to_decimal(eq.equity or "0"),
            eq.ts_ns or event.ts_ns,
            realized=to_decimal(eq.realized_pnl or "0"),
            unrealized=to_decimal(eq.unrealized_pnl or "0"),
            exposure=to_decimal(eq.exposure or "0"),
        )
        return True
    if carry_funding(core, event):
        return True
    if body == "fill":
        trade = fill_trade(core, event)
        if trade is not None:
            core.observe_trade(trade.phase_id, trade.pnl, trade.ts_ns, policy, unit=trade.unit)
        return bool(event.fill.phase_id)
    return False


def fill_trade(core: BrainCore, event: events_pb2.Event) -> Trade | None:
    """The trade a fill event closes, with what its position carried (:meth:`BrainCore.carry`), or
    None: an opening fill's fee is carried to the fill that will close the position. A fill whose id
    was counted before (a redelivered or re-published copy) is None and changes nothing."""
    if event.WhichOneof("body") != "fill" or not event.fill.phase_id:
        return None
    if not core.counted.first(event.event_id):
        return None  # a copy: counted already
    fill = event.fill
    position = (fill.phase_id, fill.venue, fill.symbol, int(fill.instrument))
    trade = closing_trade(event)
    if trade is None:
        core.carry(*position, -to_decimal(fill.fee or "0"))
        return None
    return Trade(trade.phase_id, trade.ts_ns, trade.pnl + core.take_carried(*position), trade.unit)


@dataclass(frozen=True)
class DecisionOutput:
    """What one decision publishes: every phase's budget, the trading state when it changed, and the
    allocation / breaker / trading-state events for the ledger."""

    decision: Decision
    budgets: tuple[trading_pb2.Budget, ...]
    trading_state: trading_pb2.TradingState | None
    events: tuple[events_pb2.Event, ...]
    alloc_keys: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)
    mode_key: tuple[str, str] | None = None


class DecisionOutbox:
    """Remembers what was already published, so a decision that changes nothing publishes only its
    (refreshed) budgets. :meth:`plan` is pure; :meth:`commit` marks a plan as published once the
    driver has delivered it (a failed delivery is planned again on the next decision)."""

    def __init__(self) -> None:
        self.published_alloc: dict[str, tuple[str, str, str, str]] = {}
        self.published_mode: tuple[str, str] | None = None

    def plan(self, decision: Decision) -> DecisionOutput:
        budgets = tuple(decision.budget(phase_id) for phase_id in decision.phases)
        events: list[events_pb2.Event] = []
        state: trading_pb2.TradingState | None = None
        mode_key = (decision.trading_mode.value, decision.trading_reason)
        if mode_key != self.published_mode:
            state = decision.trading_state()
            events.append(events_pb2.Event(
                event_id=new_event_id(SOURCE, "trading_state", decision.budget_version),
                source=SOURCE, ts_ns=decision.ts_ns, trading_state=state))
        for change in decision.breaker_changes:
            events.append(events_pb2.Event(
                event_id=new_event_id(SOURCE, "breaker", change.kind.value, change.ts_ns, int(change.tripped)),
                source=SOURCE, ts_ns=change.ts_ns, breaker=breaker_event(change)))
        alloc_keys: dict[str, tuple[str, str, str, str]] = {}
        for phase_id in decision.phases:
            key = decision.allocation_key(phase_id)
            if self.published_alloc.get(phase_id) != key:
                events.append(events_pb2.Event(
                    event_id=new_event_id(SOURCE, "allocation", phase_id, decision.budget_version),
                    source=SOURCE, ts_ns=decision.ts_ns, allocation=decision.allocation(phase_id)))
                alloc_keys[phase_id] = key
        return DecisionOutput(decision, budgets, state, tuple(events), alloc_keys,
                              mode_key if state is not None else None)

    def commit(self, output: DecisionOutput) -> None:
        if output.mode_key is not None:
            self.published_mode = output.mode_key
        self.published_alloc.update(output.alloc_keys)


__all__ = ["SOURCE", "DecisionOutbox", "DecisionOutput", "carry_funding", "closing_trade", "fill_trade",
           "observe_event", "replayed_trade"]
