"""What the AI Quant may tune, and how it is configured.

* :class:`AiQuantParams` — the ``TitanPhase.spec.params`` of the ``ai-quant`` phase (model, sampling,
  walk-forward protocol, guardrail limits).
* :func:`tunable_space` — for a phase kind, the whitelisted fields of that phase's own pydantic
  params model with the bounds the model declares. Proposals, the response schema sent to Gemini and
  the Optuna search all come from this one space.
* :data:`RISK_FIELDS` — fields that belong to the risk policy: never tunable, whatever a whitelist says.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import annotated_types
import pydantic
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

from titan.phases.scavenger.params import ScavengerParams

# Annotation on a target TitanPhase that opts it into applying validated proposals automatically.
AUTO_MODE_ANNOTATION = "titan.trading/ai-quant-mode"


class Objective(enum.StrEnum):
    """What a walk-forward fold is scored by (all computed after fees and funding)."""

    SHARPE = "sharpe"
    SORTINO = "sortino"
    CALMAR = "calmar"


class AiQuantParams(BaseModel):
    """``TitanPhase.spec.params`` of the AI Quant (camelCase in YAML, snake_case in Python)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )

    # --- the model ---------------------------------------------------------------------------
    model: str = Field(default="gemini-2.5-flash", min_length=1, description="Gemini model name")
    api_version: Literal["v1beta", "v1"] = Field(default="v1beta", description="pinned REST API version")
    temperature: float = Field(default=0.2, ge=0, le=2)
    seed: int = Field(default=7, ge=0, le=2**31 - 1)
    max_output_tokens: int = Field(default=2048, ge=256, le=8192)
    request_timeout_s: float = Field(default=60.0, gt=0, le=600)
    max_attempts: int = Field(default=3, ge=1, le=6, description="tries per request (429/5xx/timeouts retried)")
    retry_initial_delay_s: float = Field(default=2.0, ge=0, le=60)
    retry_max_delay_s: float = Field(default=30.0, ge=0, le=300)
    proposal_interval_seconds: int = Field(default=86_400, ge=60, le=7 * 86_400)

    # --- what is summarised for the model ----------------------------------------------------
    lookback_days: int = Field(default=7, ge=1, le=90)
    max_trades: int = Field(default=2_000, ge=10, le=100_000)

    # --- guardrails ----------------------------------------------------------------------------
    max_relative_step: float = Field(default=0.5, gt=0, le=5, description="|new-old|/|old| per field")

    # --- walk-forward validation ---------------------------------------------------------------
    objective: Objective = Objective.SHARPE
    folds: int = Field(default=4, ge=2, le=24)
    min_improved_folds: int = Field(default=3, ge=1, le=24, description="m of K OOS folds must improve")
    max_drawdown_worsening: float = Field(
        default=0.10, ge=0, le=1, description="OOS max drawdown may grow by at most this fraction of the baseline's"
    )
    train_fraction: float = Field(default=0.6, gt=0, lt=1, description="of each fold's span, before its OOS part")
    optuna_trials: int = Field(default=30, ge=1, le=2_000)

    @pydantic.model_validator(mode="after")
    def _m_of_k(self) -> AiQuantParams:
        if self.min_improved_folds > self.folds:
            raise ValueError("minImprovedFolds must be <= folds")
        return self


# Fields of phase params that define risk, never tunable by the AI Quant (the TitanBrain's risk
# policy is out of reach anyway: only a TitanPhase's spec.params are ever written).
RISK_FIELDS: frozenset[str] = frozenset({
    "max_leverage",
    "max_position_size_percent",
    "high_vol_size_multiplier",
    "low_vol_size_multiplier",
    "max_consecutive_losses",
    "loss_cooldown_ms",
    "max_slippage_bps",
    "max_slippage_bps_perp_leads",
    "max_dispatch_failures",
    "blacklist_ms",
})

# The whitelist per phase kind: strategy fields only, each bounded on both sides in the phase's model.
TUNABLE_FIELDS: Mapping[str, tuple[type[BaseModel], tuple[str, ...]]] = {
    "scavenger": (
        ScavengerParams,
        (
            "min_trades_in_window",
            "volume_window_ms",
            "proximity",
            "confirmation_ms",
            "confirmation_tolerance",
            "min_burst_quality",
            "trap_cooldown_ms",
            "adx_trend_threshold",
            "extreme_velocity_threshold",
            "moderate_velocity_threshold",
            "stop_loss_percent",
            "target_percent",
        ),
    ),
}


class TunableKind(enum.StrEnum):
    INT = "int"
    FLOAT = "float"
    DECIMAL = "decimal"


@dataclass(frozen=True)
class Tunable:
    """One whitelisted field: its Python name, its TitanPhase (camelCase) key, type and bounds."""

    name: str
    key: str
    kind: TunableKind
    lower: float
    upper: float
    lower_inclusive: bool = True
    upper_inclusive: bool = True
    description: str = ""

    def within(self, value: float) -> bool:
        above = value >= self.lower if self.lower_inclusive else value > self.lower
        below = value <= self.upper if self.upper_inclusive else value < self.upper
        return above and below

    def coerce(self, value: float) -> int | float | Decimal:
        """The value in the params model's own type (Decimal through its shortest decimal text)."""
        if self.kind is TunableKind.INT:
            return int(value)
        if self.kind is TunableKind.DECIMAL:
            return Decimal(repr(float(value)))
        return float(value)


@dataclass(frozen=True)
class TunableSpace:
    phase_kind: str
    params_model: type[BaseModel]
    fields: tuple[Tunable, ...]

    def by_key(self) -> dict[str, Tunable]:
        return {t.key: t for t in self.fields}

    def current(self, raw_params: Mapping[str, Any]) -> dict[str, int | float | Decimal]:
        """The tunable values of a phase's (camelCase) spec.params, defaults filled in by its model."""
        model = self.params_model.model_validate(dict(raw_params))
        return {t.key: getattr(model, t.name) for t in self.fields}


class TunableError(ValueError):
    """A whitelist entry that cannot be tuned safely (names the phase and field)."""


def _kind(annotation: Any) -> TunableKind:
    if annotation is int:
        return TunableKind.INT
    if annotation is float:
        return TunableKind.FLOAT
    if annotation is Decimal:
        return TunableKind.DECIMAL
    raise TunableError(f"type {annotation!r} is not a number")


def _bounds(info: pydantic.fields.FieldInfo) -> tuple[float | None, bool, float | None, bool]:
    lower: float | None = None
    upper: float | None = None
    lower_inclusive = upper_inclusive = True
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            lower, lower_inclusive = float(meta.ge), True  # type: ignore[arg-type]
        elif isinstance(meta, annotated_types.Gt):
            lower, lower_inclusive = float(meta.gt), False  # type: ignore[arg-type]
        elif isinstance(meta, annotated_types.Le):
            upper, upper_inclusive = float(meta.le), True  # type: ignore[arg-type]
        elif isinstance(meta, annotated_types.Lt):
            upper, upper_inclusive = float(meta.lt), False  # type: ignore[arg-type]
    return lower, lower_inclusive, upper, upper_inclusive


def tunable_space(phase_kind: str) -> TunableSpace:
    """The whitelisted fields of ``phase_kind``'s params model with the model's own bounds."""
    try:
        model, names = TUNABLE_FIELDS[phase_kind]
    except KeyError:
        raise TunableError(
            f"phase {phase_kind!r} has no tunable fields; tunable phases: {', '.join(sorted(TUNABLE_FIELDS))}"
        ) from None
    fields = []
    for name in names:
        if name in RISK_FIELDS:
            raise TunableError(f"{phase_kind}.{name} belongs to the risk policy and cannot be tuned")
        info = model.model_fields.get(name)
        if info is None:
            raise TunableError(f"{phase_kind} params have no field {name!r}")
        lower, lower_inclusive, upper, upper_inclusive = _bounds(info)
        if lower is None or upper is None:
            raise TunableError(f"{phase_kind}.{name} must be bounded on both sides in its params model")
        fields.append(Tunable(
            name=name, key=info.alias or name, kind=_kind(info.annotation), lower=lower, upper=upper,
            lower_inclusive=lower_inclusive, upper_inclusive=upper_inclusive, description=info.description or "",
        ))
    return TunableSpace(phase_kind, model, tuple(fields))


def _schema_field(tunable: Tunable) -> tuple[Any, Any]:
    """Gemini's schema knows only inclusive ``minimum``/``maximum``: an exclusive bound is sent as
    inclusive and said in the description; the guardrail enforces it exactly."""
    notes = [tunable.description] if tunable.description else []
    if not tunable.lower_inclusive:
        notes.append(f"must be greater than {tunable.lower:g}")
    if not tunable.upper_inclusive:
        notes.append(f"must be less than {tunable.upper:g}")
    python_type: type = int if tunable.kind is TunableKind.INT else float
    return python_type, Field(..., description="; ".join(notes) or None, ge=tunable.lower, le=tunable.upper)


def response_model(space: TunableSpace) -> type[BaseModel]:
    """The structured answer Gemini must give: every tunable field (camelCase, bounded) and a rationale.

    Sent as the request's response schema; the SDK validates the answer against it (and sets
    ``parsed=None`` when that fails, which the caller detects). Unknown keys are not forbidden in the
    schema (the service's schema dialect has no such switch): the guardrail refuses them."""
    params_model = create_model(  # type: ignore[call-overload]
        f"{to_camel(space.phase_kind).capitalize()}TunableParams",
        **{t.key: _schema_field(t) for t in space.fields},
    )
    return create_model(
        f"{to_camel(space.phase_kind).capitalize()}Proposal",
        params=(params_model, Field(..., description="every tunable parameter; unchanged ones keep their value")),
        rationale=(str, Field(..., description="which losing pattern the change addresses and why")),
    )
