"""Liquidity pools at swings and their sweeps (reference §2.7).

A pool sits at every swing, known with it. Its strength decays with age, so it is computed for a
time (``strength``) rather than stored; pools of one side within 1 % of each other (equal highs or
lows) are merged when read (``merged``). A sweep is a later bar trading 0.1 % beyond the level,
known when that bar closes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from titan.phases.hunter.bars import Bar
from titan.phases.hunter.structure import Side, Swing

HOUR_NS = 3_600 * 10**9
SWEEP_MARGIN = Decimal("0.001")
MERGE_DISTANCE = Decimal("0.01")
MIN_STRENGTH = 20.0
POOL_VOLUME_BARS = 50


@dataclass(frozen=True)
class Pool:
    side: Side
    index: int
    price: Decimal
    formed_ns: int
    volume_factor: float      # 0..100: the swing bar's volume against the 50 bars before
    known_at_ns: int

    @property
    def key(self) -> str:
        return f"pool:{self.side.value}:{self.index}"

    def strength(self, now_ns: int) -> float:
        age_h = max(0, now_ns - self.formed_ns) / HOUR_NS
        age = max(0.0, 100.0 - 50.0 * age_h / 72.0)
        return 0.6 * age + 0.4 * self.volume_factor


@dataclass(frozen=True)
class Sweep:
    key: str
    side: Side
    index: int
    price: Decimal            # the pool level
    known_at_ns: int


@dataclass(frozen=True)
class MergedPool:
    side: Side
    price: Decimal            # mean level of its members
    strength: float           # summed
    formed_ns: int            # oldest member
    members: tuple[str, ...]


def pool_at(bars: Sequence[Bar], swing: Swing) -> Pool:
    window = bars[max(0, swing.index - POOL_VOLUME_BARS + 1): swing.index + 1]
    avg = sum((b.volume for b in window), Decimal(0)) / len(window)
    ratio = float(bars[swing.index].volume / avg) if avg > 0 else 1.0
    return Pool(swing.side, swing.index, swing.price, swing.open_ns, min(100.0, 50.0 * ratio), swing.known_at_ns)


def pools(bars: Sequence[Bar], found: Sequence[Swing]) -> list[Pool]:
    return [pool_at(bars, sw) for sw in found]


def sweep_by(pool: Pool, bar: Bar, index: int) -> Sweep | None:
    if bar.close_ns <= pool.known_at_ns:
        return None
    if pool.side is Side.HIGH and bar.high > pool.price * (1 + SWEEP_MARGIN):
        return Sweep(pool.key, pool.side, index, pool.price, bar.close_ns)
    if pool.side is Side.LOW and bar.low < pool.price * (1 - SWEEP_MARGIN):
        return Sweep(pool.key, pool.side, index, pool.price, bar.close_ns)
    return None


def merged(live: Sequence[Pool], now_ns: int) -> list[MergedPool]:
    """Pools worth trading at ``now_ns`` (strength > 20), those of one side within 1 % of a group's
    first pool merged: mean price, summed strength, oldest formation."""
    groups: list[list[Pool]] = []
    for pool in sorted(live, key=lambda p: (p.side.value, p.formed_ns, p.index)):
        if pool.strength(now_ns) <= MIN_STRENGTH:
            continue
        for group in groups:
            seed = group[0]
            if seed.side is pool.side and abs(pool.price - seed.price) <= seed.price * MERGE_DISTANCE:
                group.append(pool)
                break
        else:
            groups.append([pool])
    return [
        MergedPool(g[0].side, sum((p.price for p in g), Decimal(0)) / len(g),
                   sum(p.strength(now_ns) for p in g), min(p.formed_ns for p in g), tuple(p.key for p in g))
        for g in groups
    ]
