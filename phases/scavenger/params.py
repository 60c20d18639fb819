"""Typed, bounded parameters of the Scavenger (``TitanPhase.spec.params`` for phase "scavenger").

Defaults are the original system's (reference §1.11) with its defects fixed: confidences are on the
0..1 scale, there is no "ghost mode", and the size multipliers are applied. Unknown keys are refused
so a typo in a TitanPhase never silently falls back to a default.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class ScavengerParams(BaseModel):
    # TitanPhase.spec.params use Kubernetes' camelCase (minTradesInWindow); Python code uses snake_case.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )

    # --- universe and routing ----------------------------------------------------------------
    symbols: list[str] = Field(default_factory=lambda: ["BTCUSDT"], min_length=1, max_length=50)
    venue: str = Field(default="sim", min_length=1, description="market-data venue of the traded perp")
    order_venue: str = Field(
        default="", description="Leg.venue of the signals ('' = `venue`: execution keys instruments by the "
        "market-data venue they trade on)"
    )
    burst_venue: str = Field(default="", description="venue whose trades feed burst detection ('' = any)")
    burst_instrument: Literal["any", "spot", "perp"] = Field(
        default="any", description="instrument whose trades feed burst detection, velocity and CVD (the original "
        "watched spot). Name one where both trade: spot and perp print a basis apart, and interleaving the two "
        "series makes the acceleration veto fire on the gap between them"
    )
    spot_venue: str = Field(default="", description="venue of the spot price for the basis detector ('' = any)")

    # --- generator ("web") -------------------------------------------------------------------
    update_interval_ms: int = Field(default=60_000, ge=10_000, le=300_000)
    structure_timeframe: Literal["1m", "5m", "15m", "1h", "4h"] = Field(
        default="1h", description="candles the range, ATR, ADX and clusters are computed on (the original: 1h)"
    )
    structure_bars: int = Field(default=50, ge=30, le=500, description="hourly candles for range/ATR/ADX/cluster")
    adx_period: int = Field(default=14, ge=2, le=50)
    adx_trend_threshold: float = Field(default=25.0, ge=0, le=100)
    structure_confidence: float = Field(default=0.80, ge=0, le=1)
    pullback_confidence: float = Field(default=0.75, ge=0, le=1)
    liquidation_confidence: float = Field(default=0.95, ge=0, le=1)
    daily_level_confidence: float = Field(default=0.85, ge=0, le=1)
    bollinger_confidence: float = Field(default=0.90, ge=0, le=1)
    oi_wipeout_confidence: float = Field(default=0.95, ge=0, le=1)
    funding_squeeze_confidence: float = Field(default=0.90, ge=0, le=1)
    basis_confidence: float = Field(default=0.85, ge=0, le=1)
    oi_wipeout_price_drop: Decimal = Field(default=Decimal("0.03"), gt=0, le=1)
    oi_wipeout_oi_drop: Decimal = Field(default=Decimal("0.20"), gt=0, le=1)
    funding_squeeze_threshold: Decimal = Field(default=Decimal("-0.0002"), le=0)
    basis_threshold: Decimal = Field(default=Decimal("0.005"), gt=0, le=1)
    basis_min_volume: Decimal = Field(default=Decimal("1000000"), ge=0)
    high_vol_size_multiplier: Decimal = Field(default=Decimal("1"), gt=0, le=1)
    low_vol_size_multiplier: Decimal = Field(default=Decimal("1"), gt=0, le=1)

    # --- detector ("spider") -----------------------------------------------------------------
    min_trades_in_window: int = Field(default=50, ge=1, le=1000, description="minTradesIn100ms")
    volume_window_ms: int = Field(default=100, ge=10, le=1000)
    proximity: Decimal = Field(default=Decimal("0.001"), gt=0, le=Decimal("0.05"), description="0.1% of the trigger")
    confirmation_ms: int = Field(default=200, ge=0, le=5_000)
    confirmation_tolerance: Decimal = Field(default=Decimal("0.0005"), ge=0, le=Decimal("0.01"))
    max_confirmation_lag_ms: int = Field(default=1_000, ge=0, le=60_000, description="a later check is stale")

    # --- executor ("bite") -------------------------------------------------------------------
    min_burst_quality: Decimal = Field(default=Decimal("0.3"), ge=0, le=1)
    symbol_cooldown_ms: int = Field(default=1_000, ge=0, le=3_600_000)
    trap_cooldown_ms: int = Field(default=300_000, ge=0, le=86_400_000)
    extreme_velocity_threshold: float = Field(default=0.005, ge=0, le=0.1)
    moderate_velocity_threshold: float = Field(default=0.001, ge=0, le=0.05)
    high_vol_velocity_factor: float = Field(default=1.5, gt=0, le=10)
    low_vol_velocity_factor: float = Field(default=0.8, gt=0, le=10)
    aggressive_limit_markup: Decimal = Field(default=Decimal("0.002"), ge=0, le=Decimal("0.01"))
    passive_limit_markup: Decimal = Field(default=Decimal("0.0001"), ge=0, le=Decimal("0.01"))
    max_leverage: Decimal = Field(default=Decimal("20"), ge=1, le=100)
    max_position_size_percent: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)
    stop_loss_percent: Decimal = Field(default=Decimal("0.01"), ge=Decimal("0.001"), le=Decimal("0.1"))
    target_percent: Decimal = Field(default=Decimal("0.03"), ge=Decimal("0.001"), le=Decimal("0.5"))
    max_slippage_bps: int = Field(default=50, ge=1, le=1000)
    max_slippage_bps_perp_leads: int = Field(default=30, ge=1, le=1000)
    ttl_ms: int = Field(default=5_000, ge=100, le=60_000)
    max_dispatch_failures: int = Field(default=3, ge=1, le=100)
    blacklist_ms: int = Field(default=300_000, ge=0, le=86_400_000)

    # --- kill condition ----------------------------------------------------------------------
    max_consecutive_losses: int = Field(default=5, ge=1, le=100, description="more than this many → cool-down")
    loss_cooldown_ms: int = Field(default=3_600_000, ge=0, le=7 * 86_400_000)

    @model_validator(mode="after")
    def _ordered(self) -> ScavengerParams:
        if self.moderate_velocity_threshold > self.extreme_velocity_threshold:
            raise ValueError("moderate_velocity_threshold must be <= extreme_velocity_threshold")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be unique")
        return self
