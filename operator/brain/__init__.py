"""The Brain's pure core: allocation, leverage tiers, performance tilt, risk state and breakers.

No kopf, no I/O: the kopf operator (titan.operator.kopf_app) and the local driver
(titan.operator.local) are thin shells around :class:`BrainCore`.
"""

from titan.operator.brain.allocation import allocate, band_level, base_weights, tier_cap
from titan.operator.brain.breakers import BreakerChange, BreakerKind, Breakers
from titan.operator.brain.engine import (
    BrainCore,
    Decision,
    PhaseDecision,
    PhaseStateName,
    RiskState,
    TradingModeName,
    breaker_event,
    utc_day,
)
from titan.operator.brain.performance import PerformanceTracker, Trade
from titan.operator.brain.policy import (
    BandEdges,
    BrainPolicy,
    PhaseKind,
    PhaseSpec,
    PolicyError,
    TradingOverride,
    parse_brain_spec,
    parse_phase_spec,
)

__all__ = [
    "BandEdges",
    "BrainCore",
    "BrainPolicy",
    "BreakerChange",
    "BreakerKind",
    "Breakers",
    "Decision",
    "PerformanceTracker",
    "PhaseDecision",
    "PhaseKind",
    "PhaseSpec",
    "PhaseStateName",
    "PolicyError",
    "RiskState",
    "Trade",
    "TradingModeName",
    "TradingOverride",
    "allocate",
    "band_level",
    "base_weights",
    "breaker_event",
    "parse_brain_spec",
    "parse_phase_spec",
    "tier_cap",
    "utc_day",
]
