"""The market data of a backtest: the same sources `titan up` reads, drained unpaced."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from titan.backtest.config import BacktestConfig
from titan.core.clock import NS_PER_S
from titan.core.marketdata.datafile import FileReport
from titan.core.marketdata.replay import ReplaySource
from titan.core.marketdata.sim import DEFAULT_START_NS, SimConfig, Simulator
from titan.core.marketdata.source import LIVE_SIM_HISTORY_HOURS
from titan.v1.market_pb2 import MarketEvent


class DataError(ValueError):
    """The data named for a backtest cannot be opened; the message names it."""


@dataclass
class DataFeed:
    """The run's market events, and what reading the files found (rows, time range, repairs, gaps)."""

    events: Iterator[MarketEvent]
    replay: ReplaySource | None = None

    def reports(self) -> list[FileReport]:
        return self.replay.reports if self.replay is not None else []

    def span(self) -> tuple[int, int] | None:
        """First and last event time over every file (known once the files were scanned)."""
        times = [(r.first_ns, r.last_ns) for r in self.reports() if r.first_ns is not None and r.last_ns is not None]
        if not times:
            return None
        return min(a for a, _ in times), max(b for _, b in times)


def open_data(config: BacktestConfig) -> DataFeed:
    """Events in time order from ``config.data``: ``sim[:SEED]``, ``replay:PATH[,PATH...]``, or
    file paths (any format Titan reads), clipped to ``[start_ns, end_ns)``. Files are scanned
    (checked, sorted and de-duplicated where needed) before the first event."""
    data = config.data
    if len(data) == 1 and (data[0] == "sim" or data[0].startswith("sim:")):
        return DataFeed(_simulated(config, data[0]))
    paths: list[Path] = []
    for item in data:
        if item.startswith("sim"):
            raise DataError(f"{item}: the simulator cannot be mixed with files")
    if config.sim_stop_runs_s:
        raise DataError("scripted stop-runs need the simulator (sim or sim:SEED)")
    for item in data:
        for part in item.removeprefix("replay:").split(","):
            path = Path(part)
            if not path.exists():
                raise DataError(f"{path}: no such file")
            if path.is_dir():
                paths.extend(sorted(p for p in path.rglob("*") if p.is_file()))
            else:
                paths.append(path)
    if not paths:
        raise DataError("no data files given")
    replay = ReplaySource(paths, start_ns=config.start_ns, end_ns=config.end_ns, overrides=config.overrides)
    replay.check()
    return DataFeed(replay.events(), replay)


def _simulated(config: BacktestConfig, spec: str) -> Iterator[MarketEvent]:
    _, _, seed = spec.partition(":")
    try:
        sim_seed = int(seed) if seed else 1
    except ValueError:
        raise DataError(f"{spec}: the simulator's seed must be an integer") from None
    start = config.start_ns if config.start_ns is not None else DEFAULT_START_NS
    end = config.end_ns if config.end_ns is not None else start + int(config.sim_hours * 3600 * NS_PER_S)
    cfg = SimConfig(seed=sim_seed, scripted_runs_s=tuple(config.sim_stop_runs_s))
    if config.sim_symbols:
        cfg = cfg.with_symbols(config.sim_symbols)
    # The history prelude `titan up` starts with: structure candles exist when trading begins.
    cfg = cfg.replace(start_ns=start, history_hours=LIVE_SIM_HISTORY_HOURS)
    return Simulator(cfg).events(end)


__all__ = ["DataError", "DataFeed", "open_data"]
