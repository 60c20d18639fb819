"""The Hunter's detectors on hand-made candles (reference §2.4–2.9), edge cases included."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from titan.phases.hunter import context, liquidity, structure, zones
from titan.phases.hunter.engine import StructureEngine
from titan.phases.hunter.flow import NotionalCVD
from titan.phases.hunter.params import HunterParams
from titan.phases.hunter.scoring import Grade, Status, alignment, grade_of, hologram
from titan.phases.hunter.sessions import HOUR_NS, Session, SessionTracker, session_of
from titan.phases.hunter.structure import Bias, Location, Side, Trend

from .data import MINUTE, T0, bar, hl

TF = 15 * MINUTE


def series(*highs_lows: tuple[float, float]) -> list:
    return [hl(i, h, lo) for i, (h, lo) in enumerate(highs_lows)]


# --- swings -------------------------------------------------------------------------------------
def test_five_bar_fractal_known_two_bars_after_its_extreme() -> None:
    bars = series((10, 9), (11, 10), (13, 11), (12, 10.5), (11, 8), (12, 9), (15, 12))
    found = structure.swings(bars)
    assert [(s.side, s.index, s.price) for s in found] == [(Side.HIGH, 2, Decimal(13)), (Side.LOW, 4, Decimal(8))]
    assert found[0].known_at_ns == bars[4].close_ns and found[1].known_at_ns == bars[6].close_ns
    engine = StructureEngine("15m")
    reported = [engine.on_bar(b) for b in bars]
    assert any(isinstance(e, structure.Swing) for e in reported[4]) and not any(
        isinstance(e, structure.Swing) for step in reported[:4] for e in step)


def test_fewer_than_five_candles_have_no_swing() -> None:
    bars = series((10, 9), (11, 10), (13, 11), (12, 10.5))
    assert structure.swings(bars) == []
    assert structure.dealing_range([]) is None
    engine = StructureEngine("15m")
    assert not [e for b in bars for e in engine.on_bar(b) if isinstance(e, structure.Swing | structure.StructureBreak)]


def test_equal_highs_are_not_a_strict_fractal_but_are_one_merged_pool() -> None:
    bars = series((10, 9), (11, 10), (13, 11), (13, 11.5), (11, 8), (10, 7), (12, 9.5), (13.05, 11), (11, 8),
                  (10, 7))
    strict = structure.swings(bars)
    assert not any(s.side is Side.HIGH and s.index in (2, 3) for s in strict)   # 13 = 13: no strict high
    loose = structure.swings(bars, structure.FractalSpec(strict=False))
    assert {s.index for s in loose if s.side is Side.HIGH} == {2, 3, 7}
    pools = liquidity.pools(bars, [s for s in loose if s.side is Side.HIGH])
    merged = liquidity.merged(pools, bars[-1].close_ns)
    assert len(merged) == 1 and len(merged[0].members) == 3                   # equal highs within 1 %


def test_inside_bars_do_not_make_swings_or_gaps() -> None:
    bars = series((20, 10), (19, 11), (18, 12), (17, 13), (16, 14), (15.5, 14.5))
    assert [s for s in structure.swings(bars) if s.index > 0] == []
    assert zones.gaps(bars) == []


def test_break_uses_only_known_swings_and_trend_and_change_of_character() -> None:
    bars = series((10, 9), (11, 10), (13, 11), (12, 10.5), (11, 8), (12, 9), (15, 12))
    found = structure.swings(bars)
    brk = structure.breaks(bars, found)
    assert [(b.bias, b.index, b.swings) for b in brk] == [(Bias.BULLISH, 6, (2,))]
    assert brk[0].known_at_ns == bars[6].close_ns
    bull = structure.StructureBreak(Bias.BULLISH, 1, Decimal(1), (), 1)
    bear = structure.StructureBreak(Bias.BEARISH, 2, Decimal(1), (), 2)
    assert structure.trend_of([bull]) is Trend.RANGE
    assert structure.trend_of([bull, bull]) is Trend.BULL
    assert structure.trend_of([bear, bull, bear]) is Trend.BEAR
    assert structure.trend_of([bull, bear]) is Trend.RANGE
    shift = structure.character_change([bull, bull, bear])
    assert shift is not None and shift.bias is Bias.BEARISH
    assert structure.character_change([bull, bull, bull]) is None


def test_dealing_range_and_location() -> None:
    rng = structure.DealingRange(Decimal(200), Decimal(100))
    assert rng.midpoint == 150
    assert rng.location(Decimal(156)) is Location.PREMIUM
    assert rng.location(Decimal(155)) is Location.EQUILIBRIUM
    assert rng.location(Decimal(144)) is Location.DISCOUNT


# --- zones --------------------------------------------------------------------------------------
def test_fvg_needs_a_displacement_candle_and_is_known_when_the_third_closes() -> None:
    up = [bar(0, 10, 11, 9, 10.5), bar(1, 10.6, 14, 10.5, 13.8), bar(2, 13.8, 15, 12, 14.5)]
    gap = zones.gaps(up)
    assert [(g.bias, g.index, g.bottom, g.top) for g in gap] == [(Bias.BULLISH, 1, Decimal(11), Decimal(12))]
    assert gap[0].known_at_ns == up[2].close_ns
    doji = [up[0], bar(1, 12, 14, 10.5, 12), up[2]]
    assert zones.gaps(doji) == []                       # no displacement, no gap
    down = [bar(0, 20, 21, 19, 19.5), bar(1, 19.4, 19.5, 16, 16.2), bar(2, 16.2, 18, 15, 15.5)]
    assert [(g.bias, g.top, g.bottom) for g in zones.gaps(down)] == [(Bias.BEARISH, Decimal(19), Decimal(18))]


def test_gap_across_the_day_boundary_and_its_mitigation() -> None:
    start = T0 - 2 * TF                                 # 23:30, 23:45, then 00:00 and 00:15
    bars = [bar(0, 10, 11, 9, 10.5, start=start), bar(1, 10.6, 14, 10.5, 13.8, start=start),
            bar(2, 13.8, 15, 12, 14.5, start=start), bar(3, 14.5, 14.6, 11.8, 12.2, start=start),
            bar(4, 12.2, 12.3, 10.9, 11, start=start)]
    assert session_of(bars[1].open_ns) is Session.DEAD_ZONE and session_of(bars[2].open_ns) is Session.ASIAN
    engine = StructureEngine("15m")
    events = [engine.on_bar(b) for b in bars]
    gap = next(e for e in events[2] if isinstance(e, zones.FairValueGap))
    assert gap.known_at_ns == T0 + TF                   # known at 00:15, the day after it opened
    touched = [e for e in events[3] if isinstance(e, zones.ZoneEvent)]
    assert [(e.kind, e.index) for e in touched] == [("touched", 3)]
    assert [(e.kind, e.index) for e in events[4] if isinstance(e, zones.ZoneEvent)] == [("mitigated", 4)]
    assert engine.pois(bars[-1].close_ns) == [] or all(p.kind != "FVG" for p in engine.pois(bars[-1].close_ns))


def test_order_block_is_the_last_opposite_candle_before_the_break() -> None:
    bars = [bar(0, 10, 10.5, 9.5, 10.2), bar(1, 10.2, 11, 10, 10.8), bar(2, 10.8, 13, 10.7, 12.5),
            bar(3, 12.5, 12.6, 11, 11.2), bar(4, 11.2, 11.5, 10.2, 10.4, v=3), bar(5, 10.4, 12, 10.3, 11.9),
            bar(6, 11.9, 13.5, 11.8, 13.4)]
    found = structure.swings(bars)
    brk = structure.breaks(bars, found)
    assert [(b.bias, b.index) for b in brk] == [(Bias.BULLISH, 6)]
    ob = zones.order_block_for(bars, brk[0])
    assert ob is not None and (ob.index, ob.low, ob.high) == (4, Decimal("10.2"), Decimal("11.5"))
    assert 60 < ob.confidence <= 90 and ob.known_at_ns == bars[6].close_ns


def test_pool_sweep_and_strength_decay() -> None:
    bars = series((10, 9), (11, 10), (13, 11), (12, 10.5), (11, 8), (12, 9), (13.01, 10), (13.2, 12))
    high = next(s for s in structure.swings(bars) if s.side is Side.HIGH)
    pool = liquidity.pool_at(bars, high)
    assert liquidity.sweep_by(pool, bars[6], 6) is None            # 13.01 is within 0.1 % of 13
    sweep = liquidity.sweep_by(pool, bars[7], 7)
    assert sweep is not None and sweep.known_at_ns == bars[7].close_ns
    assert pool.strength(pool.formed_ns) > pool.strength(pool.formed_ns + 72 * HOUR_NS)


# --- sessions -------------------------------------------------------------------------------------
def test_session_boundaries() -> None:
    at = {h: session_of(T0 + h * HOUR_NS) for h in (0, 5, 6, 7, 10, 13, 16, 23)}
    assert at == {0: Session.ASIAN, 5: Session.ASIAN, 6: Session.DEAD_ZONE, 7: Session.LONDON,
                  10: Session.DEAD_ZONE, 13: Session.NY, 16: Session.DEAD_ZONE, 23: Session.DEAD_ZONE}
    assert session_of(T0 + 7 * HOUR_NS - 1) is Session.DEAD_ZONE


def test_swing_exactly_at_the_london_open_belongs_to_london_and_judas() -> None:
    tracker = SessionTracker()
    asian = [hl(i, 101 + (i % 3), 99 - (i % 2)) for i in range(24)]         # 00:00 .. 05:45
    for b in asian:
        tracker.on_bar(b)
    tracker.on_bar(hl(26, 150, 140))                                          # 06:30: dead zone, not Asian
    rng = tracker.range_of(T0, Session.ASIAN, T0 + 6 * HOUR_NS)
    assert rng is not None and (rng.high, rng.low) == (Decimal(103), Decimal(98))
    assert tracker.range_of(T0, Session.ASIAN, T0 + 6 * HOUR_NS - 1) is None    # not over yet
    london = [hl(26, 100, 99), hl(27, 101, 99.5), hl(28, 104, 100), hl(29, 102, 100), hl(30, 101, 99)]
    bars = [*asian[-2:], *london]
    found = structure.swings(bars)
    swing = next(s for s in found if s.side is Side.HIGH and s.price == 104)
    assert session_of(swing.open_ns) is Session.LONDON and swing.open_ns == T0 + 7 * HOUR_NS
    judas = tracker.judas(Decimal(104), T0 + 7 * HOUR_NS + TF)
    assert judas is not None and judas.bias is Bias.BEARISH and judas.swept.session is Session.ASIAN
    assert tracker.judas(Decimal(97), T0 + 8 * HOUR_NS).bias is Bias.BULLISH  # type: ignore[union-attr]
    assert tracker.judas(Decimal(104), T0 + 11 * HOUR_NS) is None              # dead zone


# --- flow -----------------------------------------------------------------------------------------
def _cvd_with(samples: list[tuple[float, float]]) -> NotionalCVD:
    """One sample per 5 minutes with the given (price, net notional of the window)."""
    cvd = NotionalCVD(300 * 10**9, 300 * 10**9, 600 * 10**9)
    cvd.on_time(T0)
    for k, (price, notional) in enumerate(samples):
        ts = T0 + k * 300 * 10**9 + 1
        cvd.add(ts, Decimal(str(price)), Decimal(str(abs(notional) / price)), notional > 0)
    cvd.on_time(T0 + len(samples) * 300 * 10**9)
    return cvd


def test_absorption_and_distribution() -> None:
    absorb = _cvd_with([(100, -5000), (99, -8000), (98, -2000)])       # lower prices, CVD higher low
    assert absorb.signal is not None and absorb.signal.bias is Bias.BULLISH and absorb.signal.strength > 0
    dist = _cvd_with([(100, 5000), (101, 8000), (102, 2000)])          # higher prices, CVD lower high
    assert dist.signal is not None and dist.signal.bias is Bias.BEARISH
    neither = _cvd_with([(100, 5000), (101, 8000), (102, 9000)])
    assert neither.signal is None


# --- context and scoring ----------------------------------------------------------------------------
def test_volatility_index_and_relative_strength() -> None:
    flat = [bar(i, 100, 101, 99, 100) for i in range(15)]
    assert context.volatility_index(flat) == pytest.approx(40.0)       # ATR 2 % → 40
    assert context.volatility_index(flat[:14]) == 0.0
    asset = [bar(0, 100, 101, 99, 100), bar(1, 100, 111, 99, 110)]
    btc = [bar(0, 100, 101, 99, 100), bar(1, 100, 106, 99, 105)]
    assert context.relative_strength(asset, btc) == pytest.approx(0.05)
    assert context.relative_strength(asset[:1], btc) == 0.0


def test_alignment_score_grades_and_vetoes() -> None:
    assert alignment(Trend.BULL, Location.DISCOUNT, Trend.BULL, True) == pytest.approx(90.0)
    assert alignment(Trend.BULL, Location.PREMIUM, Trend.BEAR, False) == pytest.approx(65.0)
    assert grade_of(85) is Grade.A_PLUS and grade_of(65) is Grade.B and grade_of(30) is Grade.VETO
    holo = hologram(Trend.BULL, Location.PREMIUM, Trend.BEAR, False, 20.0, 0.0)
    assert holo.status is Status.NO_PLAY and holo.veto == "BULL_AT_PREMIUM"
    holo = hologram(Trend.BEAR, Location.PREMIUM, Trend.BEAR, True, 20.0, 0.0)
    assert holo.status is Status.A_PLUS and holo.direction is not None and holo.direction.value == "SHORT"
    assert hologram(Trend.RANGE, Location.EQUILIBRIUM, Trend.RANGE, False, 90.0, 0).veto == "VOLATILE_EQUILIBRIUM"


def test_params_camel_case_bounded_unknown_refused() -> None:
    p = HunterParams.model_validate({"timeframe": "15m", "minContextScore": 70, "poiProximity": "0.004"})
    assert p.min_context_score == 70 and p.poi_proximity == Decimal("0.004")
    with pytest.raises(ValidationError):
        HunterParams.model_validate({"minContextScor": 70})
    with pytest.raises(ValidationError):
        HunterParams.model_validate({"riskPerTrade": "0.5"})
    with pytest.raises(ValidationError):
        HunterParams.model_validate({"timeframe": "7m"})
    with pytest.raises(ValidationError):
        HunterParams.model_validate({"weightDaily": 0.5})             # weights no longer sum to 1
