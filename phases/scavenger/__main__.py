"""Run the Scavenger: ``python -m titan.phases.scavenger`` (or ``titan phase run scavenger``).

Settings come from the environment (TITAN_NATS_URL, TITAN_NAMESPACE, TITAN_EXECUTION_HOST/PORT,
TITAN_HMAC_KEYS_DIR, TITAN_METRICS_PORT, TITAN_PHASE_ID); parameters from the TITAN_PARAMS KV bucket
(key = the phase id), falling back to ``--params FILE`` and then the defaults. The phase id is
``TITAN_PHASE_ID`` (the operator sets it to the TitanPhase's name) or ``scavenger``: budgets, params,
the HMAC key file ``<id>.key`` and the signals' ``phase_id`` all use it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from titan.core.clock import Clock, WallClock
from titan.phases.runtime.launch import phase_main
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.strategy import PHASE_ID, ScavengerStrategy


def make_strategy(
    params: Mapping[str, Any] | None = None, phase_id: str = PHASE_ID, clock: Clock | None = None
) -> ScavengerStrategy:
    """The Scavenger on ``clock`` (the wall clock unless a driver injects its own)."""
    p = ScavengerParams.model_validate(dict(params)) if params else ScavengerParams()
    return ScavengerStrategy(p, clock=clock or WallClock(), phase_id=phase_id)


def main(argv: list[str] | None = None) -> int:
    return phase_main(argv, name=PHASE_ID, description=__doc__, params_model=ScavengerParams,
                      make_strategy=make_strategy)


if __name__ == "__main__":
    sys.exit(main())
