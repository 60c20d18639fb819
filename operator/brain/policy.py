"""Brain policy and phase specs: typed, validated views of TitanBrain / TitanPhase specs.

Pure: no I/O. ``parse_brain_spec`` / ``parse_phase_spec`` turn the dicts found in the custom
resources (or in the local driver's YAML files) into frozen dataclasses, rejecting values that are
out of bounds with :class:`PolicyError` (the CRD schema enforces the same bounds in a cluster).
Numbers from YAML arrive as int/float; they are converted to Decimal through their shortest
decimal text (``str``), so 0.15 becomes exactly Decimal("0.15").
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from titan.core.money import MoneyError, to_decimal


class PolicyError(ValueError):
    """A TitanBrain/TitanPhase spec value is missing, malformed or out of bounds."""


class PhaseKind(StrEnum):
    SCAVENGER = "scavenger"
    HUNTER = "hunter"
    SENTINEL = "sentinel"
    AI_QUANT = "ai-quant"


# Phases that trade and share the capital. ai-quant only proposes parameters: it never gets a weight.
TRADING_KINDS: tuple[PhaseKind, ...] = (PhaseKind.SCAVENGER, PhaseKind.HUNTER, PhaseKind.SENTINEL)


class TradingOverride(StrEnum):
    """``TitanBrain.spec.tradingState``: the kill switch."""

    ACTIVE = "Active"
    REDUCING = "Reducing"
    HALTED = "Halted"


def dec(value: Any, name: str) -> Decimal:
    """A YAML/JSON number or decimal string -> Decimal (floats via their shortest text)."""
    if isinstance(value, bool):
        raise PolicyError(f"{name}: expected a number, got a boolean")
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, (str, int, Decimal)):
        raise PolicyError(f"{name}: expected a number, got {type(value).__name__}")
    try:
        return to_decimal(value)
    except MoneyError as exc:
        raise PolicyError(f"{name}: {exc}") from None


def _in(value: Decimal, lo: Decimal, hi: Decimal, name: str) -> Decimal:
    if not lo <= value <= hi:
        raise PolicyError(f"{name}: {value} is outside [{lo}, {hi}]")
    return value


def _int(value: Any, lo: int, hi: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{name}: expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise PolicyError(f"{name}: {value} is outside [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class BandEdges:
    """Equity band edges (quote currency): Hunter ramps in from start_p2 to full_p2, Sentinel
    ramps in from start_p3. Bands may not overlap once hysteresis is applied."""

    start_p2: Decimal = Decimal(1500)
    full_p2: Decimal = Decimal(5000)
    start_p3: Decimal = Decimal(25000)
    hysteresis: Decimal = Decimal("0.9")

    def __post_init__(self) -> None:
        if not Decimal(0) < self.start_p2 < self.full_p2 < self.start_p3:
            raise PolicyError("bandEdges: need 0 < startP2 < fullP2 < startP3")
        if not Decimal("0.5") <= self.hysteresis <= Decimal(1):
            raise PolicyError("bandEdges.hysteresis: must be within [0.5, 1]")
        if self.full_p2 > self.start_p3 * self.hysteresis:
            raise PolicyError("bandEdges: fullP2 must not exceed hysteresis x startP3 (bands would overlap)")


@dataclass(frozen=True)
class LeverageTier:
    below: Decimal | None  # None = the top tier (no upper bound)
    max_leverage: Decimal


DEFAULT_TIERS: tuple[LeverageTier, ...] = (
    LeverageTier(Decimal(1500), Decimal(20)),
    LeverageTier(Decimal(5000), Decimal(10)),
    LeverageTier(Decimal(25000), Decimal(5)),
    LeverageTier(Decimal(50000), Decimal(3)),
    LeverageTier(None, Decimal(2)),
)


@dataclass(frozen=True)
class PerformancePolicy:
    """Rolling per-phase Sharpe -> weight modifier clamp(1 + slope x Sharpe, min, max)."""

    window_s: int = 7 * 24 * 3600
    min_trades: int = 10
    slope: Decimal = Decimal("0.1")
    min_modifier: Decimal = Decimal("0.5")
    max_modifier: Decimal = Decimal("1.2")

    def __post_init__(self) -> None:
        if not self.min_modifier <= Decimal(1) <= self.max_modifier:
            raise PolicyError("performance: need minModifier <= 1 <= maxModifier")


@dataclass(frozen=True)
class BrainPolicy:
    """Everything in ``TitanBrain.spec`` the core needs."""

    trading_state: TradingOverride = TradingOverride.ACTIVE
    bands: BandEdges = field(default_factory=BandEdges)
    tiers: tuple[LeverageTier, ...] = DEFAULT_TIERS
    max_leverage: Decimal = Decimal(10)           # global cap, never exceeded
    max_daily_drawdown: Decimal = Decimal("0.15")  # HARD breaker
    max_drawdown: Decimal = Decimal("0.30")        # HARD breaker, from the high-water mark
    min_equity: Decimal = Decimal(150)             # HARD breaker floor
    cautious_at: Decimal = Decimal("0.5")          # fraction of a drawdown limit that makes us cautious
    soft_losses: int = 3                           # SOFT breaker: consecutive losses ...
    soft_window_s: int = 3600                      # ... within this window ...
    soft_cooldown_s: int = 1800                    # ... pause entries this long
    max_order_fraction: Decimal = Decimal("0.25")  # per-order cap as a fraction of the phase's max notional
    max_orders_per_minute: int = 30
    max_open_orders_per_symbol: int = 5
    budget_ttl_s: int = 30
    equity_stale_s: int = 300
    initial_equity: Decimal = Decimal(1000)
    breaker_reset_token: str = ""
    performance: PerformancePolicy = field(default_factory=PerformancePolicy)

    def __post_init__(self) -> None:
        below = [t.below for t in self.tiers]
        if not self.tiers or below[-1] is not None or any(b is None for b in below[:-1]):
            raise PolicyError("leverageTiers: the last tier (and only it) has no 'below'")
        bounded = [b for b in below if b is not None]
        if any(b2 <= b1 for b1, b2 in itertools.pairwise(bounded)):
            raise PolicyError("leverageTiers: 'below' must increase")


@dataclass(frozen=True)
class PhaseSpec:
    """Everything in ``TitanPhase.spec`` the core needs; ``phase_id`` is the resource name."""

    phase_id: str
    kind: PhaseKind
    enabled: bool = True
    symbols: tuple[str, ...] = ()
    venue: str = "paper"
    max_leverage: Decimal | None = None
    band_min: Decimal | None = None  # capitalBand override: weight 0 outside [min, max)
    band_max: Decimal | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def trades(self) -> bool:
        return self.kind in TRADING_KINDS


def _get(spec: Mapping[str, Any], key: str, default: Any) -> Any:
    value = spec.get(key, default)
    return default if value is None else value


def _section(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested mapping of the spec (absent = empty); anything else is a PolicyError naming it."""
    value = _get(spec, key, {})
    if not isinstance(value, Mapping):
        raise PolicyError(f"{key}: expected a mapping, got {type(value).__name__}")
    return value


def _spec(spec: Any) -> Mapping[str, Any]:
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise PolicyError(f"spec: expected a mapping, got {type(spec).__name__}")
    return spec


def _tiers(spec: Mapping[str, Any]) -> tuple[LeverageTier, ...]:
    tiers_spec = spec.get("leverageTiers")
    if not tiers_spec:
        return DEFAULT_TIERS
    if not isinstance(tiers_spec, list) or not all(isinstance(t, Mapping) for t in tiers_spec):
        raise PolicyError("leverageTiers: expected a list of {below, maxLeverage}")
    return tuple(
        LeverageTier(
            below=None if t.get("below") is None else dec(t["below"], f"leverageTiers[{i}].below"),
            max_leverage=_in(dec(t.get("maxLeverage"), f"leverageTiers[{i}].maxLeverage"),
                             Decimal(0), Decimal(125), f"leverageTiers[{i}].maxLeverage"),
        )
        for i, t in enumerate(tiers_spec)
    )


def parse_brain_spec(spec: Mapping[str, Any] | None) -> BrainPolicy:
    spec = _spec(spec)
    try:
        trading_state = TradingOverride(_get(spec, "tradingState", "Active"))
    except (ValueError, TypeError):
        raise PolicyError(f"tradingState: {spec.get('tradingState')!r} is not Active|Reducing|Halted") from None
    risk = _section(spec, "riskPolicy")
    edges = _section(spec, "bandEdges")
    bands = BandEdges(
        start_p2=dec(_get(edges, "startP2", 1500), "bandEdges.startP2"),
        full_p2=dec(_get(edges, "fullP2", 5000), "bandEdges.fullP2"),
        start_p3=dec(_get(edges, "startP3", 25000), "bandEdges.startP3"),
        hysteresis=dec(_get(edges, "hysteresis", "0.9"), "bandEdges.hysteresis"),
    )
    tiers = _tiers(spec)
    perf = _section(spec, "performance")
    performance = PerformancePolicy(
        window_s=_int(_get(perf, "windowSeconds", 7 * 24 * 3600), 3600, 90 * 24 * 3600, "performance.windowSeconds"),
        min_trades=_int(_get(perf, "minTrades", 10), 2, 10_000, "performance.minTrades"),
        slope=_in(dec(_get(perf, "slope", "0.1"), "performance.slope"), Decimal(0), Decimal(1), "performance.slope"),
        min_modifier=_in(dec(_get(perf, "minModifier", "0.5"), "performance.minModifier"),
                         Decimal(0), Decimal(1), "performance.minModifier"),
        max_modifier=_in(dec(_get(perf, "maxModifier", "1.2"), "performance.maxModifier"),
                         Decimal(1), Decimal(3), "performance.maxModifier"),
    )
    frac = (Decimal("0.001"), Decimal(1))
    return BrainPolicy(
        trading_state=trading_state,
        bands=bands,
        tiers=tiers,
        max_leverage=_in(dec(_get(risk, "maxLeverage", 10), "riskPolicy.maxLeverage"),
                         Decimal(0), Decimal(125), "riskPolicy.maxLeverage"),
        max_daily_drawdown=_in(dec(_get(risk, "maxDailyDrawdown", "0.15"), "riskPolicy.maxDailyDrawdown"),
                               *frac, "riskPolicy.maxDailyDrawdown"),
        max_drawdown=_in(dec(_get(risk, "maxDrawdown", "0.30"), "riskPolicy.maxDrawdown"),
                         *frac, "riskPolicy.maxDrawdown"),
        min_equity=_in(dec(_get(risk, "minEquity", 150), "riskPolicy.minEquity"),
                       Decimal(0), Decimal(10) ** 12, "riskPolicy.minEquity"),
        cautious_at=_in(dec(_get(risk, "cautiousAt", "0.5"), "riskPolicy.cautiousAt"),
                        Decimal("0.05"), Decimal(1), "riskPolicy.cautiousAt"),
        soft_losses=_int(_get(risk, "consecutiveLosses", 3), 1, 100, "riskPolicy.consecutiveLosses"),
        soft_window_s=_int(_get(risk, "lossWindowSeconds", 3600), 60, 7 * 86400, "riskPolicy.lossWindowSeconds"),
        soft_cooldown_s=_int(_get(risk, "softCooldownSeconds", 1800), 60, 7 * 86400,
                             "riskPolicy.softCooldownSeconds"),
        max_order_fraction=_in(dec(_get(risk, "maxOrderFraction", "0.25"), "riskPolicy.maxOrderFraction"),
                               *frac, "riskPolicy.maxOrderFraction"),
        max_orders_per_minute=_int(_get(risk, "maxOrdersPerMinute", 30), 1, 6000, "riskPolicy.maxOrdersPerMinute"),
        max_open_orders_per_symbol=_int(_get(risk, "maxOpenOrdersPerSymbol", 5), 1, 1000,
                                        "riskPolicy.maxOpenOrdersPerSymbol"),
        budget_ttl_s=_int(_get(risk, "budgetTtlSeconds", 30), 5, 3600, "riskPolicy.budgetTtlSeconds"),
        equity_stale_s=_int(_get(risk, "equityStaleSeconds", 300), 5, 86400, "riskPolicy.equityStaleSeconds"),
        initial_equity=_in(dec(_get(spec, "initialEquity", 1000), "initialEquity"),
                           Decimal(0), Decimal(10) ** 12, "initialEquity"),
        breaker_reset_token=str(_get(spec, "breakerResetToken", "")),
        performance=performance,
    )


def parse_phase_spec(name: str, spec: Mapping[str, Any] | None) -> PhaseSpec:
    spec = _spec(spec)
    try:
        kind = PhaseKind(str(spec.get("phase")))
    except ValueError:
        raise PolicyError(f"phase: {spec.get('phase')!r} is not one of {[k.value for k in PhaseKind]}") from None
    band = _section(spec, "capitalBand")
    lev = spec.get("maxLeverage")
    band_min = None if band.get("minEquity") is None else dec(band["minEquity"], "capitalBand.minEquity")
    band_max = None if band.get("maxEquity") is None else dec(band["maxEquity"], "capitalBand.maxEquity")
    if band_min is not None and band_max is not None and band_max <= band_min:
        raise PolicyError("capitalBand: maxEquity must exceed minEquity")
    symbols = _get(spec, "symbols", [])
    if not isinstance(symbols, list) or not all(isinstance(x, str) and x for x in symbols):
        raise PolicyError("symbols: expected a list of non-empty strings")
    enabled = _get(spec, "enabled", True)
    if not isinstance(enabled, bool):
        raise PolicyError(f"enabled: expected true or false, got {enabled!r}")
    params = _section(spec, "params")
    return PhaseSpec(
        phase_id=name,
        kind=kind,
        enabled=enabled,
        symbols=tuple(symbols),
        venue=str(_get(spec, "venue", "paper")),
        max_leverage=None if lev is None else _in(dec(lev, "maxLeverage"), Decimal(0), Decimal(125), "maxLeverage"),
        band_min=band_min,
        band_max=band_max,
        params=dict(params),
    )
