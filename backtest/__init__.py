"""The backtest driver: the whole organism in one process on a simulated clock.

    from titan.backtest import BacktestConfig, run
    result = run(BacktestConfig(data=("../shared/data/btc-perp-2022-01_1m.csv",)))
    print(result.fingerprint, result.metrics.total.sharpe)

The strategies, the Brain core, the risk gate, the order state machine and the paper venue are the
ones the cluster and `titan up` run (see docs/backtest.md).
"""

from titan.backtest.config import BacktestConfig, Cadence, LatencyModel
from titan.backtest.organism import Organism, OrganismError, load_organism
from titan.backtest.performance import Metrics, Trade
from titan.backtest.result import BacktestResult, MetricsReport, run
from titan.backtest.sources import DataError

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "Cadence",
    "DataError",
    "LatencyModel",
    "Metrics",
    "MetricsReport",
    "Organism",
    "OrganismError",
    "Trade",
    "load_organism",
    "run",
]
