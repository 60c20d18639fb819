"""Funding as an edge: the predicted and settled funding rates of one perp, and the venue's own
funding interval (8 h, 4 h and 1 h all occur; nothing here assumes one).

The interval comes from the venue's events: ``next_funding_time - funding_time`` of a settlement
when the venue announces the next one, else the spacing of consecutive settlements. Until it is
known, the rate cannot be annualised and the funding edge counts as unknown (no entry on it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from titan.core.money import CONTEXT

YEAR_NS = 365 * 86_400 * 1_000_000_000
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Settlement:
    funding_time_ns: int
    rate: Decimal


class FundingState:
    """What is known about one perp's funding at the time of the last event (no look-ahead: a rate
    counts as settled only once its settlement event arrived)."""

    def __init__(self, history: int = 64) -> None:
        self.predicted: Decimal | None = None
        self.predicted_for_ns = 0
        self.settled: deque[Settlement] = deque(maxlen=history)
        self.interval_ns: int | None = None

    def on_funding(self, rate: Decimal, funding_time_ns: int, next_funding_time_ns: int, settled: bool) -> None:
        if settled:
            last = self.settled[-1] if self.settled else None
            if last is not None and funding_time_ns <= last.funding_time_ns:
                return  # a repeat or an out-of-order settlement
            if next_funding_time_ns > funding_time_ns:
                self.interval_ns = next_funding_time_ns - funding_time_ns
            elif last is not None:
                self.interval_ns = funding_time_ns - last.funding_time_ns
            self.settled.append(Settlement(funding_time_ns, rate))
            if self.predicted_for_ns <= funding_time_ns:
                self.predicted = None  # the prediction for this settlement is spent
            return
        self.predicted, self.predicted_for_ns = rate, funding_time_ns
        last = self.settled[-1] if self.settled else None
        if self.interval_ns is None and last is not None and funding_time_ns > last.funding_time_ns:
            self.interval_ns = funding_time_ns - last.funding_time_ns

    @property
    def periods_per_year(self) -> Decimal | None:
        if not self.interval_ns:
            return None
        return CONTEXT.divide(Decimal(YEAR_NS), Decimal(self.interval_ns))

    def expected_rate(self) -> Decimal | None:
        """The rate expected per interval: the venue's prediction, else the mean of the settled ones."""
        if self.predicted is not None:
            return self.predicted
        if not self.settled:
            return None
        return CONTEXT.divide(sum((x.rate for x in self.settled), _ZERO), Decimal(len(self.settled)))

    def expected_apr(self) -> Decimal | None:
        """The expected rate annualised with the venue's interval (a short perp receives it)."""
        rate, per_year = self.expected_rate(), self.periods_per_year
        if rate is None or per_year is None:
            return None
        return rate * per_year

    def negative_streak(self, since_ns: int = 0) -> int:
        """How many of the latest settlements in a row (at or after ``since_ns``) were negative: the
        short perp paid."""
        n = 0
        for x in reversed(self.settled):
            if x.rate >= 0 or x.funding_time_ns < since_ns:
                break
            n += 1
        return n
