"""The structure engine of one timeframe: the detectors of ``structure``, ``zones`` and ``liquidity``
applied bar by bar as candles close. Everything it reports is immutable and carries the time it
became known; later facts (a break, a touch, a sweep) are new elements, never edits. ``analyse``
runs the same rules over a whole series at once, for comparison."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import overload

from titan.phases.hunter import liquidity, structure, zones
from titan.phases.hunter.bars import Bar

Element = (
    structure.Swing
    | structure.StructureBreak
    | structure.CharacterChange
    | zones.FairValueGap
    | zones.OrderBlock
    | zones.ZoneEvent
    | liquidity.Pool
    | liquidity.Sweep
)


class BarSeries(Sequence[Bar]):
    """The bars of a timeframe indexed from the first ever seen; the oldest are dropped past ``keep``."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.base = 0
        self._bars: list[Bar] = []

    def append(self, bar: Bar) -> None:
        self._bars.append(bar)
        if len(self._bars) > self.keep:
            drop = len(self._bars) - self.keep
            del self._bars[:drop]
            self.base += drop

    def __len__(self) -> int:
        return self.base + len(self._bars)

    @overload
    def __getitem__(self, i: int) -> Bar: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Bar]: ...

    def __getitem__(self, i: int | slice) -> Bar | Sequence[Bar]:
        if isinstance(i, slice):
            start, stop, _ = i.indices(len(self))
            return self._bars[max(start, self.base) - self.base: max(stop, self.base) - self.base]
        if i < 0:
            i += len(self)
        if i < self.base:
            raise IndexError(f"bar {i} was dropped (oldest kept: {self.base})")
        return self._bars[i - self.base]

    def __iter__(self) -> Iterator[Bar]:
        return iter(self._bars)

    @property
    def first_index(self) -> int:
        return self.base


@dataclass(frozen=True)
class Poi:
    """A point of interest for an entry: an unmitigated zone or an unswept pool of one bias."""

    kind: str                # "FVG" | "ORDER_BLOCK" | "LIQUIDITY_POOL"
    bias: structure.Bias
    reference: Decimal       # FVG midpoint, OB edge facing price, pool level
    high: Decimal
    low: Decimal
    key: str
    known_at_ns: int


class StructureEngine:
    def __init__(self, timeframe: str, spec: structure.FractalSpec = structure.FractalSpec(), keep: int = 1000) -> None:
        self.timeframe = timeframe
        self.spec = spec
        self.bars = BarSeries(keep)
        self.swings: list[structure.Swing] = []
        self.breaks: list[structure.StructureBreak] = []
        self.shifts: list[structure.CharacterChange] = []
        self.gaps: list[zones.FairValueGap] = []
        self.blocks: list[zones.OrderBlock] = []
        self.pools: list[liquidity.Pool] = []
        self.sweeps: list[liquidity.Sweep] = []
        self.zone_events: list[zones.ZoneEvent] = []
        self.reported: list[Element] = []
        self._active_swings: list[structure.Swing] = []
        self._seen: dict[str, set[str]] = {}
        self._live_gaps: list[zones.FairValueGap] = []
        self._live_blocks: list[zones.OrderBlock] = []
        self._live_pools: list[liquidity.Pool] = []

    # --- input ------------------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> list[Element]:
        """Add a closed bar (in time order; an older or duplicate one is ignored) and return what
        became known at its close."""
        if len(self.bars) and bar.open_ns < self.bars[-1].close_ns:
            return []
        self.bars.append(bar)
        j = len(self.bars) - 1
        new: list[Element] = []
        candidate = j - self.spec.right
        for sw in (
            structure.swings_at(self.bars, candidate, self.spec) if candidate - self.spec.left >= self.bars.base else []
        ):
            self.swings.append(sw)
            self._active_swings.append(sw)
            pool = liquidity.pool_at(self.bars, sw)
            self.pools.append(pool)
            self._live_pools.append(pool)
            new += [sw, pool]
        for brk in structure.breaks_by(bar, j, self._active_swings):
            self.breaks.append(brk)
            new.append(brk)
            shift = structure.character_change(self.breaks)
            if shift is not None:
                self.shifts.append(shift)
                new.append(shift)
            block = zones.order_block_for(self.bars, brk) if brk.index > self.bars.base else None
            if block is not None:
                self.blocks.append(block)
                self._live_blocks.append(block)
                new.append(block)
        gap = zones.gap_at(self.bars, j - 1) if j - 2 >= self.bars.base else None
        if gap is not None:
            self.gaps.append(gap)
            self._live_gaps.append(gap)
            new.append(gap)
        new += self._update_zones(bar, j)
        self.reported += new
        return new

    def _update_zones(self, bar: Bar, j: int) -> list[Element]:
        new: list[Element] = []
        for gap in list(self._live_gaps):
            if self._zone_events(gap.key, zones.gap_events(gap, bar, j, self._seen.setdefault(gap.key, set())), new):
                self._live_gaps.remove(gap)
        for block in list(self._live_blocks):
            if self._zone_events(block.key, zones.block_events(block, bar, j, self._seen.setdefault(block.key, set())),
                                 new):
                self._live_blocks.remove(block)
        for pool in list(self._live_pools):
            sweep = liquidity.sweep_by(pool, bar, j)
            if sweep is not None:
                self.sweeps.append(sweep)
                self._live_pools.remove(pool)
                new.append(sweep)
        return new

    def _zone_events(self, key: str, events: list[zones.ZoneEvent], new: list[Element]) -> bool:
        """Record a zone's events; True once it is mitigated."""
        seen = self._seen[key]
        for ev in events:
            seen.add(ev.kind)
            self.zone_events.append(ev)
            new.append(ev)
        return "mitigated" in seen

    # --- reading ----------------------------------------------------------------------------------
    def last_close(self) -> Decimal | None:
        return self.bars[-1].close if len(self.bars) else None

    def trend(self) -> structure.Trend:
        return structure.trend_of(self.breaks)

    def shift(self) -> structure.CharacterChange | None:
        """The character change made by the latest break, if it made one."""
        if self.shifts and self.breaks and self.shifts[-1].index == self.breaks[-1].index:
            return self.shifts[-1]
        return None

    def dealing_range(self, lookback: int) -> structure.DealingRange | None:
        first = len(self.bars) - lookback
        return structure.dealing_range([sw for sw in self.swings if sw.index >= first])

    def location(self, lookback: int, tolerance: Decimal) -> structure.Location | None:
        rng, price = self.dealing_range(lookback), self.last_close()
        return None if rng is None or price is None else rng.location(price, tolerance)

    def pois(self, now_ns: int) -> list[Poi]:
        """Unmitigated FVGs and order blocks and unswept pools known at ``now_ns``."""
        out = []
        for g in self._live_gaps:
            if g.known_at_ns <= now_ns:
                out.append(Poi("FVG", g.bias, g.midpoint, g.top, g.bottom, g.key, g.known_at_ns))
        for b in self._live_blocks:
            if b.known_at_ns <= now_ns:
                ref = b.low if b.bias is structure.Bias.BULLISH else b.high
                out.append(Poi("ORDER_BLOCK", b.bias, ref, b.high, b.low, b.key, b.known_at_ns))
        for p in self._live_pools:
            if p.known_at_ns <= now_ns and p.strength(now_ns) > liquidity.MIN_STRENGTH:
                bias = structure.Bias.BULLISH if p.side is structure.Side.LOW else structure.Bias.BEARISH
                out.append(Poi("LIQUIDITY_POOL", bias, p.price, p.price, p.price, p.key, p.known_at_ns))
        return out

    def live_pools(self) -> list[liquidity.Pool]:
        return list(self._live_pools)


def analyse(bars: Sequence[Bar], spec: structure.FractalSpec = structure.FractalSpec()) -> list[Element]:
    """Every element of ``bars`` computed over the whole series at once (each with its known time)."""
    found = structure.swings(bars, spec)
    all_breaks = structure.breaks(bars, found)
    gaps = zones.gaps(bars)
    blocks = zones.order_blocks(bars, all_breaks)
    pools = liquidity.pools(bars, found)
    out: list[Element] = [*found, *all_breaks, *structure.character_changes(all_breaks), *gaps, *blocks, *pools]
    scanned: list[zones.FairValueGap | zones.OrderBlock] = [*gaps, *blocks]
    for zone in scanned:
        out += _scan_zone(zone, bars)
    for pool in pools:
        for j in range(pool.index + 1, len(bars)):
            sweep = liquidity.sweep_by(pool, bars[j], j)
            if sweep is not None:
                out.append(sweep)
                break
    return out


def _scan_zone(zone: zones.FairValueGap | zones.OrderBlock, bars: Sequence[Bar]) -> list[zones.ZoneEvent]:
    seen: set[str] = set()
    out: list[zones.ZoneEvent] = []
    for j, bar in enumerate(bars):
        events = (zones.gap_events(zone, bar, j, seen) if isinstance(zone, zones.FairValueGap)
                  else zones.block_events(zone, bar, j, seen))
        seen.update(ev.kind for ev in events)
        out += events
        if "mitigated" in seen:
            break
    return out
