"""The Hunter's strategy: signals on the real month (permissive timeframes, see below), exits from
the managed position, and position management rules (reference §2.10, §2.12)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from titan.core.clock import ManualClock
from titan.phases.hunter.__main__ import make_strategy
from titan.phases.hunter.positions import ExitKind, Managed, ManagePolicy
from titan.phases.hunter.scoring import Direction
from titan.phases.hunter.sessions import session_of
from titan.phases.hunter.strategy import HunterStrategy, candle_of
from titan.v1 import common_pb2, trading_pb2

from .data import MONTH, T0, bar, month_1m

POLICY = ManagePolicy(Decimal("1.5"), Decimal("2"), Decimal("0.5"), 1.0, 48 * 3600 * 10**9, 0.5)
# The month has no history before it: a 1D/4h hologram needs weeks of warm-up, so the strategy
# test reads bias from 4h and location from 1h (same rules, shorter timeframes).
MONTH_PARAMS = {"venue": "binance", "cvdSource": "candles", "biasTimeframe": "4h", "locationTimeframe": "1h"}


def budget(equity: str = "10000", leverage: str = "3") -> trading_pb2.Budget:
    notional = Decimal(equity) * Decimal(leverage)
    return trading_pb2.Budget(phase_id="hunter", state=common_pb2.PHASE_STATE_ACTIVE, weight="1",
                              max_notional=str(notional), max_leverage=leverage,
                              max_order_notional=str(notional / 4), symbols=["BTCUSDT"])


def test_breakeven_partial_trail_and_stop() -> None:
    m = Managed("BTCUSDT", Direction.LONG, Decimal(100), Decimal(98), Decimal(110), Decimal(2), T0, "sig",
                quantity=Decimal(1))
    assert m.on_bar(bar(0, 100, 102.9, 99.5, 102.9), 0.0, POLICY) == []   # 1.45 R: nothing yet
    assert m.stop == 98
    assert m.on_bar(bar(1, 102.9, 103.2, 102, 103.1), 0.0, POLICY) == []   # 1.55 R: stop to entry
    assert m.breakeven and m.stop == 100
    exits = m.on_bar(bar(2, 103.1, 104.2, 103, 104.1), 0.0, POLICY)        # 2.05 R: half off
    assert [(e.kind, e.fraction) for e in exits] == [(ExitKind.PARTIAL, Decimal("0.5"))]
    assert m.on_bar(bar(3, 104.1, 104.5, 103.9, 104.4), 1.0, POLICY) == []  # trail 1 ATR behind
    assert m.stop == Decimal("103.4")
    m.on_bar(bar(4, 104.4, 104.4, 103.5, 103.6), 1.0, POLICY)              # ratchet: never lower
    assert m.stop == Decimal("103.4")
    exits = m.on_bar(bar(5, 103.6, 103.7, 103.3, 103.5), 1.0, POLICY)
    assert [e.kind for e in exits] == [ExitKind.STOP]


def test_short_target_and_tightening_after_48h() -> None:
    m = Managed("BTCUSDT", Direction.SHORT, Decimal(100), Decimal(102), Decimal(94), Decimal(2), T0, "sig",
                quantity=Decimal(-1))
    late = 49 * 4                                                           # 15m bars: 49 h later
    m.on_bar(bar(late, 100, 100.2, 99, 99.0), 1.0, POLICY)
    assert m.stop == Decimal("99.5")                                       # 0.5 ATR after 48 h
    assert [e.kind for e in m.on_bar(bar(late + 1, 99, 99.2, 93.9, 94), 1.0, POLICY)] == [ExitKind.TARGET]


def _run(strat: HunterStrategy, clock: ManualClock, bars: tuple, stop_at_signal: bool) -> list[tuple[int, object]]:
    got = []
    for k, b in enumerate(bars):
        clock.set(b.close_ns)
        out = strat.on_event(candle_of("BTCUSDT", "binance", b, "1m"))
        got += [(k, sig) for sig in out.signals]
        if stop_at_signal and out.signals:
            break
    return got


@pytest.mark.skipif(not MONTH.exists(), reason=f"{MONTH} not present")
def test_signal_on_the_month_then_exit_from_the_held_position() -> None:
    bars = month_1m()
    clock = ManualClock(bars[0].open_ns)
    strat = make_strategy(MONTH_PARAMS, "hunter", clock)
    strat.set_budget(budget())
    first = _run(strat, clock, bars, stop_at_signal=True)
    assert first, strat.diagnostics()
    k, sig = first[0]
    assert isinstance(sig, trading_pb2.Signal)
    decided = bars[k].close_ns
    entry, stop, target = (Decimal(sig.metadata["entry_reference"]), Decimal(sig.stop_price),
                           Decimal(sig.target_prices[0]))
    long = sig.legs[0].side == common_pb2.SIDE_BUY
    assert sig.intent == trading_pb2.INTENT_OPEN and 0 < sig.confidence <= 1
    assert (stop < entry < target) if long else (target < entry < stop)
    assert session_of(decided).value in ("LONDON", "NY")
    assert Decimal(sig.legs[0].size_quote) <= Decimal("7500")            # max_order_notional
    risk = abs(entry - stop) * Decimal(sig.legs[0].size_quote) / entry
    assert risk <= Decimal("150.01")                                       # 1.5 % of 10 000
    # The same decision from the candles up to it only: nothing later was used.
    clock2 = ManualClock(bars[0].open_ns)
    again = make_strategy(MONTH_PARAMS, "hunter", clock2)
    again.set_budget(budget())
    replay = _run(again, clock2, bars[: k + 1], stop_at_signal=False)
    assert [(j, s.SerializeToString(deterministic=True)) for j, s in replay] == [
        (k, sig.SerializeToString(deterministic=True))]
    # Filled: the strategy now manages the position and exits with a CLOSE (stop or target).
    qty = (Decimal(sig.legs[0].size_quote) / entry).quantize(Decimal("0.001"))
    strat.on_ack(trading_pb2.SignalAck(phase_id="hunter", signal_id=sig.signal_id, accepted=True))
    strat.on_position(trading_pb2.Position(phase_id="hunter", venue="binance", symbol="BTCUSDT",
                                           quantity=str(qty if long else -qty), average_entry_price=str(entry),
                                           version=1))
    later = _run(strat, clock, bars[k + 1:], stop_at_signal=False)
    exits = [s for _, s in later if s.intent != trading_pb2.INTENT_OPEN]
    assert exits and exits[-1].intent == trading_pb2.INTENT_CLOSE
    assert exits[-1].legs[0].side != sig.legs[0].side and exits[-1].metadata["entry_signal_id"] == sig.signal_id
    assert not [s for _, s in later if s.intent == trading_pb2.INTENT_OPEN]  # held: no new entry
    strat.on_position(trading_pb2.Position(phase_id="hunter", venue="binance", symbol="BTCUSDT", quantity="0",
                                           version=2))
    assert strat.symbols["BTCUSDT"].managed is None


def test_rejected_entry_frees_the_symbol_and_budgetless_sizes_nothing() -> None:
    clock = ManualClock(0)
    strat = make_strategy({}, "hunter", clock)
    assert strat._size(Decimal(100), Decimal(98)) == 0                     # no budget: no size
    strat.set_budget(budget())
    assert strat._size(Decimal(100), Decimal(98)) == Decimal("7500.00")     # 150 / 2 % = 7 500, = order cap
    strat.symbols["BTCUSDT"].managed = Managed("BTCUSDT", Direction.LONG, Decimal(100), Decimal(98), Decimal(106),
                                               Decimal(2), 0, "s1")
    strat._sent["s1"] = "BTCUSDT"
    strat.on_ack(trading_pb2.SignalAck(phase_id="hunter", signal_id="s1", accepted=False))
    assert strat.symbols["BTCUSDT"].managed is None
