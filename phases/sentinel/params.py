"""Typed, bounded parameters of the Sentinel (``TitanPhase.spec.params`` for phase "sentinel").

Defaults follow the original (reference §3.3-§3.7) with its defects fixed: the spot and perp quotes
are keyed by (venue, instrument kind) instead of by a substring of the gateway name, funding is an
input (the original's funding APY was a constant 0), CONTRACT needs a position, the risk limits are
ratios (the original passed a USD amount as a delta ratio), and entries are decided on the carry
left after both legs' fees and the expected slippage. Unknown keys are refused.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

HedgePolicy = Literal["complete", "unwind"]


class SentinelParams(BaseModel):
    # TitanPhase.spec.params use Kubernetes' camelCase (minBasisBps); Python code uses snake_case.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )

    # --- universe and routing ----------------------------------------------------------------
    symbols: list[str] = Field(default_factory=lambda: ["BTCUSDT"], min_length=1, max_length=50)
    spot_venue: str = Field(default="sim", min_length=1, description="market-data venue of the spot leg")
    perp_venue: str = Field(default="sim", min_length=1, description="market-data venue of the perp leg")
    order_venue: str = Field(default="", description="Leg.venue of both legs ('' = the market-data venues)")

    # --- basis statistics (§3.3) ---------------------------------------------------------------
    sample_interval_ms: int = Field(default=60_000, ge=100, le=3_600_000, description="one basis sample per interval")
    window_size: int = Field(default=60, ge=5, le=10_000, description="samples in the rolling window")
    min_samples: int = Field(default=10, ge=2, le=10_000)
    expand_z: float = Field(default=2.0, ge=-10, le=10, description="basis z-score that opens/expands")
    contract_z: float = Field(default=0.0, ge=-10, le=10, description="basis z-score at which the spread converged")
    min_confidence: float = Field(default=0.7, ge=0, le=1)
    depth_size_quote: Decimal = Field(default=Decimal("10000"), gt=0, description="size the book is walked for")
    max_spread_bps: Decimal = Field(default=Decimal("5"), gt=0, le=1000, description="spot spread liquidity gate")

    # --- entry economics ----------------------------------------------------------------------
    min_basis_bps: Decimal = Field(default=Decimal("10"), ge=0, le=10_000,
                                   description="executable basis below this does not enter")
    max_basis_bps: Decimal = Field(default=Decimal("200"), gt=0, le=10_000,
                                   description="basis beyond this is a dislocation: no entry")
    min_carry_apr: Decimal = Field(default=Decimal("0.10"), ge=0, le=10,
                                   description="annualised carry after costs that an entry must clear")
    expected_holding_hours: Decimal = Field(default=Decimal("72"), gt=0, le=24 * 365,
                                            description="the basis and the round-trip costs are spread over this")
    spot_taker_fee_bps: Decimal = Field(default=Decimal("10"), ge=0, le=100)
    perp_taker_fee_bps: Decimal = Field(default=Decimal("5"), ge=0, le=100)
    expected_slippage_bps: Decimal = Field(default=Decimal("2"), ge=0, le=100, description="per leg and side")

    # --- sizing (§3.5) -------------------------------------------------------------------------
    target_fraction: Decimal = Field(default=Decimal("0.5"), gt=0, le=1,
                                     description="hedged notional per symbol as a share of the budget")
    clip_fraction: Decimal = Field(default=Decimal("0.1"), gt=0, le=1, description="one EXPAND, share of the budget")
    volatile_clip_factor: Decimal = Field(default=Decimal("0.5"), ge=0, le=1)
    leverage: Decimal = Field(default=Decimal("2"), ge=1, le=3)

    # --- execution of the hedged unit -----------------------------------------------------------
    hedge_policy: HedgePolicy = Field(default="complete",
                                      description="a leg short of its twin: complete the hedge or unwind")
    max_slippage_bps: int = Field(default=20, ge=1, le=500, description="re-quotes stay within this")
    leg_deadline_ms: int = Field(default=5_000, ge=100, le=120_000, description="a leg unfilled by then is handled")
    ttl_ms: int = Field(default=10_000, ge=100, le=120_000)
    signal_cooldown_ms: int = Field(default=60_000, ge=0, le=86_400_000, description="per symbol, between signals")

    # --- exits -------------------------------------------------------------------------------
    max_holding_hours: Decimal = Field(default=Decimal("336"), gt=0, le=24 * 365)
    blowout_bps: Decimal = Field(default=Decimal("200"), gt=0, le=10_000,
                                 description="|basis - entry basis| beyond this closes (stop)")
    exit_on_funding_flip: bool = True
    funding_flip_periods: int = Field(default=2, ge=1, le=100,
                                      description="consecutive negative settled rates that close the position")

    crash_drop: float = Field(default=0.05, gt=0, le=1, description="spot fall from the window high: CRASH")
    volatile_return_sd: float = Field(default=0.004, gt=0, le=1, description="per-sample return sd: VOLATILE")

    # --- hedge monitor and risk (§3.7) -----------------------------------------------------------
    delta_tolerance: Decimal = Field(default=Decimal("0.02"), gt=0, le=1,
                                     description="|net delta| / hedged notional above this rebalances")
    max_delta_ratio: Decimal = Field(default=Decimal("0.02"), gt=0, le=1, description="|delta| / equity: no entry")
    critical_delta_ratio: Decimal = Field(default=Decimal("0.05"), gt=0, le=1, description="|delta| / equity: unwind")
    max_gross_leverage: Decimal = Field(default=Decimal("3"), gt=0, le=20)
    daily_drawdown_limit: Decimal = Field(default=Decimal("0.05"), gt=0, le=1)
    critical_drawdown: Decimal = Field(default=Decimal("0.10"), gt=0, le=1)
    liquidation_atrs: Decimal = Field(default=Decimal("8"), gt=0, le=100,
                                      description="the perp's liquidation price stays this many ATRs away")
    maintenance_margin_rate: Decimal = Field(default=Decimal("0.005"), ge=0, lt=1, description="the venue's, for liq.")
    atr_samples: int = Field(default=14, ge=2, le=1000, description="ATR over this many basis samples' ranges")

    @model_validator(mode="after")
    def _consistent(self) -> SentinelParams:
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be unique")
        if self.min_samples > self.window_size:
            raise ValueError("min_samples must be <= window_size")
        if self.contract_z >= self.expand_z:
            raise ValueError("contract_z must be below expand_z")
        if self.min_basis_bps >= self.max_basis_bps:
            raise ValueError("min_basis_bps must be below max_basis_bps")
        if self.max_delta_ratio > self.critical_delta_ratio:
            raise ValueError("max_delta_ratio must be <= critical_delta_ratio")
        if self.daily_drawdown_limit > self.critical_drawdown:
            raise ValueError("daily_drawdown_limit must be <= critical_drawdown")
        if self.clip_fraction > self.target_fraction:
            raise ValueError("clip_fraction must be <= target_fraction")
        return self
