"""Signals: run the risk gate, answer with an ack, create the orders of an accepted signal, and
remember every authentic decision so a repeat is answered REPLAYED with the original order ids.

A signal is accepted or rejected as a whole: every leg passes the gate before any order exists.
Client order ids derive from (phase, signal id, leg)."""

from __future__ import annotations

from decimal import Decimal

from titan.execution import enums
from titan.execution.engine import hedge, matching
from titan.execution.engine.lifecycle import register
from titan.execution.engine.outputs import Update
from titan.execution.engine.state import BUY, SELL, Decision, EngineState, SeenSignal
from titan.execution.gate import LegPlan, Verdict
from titan.execution.market import InstrumentMarket
from titan.execution.orders import NEW, SUBMITTED, ManagedOrder, client_order_id
from titan.v1 import events_pb2, trading_pb2

RejectReason = enums.RejectReason
OrderType = enums.OrderType

# Rejections decided before the signal is known to be authentic: not remembered, not published.
UNAUTHENTICATED = frozenset({
    RejectReason.REJECT_REASON_UNKNOWN_PHASE, RejectReason.REJECT_REASON_BAD_SIGNATURE,
    RejectReason.REJECT_REASON_STALE,
})
_REPLAYED = RejectReason.REJECT_REASON_REPLAYED


def decide(state: EngineState, signal: trading_pb2.Signal, received_ns: int | None = None, *,
           verified: bool = False) -> Decision:
    """Run the gate and answer. When accepted, the orders exist (registered: they count for the
    gate's open-order, notional and rate rules from now on, and their ids are final) but the paper
    venue has not matched them yet: call :func:`execute` right after sending the ack. ``verified``:
    the signature was checked over the bytes the signal arrived as (``core.signing.open_sealed``)."""
    now = state.clock.now_ns()
    received = now if received_ns is None else received_ns
    try:
        verdict = state.gate.evaluate(signal, now, verified=verified)
    except Exception as exc:  # fail closed: an unexpected error is a rejection, never a crash
        verdict = Verdict(RejectReason.REJECT_REASON_INTERNAL, f"{type(exc).__name__}")
    unit = hedge.is_unit(signal)
    if verdict.accepted and (unit or state.hedges):
        verdict = hedge.check(state, signal, verdict)
    phase = signal.phase_id
    ack = trading_pb2.SignalAck(phase_id=phase, signal_id=signal.signal_id, received_at_ns=received)
    submissions: list[ManagedOrder] = []
    pending: list[tuple[ManagedOrder, InstrumentMarket]] = []
    cids: list[str] = []
    if verdict.reason == _REPLAYED:
        prior = state.gate.seen.get((phase, signal.signal_id))
        if isinstance(prior, SeenSignal):
            ack.client_order_ids.extend(prior.cids)
            ack.detail = "signal id already decided: " + ("accepted" if prior.accepted else "rejected")
        ack.reason = verdict.reason  # type: ignore[assignment]
    elif verdict.accepted:
        assert verdict.legs is not None
        cids = [client_order_id(phase, signal.signal_id, plan.index) for plan in verdict.legs]
        known = state.known_cids
        if any(c in state.orders or c in known for c in cids):  # already executed (memory or ledger)
            ack.reason = _REPLAYED
            ack.detail = "orders for this signal already exist"
            ack.client_order_ids.extend(cids)
        else:
            try:
                submissions, pending = place(state, signal, verdict.legs, cids, now)
                if unit:
                    hedge.open_unit(state, signal, verdict.legs, cids, now)
                ack.accepted = True
                ack.client_order_ids.extend(cids)
            except Exception as exc:  # pragma: no cover - defensive
                ack.reason = RejectReason.REJECT_REASON_INTERNAL
                ack.detail = type(exc).__name__
    else:
        ack.reason = verdict.reason  # type: ignore[assignment]
        ack.detail = verdict.detail
    authentic = ack.reason not in UNAUTHENTICATED and ack.reason != _REPLAYED
    if authentic:
        remember(state, phase, signal.signal_id, now, ack.accepted, tuple(cids) if ack.accepted else ())
    ack.acked_at_ns = state.clock.now_ns()
    state.metrics.signal(phase if phase in state.gate.keys else "unknown", ack)
    slippage = Decimal(signal.max_slippage_bps) if signal.max_slippage_bps else None
    due = signal if state.config.publish_decisions and authentic else None
    return Decision(ack, [], submissions, [], pending, slippage, due, state.outputs.take_orders())


def execute(state: EngineState, decision: Decision) -> list[Update]:
    """Match a decided signal's paper orders; returns (and stores in ``decision.updates``) every
    update in publishing order, the decision event last: a frame of one signal."""
    decision.updates = execute_frame(state, [decision])
    return decision.updates


def execute_frame(state: EngineState, decisions: list[Decision]) -> list[Update]:
    """Match the decisions of a frame of signals in order, then hand over what they changed as one
    input: every order and position once, with its snapshot after the whole frame, then the fills in
    the order they happened, then the decisions (a driver publishes the frame's updates as one
    message: all of them or none). ``decision.updates`` stays empty."""
    for decision in decisions:
        match(state, decision)
    return state.outputs.flush()


def match(state: EngineState, decision: Decision) -> None:
    """A decided signal's paper orders meet the market; its decision event queues behind them."""
    if decision.orders:
        state.outputs.give_back(decision.orders)
        decision.orders = []
    if decision.pending:
        now = state.clock.now_ns()
        for order, market in decision.pending:
            if order.state == NEW:  # not canceled in between (e.g. a halt)
                matching.place(state, order, market, decision.slippage_bps, now)
    if state.hedges:
        hedge.after_execute(state, decision.ack, state.clock.now_ns())
    if decision.signal is not None:  # the decision event, built off the ack path
        state.outputs.tail.append(events_pb2.SignalDecision(signal=decision.signal, ack=decision.ack))


def place(
    state: EngineState, signal: trading_pb2.Signal, plans: list[LegPlan], cids: list[str], now: int
) -> tuple[list[ManagedOrder], list[tuple[ManagedOrder, InstrumentMarket]]]:
    """Create and register the orders of an accepted signal: submissions for an external venue,
    orders waiting for the paper venue otherwise."""
    submissions: list[ManagedOrder] = []
    pending: list[tuple[ManagedOrder, InstrumentMarket]] = []
    expires = signal.created_at_ns + signal.ttl_ms * 1_000_000 if signal.ttl_ms else 0
    state.rates.add(signal.phase_id, now, len(plans))
    for plan, cid in zip(plans, cids, strict=True):
        order = ManagedOrder(
            client_order_id=cid,
            phase_id=signal.phase_id,
            signal_id=signal.signal_id,
            leg=plan.index,
            venue=plan.venue,
            symbol=plan.symbol,
            instrument=plan.instrument,
            side=BUY if plan.buy else SELL,
            order_type=plan.order_type,
            quantity=plan.quantity,
            notional=plan.notional,
            price=plan.limit,
            reduce_only=plan.reduce_only,
            leverage=plan.leverage,
            created_at_ns=now,
            expires_at_ns=expires if plan.order_type != OrderType.ORDER_TYPE_MARKET else 0,
        )
        register(state, order)
        if state.external:
            order.transition(SUBMITTED, now)
            state.outputs.touch(order)
            submissions.append(order)
        else:
            pending.append((order, plan.market))
    return submissions, pending


def remember(state: EngineState, phase: str, signal_id: str, now: int, accepted: bool,
             cids: tuple[str, ...]) -> None:
    key = (phase, signal_id)
    state.gate.seen[key] = SeenSignal(now, accepted, cids)
    state.seen_order.append((now, key))
    if len(state.seen_order) > state.config.max_remembered_signals:
        prune_seen(state, now)


def prune_seen(state: EngineState, now: int) -> None:
    """Forget decided signal ids older than the dedup horizon; beyond the size cap, also forget the
    oldest ones that are already outside the replay window (a replay of those is STALE)."""
    horizon = now - state.config.dedup_horizon_ns
    safe = now - state.config.gate.replay_window_ns
    cap = state.config.max_remembered_signals
    seen = state.gate.seen
    order = state.seen_order
    while order and (order[0][0] <= horizon or (len(order) > cap and order[0][0] <= safe)):
        _, key = order.popleft()
        seen.pop(key, None)
