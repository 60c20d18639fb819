"""The runnable phases, registered in one place.

``titan phase list|run``, ``titan up`` and the backtest driver look phases up here, so adding a
phase means adding one :class:`PhaseKind` below. Each entry names the phase as a TitanPhase's
``spec.phase``, its parameter model, a factory for its pure strategy on an injected clock, and the
process entry point. Strategy and process modules are imported only when first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pydantic

from titan.core.clock import Clock
from titan.phases.hunter.params import HunterParams
from titan.phases.runtime.contract import Strategy
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.sentinel.params import SentinelParams

StrategyFactory = Callable[[Mapping[str, Any] | None, str, Clock], Strategy]


@dataclass(frozen=True)
class PhaseKind:
    name: str                                   # TitanPhase spec.phase, e.g. "scavenger"
    params_model: type[pydantic.BaseModel]
    make_strategy: StrategyFactory              # (params, phase_id, clock)
    main: Callable[[list[str]], int]            # the phase's ``__main__.main``


def _entry(module: str, attr: str) -> Callable[..., Any]:
    """A function of ``module`` imported on first call (the strategy and process modules are heavy)."""

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(*args)

    call.__name__ = attr
    call.__qualname__ = f"{module}.{attr}"
    return call


def _kind(name: str, params_model: type[pydantic.BaseModel]) -> PhaseKind:
    module = f"titan.phases.{name}.__main__"
    return PhaseKind(name, params_model, _entry(module, "make_strategy"), _entry(module, "main"))


PHASES: Mapping[str, PhaseKind] = MappingProxyType({
    kind.name: kind
    for kind in (
        _kind("scavenger", ScavengerParams),
        _kind("hunter", HunterParams),
        _kind("sentinel", SentinelParams),
    )
})


def names() -> list[str]:
    """The runnable phases, sorted."""
    return sorted(PHASES)


def get(name: str) -> PhaseKind:
    """The phase called ``name``; a KeyError naming the known ones otherwise."""
    try:
        return PHASES[name]
    except KeyError:
        raise KeyError(f"unknown phase {name!r}; known phases: {', '.join(names())}") from None
