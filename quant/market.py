"""One continuous simulated market for a walk-forward span, cut into windows.

``titan.backtest`` starts the simulator afresh at a window's start: with one seed every window would
then replay the *same* random path from a new origin, and a test window would be a prefix of its own
training window. Walk-forward needs one market that moves on: :class:`SimulatedSpan` simulates the
whole span once (from its start, with the simulator's history prelude) and hands each window

* its **history**, what the simulator's own prelude gives a consumer starting at that time, thinned
  to what a phase reads from it: closed candles longer than a minute and settled funding of the
  ``history_hours`` before the window; 1-minute candles and open interest of the last
  ``fine_history_hours`` (the Scavenger reads its last 5 one-minute and 20 five-minute candles and
  five minutes of open interest; its structure is 50 hourly candles); the last mark per instrument;
* every event of the window itself.

The span's events are kept serialised in memory (parsed again per window), so each window costs
only its own backtest.

**Density.** :data:`QUIET_TAPE` lowers the background tape (trades outside stop-runs and cascades,
book depth, top-of-book and mark cadence) so a simulated week can be backtested many times on a
small machine. The price path, the stop-runs, their trade bursts and liquidation cascades do not
change (the simulator draws the path from its own random stream). The Scavenger trades only on those
bursts; what the quieter tape changes is the 1-minute candles' volume and the staleness of the quoted
top of book between bursts (up to ``top_every_s``). docs/phases/ai-quant.md has the measured costs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from titan.core.marketdata.sim import HOUR_NS, NS_PER_S, SimConfig, Simulator
from titan.core.marketdata.source import LIVE_SIM_HISTORY_HOURS
from titan.v1.market_pb2 import MarketEvent

# SimConfig changes of the quiet tape (the defaults are SimConfig's own; nothing else changes).
QUIET_TAPE: Mapping[str, Any] = {
    "trade_rate": (0.1, 0.2),      # background trades/s (spot, perp) at activity 1; default (0.8, 1.5)
    "depth_every_s": 30,           # default 5
    "top_every_s": 5,              # default 1
    "mark_every_s": 5,             # default 1
}

_HISTORY_KINDS = frozenset({"candle", "open_interest", "funding"})


@dataclass(frozen=True)
class SimulatedSpan:
    """The simulator over ``[start_ns, end_ns)``: ``seed``, ``symbols``, a scripted stop-run every
    ``stop_run_every_h`` hours (0: only the simulator's natural ones), ``quiet`` for the quiet tape."""

    seed: int
    start_ns: int
    end_ns: int
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    stop_run_every_h: float = 0.0
    quiet: bool = True
    history_hours: int = LIVE_SIM_HISTORY_HOURS
    fine_history_hours: float = 2.0

    def __post_init__(self) -> None:
        if self.end_ns <= self.start_ns:
            raise ValueError("the simulated span is empty (end must be after start)")
        if self.stop_run_every_h < 0:
            raise ValueError("stop_run_every_h cannot be negative")

    @property
    def stop_runs_s(self) -> tuple[float, ...]:
        """Offsets of the scripted stop-runs: every ``stop_run_every_h`` hours, half a period in."""
        if not self.stop_run_every_h:
            return ()
        period = self.stop_run_every_h * 3600
        span = (self.end_ns - self.start_ns) / NS_PER_S
        return tuple(period * (i + 0.5) for i in range(int(span // period + 1)) if period * (i + 0.5) < span)

    def sim_config(self) -> SimConfig:
        config = SimConfig(seed=self.seed, symbols=self.symbols, start_ns=self.start_ns, end_ns=self.end_ns,
                           history_hours=self.history_hours, scripted_runs_s=self.stop_runs_s)
        return config.replace(**QUIET_TAPE) if self.quiet else config

    def describe(self) -> str:
        runs = f", a scripted stop-run every {self.stop_run_every_h:g} h" if self.stop_run_every_h else ""
        tape = ", quiet tape" if self.quiet else ""
        return f"sim:{self.seed} {'/'.join(self.symbols)}{runs}{tape}"


@dataclass
class SpanEvents:
    """The span's events, simulated once and kept serialised; :meth:`window` cuts one window."""

    span: SimulatedSpan
    _ts: list[int] = field(default_factory=list)
    _kind: list[str] = field(default_factory=list)
    _data: list[bytes] = field(default_factory=list)

    def _ensure(self) -> None:
        if self._ts:
            return
        for event in Simulator(self.span.sim_config()).events(self.span.end_ns):
            self._ts.append(event.exchange_ts_ns)
            self._kind.append(str(event.WhichOneof("payload")))
            self._data.append(event.SerializeToString())

    def __len__(self) -> int:
        self._ensure()
        return len(self._ts)

    def window(self, start_ns: int, end_ns: int) -> Iterator[MarketEvent]:
        """History before ``start_ns`` (as the simulator's prelude gives it), then ``[start_ns, end_ns)``."""
        self._ensure()
        if start_ns < self.span.start_ns or end_ns > self.span.end_ns:
            raise ValueError(f"window [{start_ns}, {end_ns}) is outside the simulated span "
                             f"[{self.span.start_ns}, {self.span.end_ns})")
        history_from = start_ns - self.span.history_hours * HOUR_NS
        fine_from = start_ns - int(self.span.fine_history_hours * HOUR_NS)
        history: list[int] = []
        last_mark: dict[tuple[str, int], int] = {}
        i = 0
        while i < len(self._ts) and self._ts[i] < start_ns:
            kind = self._kind[i]
            if self._ts[i] >= history_from and (kind == "mark" or kind in _HISTORY_KINDS):
                event = MarketEvent.FromString(self._data[i])
                if kind == "mark":
                    last_mark[(event.symbol, int(event.instrument))] = i
                elif _is_history(event, kind, fine=self._ts[i] >= fine_from):
                    history.append(i)
            i += 1
        for index in sorted([*history, *last_mark.values()]):
            yield MarketEvent.FromString(self._data[index])
        while i < len(self._ts) and self._ts[i] < end_ns:
            yield MarketEvent.FromString(self._data[i])
            i += 1


def _is_history(event: MarketEvent, kind: str, *, fine: bool) -> bool:
    if kind == "candle":
        return event.candle.closed and (fine or event.candle.timeframe != "1m")
    if kind == "funding":
        return event.funding.settled
    return fine  # open interest
