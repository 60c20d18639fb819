"""Trade-flow calculators of the detector: velocity, acceleration, CVD, burst windows, lead/lag.

All timing here is exchange time in nanoseconds (deterministic in replays). Velocity and
acceleration are indicators (floats); CVD sums exact quantities (Decimal).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from titan.phases.indicators import pearson

NS = 1_000_000_000
MS = 1_000_000


class Velocity:
    """Per-symbol price history pruned to the last 10 s; velocity = |(p_last - p_first)/p_first| / Δt
    in 1/s over the points of the last 5 s (0 with fewer than 2 points or Δt = 0)."""

    def __init__(self, keep_ns: int = 10 * NS, window_ns: int = 5 * NS) -> None:
        self.keep_ns = keep_ns
        self.window_ns = window_ns
        self.points: deque[tuple[int, float]] = deque()

    def record(self, ts_ns: int, price: float) -> None:
        self.points.append((ts_ns, price))
        while self.points and self.points[0][0] < ts_ns - self.keep_ns:
            self.points.popleft()

    def velocity(self) -> float:
        if len(self.points) < 2:
            return 0.0
        last_ts, last_p = self.points[-1]
        first: tuple[int, float] | None = None
        for ts, p in self.points:
            if ts >= last_ts - self.window_ns:
                first = (ts, p)
                break
        if first is None or first[1] <= 0:
            return 0.0
        dt = (last_ts - first[0]) / NS
        if dt <= 0:
            return 0.0
        return abs((last_p - first[1]) / first[1]) / dt

    def acceleration(self) -> float:
        """v_new - v_old over the last three price points at distinct timestamps (p2, p1, p0):
        v_new = |p0/p1 - 1|/(t0 - t1), v_old = |p1/p2 - 1|/(t1 - t2), in 1/s. 0 with fewer than four
        distinct points. Trades sharing a timestamp are collapsed to the last price (a burst prints
        many trades in one millisecond, which made the original divide by zero)."""
        distinct: list[tuple[int, float]] = []
        for ts, p in reversed(self.points):
            if distinct and distinct[-1][0] == ts:
                continue
            distinct.append((ts, p))
            if len(distinct) == 4:
                break
        if len(distinct) < 4:
            return 0.0
        (t0, p0), (t1, p1), (t2, p2) = distinct[0], distinct[1], distinct[2]
        if p1 <= 0 or p2 <= 0:
            return 0.0
        v_new = abs(p0 / p1 - 1) / ((t0 - t1) / NS)
        v_old = abs(p1 / p2 - 1) / ((t1 - t2) / NS)
        return v_new - v_old


class CVD:
    """Cumulative volume delta over a 600 s history of taker trades (quantity based).

    ``cvd(window, offset)`` = Σ taker-buy qty - Σ taker-sell qty over
    [latest - offset - window, latest - offset], both ends inclusive."""

    def __init__(self, keep_ns: int = 600 * NS) -> None:
        self.keep_ns = keep_ns
        self.trades: deque[tuple[int, Decimal, bool]] = deque()

    def record(self, ts_ns: int, qty: Decimal, taker_buy: bool) -> None:
        self.trades.append((ts_ns, qty, taker_buy))
        while self.trades and self.trades[0][0] < ts_ns - self.keep_ns:
            self.trades.popleft()

    def cvd(self, window_s: float, offset_s: float = 0.0) -> Decimal:
        if not self.trades:
            return Decimal(0)
        latest = self.trades[-1][0]
        hi = latest - int(offset_s * NS)
        lo = hi - int(window_s * NS)
        total = Decimal(0)
        for ts, qty, buy in self.trades:
            if lo <= ts <= hi:
                total += qty if buy else -qty
        return total


@dataclass
class Burst:
    """One evaluated burst window."""

    start_ns: int
    end_ns: int                 # start + window
    count: int
    buy_volume: Decimal
    sell_volume: Decimal
    last_price: Decimal         # the last near-trigger trade price in the window

    @property
    def micro_cvd(self) -> Decimal:
        return self.buy_volume - self.sell_volume

    @property
    def volume(self) -> Decimal:
        return self.buy_volume + self.sell_volume

    @property
    def quality(self) -> Decimal:
        """|micro CVD| / burst volume, 0..1."""
        return abs(self.micro_cvd) / self.volume if self.volume > 0 else Decimal(0)


@dataclass
class BurstCounter:
    """Counts near-trigger trades in tumbling windows of ``window_ns`` that start at the first
    counted trade. A window [start, start + window) is evaluated by the first counted trade at or
    after its end, or by :meth:`close_due`; it passes with ≥ ``min_trades`` trades. The trade that
    closes a window starts the next one."""

    window_ns: int
    min_trades: int
    start_ns: int | None = None
    count: int = 0
    buy_volume: Decimal = field(default_factory=lambda: Decimal(0))
    sell_volume: Decimal = field(default_factory=lambda: Decimal(0))
    last_price: Decimal = field(default_factory=lambda: Decimal(0))

    def _close(self) -> Burst | None:
        assert self.start_ns is not None
        burst = Burst(self.start_ns, self.start_ns + self.window_ns, self.count, self.buy_volume,
                      self.sell_volume, self.last_price)
        self.reset()
        return burst if burst.count >= self.min_trades else None

    def reset(self) -> None:
        self.start_ns = None
        self.count = 0
        self.buy_volume = Decimal(0)
        self.sell_volume = Decimal(0)
        self.last_price = Decimal(0)

    def window_end_ns(self) -> int | None:
        """When the open window ends (None: no window open)."""
        return None if self.start_ns is None else self.start_ns + self.window_ns

    def close_due(self, now_ns: int) -> tuple[bool, Burst | None]:
        """Evaluate the open window if it has ended by ``now_ns``: (closed?, burst if it passed)."""
        if self.start_ns is not None and now_ns >= self.start_ns + self.window_ns:
            return True, self._close()
        return False, None

    def add(self, ts_ns: int, qty: Decimal, taker_buy: bool, price: Decimal) -> Burst | None:
        """Count one near-trigger trade; returns the previous window's burst if this trade closed a
        passing window."""
        closed, burst = self.close_due(ts_ns)
        del closed
        if self.start_ns is None:
            self.start_ns = ts_ns
        self.count += 1
        if taker_buy:
            self.buy_volume += qty
        else:
            self.sell_volume += qty
        self.last_price = price
        return burst


class LeadLag:
    """Which venue leads: prices bucketed to 100 ms, Pearson r at lag 0, +1 (A leads: a[t] vs b[t+1])
    and -1 (B leads) over the last 10 s, recomputed at most once a second, ≥ 10 paired points.
    Missing buckets are filled from up to 5 buckets back. Leader "A", "B", default "A"."""

    def __init__(self, bucket_ns: int = 100 * MS, span_ns: int = 10 * NS, keep_ns: int = 60 * NS) -> None:
        self.bucket_ns = bucket_ns
        self.span_ns = span_ns
        self.keep_ns = keep_ns
        self.a: dict[int, float] = {}
        self.b: dict[int, float] = {}
        self.leader = "A"
        self._last_compute: int | None = None

    def record(self, source: str, ts_ns: int, price: float) -> None:
        bucket = ts_ns // self.bucket_ns
        (self.a if source == "A" else self.b)[bucket] = price
        oldest = (ts_ns - self.keep_ns) // self.bucket_ns
        for series in (self.a, self.b):
            if len(series) > 2 * self.keep_ns // self.bucket_ns:
                for k in [k for k in series if k < oldest]:
                    del series[k]
        if self._last_compute is None or ts_ns - self._last_compute >= NS:
            self._last_compute = ts_ns
            self._compute(bucket)

    @staticmethod
    def _fill(series: dict[int, float], k: int) -> float | None:
        for back in range(6):
            v = series.get(k - back)
            if v is not None:
                return v
        return None

    def _compute(self, now_bucket: int) -> None:
        n = self.span_ns // self.bucket_ns
        keys = range(now_bucket - n, now_bucket + 1)
        xa = [self._fill(self.a, k) for k in keys]
        xb = [self._fill(self.b, k) for k in keys]

        def corr(lag: int) -> float | None:
            xs: list[float] = []
            ys: list[float] = []
            for i in range(len(xa)):
                j = i + lag
                if 0 <= j < len(xb):
                    va, vb = xa[i], xb[j]
                    if va is not None and vb is not None:
                        xs.append(va)
                        ys.append(vb)
            return pearson(xs, ys) if len(xs) >= 10 else None

        r0, rp, rm = corr(0), corr(1), corr(-1)
        if r0 is None or rp is None or rm is None:
            return
        if rp > rm and rp > r0:
            self.leader = "A"
        elif rm > rp and rm > r0:
            self.leader = "B"
