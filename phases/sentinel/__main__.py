"""Run the Sentinel: ``python -m titan.phases.sentinel`` (or ``titan phase run sentinel``).

Settings come from the environment (TITAN_NATS_URL, TITAN_NAMESPACE, TITAN_EXECUTION_HOST/PORT,
TITAN_HMAC_KEYS_DIR, TITAN_METRICS_PORT, TITAN_PHASE_ID); parameters from the TITAN_PARAMS KV bucket
(key = the phase id), falling back to ``--params FILE`` and then the defaults. The phase id is
``TITAN_PHASE_ID`` (the operator sets it to the TitanPhase's name) or ``sentinel``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from titan.core.clock import Clock, WallClock
from titan.phases.runtime.launch import phase_main
from titan.phases.sentinel.params import SentinelParams
from titan.phases.sentinel.strategy import PHASE_ID, SentinelStrategy


def make_strategy(
    params: Mapping[str, Any] | None = None, phase_id: str = PHASE_ID, clock: Clock | None = None
) -> SentinelStrategy:
    """The Sentinel on ``clock`` (the wall clock unless a driver injects its own)."""
    p = SentinelParams.model_validate(dict(params)) if params else SentinelParams()
    return SentinelStrategy(p, clock=clock or WallClock(), phase_id=phase_id)


def main(argv: list[str] | None = None) -> int:
    return phase_main(argv, name=PHASE_ID, description=__doc__, params_model=SentinelParams,
                      make_strategy=make_strategy)


if __name__ == "__main__":
    sys.exit(main())
