"""The hologram: alignment score, grade, vetoes and direction from the three timeframes
(reference §2.5). Without an oracle its component is neutral (50), as in the original with no
oracle data; the flow, bot-trap and global-CVD adjustments are not computed (see docs)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from titan.phases.hunter.structure import Location, Trend


class Grade(enum.Enum):
    A_PLUS = "A+"
    A = "A"
    B = "B"
    C = "C"
    VETO = "VETO"


class Status(enum.Enum):
    A_PLUS = "A+"
    B = "B"
    CONFLICT = "CONFLICT"
    NO_PLAY = "NO_PLAY"


class Direction(enum.Enum):
    LONG = "LONG"
    SHORT = "SHORT"


@dataclass(frozen=True)
class Weights:
    daily: float = 0.40
    location: float = 0.25
    flow: float = 0.15
    oracle: float = 0.20


@dataclass(frozen=True)
class Thresholds:
    a_plus: float = 80
    a: float = 70
    b: float = 60
    c: float = 50


@dataclass(frozen=True)
class Hologram:
    score: float
    grade: Grade
    status: Status
    direction: Direction | None
    veto: str                       # "" or why
    daily_trend: Trend
    location: Location | None
    trigger_trend: Trend
    shift: bool                     # a character change on the trigger timeframe
    volatility: float
    relative_strength: float


def daily_score(trend: Trend) -> float:
    return 50.0 if trend is Trend.RANGE else 100.0


def location_score(daily: Trend, location: Location | None) -> float:
    if location is None:
        return 50.0
    if daily is Trend.BULL:
        return {Location.DISCOUNT: 100.0, Location.EQUILIBRIUM: 70.0, Location.PREMIUM: 30.0}[location]
    if daily is Trend.BEAR:
        return {Location.PREMIUM: 100.0, Location.EQUILIBRIUM: 70.0, Location.DISCOUNT: 30.0}[location]
    return 80.0 if location is Location.EQUILIBRIUM else 50.0


def flow_score(daily: Trend, trigger: Trend, shift: bool) -> float:
    score = 50.0 + (30.0 if shift else 0.0)
    if daily is not Trend.RANGE and trigger is daily:
        score += 20.0
    return min(100.0, score)


def alignment(daily: Trend, location: Location | None, trigger: Trend, shift: bool,
              weights: Weights = Weights()) -> float:
    raw = (weights.daily * daily_score(daily) + weights.location * location_score(daily, location)
           + weights.flow * flow_score(daily, trigger, shift) + weights.oracle * 50.0)
    return max(0.0, min(100.0, raw))


def grade_of(score: float, thresholds: Thresholds = Thresholds()) -> Grade:
    if score >= thresholds.a_plus:
        return Grade.A_PLUS
    if score >= thresholds.a:
        return Grade.A
    if score >= thresholds.b:
        return Grade.B
    if score >= thresholds.c:
        return Grade.C
    return Grade.VETO


def classic_veto(daily: Trend, location: Location | None, volatility: float, max_volatility: float) -> str:
    """Buying a bull market at a premium, selling a bear market at a discount, or a volatile market
    at equilibrium."""
    if daily is Trend.BULL and location is Location.PREMIUM:
        return "BULL_AT_PREMIUM"
    if daily is Trend.BEAR and location is Location.DISCOUNT:
        return "BEAR_AT_DISCOUNT"
    if volatility > max_volatility and location is Location.EQUILIBRIUM:
        return "VOLATILE_EQUILIBRIUM"
    return ""


def hologram(daily: Trend, location: Location | None, trigger: Trend, shift: bool, volatility: float,
             relative_strength: float, *, weights: Weights = Weights(), thresholds: Thresholds = Thresholds(),
             max_volatility: float = 80.0) -> Hologram:
    score = alignment(daily, location, trigger, shift, weights)
    grade = grade_of(score, thresholds)
    veto = classic_veto(daily, location, volatility, max_volatility) or ("LOW_SCORE" if grade is Grade.VETO else "")
    if veto:
        status = Status.NO_PLAY
    elif grade is Grade.A_PLUS:
        status = Status.A_PLUS
    elif grade in (Grade.A, Grade.B):
        status = Status.B
    else:
        status = Status.CONFLICT
    direction = {Trend.BULL: Direction.LONG, Trend.BEAR: Direction.SHORT}.get(daily)
    return Hologram(score, grade, status, direction, veto, daily, location, trigger, shift, volatility,
                    relative_strength)
