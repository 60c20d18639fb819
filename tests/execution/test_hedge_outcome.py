"""A hedged unit's outcome goes out once it is known, as a ``HedgeOutcome`` update after the unit's
orders, fills and positions: to the phase on its stream (``phase_updates``) and to the bus (an event
the ledger keeps). Known at once, after the deadline, or failed with a residual."""

from __future__ import annotations

from decimal import Decimal

from tests.execution.helpers import SELL, SPOT, OrderType, leg, top
from tests.execution.test_hedge import MS, desk, exposure, unit
from titan.core.bus.events import validate_event
from titan.core.catalog import EventKind
from titan.execution.envelopes import to_event
from titan.execution.routing import phase_updates
from titan.v1 import events_pb2, trading_pb2


def outcomes(updates: list[object]) -> list[trading_pb2.HedgeOutcome]:
    return [u for u in updates if isinstance(u, trading_pb2.HedgeOutcome)]


def test_a_unit_hedged_at_once_reports_after_its_positions_and_before_its_decision() -> None:
    engine, clock = desk()
    sig = unit(clock)
    d = engine.on_signal(sig)
    (outcome,) = outcomes(d.updates)
    spot, perp = exposure(engine)
    assert (outcome.phase_id, outcome.signal_id, outcome.symbol) == ("sentinel", sig.signal_id, "BTCUSDT")
    assert outcome.result == trading_pb2.HedgeResult.HEDGE_RESULT_HEDGED and not outcome.reducing and outcome.steps == 0
    assert (Decimal(outcome.spot_quantity), -Decimal(outcome.perp_quantity), outcome.residual) == (spot, perp, "0")
    kinds = [type(u).__name__ for u in d.updates]
    assert kinds.index("HedgeOutcome") > max(i for i, k in enumerate(kinds) if k == "Position")
    assert kinds.index("HedgeOutcome") < kinds.index("SignalDecision")
    # the phase receives it on its stream; the bus gets an event with a natural-key id
    (message,) = [m for m in phase_updates(d.updates)["sentinel"] if m.WhichOneof("body") == "hedge"]
    assert message.hedge == outcome
    event = to_event(outcome)
    assert event.event_id == f"hedge:sentinel:{sig.signal_id}" and validate_event(event) is EventKind.HEDGE


def test_a_unit_settled_at_the_deadline_reports_then_with_what_it_holds() -> None:
    engine, clock = desk(perp_bid_size="0.04")
    d = engine.on_signal(unit(clock, "unwind"))
    assert not outcomes(d.updates)                                   # pending: nothing to report yet
    clock.advance(2_000 * MS)  # type: ignore[attr-defined]
    updates = engine.tick()
    (outcome,) = outcomes(updates)
    assert outcome.result == trading_pb2.HedgeResult.HEDGE_RESULT_UNWOUND and outcome.steps == 1
    assert (outcome.spot_quantity, outcome.perp_quantity, outcome.residual) == ("0.04", "0.04", "0")
    assert exposure(engine) == (Decimal("0.04"), Decimal("-0.04"))
    assert not outcomes(engine.tick())                               # once


def test_a_rejected_twin_unwound_to_nothing_reports_that_nothing_is_held() -> None:
    engine, clock = desk()
    crossing = leg(side=SELL, size="5000", instrument=2, order_type=OrderType.ORDER_TYPE_POST_ONLY, limit="50040")
    (outcome,) = outcomes(engine.on_signal(unit(clock, "unwind", crossing)).updates)
    assert outcome.result == trading_pb2.HedgeResult.HEDGE_RESULT_UNWOUND
    assert (outcome.spot_quantity, outcome.perp_quantity, outcome.residual) == ("0", "0", "0")


def test_a_unit_that_runs_out_of_steps_reports_failed_with_its_residual() -> None:
    """The perp leg fills 0.04 of the spot leg's quantity; at the deadline the perp book is gone
    (the re-quote fills nothing) and so are the spot bids (each unwind rests until it expires):
    after six steps the unit is FAILED with the spot excess as its residual."""
    engine, clock = desk(perp_bid_size="0.04")
    d = engine.on_signal(unit(clock, "complete"))
    spot_qty = Decimal([o for o in d.updates if isinstance(o, trading_pb2.Order) and o.leg == 0][-1].quantity)
    engine.on_market(top("49000", "0.000001", "50000", "10", instrument=SPOT))   # almost no spot bids left
    engine.on_market(top("49000", "0.000001", "50000", "10", instrument=SPOT))
    found: list[trading_pb2.HedgeOutcome] = []
    clock.advance(2_000 * MS)  # type: ignore[attr-defined]
    for _ in range(20):
        found += outcomes(engine.tick())
        if found:
            break
        clock.advance(engine.config.paper.market_remainder_ttl_ns)  # type: ignore[attr-defined]
    (outcome,) = found
    spot, perp = exposure(engine)
    assert outcome.result == trading_pb2.HedgeResult.HEDGE_RESULT_FAILED and outcome.steps == 6
    assert Decimal(outcome.residual) == spot + perp and spot + perp > 0   # a long residual, reported as such
    assert Decimal(outcome.perp_quantity) == Decimal("0.04") and Decimal(outcome.spot_quantity) <= spot_qty
    assert isinstance(to_event(outcome).hedge, trading_pb2.HedgeOutcome)
    assert events_pb2.Event(hedge=outcome).WhichOneof("body") == "hedge"
