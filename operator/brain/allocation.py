"""Capital allocation across phases from equity: banded logistic ramps with hysteresis.

Pure functions. Floats are used only inside the logistic curve; the resulting weights are exact
Decimals (6 places) that sum to exactly 1 (or are all 0 when no enabled phase is eligible).

Bands (see docs/brain.md):
  level 0  E below start_p2                       -> all to Scavenger
  level 1  Hunter ramps in: w2 = 0.8 x p(E)       -> flat 20/80 once E >= full_p2
  level 2  Sentinel ramps in: w3 = 0.5 x q(E)     -> 20/30/50 asymptotically
A level is entered when E reaches its edge and left only when E falls below hysteresis x edge.
The steepness scales with the band width (k2 = 10.5 / (full_p2 - start_p2), k3 = 5 / start_p3,
midpoint 1.5 x start_p3), which reproduces the original defaults at 1 500 / 5 000 / 25 000 and
keeps rescaled bands smooth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from titan.operator.brain.policy import BandEdges, LeverageTier, PhaseKind, PhaseSpec

HUNTER_SHARE = 0.8    # Hunter's share once fully ramped in (Scavenger keeps 0.2)
SENTINEL_SHARE = 0.5  # Sentinel's asymptotic share, taken from Hunter (ends 0.2 / 0.3 / 0.5)
RAMP_SPAN = 10.5      # logistic exponent span across the Hunter band (+-5.25)
P3_STEEPNESS = 5.0    # k3 x start_p3
P3_MIDPOINT = 1.5     # Sentinel midpoint as a multiple of start_p3
WEIGHT_QUANTUM = Decimal("0.000001")


def logistic(x: float, mid: float, k: float) -> float:
    z = -k * (x - mid)
    if z > 700:  # avoid overflow; the value is 0 to double precision anyway
        return 0.0
    return 1.0 / (1.0 + math.exp(z))


def band_level(equity: Decimal, previous: int, bands: BandEdges) -> int:
    """The band level (0, 1, 2) for ``equity`` given the previous level (hysteresis)."""
    h = bands.hysteresis
    level = 0
    if equity >= bands.start_p2 or (previous >= 1 and equity >= bands.start_p2 * h):
        level = 1
    if level >= 1 and (equity >= bands.start_p3 or (previous >= 2 and equity >= bands.start_p3 * h)):
        level = 2
    return level


def hunter_ramp(equity: float, bands: BandEdges) -> float:
    """p(E) in (0, 1]: logistic over the Hunter band, scaled so p(full_p2) = 1 exactly."""
    lo, hi = float(bands.start_p2), float(bands.full_p2)
    if equity >= hi:
        return 1.0
    k = RAMP_SPAN / (hi - lo)
    mid = (lo + hi) / 2
    return min(1.0, logistic(equity, mid, k) / logistic(hi, mid, k))


def sentinel_ramp(equity: float, bands: BandEdges) -> float:
    """q(E) in (0, 1): logistic with midpoint 1.5 x start_p3 and k = 5 / start_p3."""
    s3 = float(bands.start_p3)
    return logistic(equity, P3_MIDPOINT * s3, P3_STEEPNESS / s3)


def base_weights(equity: Decimal, level: int, bands: BandEdges) -> dict[PhaseKind, float]:
    """Weights of Scavenger, Hunter and Sentinel at ``equity`` in band ``level`` (sum to 1)."""
    e = float(max(equity, Decimal(0)))
    p = hunter_ramp(e, bands) if level >= 1 else 0.0
    q = sentinel_ramp(e, bands) if level >= 2 else 0.0
    w3 = SENTINEL_SHARE * q
    w2 = HUNTER_SHARE * p - w3   # level 2 implies E >= hysteresis x start_p3 >= full_p2, so p = 1
    w1 = 1.0 - HUNTER_SHARE * p
    return {PhaseKind.SCAVENGER: w1, PhaseKind.HUNTER: max(0.0, w2), PhaseKind.SENTINEL: w3}


def quantize_weights(raw: Mapping[str, float]) -> dict[str, Decimal]:
    """Exact Decimal weights: non-negative, summing to exactly 1 (or all 0 when ``raw`` is all 0).

    Each positive weight is rounded to 1e-6; the rounding remainder (a few 1e-6 at most, either
    sign) goes to the largest weight, which is at least 1/n, so no weight can turn negative."""
    total = sum(v for v in raw.values() if v > 0)
    out = {k: Decimal(0) for k in raw}
    if total <= 0:
        return out
    for k, v in raw.items():
        if v > 0:
            out[k] = Decimal(repr(v / total)).quantize(WEIGHT_QUANTUM, rounding=ROUND_HALF_EVEN)
    remainder = Decimal(1) - sum(out.values(), Decimal(0))
    top = max(sorted(raw), key=lambda k: raw[k])  # deterministic tie-break by name
    out[top] += remainder
    return out


def in_capital_band(spec: PhaseSpec, equity: Decimal) -> bool:
    if spec.band_min is not None and equity < spec.band_min:
        return False
    return not (spec.band_max is not None and equity >= spec.band_max)


def allocate(
    equity: Decimal,
    level: int,
    bands: BandEdges,
    phases: Sequence[PhaseSpec],
    modifiers: Mapping[str, Decimal] | None = None,
) -> dict[str, Decimal]:
    """Weights per phase id.

    Each trading kind's base weight is split evenly between its enabled phases inside their
    capitalBand; each phase's weight is multiplied by its performance modifier; the result is
    renormalised to 1 over the eligible phases. Disabled, out-of-band and non-trading phases get 0.
    """
    modifiers = modifiers or {}
    base = base_weights(equity, level, bands)
    eligible = [p for p in phases if p.trades and p.enabled and in_capital_band(p, equity)]
    count: dict[PhaseKind, int] = {}
    for p in eligible:
        count[p.kind] = count.get(p.kind, 0) + 1
    raw: dict[str, float] = {p.phase_id: 0.0 for p in phases}
    for p in eligible:
        m = float(modifiers.get(p.phase_id, Decimal(1)))
        raw[p.phase_id] = base[p.kind] / count[p.kind] * max(m, 0.0)
    return quantize_weights(raw)


def tier_cap(equity: Decimal, tiers: Sequence[LeverageTier]) -> Decimal:
    """Leverage cap of the equity tier (boundaries inclusive-lower)."""
    for tier in tiers:
        if tier.below is None or equity < tier.below:
            return tier.max_leverage
    return tiers[-1].max_leverage
