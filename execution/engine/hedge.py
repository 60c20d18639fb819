"""Hedged units: a two-leg signal (spot and perp of one symbol, opposite sides, ``metadata["hedge"]``
naming the policy) is executed as one unit, never left as a naked leg.

* Placement: both legs get the same base quantity (the smaller of the two the gate sized, rounded
  to the lot) and are placed together.
* Settlement: when both legs are done, or at the unit's deadline (``metadata["hedge_deadline_ms"]``
  after placement; the legs' remainders are then canceled), the unit compares what each leg filled.
  Equal: the unit is hedged. Different: the signal's policy decides —
  ``complete``: re-quote the short leg for the difference as an IOC limit at the slippage bound
  (``max_slippage_bps`` from the leg's reference price at placement); a price already beyond the
  bound, or a re-quote that fills short, falls back to ``unwind``;
  ``unwind``: a reduce-only market order on the longer leg for the difference.
  A closing unit (intent CLOSE/REDUCE) always completes: its goal is to remove exposure.
* Every step is an order with its own leg number (2, 3, ...: client order ids derive from (phase,
  signal id, leg)) whose ``reason`` names the step, so it is an order/fill event in the ledger; each
  step and each outcome is counted in ``titan_execution_hedge_steps_total`` /
  ``titan_execution_hedge_units_total``. The outcome is written into the ack of the signal's
  decision event when it is known by then, else ``hedge pending`` and the steps follow; either way,
  when it is known, a :class:`titan.v1.trading_pb2.HedgeOutcome` update goes out after the unit's
  orders, fills and positions (to the bus, and to the phase on its stream).
* External venues: steps are handed to the driver like a signal's orders
  (``Outputs.take_submissions``), and at the deadline the legs' remainders are canceled at the venue
  (``take_cancels``); the unit settles once the venue has closed them.
* Recovery: :func:`recover` rebuilds units from the ledger's recent orders whose legs 0 and 1 form
  a spot/perp pair with different filled quantities (an orphan leg left by a crash) and settles
  them before the engine serves; while a phase has an unsettled unit, its new entries are refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from titan.core.metrics import HEDGE_STEPS, HEDGE_UNITS
from titan.core.money import CONTEXT
from titan.execution import enums
from titan.execution.engine import matching
from titan.execution.engine.lifecycle import finish, register, rest
from titan.execution.engine.state import BUY, SELL, ZERO, EngineState
from titan.execution.gate import LegPlan, Verdict
from titan.execution.numbers import fmt
from titan.execution.orders import ACCEPTED, CANCELED, NEW, SUBMITTED, ManagedOrder, client_order_id
from titan.v1 import common_pb2, trading_pb2

log = logging.getLogger("titan.execution.hedge")

OrderType = enums.OrderType
RejectReason = enums.RejectReason
SPOT = common_pb2.InstrumentKind.INSTRUMENT_KIND_SPOT
PERP = common_pb2.InstrumentKind.INSTRUMENT_KIND_PERP
POLICIES = ("complete", "unwind")
MAX_STEPS = 6
_BPS = Decimal(10_000)
_ONE = Decimal(1)
_DEFAULT_SLIPPAGE_BPS = Decimal(50)


class Outcome:
    PENDING = "pending"
    HEDGED = "hedged"          # both legs filled alike, no step needed
    COMPLETED = "completed"    # the short leg was re-quoted up to its twin
    UNWOUND = "unwound"        # the excess of the longer leg was sold/bought back
    UNFILLED = "unfilled"      # neither leg filled: nothing to hedge
    FAILED = "failed"          # steps exhausted with a residual left (logged as an error)


class Step:
    PLACED = "placed"
    REQUOTED = "requoted"
    BEYOND_BOUND = "beyond_bound"
    UNWOUND = "unwound"
    DEADLINE = "deadline"
    RECOVERED = "recovered"


@dataclass
class HedgeUnit:
    phase_id: str
    signal_id: str
    policy: str
    reducing: bool
    deadline_ns: int
    slippage_bps: Decimal
    legs: tuple[str, str]                      # client order ids of legs 0 and 1
    reference: tuple[Decimal, Decimal]         # reference price of each leg at placement
    symbol: str = ""
    buys: tuple[bool, bool] = (True, False)    # the side of legs 0 and 1
    spot_leg: int = 0                          # which of legs 0 and 1 is the spot leg
    steps: dict[str, tuple[int, str]] = field(default_factory=dict)  # cid -> (leg it belongs to, kind)
    next_leg: int = 2
    outcome: str = Outcome.PENDING
    requote_failed: bool = False
    cancel_requested: bool = False             # external venue: the legs' remainders asked to cancel


RESULTS = {
    Outcome.HEDGED: trading_pb2.HEDGE_RESULT_HEDGED,
    Outcome.COMPLETED: trading_pb2.HEDGE_RESULT_COMPLETED,
    Outcome.UNWOUND: trading_pb2.HEDGE_RESULT_UNWOUND,
    Outcome.UNFILLED: trading_pb2.HEDGE_RESULT_UNFILLED,
    Outcome.FAILED: trading_pb2.HEDGE_RESULT_FAILED,
}


def _step(kind: str) -> None:
    HEDGE_STEPS.labels(step=kind).inc()


# --- placement -----------------------------------------------------------------------------------
def problem(signal: trading_pb2.Signal) -> str:
    """What makes a signal that asks for a hedged unit malformed ("" when fine or not a unit)."""
    if "hedge" not in signal.metadata:
        return ""
    if signal.metadata["hedge"] not in POLICIES:
        return f"metadata hedge must be one of {', '.join(POLICIES)}"
    if len(signal.legs) != 2:
        return "a hedged unit has exactly two legs"
    a, b = signal.legs
    if {int(a.instrument), int(b.instrument)} != {SPOT, PERP} or a.symbol != b.symbol:
        return "a hedged unit pairs the spot and the perp of one symbol"
    if a.side == b.side:
        return "the legs of a hedged unit have opposite sides"
    raw = signal.metadata.get("hedge_deadline_ms", "")
    if raw and (not raw.isdigit() or not 0 < int(raw) <= 600_000):
        return "metadata hedge_deadline_ms must be an integer in 1..600000"
    return ""


def is_unit(signal: trading_pb2.Signal) -> bool:
    return "hedge" in signal.metadata and len(signal.legs) == 2


def blocked(state: EngineState, phase_id: str) -> bool:
    """True while ``phase_id`` has a unit whose legs are not settled: no new entries until it is."""
    return any(u.phase_id == phase_id and u.outcome == Outcome.PENDING for u in state.hedges.values())


def check(state: EngineState, signal: trading_pb2.Signal, verdict: Verdict) -> Verdict:
    """The gate's acceptance, checked for hedged units: a malformed unit is MALFORMED, a phase with
    an unsettled unit may not add exposure (PHASE_BLOCKED), and a unit's legs are equalised."""
    bad = problem(signal)
    if bad:
        return Verdict(RejectReason.REJECT_REASON_MALFORMED, bad)
    if not verdict.reducing and blocked(state, signal.phase_id):
        return Verdict(RejectReason.REJECT_REASON_PHASE_BLOCKED,
                       "a hedged unit of this phase is being settled: no new entries until it is")
    if is_unit(signal) and verdict.legs is not None:
        equalise(state, verdict.legs)
        if any(p.quantity <= 0 for p in verdict.legs):
            return Verdict(RejectReason.REJECT_REASON_MALFORMED, "the hedged legs are smaller than one lot")
    return verdict


def equalise(state: EngineState, plans: list[LegPlan]) -> None:
    """Both legs get the same base quantity: the smaller one, rounded down to the lot."""
    quantity = min(p.quantity for p in plans)
    quantity = min(state.paper.round_quantity(p.symbol, quantity) for p in plans)
    for p in plans:
        if p.quantity != quantity and p.quantity > 0:
            p.notional = CONTEXT.divide(p.notional * quantity, p.quantity)
            p.quantity = quantity


def open_unit(state: EngineState, signal: trading_pb2.Signal, plans: list[LegPlan], cids: list[str],
              now: int) -> None:
    deadline_ms = int(signal.metadata.get("hedge_deadline_ms") or 5_000)
    slippage = Decimal(signal.max_slippage_bps) if signal.max_slippage_bps else _DEFAULT_SLIPPAGE_BPS
    reference = tuple(CONTEXT.divide(p.notional, p.quantity) for p in plans)
    unit = HedgeUnit(
        phase_id=signal.phase_id, signal_id=signal.signal_id, policy=signal.metadata["hedge"],
        reducing=signal.intent != trading_pb2.INTENT_OPEN, deadline_ns=now + deadline_ms * 1_000_000,
        slippage_bps=slippage, legs=(cids[0], cids[1]), reference=(reference[0], reference[1]),
        symbol=plans[0].symbol, buys=(plans[0].buy, plans[1].buy), spot_leg=0 if plans[0].instrument == SPOT else 1,
    )
    state.hedges[(unit.phase_id, unit.signal_id)] = unit
    _step(Step.PLACED)


def after_execute(state: EngineState, ack: trading_pb2.SignalAck, now: int) -> None:
    """Right after the legs met the paper venue: settle what is settled and say so in the ack."""
    unit = state.hedges.get((ack.phase_id, ack.signal_id))
    if unit is None:
        return
    settle(state, unit, now)
    if unit.outcome == Outcome.PENDING:
        ack.detail = f"hedge pending: policy {unit.policy}, deadline {unit.deadline_ns}"
    else:
        ack.detail = f"hedge {unit.outcome}"
        del state.hedges[(ack.phase_id, ack.signal_id)]


# --- settlement ----------------------------------------------------------------------------------
def _effective(state: EngineState, unit: HedgeUnit) -> tuple[Decimal, Decimal]:
    """Base quantity each leg holds for the unit: its fill plus re-quotes minus unwinds."""
    held = [ZERO, ZERO]
    for i, cid in enumerate(unit.legs):
        order = state.orders.get(cid)
        held[i] += order.filled if order is not None else ZERO
    for cid, (leg, kind) in unit.steps.items():
        order = state.orders.get(cid)
        if order is not None:
            held[leg] += order.filled if kind == Step.REQUOTED else -order.filled
    return held[0], held[1]


def _open(state: EngineState, cids: Iterable[str]) -> bool:
    return any((o := state.orders.get(c)) is not None and o.is_open for c in cids)


def settle(state: EngineState, unit: HedgeUnit, now: int) -> None:
    """Move a unit on: wait for its legs (until the deadline) and its steps, then compare the legs
    and place the next step or record the outcome."""
    while unit.outcome == Outcome.PENDING:
        if _open(state, unit.steps):
            return
        legs_open = _open(state, unit.legs)
        if legs_open and now < unit.deadline_ns:
            return
        if legs_open:
            if state.external:
                _cancel_at_venue(state, unit)
                return
            for cid in unit.legs:
                order = state.orders[cid]
                if order.is_open:
                    finish(state, order, CANCELED, now, "hedge deadline: remainder canceled")
            _step(Step.DEADLINE)
        a, b = _effective(state, unit)
        if a == b:
            _done(state, unit, _outcome(unit, a), now)
            return
        if len(unit.steps) >= MAX_STEPS:
            _done(state, unit, Outcome.FAILED, now)
            log.error("hedged unit %s/%s left a residual of %s after %d steps",
                      unit.phase_id, unit.signal_id, a - b, len(unit.steps))
            return
        _next_step(state, unit, a, b, now)


def _outcome(unit: HedgeUnit, held: Decimal) -> str:
    kinds = {kind for _, kind in unit.steps.values()}
    if Step.UNWOUND in kinds:
        return Outcome.UNWOUND
    if Step.REQUOTED in kinds:
        return Outcome.COMPLETED
    return Outcome.HEDGED if held > 0 else Outcome.UNFILLED


def _cancel_at_venue(state: EngineState, unit: HedgeUnit) -> None:
    """Deadline on an external venue: ask it to cancel the legs' remainders (again if a cancel
    failed); they close, with whatever filled before, when the venue answers."""
    for cid in unit.legs:
        order = state.orders[cid]
        if order.is_open and cid not in state.cancel_requested:
            state.cancel_requested.add(cid)
            state.cancels.append(order)
    if not unit.cancel_requested:
        unit.cancel_requested = True
        _step(Step.DEADLINE)


def _done(state: EngineState, unit: HedgeUnit, outcome: str, now: int) -> None:
    unit.outcome = outcome
    HEDGE_UNITS.labels(outcome=outcome).inc()
    state.outputs.tail.append(report(state, unit, now))


def report(state: EngineState, unit: HedgeUnit, now: int) -> trading_pb2.HedgeOutcome:
    """The settled unit as the update its phase receives (and the bus records)."""
    held = _effective(state, unit)
    residual = sum((q if buy else -q for q, buy in zip(held, unit.buys, strict=True)), ZERO)
    return trading_pb2.HedgeOutcome(
        phase_id=unit.phase_id, signal_id=unit.signal_id, symbol=unit.symbol, result=RESULTS[unit.outcome],
        spot_quantity=fmt(held[unit.spot_leg]), perp_quantity=fmt(held[1 - unit.spot_leg]), residual=fmt(residual),
        reducing=unit.reducing, steps=len(unit.steps), ts_ns=now,
    )


def _next_step(state: EngineState, unit: HedgeUnit, a: Decimal, b: Decimal, now: int) -> None:
    short = 0 if a < b else 1
    long_leg = 1 - short
    diff = abs(a - b)
    if unit.reducing:
        _requote(state, unit, short, diff, now, bounded=False)
        return
    if any(kind == Step.REQUOTED and (o := state.orders.get(cid)) is not None and o.filled < o.quantity
           for cid, (_, kind) in unit.steps.items()):
        unit.requote_failed = True  # a re-quote filled short at the bound: the rest is unwound
    if unit.policy == "complete" and not unit.requote_failed:
        if _requote(state, unit, short, diff, now, bounded=True):
            return
        unit.requote_failed = True
    _unwind(state, unit, long_leg, diff, now)


def _template(state: EngineState, unit: HedgeUnit, leg: int) -> ManagedOrder:
    return state.orders[unit.legs[leg]]


def _new_order(state: EngineState, unit: HedgeUnit, like: ManagedOrder, buy: bool, quantity: Decimal,
               order_type: int, price: Decimal | None, reduce_only: bool, kind: str, leg: int,
               now: int) -> ManagedOrder:
    index = unit.next_leg
    unit.next_leg += 1
    cid = client_order_id(unit.phase_id, unit.signal_id, index)
    reference = price if price is not None else unit.reference[leg]
    order = ManagedOrder(
        client_order_id=cid, phase_id=unit.phase_id, signal_id=unit.signal_id, leg=index, venue=like.venue,
        symbol=like.symbol, instrument=like.instrument, side=BUY if buy else SELL, order_type=order_type,
        quantity=quantity, notional=quantity * reference, price=price, reduce_only=reduce_only,
        leverage=like.leverage, created_at_ns=now,
    )
    register(state, order)
    unit.steps[cid] = (leg, kind)
    return order


def _send(state: EngineState, order: ManagedOrder, slippage: Decimal | None, reason: str, now: int) -> None:
    if state.external:  # the venue reports back: the driver sends it, as it sends a signal's orders
        order.transition(SUBMITTED, now, reason)
        state.outputs.submit(order)
        return
    market = state.market.get((order.venue, order.symbol, order.instrument))
    if market is None:
        # no market data yet (recovery): the order waits for it
        order.transition(SUBMITTED, now, reason)
        order.transition(ACCEPTED, now)
        order.expires_at_ns = now + state.config.paper.market_remainder_ttl_ns
        rest(state, order)
        return
    order.reason = reason
    matching.place(state, order, market, slippage, now)


def _requote(state: EngineState, unit: HedgeUnit, leg: int, quantity: Decimal, now: int, bounded: bool) -> bool:
    """Re-quote the short ``leg`` for ``quantity``: an IOC at the slippage bound from its reference
    price (bounded), else a reduce-only market order. False when the price is already beyond the
    bound (nothing is placed)."""
    like = _template(state, unit, leg)
    buy = like.is_buy
    if bounded:
        bound = unit.reference[leg] * (_ONE + unit.slippage_bps / _BPS if buy else _ONE - unit.slippage_bps / _BPS)
        market = state.market.get((like.venue, like.symbol, like.instrument))
        best = state.paper.expected_taker_price(market, buy) if market is not None else None
        if best is None or (best > bound if buy else best < bound):
            _step(Step.BEYOND_BOUND)
            log.warning("hedged unit %s/%s: leg %d beyond the slippage bound (%s vs %s)",
                        unit.phase_id, unit.signal_id, leg, best, bound)
            return False
        order = _new_order(state, unit, like, buy, quantity, OrderType.ORDER_TYPE_IOC, bound, False,
                           Step.REQUOTED, leg, now)
        _send(state, order, None, f"hedge re-quote of leg {leg} within {unit.slippage_bps} bps", now)
    else:
        order = _new_order(state, unit, like, buy, quantity, OrderType.ORDER_TYPE_MARKET, None, True,
                           Step.REQUOTED, leg, now)
        _send(state, order, unit.slippage_bps, f"hedge completion of closing leg {leg}", now)
    _step(Step.REQUOTED)
    return True


def _unwind(state: EngineState, unit: HedgeUnit, leg: int, quantity: Decimal, now: int) -> None:
    """Give back the excess ``quantity`` of ``leg`` with a reduce-only market order."""
    like = _template(state, unit, leg)
    order = _new_order(state, unit, like, not like.is_buy, quantity, OrderType.ORDER_TYPE_MARKET, None, True,
                       Step.UNWOUND, leg, now)
    _send(state, order, None, f"hedge unwind of leg {leg}", now)
    _step(Step.UNWOUND)


# --- time and market -----------------------------------------------------------------------------
def on_tick(state: EngineState, now: int) -> None:
    if state.hedges:
        for unit in list(state.hedges.values()):
            settle(state, unit, now)
        _forget(state)


def next_due_ns(state: EngineState, due: int) -> int:
    for unit in state.hedges.values():
        if unit.outcome == Outcome.PENDING:
            due = min(due, unit.deadline_ns)
    return due


def _forget(state: EngineState) -> None:
    for key in [k for k, u in state.hedges.items() if u.outcome != Outcome.PENDING]:
        del state.hedges[key]


# --- recovery ------------------------------------------------------------------------------------
def recover(state: EngineState, decisions: Iterable[trading_pb2.Signal], known_orders: Iterable[trading_pb2.Order],
            now: int) -> int:
    """Rebuild the units a crash left unsettled from the ledger's recent orders (legs 0 and 1 of one
    signal forming a spot/perp pair), with the policy of their recorded signal (``unwind`` when the
    signal is not recorded), and settle them now: open remainders are canceled, the difference is
    re-quoted or unwound. Returns how many orphan units were found."""
    signals = {(s.phase_id, s.signal_id): s for s in decisions if "hedge" in s.metadata}
    by_signal: dict[tuple[str, str], dict[int, ManagedOrder]] = {}
    for row in known_orders:
        order = state.orders.get(row.client_order_id)
        if order is None:
            order = ManagedOrder.from_proto(row)
        by_signal.setdefault((row.phase_id, row.signal_id), {})[int(row.leg)] = order
    found = 0
    for key, legs in sorted(by_signal.items()):
        a, b = legs.get(0), legs.get(1)
        if a is None or b is None or key in state.hedges:
            continue
        pair = (a, b)
        if {a.instrument, b.instrument} != {SPOT, PERP} or a.side == b.side or a.symbol != b.symbol:
            continue
        signal = signals.get(key)
        unit = HedgeUnit(
            phase_id=key[0], signal_id=key[1],
            policy=signal.metadata["hedge"] if signal is not None and signal.metadata["hedge"] in POLICIES
            else "unwind",
            reducing=a.reduce_only, deadline_ns=now, slippage_bps=(
                Decimal(signal.max_slippage_bps) if signal is not None and signal.max_slippage_bps
                else _DEFAULT_SLIPPAGE_BPS),
            legs=(a.client_order_id, b.client_order_id),
            reference=(CONTEXT.divide(a.notional, a.quantity), CONTEXT.divide(b.notional, b.quantity)),
            symbol=a.symbol, buys=(a.is_buy, b.is_buy), spot_leg=0 if a.instrument == SPOT else 1,
        )
        for index in sorted(i for i in legs if i >= 2):
            step = legs[index]
            leg = 0 if step.instrument == a.instrument else 1
            kind = Step.UNWOUND if step.reduce_only and not unit.reducing else Step.REQUOTED
            unit.steps[step.client_order_id] = (leg, kind)
            unit.next_leg = max(unit.next_leg, index + 1)
            state.orders.setdefault(step.client_order_id, step)
        for order in pair:
            state.orders.setdefault(order.client_order_id, order)
        if _effective(state, unit)[0] == _effective(state, unit)[1] and not _open(state, (*unit.legs, *unit.steps)):
            continue  # a settled unit
        found += 1
        _step(Step.RECOVERED)
        log.warning("recovered hedged unit %s/%s with an orphan leg; settling it (policy %s)",
                    unit.phase_id, unit.signal_id, unit.policy)
        state.hedges[key] = unit
        for order in pair:
            if order.state == NEW:
                order.state = SUBMITTED
        settle(state, unit, now)
    return found
