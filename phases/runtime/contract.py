"""What a phase's strategy is to the runtime: the :class:`Strategy` protocol (market events, timer
ticks and execution updates in, a :class:`StrategyOutput` of signals and :class:`PhaseEvent` s out),
and :class:`StrategyBase` with the defaults a strategy need not write."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from titan.v1 import market_pb2, trading_pb2


@dataclass(frozen=True)
class PhaseEvent:
    """Something a strategy saw or decided (trap sprung, aborted, fired, cool-down, ...)."""

    kind: str
    symbol: str
    ts_ns: int
    detail: tuple[tuple[str, str], ...] = ()

    def get(self, key: str, default: str = "") -> str:
        return dict(self.detail).get(key, default)


@dataclass
class StrategyOutput:
    signals: list[trading_pb2.Signal] = field(default_factory=list)
    events: list[PhaseEvent] = field(default_factory=list)

    def extend(self, other: StrategyOutput) -> StrategyOutput:
        self.signals.extend(other.signals)
        self.events.extend(other.events)
        return self

    def event(self, kind: str, symbol: str, ts_ns: int, **detail: object) -> PhaseEvent:
        ev = PhaseEvent(kind, symbol, ts_ns, tuple((k, str(v)) for k, v in detail.items()))
        self.events.append(ev)
        return ev


class Strategy(Protocol):
    """What the runtime drives. Every method is synchronous, deterministic and does no I/O.

    Feedback from execution arrives only for the phase's own orders and positions, in the order
    execution produced it: ``on_ack`` for each signal, then ``on_order`` (order snapshots), ``on_fill``
    and ``on_position`` (the position after the fills), ``on_hedge(outcome)`` when a hedged unit (a
    two-leg signal executed as one) has settled (optional: only a phase that sends hedged units needs
    it), and ``on_trade_closed`` once a position returned to flat (for a hedged unit's legs: once
    both did, as one trade). :class:`StrategyBase` gives no-op defaults."""

    phase_id: str

    def market_filters(self) -> list[tuple[str, str, str]]:
        """(venue, symbol, kind) triples to subscribe to; "*" is a wildcard."""
        ...

    def on_event(self, ev: market_pb2.MarketEvent) -> StrategyOutput: ...

    def on_time(self) -> StrategyOutput: ...

    def next_wakeup_ns(self) -> int | None:
        """The earliest time :meth:`on_time` has work to do (0: at every tick), or None when nothing
        is pending until the next input. Live runners tick on their cadence regardless; the backtest
        driver calls :meth:`on_time` only at the first tick at or after this time."""
        ...

    def set_budget(self, budget: trading_pb2.Budget | None) -> None: ...

    def set_params(self, raw: Mapping[str, Any]) -> None:
        """Validate and apply new parameters; raise ValueError (the old ones stay) when invalid."""
        ...

    def on_ack(self, ack: trading_pb2.SignalAck) -> StrategyOutput: ...

    def on_order(self, order: trading_pb2.Order) -> StrategyOutput: ...

    def on_fill(self, fill: trading_pb2.Fill) -> StrategyOutput: ...

    def on_position(self, position: trading_pb2.Position) -> StrategyOutput: ...

    def on_trade_closed(self, symbol: str, pnl: Decimal) -> StrategyOutput: ...

    @property
    def state(self) -> str: ...

    def diagnostics(self) -> dict[str, float]: ...


class StrategyBase:
    """No-op defaults for the feedback a strategy may ignore; a phase overrides what it uses."""

    def on_time(self) -> StrategyOutput:
        return StrategyOutput()

    def next_wakeup_ns(self) -> int | None:
        """No timers unless the phase has its own ``on_time``; then every tick, unless it says better."""
        return None if type(self).on_time is StrategyBase.on_time else 0

    def on_ack(self, ack: trading_pb2.SignalAck) -> StrategyOutput:
        return StrategyOutput()

    def on_order(self, order: trading_pb2.Order) -> StrategyOutput:
        return StrategyOutput()

    def on_fill(self, fill: trading_pb2.Fill) -> StrategyOutput:
        return StrategyOutput()

    def on_position(self, position: trading_pb2.Position) -> StrategyOutput:
        return StrategyOutput()

    def on_hedge(self, outcome: trading_pb2.HedgeOutcome) -> StrategyOutput:
        return StrategyOutput()

    def on_trade_closed(self, symbol: str, pnl: Decimal) -> StrategyOutput:
        return StrategyOutput()

    @property
    def state(self) -> str:
        return "ACTIVE"

    def diagnostics(self) -> dict[str, float]:
        return {}
