"""The Sentinel learns each hedged unit's outcome from execution (``ExecutionUpdate.hedge``) and acts
on it: a settled unit frees the symbol, an entry that ended holding nothing leaves no entry basis
behind, and a failed unit's residual delta blocks new entries until the positions show it fixed."""

from __future__ import annotations

from tests.phases.test_sentinel_strategy import Desk, kinds
from titan.phases.sentinel import strategy
from titan.v1 import common_pb2, execution_pb2, trading_pb2

SPOT, PERP = common_pb2.INSTRUMENT_KIND_SPOT, common_pb2.INSTRUMENT_KIND_PERP


def settle(desk: Desk, signal: trading_pb2.Signal, result: int, spot: str, perp: str, residual: str = "0") -> None:
    outcome = trading_pb2.HedgeOutcome(phase_id="sentinel", signal_id=signal.signal_id, symbol="BTCUSDT",
                                       result=result, spot_quantity=spot, perp_quantity=perp, residual=residual,  # type: ignore[arg-type]
                                       steps=1)
    desk.signals += desk.core.on_update(execution_pb2.ExecutionUpdate(hedge=outcome))
    desk.events += desk.core.events


def test_a_hedged_unit_frees_the_symbol_and_is_counted() -> None:
    desk = Desk(targetFraction="0.5")
    desk.warm()
    entry = desk.minute(30.0)[0]
    desk.position(SPOT, "0.125")
    desk.position(PERP, "-0.125")
    assert desk.minute(30.0) == []                                 # in flight until execution says so
    settle(desk, entry, trading_pb2.HedgeResult.HEDGE_RESULT_HEDGED, "0.125", "0.125")
    st = desk.strategy.symbols["BTCUSDT"]
    assert st.inflight == "" and st.entry_basis is not None and st.holding
    assert desk.strategy.counters["units_hedged"] == 1 and desk.core.stats.hedge_outcomes == 1
    assert kinds(desk, strategy.HEDGE_SETTLED)[-1].get("result") == "hedged"
    assert len(desk.minute(30.0)) == 1                             # the next clip may go


def test_an_entry_unwound_to_nothing_is_not_believed_held() -> None:
    desk = Desk()
    desk.warm()
    entry = desk.minute(30.0)[0]
    st = desk.strategy.symbols["BTCUSDT"]
    assert st.entry_basis is not None  # set when the entry was sent
    settle(
        desk, entry, trading_pb2.HedgeResult.HEDGE_RESULT_UNWOUND, "0", "0"
    )  # the perp leg failed, the spot given back
    assert not st.holding and st.entry_basis is None and st.inflight == ""
    assert desk.strategy.counters["units_unwound"] == 1
    again = desk.minute(45.0)[0]                                   # a later entry starts from its own basis
    assert st.entry_basis is not None and abs(st.entry_basis - float(again.metadata["basis"])) < 1e-8
    assert abs(st.entry_basis - float(entry.metadata["basis"])) > 1e-4


def test_an_unfilled_entry_holds_nothing_either() -> None:
    desk = Desk()
    desk.warm()
    entry = desk.minute(30.0)[0]
    settle(desk, entry, trading_pb2.HedgeResult.HEDGE_RESULT_UNFILLED, "0", "0")
    st = desk.strategy.symbols["BTCUSDT"]
    assert st.entry_basis is None and not st.holding and desk.strategy.counters["units_unfilled"] == 1


def test_a_failed_unit_is_residual_exposure_fixed_before_any_entry() -> None:
    desk = Desk(targetFraction="0.5")
    desk.warm()
    entry = desk.minute(30.0)[0]
    desk.position(SPOT, "0.125")                                  # the perp leg got only part of it
    desk.position(PERP, "-0.05")
    settle(desk, entry, trading_pb2.HedgeResult.HEDGE_RESULT_FAILED, "0.125", "0.05", residual="0.075")
    st = desk.strategy.symbols["BTCUSDT"]
    assert st.residual == st.spot_quantity + st.perp_quantity
    assert kinds(desk, strategy.HEDGE_FAILED)[-1].get("residual") == "0.075"
    out = desk.minute(30.0)                                       # the monitor reduces the excess first
    assert len(out) == 1 and out[0].setup == "sentinel.rebalance"
    desk.done(out[0])
    assert desk.strategy._expand_block(st, desk.clock.now_ns()) == "unit_failed_residual"
    desk.position(SPOT, "0.05")                                   # the rebalance filled: delta back to 0
    assert st.residual == 0
    assert len(desk.minute(30.0)) == 1                             # entries again


def test_a_failed_unit_within_tolerance_needs_no_fix() -> None:
    desk = Desk()
    desk.warm()
    entry = desk.minute(30.0)[0]
    desk.position(SPOT, "0.1250")
    desk.position(PERP, "-0.1249")                                # 0.08 %: within the 2 % tolerance
    settle(desk, entry, trading_pb2.HedgeResult.HEDGE_RESULT_FAILED, "0.125", "0.1249", residual="0.0001")
    assert desk.strategy.symbols["BTCUSDT"].residual == 0


def leg_filled(desk: Desk, signal: trading_pb2.Signal, leg: int) -> None:
    order = trading_pb2.Order(phase_id="sentinel", signal_id=signal.signal_id, symbol="BTCUSDT",
                              client_order_id=f"{signal.signal_id}-{leg}", state=trading_pb2.ORDER_STATE_FILLED)
    desk.signals += desk.core.on_update(execution_pb2.ExecutionUpdate(order=order))


def test_one_finished_leg_does_not_free_the_symbol_before_the_outcome() -> None:
    """Execution sends one leg's order and position before the other's: in between, the desk sees a
    naked spot leg. Until the unit's outcome, that is no delta to rebalance and no reason for a
    second signal (the process test once saw a rebalance sell the spot leg just bought)."""
    desk = Desk(targetFraction="0.5")
    desk.warm()
    entry = desk.minute(30.0)[0]
    leg_filled(desk, entry, 0)
    desk.position(SPOT, "0.125")
    assert desk.minute(30.0) == []                                 # no rebalance of the half-seen unit
    leg_filled(desk, entry, 1)
    desk.position(PERP, "-0.125")
    assert desk.strategy.symbols["BTCUSDT"].inflight == entry.signal_id
    settle(desk, entry, trading_pb2.HedgeResult.HEDGE_RESULT_HEDGED, "0.125", "0.125")
    assert len(desk.minute(30.0)) == 1                             # free with the outcome: the next clip


def test_a_single_leg_rebalance_is_free_when_its_order_is_done() -> None:
    """A rebalance is one leg, not a unit: no outcome comes, its finished order frees the symbol."""
    desk = Desk(targetFraction="0.5")
    desk.warm()
    entry = desk.minute(30.0)[0]
    desk.position(SPOT, "0.125")
    desk.position(PERP, "-0.05")
    settle(desk, entry, trading_pb2.HedgeResult.HEDGE_RESULT_FAILED, "0.125", "0.05", residual="0.075")
    (fix,) = desk.minute(30.0)
    assert fix.setup == "sentinel.rebalance" and desk.strategy.symbols["BTCUSDT"].inflight == fix.signal_id
    leg_filled(desk, fix, 0)
    assert desk.strategy.symbols["BTCUSDT"].inflight == ""
