"""Real data: with the XRP/USDT perp's published mark prices and 8-hourly funding rates, the funding
the paper venue settles on a Sentinel short equals rate x position notional at the published mark,
at every settlement, and the Sentinel's PnL split reports exactly that funding."""

from __future__ import annotations

import heapq
from decimal import Decimal
from pathlib import Path

import pytest

from tests.execution.helpers import PERP, SELL, budget, leg, signal, trade, trading_state
from titan.core.clock import ManualClock
from titan.core.marketdata.events import ts_of
from titan.core.marketdata.files import read_file
from titan.core.signing import sign_signal
from titan.execution.engine import Engine
from titan.phases.sentinel.funding import FundingState
from titan.phases.sentinel.pnl import carry_breakdown
from titan.v1 import common_pb2, trading_pb2

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
FUNDING = DATA / "xrp-usdt-perp-8h-funding_rate.csv"
MARK = DATA / "xrp-usdt-perp-8h-mark.csv"
KEY = b"sentinel-test-key-0123456789abcd"
pytestmark = pytest.mark.skipif(not FUNDING.exists() or not MARK.exists(), reason="shared XRP files not present")


def test_paper_funding_equals_published_rate_times_notional_at_each_settlement() -> None:
    events = list(heapq.merge(read_file(MARK), read_file(FUNDING), key=ts_of))
    first_mark = next(e for e in events if e.WhichOneof("payload") == "mark")
    clock = ManualClock(ts_of(first_mark))
    engine = Engine(clock, {"sentinel": KEY})
    engine.set_trading_state(trading_state(common_pb2.TRADING_MODE_ACTIVE, 1))
    engine.update_budget(budget("sentinel", symbols=["XRPUSDT"], expires_at_ns=clock.now_ns() + 10**18))
    price = first_mark.mark.mark_price
    engine.on_market(first_mark)
    engine.on_market(trade(price, "1000000", symbol="XRPUSDT", venue="replay", instrument=PERP))
    short = signal(clock, leg("XRPUSDT", SELL, "1000", venue="replay"), phase="sentinel", key=None, leverage="1")
    sign_signal(short, KEY)
    d = engine.on_signal(short)
    assert d.ack.accepted, d.ack.detail
    quantity = engine.portfolio.quantity(("sentinel", "replay", "XRPUSDT", PERP))
    assert quantity < 0

    entry_ns = clock.now_ns()
    last_mark: Decimal | None = Decimal(price)
    payments: list[trading_pb2.FundingPayment] = []
    fills = [u for u in d.updates if isinstance(u, trading_pb2.Fill)]
    seen = FundingState()
    for ev in events:
        if ts_of(ev) <= entry_ns:
            continue  # before the position existed (the first settlement precedes the first mark)
        clock.set(ts_of(ev))
        out = engine.on_market(ev)
        kind = ev.WhichOneof("payload")
        if kind == "mark":
            last_mark = Decimal(ev.mark.mark_price)
        elif kind == "funding" and ev.funding.settled:
            seen.on_funding(Decimal(ev.funding.rate), ev.funding.funding_time_ns, ev.funding.next_funding_time_ns, True)
            paid = [u for u in out if isinstance(u, trading_pb2.FundingPayment)]
            assert len(paid) == 1, f"one payment at {ev.funding.funding_time_ns}"
            assert last_mark is not None
            expected = -quantity * last_mark * Decimal(ev.funding.rate)   # a short receives a positive rate
            assert Decimal(paid[0].amount) == expected
            assert Decimal(paid[0].mark_price) == last_mark and paid[0].funding_time_ns == ev.funding.funding_time_ns
            payments.extend(paid)
    assert len(payments) == 90   # every settlement after the entry (the first row is before the first mark)
    assert seen.interval_ns == 8 * 3600 * 10**9   # the venue's interval, read from the events
    total = sum((Decimal(p.amount) for p in payments), Decimal(0))
    split = carry_breakdown(fills, payments)["XRPUSDT"]
    assert split.funding_pnl == total and split.settlements == 90
    position = engine.portfolio.position(("sentinel", "replay", "XRPUSDT", PERP))
    assert position.funding == total
