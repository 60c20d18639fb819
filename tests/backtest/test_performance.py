"""Trades and figures from the ledger (docs/backtest.md's definitions)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from titan.backtest.performance import closed_trades, compute_metrics
from titan.backtest.record import EquityPoint
from titan.v1 import common_pb2, trading_pb2

BUY, SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL
H = 3_600 * 10**9
D0 = 1_700_006_400 * 10**9  # a UTC midnight


def fill(ts: int, side: int, qty: str, price: str, fee: str = "0", realized: str = "0") -> trading_pb2.Fill:
    return trading_pb2.Fill(venue="paper", fill_id=f"f{ts}", client_order_id=f"c{ts}", phase_id="p", symbol="BTCUSDT",
                            instrument=common_pb2.INSTRUMENT_KIND_PERP, side=side, quantity=qty, price=price, fee=fee,
                            realized_pnl=realized, ts_ns=ts)


def test_a_round_trip_with_an_add_and_funding() -> None:
    fills = [fill(1, BUY, "1", "100", "0.1"), fill(2, BUY, "1", "110", "0.1"),
             fill(5, SELL, "2", "120", "0.2", realized="30")]
    funding = [trading_pb2.FundingPayment(venue="paper", symbol="BTCUSDT", phase_id="p", amount="-0.5",
                                          funding_time_ns=3)]
    (trade,) = closed_trades(fills, funding)
    assert (trade.side, trade.opened_ns, trade.closed_ns, trade.quantity) == ("long", 1, 5, Decimal(2))
    assert (trade.entry_price, trade.exit_price) == (Decimal(105), Decimal(120))
    assert trade.fees == Decimal("0.4") and trade.funding == Decimal("-0.5")
    assert trade.pnl == Decimal(30) - Decimal("0.4") - Decimal("0.5")


def test_a_flip_closes_one_trade_and_opens_the_next() -> None:
    fills = [fill(1, SELL, "1", "100", "0.2"), fill(2, BUY, "3", "90", "0.6", realized="10"),
             fill(3, SELL, "2", "95", "0.4", realized="10")]
    first, second = closed_trades(fills)
    assert (first.side, first.closed_ns, first.quantity, first.exit_price) == ("short", 2, Decimal(1), Decimal(90))
    assert first.fees == Decimal("0.2") + Decimal("0.2")  # its own fee and a third of the flipping fill's
    assert (second.side, second.opened_ns, second.quantity, second.entry_price) == ("long", 2, Decimal(2), Decimal(90))
    assert second.pnl == Decimal(10) - Decimal("0.4") - Decimal("0.4")


def test_drawdown_return_and_win_rate_on_a_known_curve() -> None:
    values = [1000, 1100, 880, 990, 1210]
    curve = [EquityPoint(D0 + i * H, Decimal(v), Decimal(1 if i < 4 else 0)) for i, v in enumerate(values)]
    fills = [fill(1, BUY, "1", "1"), fill(2, SELL, "1", "1", realized="5"),
             fill(3, BUY, "1", "1"), fill(4, SELL, "1", "1", realized="-2")]
    m = compute_metrics(curve, closed_trades(fills), Decimal(1000))
    assert m.max_drawdown == pytest.approx(0.2)  # 1100 -> 880
    assert m.total_return == pytest.approx(0.21)
    assert m.win_rate == 0.5 and m.profit_factor == pytest.approx(2.5) and m.trades == 2
    assert m.exposure == 1.0
    assert m.pnl == Decimal(210)
    returns = [1100 / 1000 - 1, 880 / 1100 - 1, 990 / 880 - 1, 1210 / 990 - 1]
    mean = sum(returns) / 4
    sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / 3)
    assert m.sharpe == pytest.approx(mean / sd * math.sqrt(365 * 24))
    assert m.calmar == pytest.approx(m.cagr / 0.2)


def test_no_trades_and_a_flat_curve_give_no_ratios_rather_than_made_up_ones() -> None:
    curve = [EquityPoint(D0, Decimal(500), Decimal(0)), EquityPoint(D0 + H, Decimal(500), Decimal(0))]
    m = compute_metrics(curve, [], Decimal(500))
    assert m.total_return == 0 and m.max_drawdown == 0 and m.trades == 0
    assert math.isnan(m.sharpe) and math.isnan(m.win_rate) and math.isnan(m.calmar)
    assert m.as_dict()["sharpe"] is None
