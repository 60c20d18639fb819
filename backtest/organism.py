"""The organism a backtest runs, read from the same TitanBrain/TitanPhase YAML that `titan up` reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from titan.operator.brain import BrainPolicy, PhaseSpec, PolicyError, parse_brain_spec, parse_phase_spec
from titan.operator.local import ManifestError, load_manifests
from titan.phases import registry

SAMPLES = Path(__file__).resolve().parents[1] / "crds" / "samples"


class OrganismError(ValueError):
    """The YAML does not describe an organism this build can backtest; the message names the file
    or resource and the field."""


@dataclass(frozen=True)
class PhasePlan:
    """One phase that runs: its TitanPhase (id = resource name), kind and effective params."""

    spec: PhaseSpec
    kind: registry.PhaseKind
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def phase_id(self) -> str:
        return self.spec.phase_id


@dataclass(frozen=True)
class Organism:
    brain_name: str
    policy: BrainPolicy
    specs: tuple[PhaseSpec, ...]          # every TitanPhase (the Brain allocates over all of them)
    runs: tuple[PhasePlan, ...]           # those that run as strategies
    skipped: tuple[str, ...]              # enabled but not runnable by this build (or filtered out)

    @property
    def initial_equity(self) -> Decimal:
        return self.policy.initial_equity


def load_organism(
    directory: Path | None,
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    only: tuple[str, ...] | None = None,
    initial_equity: Decimal | None = None,
) -> Organism:
    """Read the organism; ``params`` overrides a phase's ``spec.params`` (validated by the phase's
    own model), ``only`` keeps only these phase ids trading, ``initial_equity`` overrides
    ``TitanBrain.spec.initialEquity``."""
    path = directory if directory is not None else SAMPLES
    if not path.exists():
        raise OrganismError(f"{path}: no such organism folder")
    try:
        manifests = load_manifests([path])
    except ManifestError as exc:
        raise OrganismError(f"{path}: {exc}") from None
    brain_spec = dict(manifests.brain_spec)
    if initial_equity is not None:
        brain_spec["initialEquity"] = str(initial_equity)
    try:
        policy = parse_brain_spec(brain_spec)
    except PolicyError as exc:
        raise OrganismError(f"TitanBrain {manifests.brain_name}: {exc}") from None
    specs: list[PhaseSpec] = []
    runs: list[PhasePlan] = []
    skipped: list[str] = []
    overrides = dict(params or {})
    unknown = set(overrides) - set(manifests.phases)
    if unknown:
        raise OrganismError(f"params given for phases not in {path}: {', '.join(sorted(unknown))}")
    missing = sorted(set(only or ()) - set(manifests.phases))
    if missing:
        raise OrganismError(f"--phase names phases not in {path}: {', '.join(missing)}")
    for name, raw in sorted(manifests.phases.items()):
        try:
            spec = parse_phase_spec(name, raw)
        except PolicyError as exc:
            raise OrganismError(f"TitanPhase {name}: {exc}") from None
        if name in overrides:
            spec = dataclasses.replace(spec, params=dict(overrides[name]))
        specs.append(spec)
        if not spec.enabled:
            continue
        if (only is not None and name not in only) or spec.kind.value not in registry.PHASES:
            skipped.append(name)
            continue
        kind = registry.get(spec.kind.value)
        try:
            kind.params_model.model_validate(dict(spec.params))
        except ValueError as exc:
            raise OrganismError(f"TitanPhase {name}: spec.params: {_one_line(exc)}") from None
        runs.append(PhasePlan(spec, kind, dict(spec.params)))
    return Organism(manifests.brain_name, policy, tuple(specs), tuple(runs), tuple(skipped))


def _one_line(exc: Exception) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


__all__ = ["SAMPLES", "Organism", "OrganismError", "PhasePlan", "load_organism"]
