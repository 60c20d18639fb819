"""The Scavenger strategy: detector, confirmation, executor vetoes, sizing, cooldowns, kill condition."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from titan.core.clock import ManualClock
from titan.core.marketdata.events import PERP, SPOT, funding_event, mark_event, open_interest_event
from titan.phases.runtime.contract import StrategyOutput
from titan.phases.scavenger import strategy
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.strategy import ScavengerStrategy
from titan.phases.scavenger.tripwires import Direction, TrapType, Tripwire
from titan.v1 import common_pb2, market_pb2, trading_pb2

from .helpers import H_NS, budget, candle_events, range_bars, trade

MS = 10**6
S = 10**9
T0 = 1_700_000_000 * S
SYM = "BTCUSDT"


def long_trap(trigger: str = "100", **kw: object) -> Tripwire:
    base: dict[str, object] = dict(symbol=SYM, trap_type=TrapType.BREAKOUT, direction=Direction.LONG,
                                   trigger=Decimal(trigger), confidence=0.8, leverage=Decimal(5),
                                   cascade=Decimal("0.02"), atr=1.0, vol_regime="LOW_VOL")
    base.update(kw)
    return Tripwire(**base)  # type: ignore[arg-type]


def short_trap(trigger: str = "100", **kw: object) -> Tripwire:
    return long_trap(trigger, trap_type=TrapType.BREAKDOWN, direction=Direction.SHORT, **kw)


class Rig:
    def __init__(self, traps: list[Tripwire] | None = None, params: ScavengerParams | None = None,
                 with_budget: bool = True) -> None:
        self.clock = ManualClock(T0)
        self.s = ScavengerStrategy(params or ScavengerParams(symbols=[SYM, "ETHUSDT"]), clock=self.clock)
        if with_budget:
            self.s.set_budget(budget("1000"))
        self.s.on_time()
        if traps is not None:
            self.s.place_tripwires(SYM, traps)
        self.out = StrategyOutput()

    def feed(self, ev: market_pb2.MarketEvent) -> StrategyOutput:
        ts = ev.exchange_ts_ns
        if ts > self.clock.now_ns():
            self.clock.set(ts)
        return self.out.extend(self.s.on_event(ev))

    def at(self, ts: int) -> StrategyOutput:
        self.clock.set(max(ts, self.clock.now_ns()))
        return self.out.extend(self.s.on_time())

    def burst(self, price: str, n: int = 50, buys: int | None = None, start: int | None = None,
              symbol: str = SYM, size: str = "0.1") -> int:
        """``n`` trades 1 ms apart at ``price`` (the first ``buys`` taker buys); returns the window end."""
        start = self.clock.now_ns() + MS if start is None else start
        buys = n if buys is None else buys
        for i in range(n):
            self.feed(trade(price, size, buy=i < buys, ts_ns=start + i * MS, symbol=symbol))
        return start + 100 * MS

    def kinds(self) -> list[str]:
        return [e.kind for e in self.out.events if e.kind != strategy.TRAP_MAP_UPDATED]

    def aborts(self) -> list[str]:
        return [e.get("reason") for e in self.out.events if e.kind == strategy.TRAP_ABORTED]


def fire_long(rig: Rig, price: str = "100.02", confirm_price: str = "100.02") -> StrategyOutput:
    end = rig.burst(price)
    rig.at(end)                     # window closes → sprung
    rig.feed(trade(confirm_price, ts_ns=end + 150 * MS))
    return rig.at(end + 200 * MS)   # confirmation due


# --- detector -------------------------------------------------------------------------------------
def test_baseline_burst_confirmation_and_signal() -> None:
    rig = Rig([long_trap("100")])
    out = fire_long(rig)
    assert rig.kinds() == [strategy.TRAP_SPRUNG, strategy.TRAP_CONFIRMED, strategy.TRAP_FIRED]
    sprung = next(e for e in out.events if e.kind == strategy.TRAP_SPRUNG)
    assert sprung.get("trades") == "50" and sprung.get("micro_cvd") == "5"
    assert len(out.signals) == 1
    sig = out.signals[0]
    assert sig.phase_id == "scavenger" and sig.intent == trading_pb2.INTENT_OPEN and sig.setup == "trap.breakout"
    leg = sig.legs[0]
    assert (leg.symbol, leg.side, leg.instrument, leg.venue) == (SYM, common_pb2.SIDE_BUY, PERP, "sim")
    assert leg.order_type == trading_pb2.ORDER_TYPE_LIMIT
    # velocity 0 → passive limit at price × 1.0001, on the tape's 2-dp tick
    assert leg.limit_price == "100.03"
    assert sig.stop_price == "99.02" and list(sig.target_prices) == ["103.02"]  # ∓1% / ±3% of 100.02
    assert sig.confidence == pytest.approx(0.8) and sig.leverage == "5"
    assert sig.ttl_ms == 5000 and sig.max_slippage_bps == 50 and sig.created_at_ns == rig.clock.now_ns()
    assert sig.metadata["trap_type"] == "BREAKOUT" and sig.metadata["burst_trades"] == "50"
    # Kelly: W 0.8, R = (103.02 - 100.03)/(100.03 - 99.02) = 2.99/1.01
    # → margin 1000·¼·(0.8 - 0.2·1.01/2.99) = 183.11; × leverage 5 = 915.55 (below the equity cap)
    assert sig.metadata["margin"] == "183.11" and leg.size_quote == "915.55"
    assert not sig.signature  # signing is the runtime's job


def test_exactly_fifty_trades_spring_and_forty_nine_do_not() -> None:
    rig = Rig([long_trap("100")])
    end = rig.burst("100.02", n=49)
    rig.at(end)
    assert strategy.TRAP_SPRUNG not in rig.kinds()
    end = rig.burst("100.02", n=50, start=end + 10 * MS)
    rig.at(end)
    assert rig.kinds() == [strategy.TRAP_SPRUNG]


def test_prices_beyond_a_tenth_of_a_percent_are_ignored() -> None:
    rig = Rig([long_trap("100")])
    end = rig.burst("100.11", n=80)  # 0.11% away
    rig.at(end + 300 * MS)
    assert rig.kinds() == []
    end = rig.burst("100.1", n=50, start=end + 300 * MS)  # exactly 0.1% counts
    rig.at(end)
    assert rig.kinds() == [strategy.TRAP_SPRUNG]


def test_symbols_without_traps_and_symbols_are_independent() -> None:
    rig = Rig([long_trap("100")])
    end = rig.burst("100.02", n=30)
    rig.burst("100.02", n=40, start=rig.clock.now_ns(), symbol="ETHUSDT")  # ETH has no traps
    rig.at(end)
    assert rig.kinds() == []  # 30 BTC trades do not borrow ETH's 40


def test_the_window_counter_resets_after_each_window() -> None:
    rig = Rig([long_trap("100")])
    end = rig.burst("100.02", n=30)
    end2 = rig.burst("100.02", n=30, start=end)  # 60 trades, but 30 per window
    rig.at(end2)
    assert rig.kinds() == []


def test_wick_reversion_aborts_long_and_short_confirms_symmetrically() -> None:
    rig = Rig([long_trap("100")])
    end = rig.burst("100.02")
    rig.at(end)
    rig.feed(trade("99.94", ts_ns=end + 150 * MS))  # below 100 × 0.9995 = 99.95
    rig.at(end + 200 * MS)
    assert rig.aborts() == ["WICK_REVERSION"]
    assert not rig.out.signals

    rig = Rig([short_trap("100")])
    end = rig.burst("99.98", buys=0)
    rig.at(end)
    rig.feed(trade("100.05", buy=False, ts_ns=end + 150 * MS))  # exactly 100 × 1.0005 holds
    rig.at(end + 200 * MS)
    assert rig.kinds()[:2] == [strategy.TRAP_SPRUNG, strategy.TRAP_CONFIRMED]

    rig = Rig([short_trap("100")])
    end = rig.burst("99.98", buys=0)
    rig.at(end)
    rig.at(end + 200 * MS)
    assert len(rig.out.signals) == 1 and rig.out.signals[0].legs[0].side == common_pb2.SIDE_SELL
    sig = rig.out.signals[0]
    assert float(sig.stop_price) > float(sig.legs[0].limit_price) > float(sig.target_prices[0])


def test_long_confirms_exactly_at_the_tolerance() -> None:
    rig = Rig([long_trap("100")])
    fire_long(rig, confirm_price="99.95")
    assert strategy.TRAP_CONFIRMED in rig.kinds()


# --- executor vetoes -------------------------------------------------------------------------------
def test_micro_cvd_must_agree_with_the_direction() -> None:
    rig = Rig([long_trap("100")])
    end = rig.burst("100.02", buys=20)  # 20 buys, 30 sells: micro CVD < 0 for a LONG
    rig.at(end)
    rig.at(end + 200 * MS)
    assert rig.aborts() == ["MICRO_CVD_MISMATCH"]


def test_burst_quality_below_point_three_vetoes() -> None:
    rig = Rig([long_trap("100")])
    end = rig.burst("100.02", buys=32)  # (32 - 18)/50 = 0.28
    rig.at(end)
    rig.at(end + 200 * MS)
    assert rig.aborts() == ["LOW_BURST_QUALITY"]
    rig = Rig([long_trap("100")])
    end = rig.burst("100.02", buys=33)  # 0.32 passes
    rig.at(end)
    rig.at(end + 200 * MS)
    assert len(rig.out.signals) == 1


def test_positive_acceleration_vetoes() -> None:
    rig = Rig([long_trap("100")])
    end = rig.burst("100.00")
    rig.at(end)
    for i, price in enumerate(["100.00", "100.01", "100.02", "100.09"]):  # speeding up
        rig.feed(trade(price, ts_ns=end + (10 + 30 * i) * MS))
    rig.at(end + 200 * MS)
    assert rig.aborts() == ["ACCELERATION"]


@pytest.mark.parametrize(("trend", "vetoed"), [("DOWN", True), ("UP", False)])
def test_adx_forty_against_the_trend_vetoes(trend: str, vetoed: bool) -> None:
    rig = Rig([long_trap("100", adx=40.0, trend=trend)])
    fire_long(rig)
    assert (rig.aborts() == ["ADX_TREND"]) is vetoed
    assert len(rig.out.signals) == (0 if vetoed else 1)


def test_no_budget_means_no_signal_and_no_ghost_mode_by_default() -> None:
    rig = Rig([long_trap("100")], with_budget=False)
    fire_long(rig)
    assert rig.aborts() == ["NO_BUDGET"] and not rig.out.signals
    assert "ghost_mode" not in ScavengerParams.model_fields


def test_trap_and_symbol_cooldowns() -> None:
    rig = Rig([long_trap("100"), long_trap("100.01", trap_type=TrapType.DAILY_LEVEL)])
    fire_long(rig)
    assert len(rig.out.signals) == 1
    fired = rig.out.signals[0].metadata["trap_id"]
    # Another burst at once: the fired trap is in its 5-min cooldown, the other one hits the 1 s
    # symbol cooldown.
    t = rig.clock.now_ns()
    end = rig.burst("100.02", start=t + MS)
    rig.at(end)
    rig.at(end + 200 * MS)
    assert rig.aborts() == ["SYMBOL_COOLDOWN"]
    sprung = [e for e in rig.out.events if e.kind == strategy.TRAP_SPRUNG]
    assert [e.get("trap") for e in sprung][-1] != fired
    # After the symbol cooldown the second trap can fire; the first stays disarmed for 5 minutes.
    end = rig.burst("100.02", start=rig.clock.now_ns() + 2 * S)
    rig.at(end)
    rig.at(end + 200 * MS)
    assert len(rig.out.signals) == 2 and rig.out.signals[1].metadata["trap_id"] != fired


def test_velocity_picks_market_orders_for_fast_moves() -> None:
    rig = Rig([long_trap("100")])
    end = rig.burst("100.02")
    rig.at(end)
    # decelerating but fast: +0.6% over ~0.15 s
    for i, price in enumerate(["100.3", "100.5", "100.6", "100.62"]):
        rig.feed(trade(price, ts_ns=end + (10 + 40 * i) * MS))
    rig.s.params = rig.s.params.model_copy(update={"proximity": Decimal("0.01")})
    rig.at(end + 200 * MS)
    sig = rig.out.signals[0]
    assert sig.legs[0].order_type == trading_pb2.ORDER_TYPE_MARKET and sig.legs[0].limit_price == ""
    assert sig.metadata["order_tier"] == "market"


def test_size_is_capped_by_the_budget_and_leverage_by_budget_and_params() -> None:
    rig = Rig([long_trap("100", leverage=Decimal(20), confidence=0.95)])
    rig.s.set_budget(budget("1000", order_cap="250", leverage="3"))
    fire_long(rig)
    sig = rig.out.signals[0]
    assert sig.legs[0].size_quote == "250" and sig.leverage == "3"


def test_high_volatility_multiplier_is_applied() -> None:
    p = ScavengerParams(symbols=[SYM], high_vol_size_multiplier=Decimal("0.5"))
    rig = Rig([long_trap("100", vol_regime="HIGH_VOL", leverage=Decimal(1))], params=p)
    fire_long(rig)
    sig = rig.out.signals[0]
    assert sig.metadata["margin"] == "183.11" and sig.legs[0].size_quote == "91.56"  # ½ × 183.11, cents up


def test_budget_for_another_phase_is_ignored() -> None:
    rig = Rig([long_trap("100")], with_budget=False)
    rig.s.set_budget(budget("1000", phase="hunter"))
    fire_long(rig)
    assert rig.aborts() == ["NO_BUDGET"]


# --- feedback: rejections and the kill condition ------------------------------------------------------
def test_three_rejections_blacklist_the_symbol() -> None:
    p = ScavengerParams(symbols=[SYM], trap_cooldown_ms=0, symbol_cooldown_ms=0)
    rig = Rig([long_trap("100")], params=p)
    for _ in range(3):
        fire_long(rig)
        sig = rig.out.signals[-1]
        rig.out.extend(rig.s.on_ack(trading_pb2.SignalAck(signal_id=sig.signal_id, accepted=False,
                                                          reason=trading_pb2.REJECT_REASON_PRICE_BAND)))
        rig.at(rig.clock.now_ns() + S)
    assert strategy.SYMBOL_BLACKLISTED in rig.kinds() and len(rig.out.signals) == 3
    n = len(rig.out.signals)
    fire_long(rig)
    assert len(rig.out.signals) == n  # no trades counted while blacklisted
    rig.at(rig.clock.now_ns() + 301 * S)
    rig.s.place_tripwires(SYM, [long_trap("100")])  # the generator (no candles here) cleared them
    fire_long(rig)
    assert len(rig.out.signals) == n + 1


def test_more_than_five_consecutive_losses_start_a_cooldown() -> None:
    p = ScavengerParams(symbols=[SYM], trap_cooldown_ms=0, symbol_cooldown_ms=0)
    rig = Rig([long_trap("100")], params=p)
    for _ in range(5):
        rig.out.extend(rig.s.on_trade_closed(SYM, Decimal("-1")))
    assert rig.s.state == strategy.STATE_ACTIVE and strategy.LOSS_COOLDOWN not in rig.kinds()
    rig.out.extend(rig.s.on_trade_closed(SYM, Decimal("-1")))
    assert rig.s.state == strategy.STATE_COOLDOWN and strategy.LOSS_COOLDOWN in rig.kinds()
    assert rig.s.diagnostics()["cooldown"] == 1.0
    fire_long(rig)
    assert rig.aborts()[-1] == "LOSS_COOLDOWN" and not rig.out.signals
    rig.at(rig.clock.now_ns() + 3601 * S)
    assert rig.s.state == strategy.STATE_ACTIVE and strategy.LOSS_COOLDOWN_OVER in rig.kinds()
    rig.s.place_tripwires(SYM, [long_trap("100")])
    fire_long(rig)
    assert len(rig.out.signals) == 1


def test_a_win_resets_the_losing_streak() -> None:
    rig = Rig([long_trap("100")])
    for pnl in ["-1", "-1", "-1", "-1", "-1", "2", "-1", "-1"]:
        rig.s.on_trade_closed(SYM, Decimal(pnl))
    assert rig.s.streak.losses == 2 and rig.s.state == strategy.STATE_ACTIVE


# --- generator wiring ----------------------------------------------------------------------------
def test_generator_builds_from_hourly_candles_and_rebuilds_every_interval() -> None:
    rig = Rig()
    bars = range_bars(T0 + H_NS, "120", "80")
    for ev in candle_events(bars, tf_ns=H_NS):
        rig.feed(ev)
    traps = {t.trap_type: t for t in rig.s.tripwires(SYM)}
    assert traps[TrapType.BREAKOUT].trigger == Decimal(120) and traps[TrapType.BREAKDOWN].trigger == Decimal(80)
    assert all(t.vol_regime in ("HIGH_VOL", "LOW_VOL") and t.trend for t in traps.values())
    n = rig.s.counters["rebuilds"]
    rig.at(rig.clock.now_ns() + 59 * S)
    assert rig.s.counters["rebuilds"] == n
    rig.at(rig.clock.now_ns() + 1 * S)
    assert rig.s.counters["rebuilds"] == n + 1


def test_structure_candles_are_built_from_perp_trades() -> None:
    p = ScavengerParams(symbols=[SYM], structure_timeframe="1m", structure_bars=30)
    rig = Rig(params=p)
    t = T0 - T0 % (60 * S)
    for m in range(32):
        price = "120" if m == 5 else ("80" if m == 9 else str(100 + (m % 3)))
        rig.feed(trade(price, ts_ns=t + m * 60 * S, venue="sim", instrument=PERP))
    traps = {t.trap_type: t for t in rig.s.tripwires(SYM)}
    assert traps[TrapType.BREAKOUT].trigger == 120 and traps[TrapType.BREAKDOWN].trigger == 80


def test_open_interest_events_are_recorded_and_feed_the_oi_wipeout() -> None:
    p = ScavengerParams(symbols=[SYM], structure_timeframe="1h")
    rig = Rig(params=p)
    t = T0 - T0 % (60 * S)
    rig.feed(open_interest_event("sim", SYM, open_interest="1000", ts_ns=t))
    # five 1-minute bars falling from 100 to 96 on the perp, plus takers buying in the last minute
    for m, price in enumerate(["100", "99", "98", "97", "96.5", "96"]):
        rig.feed(trade(price, ts_ns=t + m * 60 * S + S, venue="sim", instrument=PERP, buy=m >= 4))
    rig.feed(open_interest_event("sim", SYM, open_interest="700", ts_ns=t + 6 * 60 * S))
    rig.at(rig.clock.now_ns() + 61 * S)
    traps = {t.trap_type: t for t in rig.s.tripwires(SYM)}
    assert TrapType.OI_WIPEOUT in traps
    assert traps[TrapType.OI_WIPEOUT].direction is Direction.LONG and traps[TrapType.OI_WIPEOUT].trigger == 96


def test_funding_events_feed_the_funding_squeeze_state() -> None:
    rig = Rig()
    rig.feed(funding_event("sim", SYM, rate="-0.0003", funding_time_ns=T0, next_funding_time_ns=T0 + 8 * H_NS,
                           settled=False, ts_ns=T0 + S))
    assert rig.s.symbols[SYM].funding == Decimal("-0.0003")


def test_spot_and_perp_prices_feed_the_basis_detector() -> None:
    rig = Rig()
    rig.feed(trade("1000", ts_ns=T0 + S, venue="binance", instrument=SPOT))
    rig.feed(trade("994", ts_ns=T0 + 2 * S, venue="sim", instrument=PERP))
    st = rig.s.symbols[SYM]
    assert (st.spot, st.perp) == (Decimal(1000), Decimal(994))


def test_marks_are_the_perp_price_until_the_first_perp_trade() -> None:
    rig = Rig()
    st = rig.s.symbols[SYM]
    for i, price in enumerate(("994", "995.5")):
        rig.feed(mark_event("sim", SYM, mark_price=price, index_price="1000", ts_ns=T0 + i * S))
        assert st.perp == Decimal(price)  # every mark, not only the first
    rig.feed(mark_event("other", SYM, mark_price="1", index_price=None, ts_ns=T0 + 2 * S))
    assert st.perp == Decimal("995.5")  # another venue's mark is not this perp
    rig.feed(trade("996", ts_ns=T0 + 3 * S, venue="sim", instrument=PERP))
    rig.feed(mark_event("sim", SYM, mark_price="990", index_price="1000", ts_ns=T0 + 4 * S))
    assert st.perp == Decimal(996)  # once the perp trades, its trades are the price


# --- parameters ----------------------------------------------------------------------------------
def test_params_are_bounded_and_reload_keeps_market_history() -> None:
    with pytest.raises(ValidationError):
        ScavengerParams(min_trades_in_window=0)
    with pytest.raises(ValidationError):
        ScavengerParams(moderate_velocity_threshold=0.01, extreme_velocity_threshold=0.005)
    with pytest.raises(ValidationError):
        ScavengerParams.model_validate({"ghostMode": True})
    rig = Rig()
    for ev in candle_events(range_bars(T0 + H_NS, "120", "80")):
        rig.feed(ev)
    rig.s.set_params({"symbols": [SYM], "min_trades_in_window": 20})
    rig.at(rig.clock.now_ns() + 1)
    assert rig.s.params.min_trades_in_window == 20 and rig.s.symbols[SYM].burst.min_trades == 20
    assert rig.s.tripwires(SYM)  # rebuilt from the kept candles
    with pytest.raises(ValidationError):
        rig.s.set_params({"min_trades_in_window": -1})
    assert rig.s.params.min_trades_in_window == 20
