"""A seeded, deterministic market simulator: the offline default source of ``titan up``.

One market regime chain drives every symbol; each symbol has a spot and a perpetual instrument.
The model (parameters in :class:`SimConfig`, statistics documented in docs/market-data.md):

* **Price** (spot/index, log): per-minute GARCH(1,1) variance whose long-run level depends on a
  three-state Markov regime (calm / normal / turbulent), spread over the minute's seconds with
  cross-symbol correlation, plus Laplace-sized jumps (Poisson per minute).
* **Stop-runs (traps):** when the perp comes close to the highest high / lowest low it printed over a
  look-back window, it may run to that level, break it by a little on a dense burst of aggressive
  trades (stops and short/long liquidations), then fall back inside the range — a temporary
  excursion on top of the price path.
* **Basis:** the perp mark is ``index × (1 + b)`` with ``b`` an Ornstein–Uhlenbeck process (mean,
  stationary sd and half-life configurable), pushed in the direction of a jump when the jump sets off
  a liquidation cascade, then mean-reverting.
* **Funding** every 8 h at 00/08/16 UTC from the premium ``P`` = mean over the interval of the
  per-minute ``(mark − index) / index``: ``rate = clamp(P + clamp(I − P, −δ, δ), −cap, cap)``.
  A predicted (unsettled) rate is published each minute.
* **Open interest** mean-reverts slowly; a liquidation cascade removes a share of it, and the
  liquidation events of the cascade add up to exactly the removed amount.
* **Microstructure:** trades arrive as a self-exciting (Hawkes) process: immigrant trades at a
  rate rising with the move size and in turbulence, each trade begetting follow-on trades after
  log-uniform delays; stop-runs and liquidation cascades add dense bursts (hundreds of trades within
  a few hundred milliseconds, aggressor mostly in the run's direction). Trade prices at the touch; a
  book of ``depth_levels`` per side around the mid (snapshot, then deltas), top of book, mark/index,
  candles (1-minute from the trades, longer ones rolled up from them).
* **Scripted stop-runs** (``scripted_runs_s``, for demos and end-to-end runs): at chosen offsets
  after ``start_ns`` every symbol's perp breaks the 50-hour extreme nearer to it — a shallow break on
  a short, dense burst; for ``scripted_steer_min`` minutes before, the path is led to just inside
  that extreme without crossing it and natural runs are held back. Nothing before the steering
  window changes.
* **History prelude** (``history_hours``): before the first event at ``start_ns`` the simulator
  generates the preceding hours of the same path and emits them flat out as closed candles plus
  open interest and funding, so consumers that need history (structure candles) can start at once.

Determinism: the price/basis/funding path uses its own random stream, separate from the
microstructure stream, so the same seed gives the same path whatever the event densities are
(tests use sparse microstructure to check the path statistics quickly). The prelude's candle
volumes draw from a third stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from titan.core.clock import ManualClock
from titan.core.metrics import MD_EVENTS
from titan.v1.market_pb2 import MarketEvent

from ..source import Sleep, pace
from .config import (
    DEFAULT_START_NS,
    HOUR_NS,
    KNOWN_SYMBOLS,
    MINUTE_NS,
    NS_PER_S,
    SimConfig,
    SimStats,
    SymbolSpec,
    default_spec,
)
from .generator import EventGenerator

__all__ = [
    "DEFAULT_START_NS",
    "HOUR_NS",
    "KNOWN_SYMBOLS",
    "MINUTE_NS",
    "NS_PER_S",
    "SimConfig",
    "SimStats",
    "Simulator",
    "SymbolSpec",
    "default_spec",
]


class Simulator:
    """Produces time-ordered MarketEvents for every symbol in the config (spot + perp each)."""

    name = "sim"

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        speed: float | None = None,
        clock: ManualClock | None = None,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.speed = speed
        self.clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self.stats = SimStats()

    # --- Source protocol ---------------------------------------------------------------------
    def events(self, end_ns: int | None = None) -> Iterator[MarketEvent]:
        """Time-ordered events: the history prelude (if ``history_hours``), then everything from
        ``start_ns`` until ``end_ns`` (or the config's, or forever)."""
        gen = EventGenerator(self.config, self.stats)
        stop = end_ns if end_ns is not None else self.config.end_ns
        start = self.config.start_ns
        seq: dict[tuple[str, int], int] = {}
        for batch, prelude in gen.batches():
            counts: dict[str, int] = {}
            for ev in batch:
                k = ev.WhichOneof("payload") or ""
                counts[k] = counts.get(k, 0) + 1
            for k, n in counts.items():
                MD_EVENTS.labels(self.name, self.config.venue, k).inc(n)
            for ev in batch:
                if not prelude and ev.exchange_ts_ns < start:
                    continue  # the first minute is generated whole; emit from start_ns on
                if stop is not None and ev.exchange_ts_ns >= stop:
                    return
                key = (ev.symbol, ev.instrument)  # per-stream sequence numbers in emission order
                n = seq.get(key, 0) + 1
                seq[key] = n
                ev.seq = n
                if self.clock is not None and ev.exchange_ts_ns > self.clock.now_ns():
                    self.clock.set(ev.exchange_ts_ns)
                yield ev

    def __iter__(self) -> Iterator[MarketEvent]:
        return self.events()

    async def stream(self) -> AsyncIterator[MarketEvent]:
        """``events()`` paced at ``speed``; the history prelude (older than ``start_ns``) is not
        paced, real time runs from ``start_ns``."""
        kwargs: dict[str, Any] = {"sleep": self._sleep}
        if self._monotonic is not None:
            kwargs["monotonic"] = self._monotonic
        if self.config.history_hours > 0:
            kwargs["start_ns"] = self.config.start_ns
        async for ev in pace(self.events(), self.speed, **kwargs):
            yield ev

    async def aclose(self) -> None:
        return None
