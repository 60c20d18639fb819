"""Issue check: the simulator → market-data gateway → Scavenger process → execution (paper) over gRPC
→ fills in PostgreSQL, on real NATS, in well under a minute. The seeded simulator plays 72 h of history
and then, 20 s after the gateway starts, a scripted stop-run: each symbol's perp breaks its range
extreme on a dense burst (``SimConfig.scripted_runs_s``), which the shipped Scavenger trades."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from titan.core.catalog import Catalog

from .chain import organism
from .scenario import SAMPLES, write_organism

pytestmark = pytest.mark.slow

SIM_SEED = 1
STOP_RUN_S = 20  # the scripted stop-run: after the history prelude has passed, well inside a minute
# The shipped Scavenger: the sample TitanPhase's params, on the simulator's venue (its default).
SIM_PARAMS: dict[str, Any] = yaml.safe_load((SAMPLES / "titanphase-scavenger.yaml").read_text())["spec"]["params"]
SIM_SYMBOLS = tuple(SIM_PARAMS["symbols"])


async def test_simulator_stop_run_to_fills(pg_dsn: str, nats_url: str, catalog: Catalog, tmp_path: Path) -> None:
    org = write_organism(tmp_path / "organism", params=SIM_PARAMS, venue="sim", symbols=SIM_SYMBOLS)
    async with organism(tmp_path, pg_dsn, nats_url, catalog, org, SIM_PARAMS) as chain:
        started_ns = await chain.start_gateway("--source", f"sim:{SIM_SEED}", "--symbols", ",".join(SIM_SYMBOLS),
                                               "--stop-run-at", f"{STOP_RUN_S}s")
        decision = await chain.first_filled_decision(timeout=STOP_RUN_S + 40)
        sig = decision.signal
        # The first entry is the scripted run's: the simulator holds natural runs back while it steers
        # the price to the range extreme, and the run breaks it STOP_RUN_S after the gateway's start.
        assert sig.created_at_ns >= started_ns + (STOP_RUN_S - 1) * 10**9
        assert sig.setup.startswith("trap.") and sig.metadata["trap_id"].startswith(sig.legs[0].symbol + ":")
        assert (sig.legs[0].venue, sig.legs[0].symbol in SIM_SYMBOLS) == ("sim", True)
        await chain.assert_filled("sim")
        assert "scripted stop-run" in chain.procs.started[-1].output()
