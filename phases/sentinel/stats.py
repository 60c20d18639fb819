"""Basis statistics (reference §3.3): the basis of a spot/perp pair, its executable (depth-weighted)
form and impact cost from the books, and a rolling window with O(1) Welford add and remove that
gives the mean, sample deviation, z-score and percentile of the latest sample.

Statistics are floats (they are indicators); prices and sizes coming in are Decimals.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from titan.core.money import CONTEXT

_ZERO = Decimal(0)
_TWO = Decimal(2)

Level = tuple[Decimal, Decimal]  # (price, base size), best first


def basis(spot: Decimal, perp: Decimal) -> float:
    """(perp - spot) / spot: > 0 contango (perp rich), < 0 backwardation; 0 without a spot price."""
    if spot <= 0:
        return 0.0
    return float(CONTEXT.divide(perp - spot, spot))


def vwap_for_quote(levels: Sequence[Level], size_quote: Decimal) -> Decimal | None:
    """The average price of walking ``levels`` (best first) for ``size_quote`` of notional; None when
    the displayed depth is not enough."""
    if size_quote <= 0:
        return None
    left = size_quote
    base = _ZERO
    spent = _ZERO
    for price, size in levels:
        if price <= 0 or size <= 0:
            continue
        take = min(size, CONTEXT.divide(left, price))
        base += take
        spent += take * price
        left -= take * price
        if left <= 0:
            break
    if left > 0 or base <= 0:
        return None
    return CONTEXT.divide(spent, base)


def depth_weighted_basis(spot_asks: Sequence[Level], perp_bids: Sequence[Level], size_quote: Decimal) -> float | None:
    """The cash-and-carry spread executable for ``size_quote``: buy spot walking its asks, sell the
    perp walking its bids; (perp VWAP - spot VWAP) / spot VWAP. None when a side lacks the depth."""
    spot = vwap_for_quote(spot_asks, size_quote)
    perp = vwap_for_quote(perp_bids, size_quote)
    if spot is None or perp is None:
        return None
    return basis(spot, perp)


def impact_cost(bids: Sequence[Level], asks: Sequence[Level], size_quote: Decimal) -> float | None:
    """(ask-side VWAP for ``size_quote`` - mid) / mid; None without both sides or enough depth."""
    if not bids or not asks:
        return None
    mid = (bids[0][0] + asks[0][0]) / _TWO
    vwap = vwap_for_quote(asks, size_quote)
    if vwap is None or mid <= 0:
        return None
    return float(CONTEXT.divide(vwap - mid, mid))


_EPS = 2.0**-52


class RollingStats:
    """A window of the last ``size`` samples with Welford's running mean and M2, updated in O(1) on
    every add and on every eviction. Each update can leave a rounding error of about eps·x²; when M2
    is no longer well above the error accumulated since the last exact pass (a window of nearly equal
    samples after large ones left it), mean and M2 are recomputed from the window in two passes, so
    the statistics equal a direct computation for any sequence."""

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError("a rolling window needs at least 2 samples")
        self.size = size
        self.values: deque[float] = deque()
        self.mean = 0.0
        self._m2 = 0.0
        self._noise = 0.0  # bound on the rounding error in _m2 since the last exact pass

    def __len__(self) -> int:
        return len(self.values)

    def add(self, x: float) -> None:
        if not math.isfinite(x):
            raise ValueError("a basis sample must be finite")
        if len(self.values) == self.size:
            self._remove(self.values.popleft())
        self.values.append(x)
        n = len(self.values)
        delta = x - self.mean
        self.mean += delta / n
        self._m2 += delta * (x - self.mean)
        self._noise += _EPS * (x * x + self.mean * self.mean)
        if self._m2 <= 1e6 * self._noise:
            self._exact()

    def _exact(self) -> None:
        """Mean and M2 from the window, correctly rounded (the statistics module computes exactly)."""
        n = len(self.values)
        self.mean = statistics.fmean(self.values) if n else 0.0
        self._m2 = statistics.variance(self.values) * (n - 1) if n > 1 else 0.0
        self._noise = _EPS * math.fsum(v * v for v in self.values)

    def _remove(self, x: float) -> None:
        n = len(self.values) + 1  # the count before the removal
        if n <= 1:
            self.mean, self._m2 = 0.0, 0.0
            return
        old = self.mean
        self.mean = old - (x - old) / (n - 1)
        self._m2 = max(0.0, self._m2 - (x - old) * (x - self.mean))
        self._noise += _EPS * (x * x + old * old)

    def clear(self) -> None:
        self.values.clear()
        self.mean, self._m2, self._noise = 0.0, 0.0, 0.0

    @property
    def std(self) -> float:
        """Sample standard deviation (0 with fewer than 2 samples)."""
        n = len(self.values)
        return math.sqrt(self._m2 / (n - 1)) if n > 1 else 0.0

    def zscore(self, x: float) -> float:
        sd = self.std
        return 0.0 if sd == 0 else (x - self.mean) / sd

    def percentile(self, x: float) -> float:
        """The share (0..100) of the window strictly below ``x``; 50 when empty."""
        if not self.values:
            return 50.0
        return 100.0 * sum(1 for v in self.values if v < x) / len(self.values)


class Action:
    HOLD = "HOLD"
    EXPAND = "EXPAND"
    CONTRACT = "CONTRACT"


@dataclass(frozen=True)
class BasisSignal:
    symbol: str
    action: str
    basis: float
    zscore: float
    percentile: float
    confidence: float
    samples: int
    ts_ns: int


class BasisStats:
    """Per-symbol basis statistics: the latest sample against the window before it."""

    def __init__(self, symbol: str, window: int, min_samples: int, expand_z: float, contract_z: float) -> None:
        self.symbol = symbol
        self.window = RollingStats(window)
        self.min_samples = min_samples
        self.expand_z = expand_z
        self.contract_z = contract_z
        self.last: BasisSignal | None = None

    def add(self, value: float, ts_ns: int) -> BasisSignal:
        """Push a sample and classify it: HOLD below ``min_samples``, EXPAND at z >= expand_z,
        CONTRACT at z <= contract_z, HOLD between."""
        w = self.window
        w.add(value)
        n = len(w)
        z = w.zscore(value)
        if n < self.min_samples:
            action = Action.HOLD
        elif z >= self.expand_z:
            action = Action.EXPAND
        elif z <= self.contract_z:
            action = Action.CONTRACT
        else:
            action = Action.HOLD
        sd = w.std
        stability = 0.5 if sd == 0 else min(1.0, 0.01 / sd)
        confidence = 0.7 * min(n / w.size, 1.0) + 0.3 * stability
        self.last = BasisSignal(self.symbol, action, value, z, w.percentile(value), confidence, n, ts_ns)
        return self.last
