"""Position accounting: averaging, partial closes, flips, fees, funding, daily roll, equity."""

from __future__ import annotations

from decimal import Decimal

from titan.execution.portfolio import NS_PER_DAY, Portfolio, Position

KEY = ("hunter", "bybit", "BTCUSDT", 2)


def test_average_partial_close_and_flip():
    p = Position(KEY)
    assert p.apply_fill(True, Decimal("1"), Decimal("100"), Decimal("0.1"), 1) == 0
    assert p.apply_fill(True, Decimal("1"), Decimal("110"), Decimal("0.1"), 2) == 0
    assert p.average_entry == Decimal("105")
    assert p.apply_fill(False, Decimal("0.5"), Decimal("120"), Decimal("0.1"), 3) == Decimal("7.5")   # (120-105)*0.5
    assert (p.quantity, p.average_entry) == (Decimal("1.5"), Decimal("105"))
    # sell 2.5: closes 1.5 (realizes (90-105)*1.5 = -22.5), opens a 1.0 short at 90
    assert p.apply_fill(False, Decimal("2.5"), Decimal("90"), Decimal("0.2"), 4) == Decimal("-22.5")
    assert (p.quantity, p.average_entry) == (Decimal("-1.0"), Decimal("90"))
    assert p.realized == Decimal("-15")
    assert p.fees == Decimal("0.5")
    p.mark = Decimal("80")
    assert p.unrealized() == Decimal("10")      # short 1 from 90 to 80
    p.apply_funding(Decimal("-2"), 5)
    assert p.net_pnl() == Decimal("-15") + Decimal("10") - Decimal("0.5") - Decimal("2")
    assert p.apply_fill(True, Decimal("1"), Decimal("85"), Decimal("0"), 6) == Decimal("5")
    assert (p.quantity, p.average_entry) == (0, 0)


def test_daily_pnl_rolls_at_utc_midnight_and_equity_snapshots():
    pf = Portfolio(Decimal("10000"))
    pos = pf.position(KEY)
    pf.roll_day(NS_PER_DAY * 100 + 5)
    pos.apply_fill(True, Decimal("1"), Decimal("100"), Decimal("1"), 1)
    pos.mark = Decimal("90")
    assert pf.daily_pnl("hunter") == Decimal("-11")
    assert not pf.roll_day(NS_PER_DAY * 100 + 999)
    assert pf.roll_day(NS_PER_DAY * 101)
    assert pf.daily_pnl("hunter") == 0
    snaps = {e.scope: e for e in pf.equity_snapshots(7)}
    assert snaps["hunter"].equity == "-11"
    assert snaps["total"].equity == "9989"
    assert snaps["total"].exposure == "90"
    assert snaps["hunter"].fees == "1"


def test_position_proto_round_trip():
    p = Position(KEY)
    p.apply_fill(False, Decimal("2"), Decimal("3000"), Decimal("3.3"), 9)
    p.leverage = Decimal("3")
    p.mark = Decimal("2900")
    back = Position.from_proto(p.to_proto(Decimal("0.005")))
    assert back.to_proto(Decimal("0.005")) == p.to_proto(Decimal("0.005"))


def test_day_start_survives_a_restart():
    pf = Portfolio()
    pos = pf.position(KEY)
    pos.apply_fill(True, Decimal("1"), Decimal("100"), Decimal("0"), 1)
    pos.mark = Decimal("80")                                   # net -20 now
    pf.set_day_start("hunter", Decimal("-5"), NS_PER_DAY * 7 + 10)  # it was -5 at midnight
    assert pf.daily_pnl("hunter") == Decimal("-15")
