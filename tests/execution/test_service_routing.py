"""Which engine update reaches which phase's stream (``titan.execution.routing.phase_updates``), on the
real engine's output, and over the service's stream: a phase gets its own orders, fills and
positions, in the engine's order, and nothing of another phase."""

from __future__ import annotations

from tests.execution.helpers import OTHER_KEY, SELL, budget, leg, make_engine, signal
from tests.execution.test_service import activate, clock, read_until, service  # noqa: F401  (fixture)
from titan.execution.routing import ack_update, phase_messages, phase_updates
from titan.v1 import events_pb2, execution_pb2, trading_pb2


def test_each_phase_gets_its_own_orders_fills_and_positions_in_engine_order() -> None:
    engine, clk = make_engine()
    assert engine.update_budget(budget(phase="scavenger")) == "applied"
    updates = engine.execute(engine.decide(signal(clk, leg(size="5000"))))
    updates += engine.execute(engine.decide(signal(clk, leg(size="3000", side=SELL), phase="scavenger", key=OTHER_KEY)))
    updates += [trading_pb2.FundingPayment(phase_id="hunter", amount="1"), trading_pb2.EquitySnapshot(scope="hunter"),
                events_pb2.SignalDecision(), trading_pb2.Order(client_order_id="no-phase")]
    routed = phase_updates(updates)
    assert set(routed) == {"hunter", "scavenger"}
    assert [m.WhichOneof("body") for m in routed["hunter"]] == ["order", "fill", "position"]
    assert [m.WhichOneof("body") for m in routed["scavenger"]] == ["order", "fill", "position"]
    for phase, msgs in routed.items():
        assert {getattr(m, m.WhichOneof("body")).phase_id for m in msgs} == {phase}
    hunter = routed["hunter"]
    assert hunter[1].fill.client_order_id == hunter[0].order.client_order_id
    assert (hunter[2].position.quantity, hunter[2].position.symbol) == ("0.1", "BTCUSDT")
    assert routed["scavenger"][2].position.quantity == "-0.06"
    assert phase_updates([]) == {}
    # on the wire: the same updates, batched per phase, at most per_message in one UpdateBatch
    assert phase_messages([]) == {}
    for per_message, shapes in [(512, ["updates"]), (2, ["updates", "position"])]:
        wire = phase_messages(updates, per_message)
        assert set(wire) == {"hunter", "scavenger"}
        for phase, msgs in wire.items():
            assert [m.WhichOneof("body") for m in msgs] == shapes
            unbatched = [u for m in msgs for u in (m.updates.updates if m.WhichOneof("body") == "updates" else [m])]
            assert unbatched == routed[phase]
    ack = trading_pb2.SignalAck(phase_id="hunter", signal_id="x", accepted=True)
    assert ack_update(ack) == execution_pb2.ExecutionUpdate(ack=ack)


async def test_the_stream_carries_the_position_after_the_fill(service) -> None:  # noqa: F811
    rt, stub, _ = service
    await activate(rt, stub)
    call = stub.StreamSignals()
    await call.write(execution_pb2.StreamRequest(signal=signal(clock(), leg(size="5000"))))
    ack, _ = await read_until(call, lambda m: m.WhichOneof("body") == "ack")
    assert ack.ack.accepted, ack.ack.detail
    pos, seen = await read_until(call, lambda m: m.WhichOneof("body") == "position")
    bodies = [m.WhichOneof("body") for m in seen]
    assert bodies.index("order") < bodies.index("fill") < bodies.index("position")
    assert pos.position.phase_id == "hunter" and pos.position.symbol == "BTCUSDT"
    assert all(getattr(m, m.WhichOneof("body")).phase_id == "hunter" for m in seen)
    await call.done_writing()
