"""The split of Sentinel PnL into basis PnL, funding PnL and fees (one function for the backtest
result and the report)."""

from __future__ import annotations

from decimal import Decimal

from titan.phases.sentinel.pnl import carry_breakdown, totals
from titan.v1 import common_pb2, trading_pb2

SPOT, PERP = common_pb2.INSTRUMENT_KIND_SPOT, common_pb2.INSTRUMENT_KIND_PERP
BUY, SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL


def fill(inst: int, side: int, qty: str, price: str, fee: str, phase: str = "sentinel") -> trading_pb2.Fill:
    return trading_pb2.Fill(phase_id=phase, symbol="BTCUSDT", instrument=inst, side=side, quantity=qty,  # type: ignore[arg-type]
                            price=price, fee=fee)


def test_a_closed_carry_trade_splits_into_basis_funding_and_fees() -> None:
    fills = [
        fill(SPOT, BUY, "1", "100", "0.10"), fill(PERP, SELL, "1", "100.50", "0.05"),   # entry basis 50 bps
        fill(SPOT, SELL, "1", "110", "0.11"), fill(PERP, BUY, "1", "110.10", "0.06"),   # exit basis ~9 bps
        fill(SPOT, BUY, "5", "1", "0", phase="hunter"),                                  # not ours
    ]
    funding = [trading_pb2.FundingPayment(phase_id="sentinel", symbol="BTCUSDT", amount="0.011"),
               trading_pb2.FundingPayment(phase_id="sentinel", symbol="BTCUSDT", amount="-0.001")]
    row = carry_breakdown(fills, funding)["BTCUSDT"]
    # spot +10, perp -9.60: what the basis did (0.50 -> 0.10 per unit)
    assert row.basis_pnl == Decimal("0.40")
    assert row.funding_pnl == Decimal("0.010")
    assert row.fees == Decimal("0.32")
    assert row.net == Decimal("0.090")
    assert row.residual_delta == 0 and row.fills == 4 and row.settlements == 2
    assert totals([row])["net"] == row.net


def test_an_open_position_counts_at_the_marks() -> None:
    fills = [fill(SPOT, BUY, "2", "100", "0"), fill(PERP, SELL, "2", "101", "0")]
    marks = {("BTCUSDT", SPOT): Decimal("90"), ("BTCUSDT", PERP): Decimal("90.5")}
    row = carry_breakdown(fills, [], marks)["BTCUSDT"]
    assert row.basis_pnl == Decimal("1.0")   # basis 1.00 -> 0.50 on 2 units; the price fall cancels
    assert row.spot_quantity == 2 and row.perp_quantity == -2
