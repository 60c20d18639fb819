"""`titan report` splits the Sentinel's PnL from the ledger with the same function as the backtest:
a hedged unit opened, funding settled on its perp, closed — recorded in PostgreSQL — gives basis,
funding and fees that add up to the phase's PnL."""

from __future__ import annotations

import itertools
from decimal import Decimal

from tests.execution.helpers import BUY, MODE, PERP, SELL, SPOT, T0, budget, leg, top, trading_state
from titan.cli.report import load_carry
from titan.core.clock import ManualClock
from titan.core.ledger import Ledger
from titan.core.signing import sign_signal
from titan.execution.engine import Engine
from titan.phases.sentinel.pnl import carry_breakdown, totals
from titan.v1 import events_pb2, market_pb2, trading_pb2

KEY = b"sentinel-test-key-0123456789abcd"
_ids = itertools.count()


def event(update: object) -> events_pb2.Event | None:
    for name, kind in (("order", trading_pb2.Order), ("fill", trading_pb2.Fill), ("position", trading_pb2.Position),
                       ("funding", trading_pb2.FundingPayment)):
        if isinstance(update, kind):
            ev = events_pb2.Event(event_id=f"sentinel-report-{next(_ids)}", source="execution", ts_ns=T0)
            getattr(ev, name).CopyFrom(update)
            return ev
    return None


def unit(clock: ManualClock, sid: str, intent: int) -> trading_pb2.Signal:
    opening = intent == trading_pb2.INTENT_OPEN
    size = "5000" if opening else ""
    sig = trading_pb2.Signal(
        phase_id="sentinel", signal_id=sid, intent=intent, confidence=0.8, created_at_ns=clock.now_ns(),  # type: ignore[arg-type]
        leverage="2", max_slippage_bps=20,
        legs=[leg(side=BUY if opening else SELL, size=size, instrument=SPOT),
              leg(side=SELL if opening else BUY, size=size, instrument=PERP)],
    )
    sig.metadata["hedge"] = "complete"
    return sign_signal(sig, KEY)


async def test_report_splits_sentinel_pnl_like_the_backtest(ledger: Ledger) -> None:
    clock = ManualClock(T0)
    engine = Engine(clock, {"sentinel": KEY})
    engine.set_trading_state(trading_state(MODE.TRADING_MODE_ACTIVE, 1))
    engine.update_budget(budget("sentinel"))
    updates: list[object] = []
    updates += engine.on_market(top("49990", "10", "50000", "10", instrument=SPOT))
    updates += engine.on_market(top("50100", "10", "50110", "10", instrument=PERP))
    updates += engine.on_signal(unit(clock, "carry-open", trading_pb2.INTENT_OPEN)).updates
    clock.advance(3_600 * 10**9)
    funding = market_pb2.MarketEvent(venue="bybit", symbol="BTCUSDT", instrument=PERP,
                                     funding=market_pb2.Funding(rate="0.0003", funding_time_ns=clock.now_ns(),
                                                                settled=True))
    updates += engine.on_market(funding)
    updates += engine.on_market(top("50490", "10", "50500", "10", instrument=SPOT))
    updates += engine.on_market(top("50520", "10", "50530", "10", instrument=PERP))
    updates += engine.on_signal(unit(clock, "carry-close", trading_pb2.INTENT_CLOSE)).updates
    for ev in filter(None, map(event, updates)):
        await ledger.record(ev)

    rows = await load_carry(ledger, "sentinel")
    fills = [u for u in updates if isinstance(u, trading_pb2.Fill)]
    paid = [u for u in updates if isinstance(u, trading_pb2.FundingPayment)]
    assert rows == carry_breakdown(fills, paid)
    row = rows["BTCUSDT"]
    assert row.settlements == 1 and row.funding_pnl > 0 and row.fees > 0 and row.residual_delta == 0
    positions = engine.positions("sentinel")
    realized = sum((Decimal(p.realized_pnl) for p in positions), Decimal(0))
    assert row.basis_pnl == realized   # flat at the end: the legs' price PnL is all realized
    total = totals(rows.values())
    phase_pnl = sum((Decimal(p.realized_pnl) + Decimal(p.funding) - Decimal(p.fees) for p in positions), Decimal(0))
    assert total["net"] == phase_pnl
