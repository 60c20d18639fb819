"""Replaying the real Binance BTCUSDT tape with a tripwire inside its range: burst → confirmation →
a Signal with the documented fields; the same replay twice gives identical signals."""

from __future__ import annotations

from decimal import Decimal

from titan.core.clock import ManualClock
from titan.core.money import to_decimal
from titan.core.signing import sign_signal, verify_signal
from titan.phases.runtime.contract import StrategyOutput
from titan.phases.scavenger import strategy
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.strategy import ScavengerStrategy
from titan.phases.scavenger.tripwires import Direction, TrapType
from titan.v1 import common_pb2, trading_pb2

from .helpers import H_NS, budget, candle_events, range_bars, tape

KEY = b"scavenger-test-key-0123456789"


def replay() -> tuple[StrategyOutput, ScavengerStrategy]:
    trades = tape()
    first = trades[0].exchange_ts_ns
    hour = first - first % H_NS
    # 50 closed hourly perp candles before the tape whose range high is 39,500: inside the tape's
    # 39,430.30–39,550.00, so the breakout tripwire sits where the tape trades.
    candles = candle_events(range_bars(hour, "39500", "38500"), venue="sim")
    clock = ManualClock(candles[0].exchange_ts_ns)
    strat = ScavengerStrategy(ScavengerParams(symbols=["BTCUSDT"], venue="sim"), clock=clock)
    strat.set_budget(budget("1000", order_cap="500", leverage="10"))
    out = StrategyOutput()
    for ev in [*candles, *trades]:
        clock.set(max(clock.now_ns(), ev.exchange_ts_ns))
        out.extend(strat.on_event(ev))
    clock.set(clock.now_ns() + 500 * 10**6)
    out.extend(strat.on_time())
    return out, strat


def test_tape_replay_springs_confirms_and_signals() -> None:
    out, strat = replay()
    traps = {t.trap_type: t for t in strat.tripwires("BTCUSDT")}
    assert traps[TrapType.BREAKOUT].trigger == Decimal(39500)
    trades = tape()
    lo = min(to_decimal(t.trade.price) for t in trades)
    hi = max(to_decimal(t.trade.price) for t in trades)
    assert lo < traps[TrapType.BREAKOUT].trigger < hi

    kinds = [e.kind for e in out.events if e.kind != strategy.TRAP_MAP_UPDATED]
    assert kinds[:3] == [strategy.TRAP_SPRUNG, strategy.TRAP_CONFIRMED, strategy.TRAP_FIRED]
    sprung = next(e for e in out.events if e.kind == strategy.TRAP_SPRUNG)
    assert int(sprung.get("trades")) >= 50 and to_decimal(sprung.get("micro_cvd")) > 0
    assert sprung.get("trap") == "BTCUSDT:BREAKOUT:LONG"

    assert len(out.signals) == 1
    sig = out.signals[0]
    confirmed = next(e for e in out.events if e.kind == strategy.TRAP_CONFIRMED)
    # The confirmation runs at the first event at or after sprung + 200 ms (the replay has no timer).
    assert sig.created_at_ns == confirmed.ts_ns
    assert sprung.ts_ns + 200 * 10**6 <= confirmed.ts_ns < sprung.ts_ns + 1200 * 10**6
    # The documented fields: phase, trap type, confidence, size, order type, limit, stop, target,
    # max slippage, ttl.
    assert sig.phase_id == "scavenger" and sig.signal_id.startswith("scavenger-BTCUSDT-")
    assert sig.setup == "trap.breakout" and sig.metadata["trap_type"] == "BREAKOUT"
    assert 0 < sig.confidence <= 1
    assert sig.intent == trading_pb2.INTENT_OPEN and len(sig.legs) == 1
    leg = sig.legs[0]
    assert leg.side == common_pb2.SIDE_BUY and leg.instrument == common_pb2.INSTRUMENT_KIND_PERP
    assert to_decimal(leg.size_quote) == Decimal(500)  # Kelly × leverage, capped by the budget's order cap
    assert leg.order_type in (trading_pb2.ORDER_TYPE_LIMIT, trading_pb2.ORDER_TYPE_MARKET)
    if leg.order_type == trading_pb2.ORDER_TYPE_LIMIT:
        assert to_decimal(leg.limit_price) > 0
    entry = to_decimal(leg.limit_price or sig.metadata["reference_price"])
    assert to_decimal(sig.stop_price) < entry < to_decimal(sig.target_prices[0])
    assert sig.max_slippage_bps in (30, 50) and sig.ttl_ms == 5000 and to_decimal(sig.leverage) == 5
    assert traps[TrapType.BREAKOUT].direction is Direction.LONG
    signed = sign_signal(sig, KEY)
    assert verify_signal(signed, KEY)


def test_the_same_replay_twice_gives_identical_signals() -> None:
    a, _ = replay()
    b, _ = replay()
    assert [s.SerializeToString(deterministic=True) for s in a.signals] == [
        s.SerializeToString(deterministic=True) for s in b.signals
    ]
    assert a.events == b.events
    assert a.signals
