"""Run the Sentinel: ``python -m titan.phases.sentinel`` (or ``titan phase run sentinel``).

Settings come from the environment (TITAN_NATS_URL, TITAN_NAMESPACE, TITAN_EXECUTION_HOST/PORT,
TITAN_HMAC_KEYS_DIR, TITAN_METRICS_PORT, TITAN_PHASE_ID); parameters from the TITAN_PARAMS KV bucket
(key = the phase id), falling back to ``--params FILE`` and then the defaults. The phase id is
``TITAN_PHASE_ID`` (the operator sets it to the TitanPhase's name) or ``sentinel``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from titan.core.clock import Clock, WallClock
from titan.core.config import ConfigError, load_settings
from titan.phases.runtime.launch import LaunchError, load_key, load_params_file, run_phase, runtime_config
from titan.phases.sentinel.params import SentinelParams
from titan.phases.sentinel.strategy import PHASE_ID, SentinelStrategy


def make_strategy(
    params: Mapping[str, Any] | None = None, phase_id: str = PHASE_ID, clock: Clock | None = None
) -> SentinelStrategy:
    """The Sentinel on ``clock`` (the wall clock unless a driver injects its own)."""
    p = SentinelParams.model_validate(dict(params)) if params else SentinelParams()
    return SentinelStrategy(p, clock=clock or WallClock(), phase_id=phase_id)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="titan-sentinel", description=__doc__)
    ap.add_argument("--params", type=Path, help="initial parameters (JSON or YAML) until KV has some")
    ap.add_argument("--key-file", type=Path, help="the phase's HMAC key (default: TITAN_HMAC_KEYS_DIR/<id>.key)")
    ap.add_argument("--execution", help="execution host:port (default: TITAN_EXECUTION_HOST:PORT)")
    ap.add_argument("--http-port", type=int, help="/metrics and /healthz port (default: TITAN_METRICS_PORT)")
    args = ap.parse_args(argv)
    try:
        settings = load_settings()
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        phase_id = settings.phase_id or PHASE_ID
        key = load_key(phase_id, settings, args.key_file)
        params = load_params_file(args.params)
        if params is not None:
            SentinelParams.model_validate(params)  # fail at start, not later
        config = runtime_config(phase_id, settings, key, execution=args.execution, http_port=args.http_port)
        asyncio.run(run_phase(functools.partial(make_strategy, phase_id=phase_id), config, params))
    except (ConfigError, LaunchError, ValueError, OSError) as err:
        print(f"sentinel: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
