"""A hedged position is one trade in the backtest: both legs of the signal that opened it, with their
PnL together (basis PnL + funding - both legs' fees), wherever the trade count or win rate is
computed (closed trades, the metrics, the summary, the Brain's performance tracker)."""

from __future__ import annotations

from decimal import Decimal

from tests.phases.helpers import SENTINEL_SIM_PERMISSIVE
from titan.backtest.config import BacktestConfig
from titan.backtest.performance import HEDGED, closed_trades, compute_metrics
from titan.backtest.result import BacktestResult, run
from titan.execution.orders import client_order_id
from titan.operator.brain.feed import closing_trade
from titan.operator.brain.performance import PerformanceTracker
from titan.v1 import common_pb2, events_pb2, trading_pb2

SPOT, PERP = common_pb2.INSTRUMENT_KIND_SPOT, common_pb2.INSTRUMENT_KIND_PERP
BUY, SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL
H = 3_600 * 10**9
PERMISSIVE = SENTINEL_SIM_PERMISSIVE


def fill(signal_id: str, leg: int, instrument: int, side: int, price: str, qty: str, fee: str, realized: str,
         ts: int) -> trading_pb2.Fill:
    return trading_pb2.Fill(venue="sim", fill_id=f"{signal_id}-{leg}-{ts}", phase_id="sentinel", symbol="BTCUSDT",
                            client_order_id=client_order_id("sentinel", signal_id, leg), instrument=instrument,  # type: ignore[arg-type]
                            side=side, price=price, quantity=qty, fee=fee, realized_pnl=realized, ts_ns=ts)  # type: ignore[arg-type]


def carry_fills() -> list[trading_pb2.Fill]:
    """Open long spot / short perp at a 20-unit basis, close both at a 5-unit basis: the basis earned
    15 on 1 BTC, less 4 x 2 in fees."""
    return [
        fill("open-1", 0, SPOT, BUY, "50000", "1", "2", "0", 1 * H),
        fill("open-1", 1, PERP, SELL, "50020", "1", "2", "0", 1 * H),
        fill("close-1", 0, SPOT, SELL, "50100", "1", "2", "100", 30 * H),
        fill("close-1", 1, PERP, BUY, "50105", "1", "2", "-85", 30 * H),
    ]


def test_the_legs_of_a_hedged_unit_are_one_trade_with_basis_funding_and_fees() -> None:
    funding = [trading_pb2.FundingPayment(venue="sim", symbol="BTCUSDT", phase_id="sentinel", amount="3.5",
                                          funding_time_ns=8 * H),
               trading_pb2.FundingPayment(venue="sim", symbol="BTCUSDT", phase_id="sentinel", amount="1.5",
                                          funding_time_ns=16 * H)]
    (trade,) = closed_trades(carry_fills(), funding)
    assert (trade.instrument, trade.side, trade.quantity) == (HEDGED, "long", Decimal("1"))
    assert (trade.opened_ns, trade.closed_ns) == (1 * H, 30 * H)
    assert trade.funding == Decimal("5")                       # the perp's funding, counted once (the spot pays none)
    assert trade.fees == Decimal("8")
    assert trade.pnl == Decimal("15") + Decimal("5") - Decimal("8")        # basis + funding - fees
    metrics = compute_metrics([], [trade], Decimal("100000"))
    assert metrics.trades == 1 and metrics.win_rate == 1.0


def test_legs_opened_by_different_signals_stay_two_trades() -> None:
    fills = carry_fills()
    fills[1] = fill("open-2", 1, PERP, SELL, "50020", "1", "2", "0", 1 * H)
    trades = closed_trades(fills)
    assert sorted(t.instrument for t in trades) == ["perp", "spot"]


def test_the_brain_counts_a_hedged_close_once() -> None:
    tracker = PerformanceTracker()
    for f in carry_fills():
        trade = closing_trade(events_pb2.Event(event_id=f.fill_id, fill=f))
        if trade is not None:
            tracker.record(trade)
    (trade,) = tracker.window("sentinel", 30 * H, 86_400)
    # both closing legs, realized minus their fees
    assert trade.pnl == Decimal("100") - Decimal("2") + Decimal("-85") - Decimal("2")


def test_a_sentinel_backtest_on_the_simulator_counts_each_hedged_position_once() -> None:
    result = sentinel_backtest(PERMISSIVE)
    sentinel = [t for t in result.trades if t.phase_id == "sentinel"]
    assert sentinel, "the permissive Sentinel opened and closed nothing in 6 simulated hours"
    assert all(t.instrument == HEDGED for t in sentinel)           # never a spot and a perp trade apiece
    closes = {o.signal_id for o in result.orders.values()
              if o.phase_id == "sentinel" and o.reduce_only and o.leg in (0, 1)}
    assert len(sentinel) <= len(closes)                            # at most one trade per closing unit
    phase = result.metrics.by_phase["sentinel"]
    assert phase.trades == len(sentinel) and result.summary()["trades"] == len(result.trades)
    assert phase.win_rate == sum(1 for t in sentinel if t.pnl > 0) / len(sentinel)
    assert result.counts.get("hedge", 0) >= 2 * len(sentinel)     # every unit's outcome was recorded
    for t in sentinel:   # both legs' fees and the perp's funding are in each one
        fills = [f for f in result.fills if f.phase_id == "sentinel" and t.opened_ns <= f.ts_ns <= t.closed_ns]
        assert {f.instrument for f in fills} == {SPOT, PERP} and t.fees > 0


def sentinel_backtest(params: dict[str, object]) -> BacktestResult:
    return run(BacktestConfig(data=("sim:3",), phases=("sentinel",), params={"sentinel": params},
                              initial_equity=Decimal("100000"), sim_hours=6, sim_symbols=("BTCUSDT",)))


def test_the_carry_split_adds_up_to_the_equity_change_with_legs_still_open() -> None:
    """The summary's basis + funding - fees equals the equity change, open legs valued at the engine's
    marks at the end (a position record's mark is that of its last fill: one leg hours staler)."""
    result = sentinel_backtest({**PERMISSIVE, "maxHoldingHours": "8760"})
    held = sum(Decimal(f.quantity) * (1 if f.side == BUY else -1) for f in result.fills if f.instrument == SPOT)
    assert held > 0, "nothing held at the end"
    carry = result.summary()["carry"]["sentinel"]["BTCUSDT"]
    split = Decimal(carry["basis_pnl"]) + Decimal(carry["funding_pnl"]) - Decimal(carry["fees"])
    assert abs(split - (result.final_equity - Decimal("100000"))) < Decimal("0.000001"), (carry, result.final_equity)
