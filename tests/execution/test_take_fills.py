"""A taker's fills booked together (``lifecycle.take_fills``) leave exactly what booking them one by
one (``apply_paper_fill`` per fill, as the engine did before) leaves: the same updates, orders,
positions, open-order book and fill counts, for random books and random streams of signals."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.execution.helpers import BUY, CLOSE, OPEN, PERP, REDUCE, SELL, SPOT, depth, leg, make_engine, mark, signal
from titan.core.metrics import FILLS
from titan.execution.engine import matching
from titan.execution.engine.lifecycle import apply_paper_fill, next_fill_id
from titan.execution.engine.state import EngineState
from titan.execution.orders import ManagedOrder
from titan.execution.paper import Fill

sizes = st.sampled_from(["0.013", "0.05", "0.1", "0.25", "1", "2.5"])
levels = st.lists(st.tuples(st.integers(0, 30), sizes), min_size=1, max_size=6, unique_by=lambda lv: lv[0])
orders = st.lists(
    st.tuples(st.sampled_from([BUY, SELL]), st.sampled_from(["100", "900", "2500", "7000", "30000"]),
              st.sampled_from([OPEN, OPEN, REDUCE, CLOSE]), st.sampled_from([PERP, PERP, SPOT]),
              st.sampled_from([0, 5, 50])),
    min_size=1, max_size=12,
)


def one_by_one(state: EngineState, order: ManagedOrder, fills: list[Fill], now: int, reference: object) -> None:
    """The per-fill booking ``take_fills`` replaces."""
    for fill in fills:
        apply_paper_fill(state, order, fill, now, next_fill_id(order), reference)  # type: ignore[arg-type]
        if not order.is_open:
            return


def run(bids: list[tuple[int, str]], asks: list[tuple[int, str]], stream: list[tuple[int, str, int, int, int]]
        ) -> tuple[list[object], dict[str, object]]:
    engine, clock = make_engine(book=False)
    fills_before = dict(FILLS.counts)
    updates: list[object] = []
    for instrument in (PERP, SPOT):  # BTCUSDT
        updates += engine.on_market(depth([(str(50_000 - 10 * p), q) for p, q in bids],
                                          [(str(50_010 + 10 * p), q) for p, q in asks], instrument=instrument))
        updates += engine.on_market(mark("50005", instrument=instrument))
    for n, (side, size, intent, instrument, slippage) in enumerate(stream):
        sig = signal(clock, leg(side=side, size=size, instrument=instrument), intent=intent,
                     signal_id=f"s-{n}", max_slippage_bps=slippage, leverage="3" if instrument == PERP else "")
        decision = engine.decide(sig)
        updates.append(decision.ack)
        updates += engine.execute(decision)
        clock.advance(1_000_000)
    state = {
        "orders": {cid: o.to_proto() for cid, o in engine.orders.items()},
        "positions": {key: p.to_proto(engine.outputs.maintenance_margin_rate)
                      for key, p in engine.portfolio.positions.items()},
        "open_counts": dict(engine.open_book.counts),
        "adding_notional": dict(engine.open_book.adding_notional),
        "adding_left": dict(engine.adding_left),
        "fills_counted": {k: v - fills_before.get(k, 0) for k, v in FILLS.counts.items()},
    }
    return updates, state


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bids=levels, asks=levels, stream=orders)
def test_fills_booked_together_leave_what_one_by_one_leaves(bids, asks, stream):
    together = run(bids, asks, stream)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(matching, "take_fills", one_by_one)
        separately = run(bids, asks, stream)
    assert together == separately
    updates, state = together
    assert sum(state["fills_counted"].values()) == sum(type(u).__name__ == "Fill" for u in updates)


def test_a_walk_over_three_levels_is_three_fills_counted_once_each():
    engine, clock = make_engine(book=False)
    engine.on_market(depth([("49990", "1")], [("50010", "0.004"), ("50020", "0.004"), ("50030", "1")]))
    engine.on_market(mark("50000"))
    before = FILLS.counts.get(("hunter", "bybit"), 0)
    updates = engine.execute(engine.decide(signal(clock, leg(side=BUY, size="500"))))
    fills = [u for u in updates if type(u).__name__ == "Fill"]
    assert [(f.price, f.quantity) for f in fills] == [("50010", "0.004"), ("50020", "0.004"), ("50030", "0.001998")]
    assert [f.fill_id.rsplit("-", 1)[1] for f in fills] == ["1", "2", "3"]
    assert FILLS.counts[("hunter", "bybit")] - before == 3
    position = next(u for u in updates if type(u).__name__ == "Position")
    assert position.quantity == "0.009998" and position.mark_price == "50000"
