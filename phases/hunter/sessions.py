"""Trading sessions in UTC (reference §2.8): Asian 00–06, London 07–10, New York 13–16, the rest
dead zone; London and New York are the killzones. The Asian and London ranges of each UTC day
come from the bars that open inside them; a range is usable once its session is over. A Judas
swing is price beyond the previous session's range during a killzone (London against the Asian
range, New York against London's), read as a sweep expected to reverse."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from titan.phases.hunter.bars import Bar
from titan.phases.hunter.structure import Bias

HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS


class Session(enum.Enum):
    ASIAN = "ASIAN"
    LONDON = "LONDON"
    NY = "NY"
    DEAD_ZONE = "DEAD_ZONE"


HOURS = {Session.ASIAN: (0, 6), Session.LONDON: (7, 10), Session.NY: (13, 16)}
KILLZONES = frozenset({Session.LONDON, Session.NY})


def session_of(ts_ns: int) -> Session:
    hour = (ts_ns % DAY_NS) // HOUR_NS
    for session, (start, end) in HOURS.items():
        if start <= hour < end:
            return session
    return Session.DEAD_ZONE


def session_end_ns(day_ns: int, session: Session) -> int:
    return day_ns + HOURS[session][1] * HOUR_NS


@dataclass(frozen=True)
class SessionRange:
    session: Session
    day_ns: int
    high: Decimal
    low: Decimal
    complete_at_ns: int


@dataclass(frozen=True)
class Judas:
    bias: Bias                 # the expected reversal: BEARISH after a sweep of the high
    session: Session           # when it happened
    swept: SessionRange
    price: Decimal


class SessionTracker:
    """The Asian and London ranges of the current UTC day from closed bars (any timeframe ≤ 1h)."""

    def __init__(self) -> None:
        self._ranges: dict[tuple[int, Session], tuple[Decimal, Decimal]] = {}

    def on_bar(self, bar: Bar) -> None:
        session = session_of(bar.open_ns)
        if session not in (Session.ASIAN, Session.LONDON):
            return
        key = (bar.open_ns - bar.open_ns % DAY_NS, session)
        hi, lo = self._ranges.get(key, (bar.high, bar.low))
        self._ranges[key] = (max(hi, bar.high), min(lo, bar.low))
        for old in [k for k in self._ranges if k[0] < key[0] - DAY_NS]:
            del self._ranges[old]

    def range_of(self, day_ns: int, session: Session, now_ns: int) -> SessionRange | None:
        """The day's range of ``session`` once the session is over at ``now_ns``."""
        got = self._ranges.get((day_ns, session))
        end = session_end_ns(day_ns, session)
        if got is None or now_ns < end:
            return None
        return SessionRange(session, day_ns, got[0], got[1], end)

    def judas(self, price: Decimal, now_ns: int) -> Judas | None:
        session = session_of(now_ns)
        swept_session = {Session.LONDON: Session.ASIAN, Session.NY: Session.LONDON}.get(session)
        if swept_session is None:
            return None
        rng = self.range_of(now_ns - now_ns % DAY_NS, swept_session, now_ns)
        if rng is None:
            return None
        if price > rng.high:
            return Judas(Bias.BEARISH, session, rng, price)
        if price < rng.low:
            return Judas(Bias.BULLISH, session, rng, price)
        return None
