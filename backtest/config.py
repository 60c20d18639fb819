"""What a backtest runs: data, organism, window, latency and cadences. Frozen values only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from titan.core.clock import NS_PER_MS, NS_PER_S
from titan.core.marketdata.datafile import Overrides

NS_PER_US = 1_000


@dataclass(frozen=True)
class LatencyModel:
    """How long what travels between the parts takes, in simulated time.

    The defaults are half the signal->ack round trip that ``bench/execution_latency.py`` measured on
    one machine (p50 about 920 µs): a signal created at ``t`` is decided at ``t + signal_ns`` against
    the market as it is then; acks, orders, fills and positions reach the phase ``update_ns`` after
    execution produced them. Market data reaches execution and the phases at its event time."""

    signal_ns: int = 460 * NS_PER_US
    update_ns: int = 460 * NS_PER_US

    def __post_init__(self) -> None:
        if self.signal_ns < 0 or self.update_ns < 0:
            raise ValueError("latencies cannot be negative")


@dataclass(frozen=True)
class Cadence:
    """How often the periodic parts run (as in ``titan up``), and how idle time is skipped.

    Between two inputs more than ``idle_after_ns`` apart, periodic work (phase timers, engine ticks,
    equity snapshots, Brain decisions) runs at its cadence for ``idle_after_ns`` and then once more at
    the last due time before the next input: nothing can change in between (no input arrives), so the
    skipped runs could only repeat the same result. ``idle_after_ns=0`` never skips (exact timers)."""

    phase_tick_ns: int = 50 * NS_PER_MS
    engine_tick_ns: int = 200 * NS_PER_MS
    equity_ns: int = 10 * NS_PER_S
    brain_ns: int = 2 * NS_PER_S
    idle_after_ns: int = 1 * NS_PER_S

    def __post_init__(self) -> None:
        for name in ("phase_tick_ns", "engine_tick_ns", "equity_ns", "brain_ns"):
            if getattr(self, name) <= 0:
                raise ValueError(f"cadence {name} must be positive")
        if self.idle_after_ns < 0:
            raise ValueError("idle_after_ns cannot be negative")


@dataclass(frozen=True)
class BacktestConfig:
    """One backtest.

    ``data``: market files in any format Titan reads (merged in time order), or one source spec
    (``sim:SEED`` / ``replay:PATH[,PATH...]``). ``organism``: a folder of TitanBrain/TitanPhase YAML
    (None: the samples ``titan up`` starts from). ``params`` overrides a TitanPhase's
    ``spec.params`` by phase id; ``phases`` keeps only these phase ids. ``start_ns``/``end_ns`` clip
    the data (a simulator needs ``end_ns`` or runs ``sim_hours``)."""

    data: tuple[str, ...] = ()
    organism: Path | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    phases: tuple[str, ...] | None = None
    initial_equity: Decimal | None = None
    latency: LatencyModel = field(default_factory=LatencyModel)
    cadence: Cadence = field(default_factory=Cadence)
    sim_hours: float = 24.0
    sim_symbols: tuple[str, ...] = ()
    sim_stop_runs_s: tuple[float, ...] = ()   # simulator: scripted stop-runs this long after the start
    overrides: Overrides = field(default_factory=Overrides)  # what the files are, instead of detecting it
    keep_events: bool = True      # keep every ledger event in the result (False: only what metrics need)
    progress: bool = False

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("a backtest needs data: files, or a source such as sim:1")
        if self.start_ns is not None and self.end_ns is not None and self.end_ns <= self.start_ns:
            raise ValueError("the end of the window must come after its start")
        if self.sim_hours <= 0:
            raise ValueError("sim_hours must be positive")
