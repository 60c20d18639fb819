"""Typed, bounded parameters of the Hunter (``TitanPhase.spec.params`` for phase "hunter").

Defaults are the original's (reference §2.5, §2.10, §2.12, §2.14) with its defects fixed: shorts
need CVD distribution (the original accepted absorption for both), the RS filter does not apply
to the reference symbol itself (BTC's RS against BTC is always 0, so BTC could never trade), stops
sit beyond the structure instead of a fixed 1.5 %, and confidence is on the 0..1 scale. Unknown
keys are refused so a typo in a TitanPhase never silently falls back to a default.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from titan.core.marketdata.candles import timeframe_ns

SessionName = Literal["ASIAN", "LONDON", "NY", "DEAD_ZONE"]


class HunterParams(BaseModel):
    # TitanPhase.spec.params use Kubernetes' camelCase (minContextScore); Python code uses snake_case.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )

    # --- universe and routing ----------------------------------------------------------------
    symbols: list[str] = Field(default_factory=lambda: ["BTCUSDT"], min_length=1, max_length=50)
    venue: str = Field(default="sim", min_length=1, description="market-data venue of the traded perp")
    order_venue: str = Field(default="", description="Leg.venue of the signals ('' = `venue`)")
    reference_symbol: str = Field(default="BTCUSDT", description="relative strength is measured against it")

    # --- structure -----------------------------------------------------------------------------
    base_timeframe: str = Field(default="1m", description="closed candles of this timeframe feed every engine")
    bias_timeframe: str = Field(default="1d", description="daily bias (trend)")
    location_timeframe: str = Field(default="4h", description="dealing range and premium/discount")
    timeframe: str = Field(default="15m", description="trigger timeframe: MSS, POIs, entries")
    fractal_bars: int = Field(default=2, ge=1, le=10, description="bars each side of a swing (2 = 5-bar fractal)")
    history_bars: int = Field(default=500, ge=50, le=5000, description="bars kept per timeframe")
    range_bars: int = Field(default=200, ge=10, le=5000, description="swings of this many bars form the dealing range")
    location_tolerance: Decimal = Field(default=Decimal("0.05"), ge=0, le=Decimal("0.5"))

    # --- scoring (§2.5) ------------------------------------------------------------------------
    weight_daily: float = Field(default=0.40, ge=0, le=1)
    weight_location: float = Field(default=0.25, ge=0, le=1)
    weight_flow: float = Field(default=0.15, ge=0, le=1)
    weight_oracle: float = Field(default=0.20, ge=0, le=1, description="no oracle: its component is neutral 50")
    grade_a_plus: float = Field(default=80, ge=0, le=100)
    grade_a: float = Field(default=70, ge=0, le=100)
    grade_b: float = Field(default=60, ge=0, le=100)
    grade_c: float = Field(default=50, ge=0, le=100)
    min_context_score: float = Field(default=60, ge=0, le=100, description="minAlignmentScore for grade B")
    max_volatility: float = Field(default=80, ge=0, le=100, description="volatility index veto at equilibrium")

    # --- entry (§2.10) ----------------------------------------------------------------------------
    entry_sessions: list[SessionName] = Field(default=["LONDON", "NY"], min_length=1)
    rs_threshold: float = Field(default=0.01, ge=0, le=1)
    poi_proximity: Decimal = Field(default=Decimal("0.005"), gt=0, le=Decimal("0.05"))
    require_cvd_confirmation: bool = True
    min_cvd_confidence: float = Field(default=70, ge=0, le=100)
    cvd_source: Literal["trades", "candles"] = Field(
        default="trades", description="trades: notional taker flow; candles: base candles' volume signed by body")
    cvd_window_ms: int = Field(default=300_000, ge=10_000, le=3_600_000)
    cvd_sample_ms: int = Field(default=300_000, ge=10_000, le=3_600_000)
    cvd_max_age_ms: int = Field(default=900_000, ge=0, le=86_400_000, description="a flow signal stays valid")
    stop_buffer_atr: float = Field(default=0.25, ge=0, le=5, description="stop this many trigger ATRs beyond the POI")
    min_stop_percent: Decimal = Field(default=Decimal("0.003"), gt=0, le=Decimal("0.05"))
    max_stop_percent: Decimal = Field(default=Decimal("0.03"), gt=0, le=Decimal("0.2"))
    target_r: Decimal = Field(default=Decimal("3"), ge=1, le=20, description="target without opposing liquidity")
    min_liquidity_r: Decimal = Field(default=Decimal("1.5"), ge=Decimal("0.5"), le=20,
                                     description="opposing liquidity nearer than this many R is skipped")
    risk_per_trade: Decimal = Field(default=Decimal("0.015"), gt=0, le=Decimal("0.1"))
    leverage: Decimal = Field(default=Decimal("3"), ge=1, le=5)
    max_slippage_bps: int = Field(default=30, ge=1, le=1000)
    ttl_ms: int = Field(default=10_000, ge=100, le=120_000)
    max_candle_age_ms: int = Field(
        default=180_000, ge=1_000, le=86_400_000,
        description="no entry on a candle that closed longer ago than this (history replayed at start)")
    signal_cooldown_ms: int = Field(default=3_600_000, ge=0, le=7 * 86_400_000, description="per symbol")

    # --- position management (§2.12) -----------------------------------------------------------
    breakeven_r: Decimal = Field(default=Decimal("1.5"), gt=0, le=20)
    partial_r: Decimal = Field(default=Decimal("2"), gt=0, le=20)
    partial_fraction: Decimal = Field(default=Decimal("0.5"), gt=0, lt=1)
    trail_atr: float = Field(default=1.0, gt=0, le=10)
    tighten_after_hours: int = Field(default=48, ge=1, le=720)
    tightened_trail_atr: float = Field(default=0.5, gt=0, le=10)
    max_consecutive_losses: int = Field(default=3, ge=1, le=100)
    loss_cooldown_ms: int = Field(default=86_400_000, ge=0, le=7 * 86_400_000)

    @model_validator(mode="after")
    def _consistent(self) -> HunterParams:
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be unique")
        base = timeframe_ns(self.base_timeframe)
        for name in ("bias_timeframe", "location_timeframe", "timeframe"):
            tf = timeframe_ns(getattr(self, name))
            if tf % base:
                raise ValueError(f"{name} {getattr(self, name)!r} is not a multiple of base_timeframe")
        if not self.grade_c <= self.grade_b <= self.grade_a <= self.grade_a_plus:
            raise ValueError("grades must be ordered: gradeC <= gradeB <= gradeA <= gradeAPlus")
        if self.min_stop_percent > self.max_stop_percent:
            raise ValueError("min_stop_percent must be <= max_stop_percent")
        if self.breakeven_r > self.partial_r:
            raise ValueError("breakeven_r must be <= partial_r")
        if abs(self.weight_daily + self.weight_location + self.weight_flow + self.weight_oracle - 1) > 1e-6:
            raise ValueError("the four weights must sum to 1")
        return self
