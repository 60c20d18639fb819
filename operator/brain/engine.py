"""The Brain core: equity, trades and specs in; allocations, budgets and trading state out.

Deterministic and free of I/O: time comes in as arguments (from an injected clock), state can be
saved to / restored from a plain dict (the operator keeps it in ``TitanBrain.status.core``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any, NamedTuple

from titan.core.clock import NS_PER_S
from titan.core.money import to_decimal, to_wire
from titan.operator.brain.allocation import allocate, band_level, tier_cap
from titan.operator.brain.breakers import BreakerChange, Breakers
from titan.operator.brain.counted import CountedIds
from titan.operator.brain.performance import PerformanceTracker, Trade
from titan.operator.brain.policy import BrainPolicy, PhaseSpec, TradingOverride
from titan.v1 import common_pb2, events_pb2, trading_pb2

NS_PER_DAY = 86_400 * NS_PER_S
CENT = Decimal("0.01")


class PositionKey(NamedTuple):
    """A phase's position on one instrument: what fees and funding are carried for."""

    phase_id: str
    venue: str
    symbol: str
    instrument: int


class PhaseStateName(StrEnum):
    DORMANT = "Dormant"
    ACTIVE = "Active"
    THROTTLED = "Throttled"
    HALTED = "Halted"


class RiskState(StrEnum):
    NORMAL = "normal"
    CAUTIOUS = "cautious"
    HALTED = "halted"


class TradingModeName(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


RISK_MULTIPLIER = {RiskState.NORMAL: Decimal(1), RiskState.CAUTIOUS: Decimal("0.5"), RiskState.HALTED: Decimal(0)}
PHASE_STATE_PB = {
    PhaseStateName.DORMANT: common_pb2.PHASE_STATE_DORMANT,
    PhaseStateName.ACTIVE: common_pb2.PHASE_STATE_ACTIVE,
    PhaseStateName.THROTTLED: common_pb2.PHASE_STATE_THROTTLED,
    PhaseStateName.HALTED: common_pb2.PHASE_STATE_HALTED,
}
TRADING_MODE_PB = {
    TradingModeName.ACTIVE: common_pb2.TRADING_MODE_ACTIVE,
    TradingModeName.REDUCING: common_pb2.TRADING_MODE_REDUCING,
    TradingModeName.HALTED: common_pb2.TRADING_MODE_HALTED,
}


def utc_day(ts_ns: int) -> int:
    return ts_ns // NS_PER_DAY


@dataclass
class PhaseBook:
    """What execution last reported about one phase (EquitySnapshot with scope = phase id)."""

    equity: Decimal | None = None
    realized: Decimal = Decimal(0)
    unrealized: Decimal = Decimal(0)
    exposure: Decimal = Decimal(0)
    day_start_value: Decimal | None = None  # realized + unrealized at the UTC day start

    @property
    def value(self) -> Decimal:
        return self.realized + self.unrealized

    @property
    def today(self) -> Decimal:
        return self.value - (self.day_start_value if self.day_start_value is not None else self.value)


@dataclass(frozen=True)
class PhaseDecision:
    phase_id: str
    kind: str
    state: PhaseStateName
    weight: Decimal
    notional: Decimal
    max_leverage: Decimal
    max_notional: Decimal
    max_order_notional: Decimal
    max_daily_loss: Decimal
    max_orders_per_minute: int
    max_open_orders_per_symbol: int
    symbols: tuple[str, ...]
    replicas: int
    reason: str
    equity: Decimal | None  # the phase's own equity as execution reports it (None = not reported)
    pnl_realized: Decimal
    pnl_unrealized: Decimal
    pnl_today: Decimal
    drawdown: Decimal
    modifier: Decimal


@dataclass(frozen=True)
class Decision:
    ts_ns: int
    equity: Decimal
    day_start_equity: Decimal
    high_watermark: Decimal
    daily_drawdown: Decimal
    peak_drawdown: Decimal
    band_level: int
    tier_leverage: Decimal
    risk_state: RiskState
    trading_mode: TradingModeName
    trading_reason: str
    phases: dict[str, PhaseDecision]
    breaker_changes: tuple[BreakerChange, ...]
    state_changes: tuple[tuple[str, str, str], ...]  # (phase id, old state or "", new state)
    budget_version: int
    expires_at_ns: int
    hard_tripped: bool
    soft_active: bool
    equity_ts_ns: int  # when execution last reported total equity (0 = never)

    def budget(self, phase_id: str) -> trading_pb2.Budget:
        p = self.phases[phase_id]
        return trading_pb2.Budget(
            phase_id=p.phase_id,
            state=PHASE_STATE_PB[p.state],
            weight=to_wire(p.weight),
            max_notional=to_wire(p.max_notional),
            max_order_notional=to_wire(p.max_order_notional),
            max_leverage=to_wire(p.max_leverage),
            max_orders_per_minute=p.max_orders_per_minute,
            max_open_orders_per_symbol=p.max_open_orders_per_symbol,
            max_daily_loss=to_wire(p.max_daily_loss),
            symbols=list(p.symbols),
            issued_at_ns=self.ts_ns,
            expires_at_ns=self.expires_at_ns,
            version=self.budget_version,
        )

    def trading_state(self, set_by: str = "brain") -> trading_pb2.TradingState:
        return trading_pb2.TradingState(
            mode=TRADING_MODE_PB[self.trading_mode],
            reason=self.trading_reason,
            set_by=set_by,
            ts_ns=self.ts_ns,
            version=self.budget_version,
        )

    def allocation(self, phase_id: str) -> events_pb2.Allocation:
        p = self.phases[phase_id]
        return events_pb2.Allocation(
            phase_id=p.phase_id,
            state=PHASE_STATE_PB[p.state],
            weight=to_wire(p.weight),
            notional=to_wire(p.notional),
            max_leverage=to_wire(p.max_leverage),
            equity=to_wire(self.equity),
            reason=p.reason,
            ts_ns=self.ts_ns,
        )

    def allocation_key(self, phase_id: str) -> tuple[str, str, str, str]:
        """What must change for a new Allocation event to be worth publishing."""
        p = self.phases[phase_id]
        return (p.state.value, to_wire(p.weight), to_wire(p.notional), to_wire(p.max_leverage))


def breaker_event(change: BreakerChange) -> events_pb2.BreakerEvent:
    return events_pb2.BreakerEvent(
        breaker_id=f"{change.kind.value.lower()}:{change.ts_ns}",
        kind=events_pb2.BREAKER_KIND_HARD if change.kind.value == "HARD" else events_pb2.BREAKER_KIND_SOFT,
        tripped=change.tripped,
        reason=change.reason,
        equity=to_wire(change.equity),
        drawdown=to_wire(change.drawdown),
        ts_ns=change.ts_ns,
    )


def _q(value: Decimal, quantum: Decimal = CENT) -> Decimal:
    return value.quantize(quantum, rounding=ROUND_DOWN) if value > 0 else Decimal(0)


@dataclass(frozen=True)
class _Drawdowns:
    """The baselines a decision measured equity against, and the drawdowns from them."""

    day_start: Decimal
    peak: Decimal
    daily: Decimal
    from_peak: Decimal


@dataclass(frozen=True)
class _RiskVerdict:
    risk: RiskState
    mode: TradingModeName
    reason: str
    soft: bool


@dataclass(frozen=True)
class _Limits:
    """What the risk state allows every trading phase this decision."""

    leverage: Decimal
    orders_per_minute: int


@dataclass
class BrainCore:
    """State of one organism's Brain."""

    band: int = 0
    equity: Decimal | None = None
    equity_ts_ns: int = 0
    day: int | None = None
    day_start_equity: Decimal | None = None
    high_watermark: Decimal | None = None
    budget_version: int = 0
    breakers: Breakers = field(default_factory=Breakers)
    books: dict[str, PhaseBook] = field(default_factory=dict)
    phase_states: dict[str, str] = field(default_factory=dict)
    performance: PerformanceTracker = field(default_factory=PerformanceTracker)
    _closed: list[Trade] = field(default_factory=list)  # closing fills since the last decision (breaker)
    _carried: dict[PositionKey, Decimal] = field(default_factory=dict)  # see carry()
    counted: CountedIds = field(default_factory=CountedIds)  # fill and funding ids already counted

    def keep_feed_state(self, earlier: BrainCore) -> None:
        """Take over what the event feed built in ``earlier`` and :meth:`to_dict` does not keep: the
        closed trades, what open positions carried, the ids already counted. A driver that restores
        the persisted state after replaying the stream (kopf) loses none of the replay."""
        self.performance = earlier.performance
        self._carried = earlier._carried
        self.counted = earlier.counted

    # --- inputs ----------------------------------------------------------------------------
    def _roll(self, ts_ns: int) -> None:
        """Start a new UTC day: the day-start equity is the last equity seen before it."""
        today = utc_day(ts_ns)
        if self.day is not None and today <= self.day:
            return
        self.day = today
        # None until the first equity of the day is known (then that one is the day start).
        self.day_start_equity = self.equity
        for book in self.books.values():
            book.day_start_value = book.value

    def observe_equity(
        self,
        scope: str,
        equity: Decimal,
        ts_ns: int,
        *,
        realized: Decimal = Decimal(0),
        unrealized: Decimal = Decimal(0),
        exposure: Decimal = Decimal(0),
    ) -> None:
        """An EquitySnapshot from execution (scope "total" or a phase id)."""
        self._roll(ts_ns)
        if scope == "total":
            if ts_ns < self.equity_ts_ns:
                return  # out of order: keep the newer value
            self.equity = equity
            self.equity_ts_ns = ts_ns
            if self.day_start_equity is None:
                self.day_start_equity = equity
            if self.high_watermark is None or equity > self.high_watermark:
                self.high_watermark = equity
            return
        book = self.books.setdefault(scope, PhaseBook())
        book.equity, book.realized, book.unrealized, book.exposure = equity, realized, unrealized, exposure
        if book.day_start_value is None:
            book.day_start_value = book.value

    def carry(self, phase_id: str, venue: str, symbol: str, instrument: int, amount: Decimal) -> None:
        """PnL of an open position that no closing fill has taken yet: an opening fill's fee (< 0) or a
        funding payment on a perp (received > 0, paid < 0). See :meth:`take_carried`."""
        key = PositionKey(phase_id, venue, symbol, instrument)
        self._carried[key] = self._carried.get(key, Decimal(0)) + amount

    def take_carried(self, phase_id: str, venue: str, symbol: str, instrument: int) -> Decimal:
        """What the position carried since its last closing fill: the closing fill adds it to its
        trade, so a trade from flat to flat has its opening fees and the funding over its life."""
        return self._carried.pop(PositionKey(phase_id, venue, symbol, instrument), Decimal(0))

    def carried(self) -> dict[PositionKey, Decimal]:
        """A copy of what every open position carries (:meth:`carry`)."""
        return dict(self._carried)

    def adopt_carried(self, carried: Mapping[PositionKey, Decimal]) -> None:
        """Start from what a checkpoint says the open positions carried (a restart's replay)."""
        self._carried = dict(carried)

    def observe_trade(self, phase_id: str, pnl: Decimal, ts_ns: int, policy: BrainPolicy, unit: str = "") -> None:
        """A closing fill's net PnL (realized minus fees, plus funding): performance adds it to its
        signal's trade at once; the SOFT breaker counts the signal's trade at the next decision, when
        the fills of one engine step (both legs of a hedged close) are all in."""
        trade = Trade(phase_id, ts_ns, pnl, unit)
        self.performance.record(trade)
        self._closed.append(trade)

    def _trades_since_decision(self) -> list[Trade]:
        """The closing fills since the last decision, one trade per signal (in the order they closed)."""
        by_signal: dict[tuple[str, str], Trade] = {}
        for index, fill in enumerate(self._closed):
            key = (fill.phase_id, fill.unit or f"#{index}")  # a fill without a signal is a trade of its own
            earlier = by_signal.get(key)
            by_signal[key] = fill if earlier is None else Trade(
                fill.phase_id, max(earlier.ts_ns, fill.ts_ns), earlier.pnl + fill.pnl, fill.unit)
        self._closed.clear()
        return list(by_signal.values())

    # --- decision --------------------------------------------------------------------------
    def decide(self, now_ns: int, policy: BrainPolicy, phases: Sequence[PhaseSpec]) -> Decision:
        self._roll(now_ns)
        equity = self.equity if self.equity is not None else policy.initial_equity
        marks, changes = self._drawdowns(now_ns, equity, policy)
        verdict = self._risk(now_ns, policy, marks)
        self.band = band_level(equity, self.band, policy.bands)
        modifiers = {
            p.phase_id: self.performance.modifier(p.phase_id, now_ns, policy.performance) for p in phases
        }
        weights = allocate(equity, self.band, policy.bands, phases, modifiers)
        tier = tier_cap(equity, policy.tiers)
        limits = _Limits(
            leverage=min(tier * RISK_MULTIPLIER[verdict.risk], policy.max_leverage),
            orders_per_minute=(max(1, policy.max_orders_per_minute // 6) if verdict.risk is RiskState.CAUTIOUS
                               else policy.max_orders_per_minute),
        )
        decisions = {
            p.phase_id: self._phase_decision(p, weights.get(p.phase_id, Decimal(0)), modifiers[p.phase_id], equity,
                                             marks, verdict, limits, policy)
            for p in phases
        }
        state_changes = self._track_states(decisions)
        self.budget_version = max(self.budget_version + 1, now_ns // 1_000_000)
        return Decision(
            ts_ns=now_ns,
            equity=equity,
            day_start_equity=marks.day_start,
            high_watermark=marks.peak,
            daily_drawdown=marks.daily,
            peak_drawdown=marks.from_peak,
            band_level=self.band,
            tier_leverage=tier,
            risk_state=verdict.risk,
            trading_mode=verdict.mode,
            trading_reason=verdict.reason,
            phases=decisions,
            breaker_changes=tuple(changes),
            state_changes=tuple(state_changes),
            budget_version=self.budget_version,
            expires_at_ns=now_ns + policy.budget_ttl_s * NS_PER_S,
            hard_tripped=self.breakers.hard_tripped,
            soft_active=self.breakers.soft_active(now_ns),
            equity_ts_ns=self.equity_ts_ns,
        )

    def _drawdowns(self, now_ns: int, equity: Decimal, policy: BrainPolicy) -> tuple[_Drawdowns, list[BreakerChange]]:
        """Baselines moved by the reported equity, the trades since the last decision through the
        breakers, a manual reset, then the drawdown breakers on the resulting drawdowns."""
        if self.equity is not None:
            # The placeholder (spec.initialEquity) never becomes a baseline: only reported equity does.
            if self.day_start_equity is None:
                self.day_start_equity = equity
            if self.high_watermark is None or equity > self.high_watermark:
                self.high_watermark = equity
        changes: list[BreakerChange] = []
        for trade in self._trades_since_decision():
            changes += self.breakers.on_trade(trade, equity, policy)
        reset = self.breakers.reset(policy.breaker_reset_token, now_ns, equity)
        if reset:
            # A manual reset starts a new baseline, or the same drawdown would trip again at once.
            self.day_start_equity = equity
            self.high_watermark = equity
            changes += reset
        day_start = self.day_start_equity if self.day_start_equity is not None else equity
        peak = self.high_watermark if self.high_watermark is not None else equity
        marks = _Drawdowns(day_start, peak, _ratio(day_start - equity, day_start), _ratio(peak - equity, peak))
        changes += self.breakers.check(now_ns, equity, marks.daily, marks.from_peak, policy)
        return marks, changes

    def _risk(self, now_ns: int, policy: BrainPolicy, marks: _Drawdowns) -> _RiskVerdict:
        """Risk state and trading mode, with every reason that led there."""
        stale = self.equity is not None and now_ns - self.equity_ts_ns > policy.equity_stale_s * NS_PER_S
        soft = self.breakers.soft_active(now_ns)
        reasons: list[str] = []
        if self.breakers.hard_tripped:
            reasons.append(f"HARD breaker: {self.breakers.hard_reason}")
        if policy.trading_state is TradingOverride.HALTED:
            reasons.append("kill switch: TitanBrain.spec.tradingState=Halted")
        if reasons:
            return _RiskVerdict(RiskState.HALTED, TradingModeName.HALTED, "; ".join(reasons), soft)
        mode = TradingModeName.ACTIVE
        if policy.trading_state is TradingOverride.REDUCING:
            mode = TradingModeName.REDUCING
            reasons.append("TitanBrain.spec.tradingState=Reducing")
        if soft:
            reasons.append(f"SOFT breaker: {self.breakers.soft_reason}")
        if marks.daily >= policy.cautious_at * policy.max_daily_drawdown:
            reasons.append(f"daily drawdown {to_wire(marks.daily)}")
        if marks.from_peak >= policy.cautious_at * policy.max_drawdown:
            reasons.append(f"drawdown from peak {to_wire(marks.from_peak)}")
        if stale:
            reasons.append("equity stale")
        risk = RiskState.CAUTIOUS if reasons else RiskState.NORMAL
        return _RiskVerdict(risk, mode, "; ".join(reasons) or "normal", soft)

    def _phase_state(self, p: PhaseSpec, weight: Decimal, equity: Decimal, verdict: _RiskVerdict
                     ) -> tuple[PhaseStateName, str]:
        if not p.enabled:
            return PhaseStateName.DORMANT, "disabled"
        if verdict.mode is TradingModeName.HALTED:
            return PhaseStateName.HALTED, verdict.reason
        if not p.trades:
            return PhaseStateName.ACTIVE, "proposes parameters; never trades (weight 0)"
        if weight == 0:
            return PhaseStateName.DORMANT, f"zero weight at equity {to_wire(equity)} (band {self.band})"
        if verdict.mode is TradingModeName.REDUCING or verdict.soft:
            return PhaseStateName.THROTTLED, verdict.reason
        return PhaseStateName.ACTIVE, f"band {self.band}, risk {verdict.risk.value}"

    def _phase_decision(self, p: PhaseSpec, weight: Decimal, modifier: Decimal, equity: Decimal, marks: _Drawdowns,
                        verdict: _RiskVerdict, limits: _Limits, policy: BrainPolicy) -> PhaseDecision:
        state, why = self._phase_state(p, weight, equity, verdict)
        book = self.books.get(p.phase_id, PhaseBook())
        blocked = state in (PhaseStateName.DORMANT, PhaseStateName.HALTED) or not p.trades
        lev = Decimal(0) if blocked else limits.leverage
        if p.max_leverage is not None:
            lev = min(lev, p.max_leverage)
        notional = _q(equity * weight)
        max_notional = _q(notional * lev)
        # A Dormant phase keeps its pod while it still holds exposure (it may only reduce);
        # a running pod is never scaled away under open positions.
        replicas = 0 if (state is PhaseStateName.DORMANT and book.exposure == 0) else 1
        return PhaseDecision(
            phase_id=p.phase_id,
            kind=p.kind.value,
            state=state,
            weight=weight,
            notional=notional,
            max_leverage=lev,
            max_notional=max_notional,
            max_order_notional=_q(max_notional * policy.max_order_fraction),
            max_daily_loss=_q(marks.day_start * policy.max_daily_drawdown * weight),
            max_orders_per_minute=limits.orders_per_minute,
            max_open_orders_per_symbol=policy.max_open_orders_per_symbol,
            symbols=p.symbols,
            replicas=replicas,
            reason=why,
            equity=book.equity,
            pnl_realized=book.realized,
            pnl_unrealized=book.unrealized,
            pnl_today=book.today,
            drawdown=_ratio(-book.today, marks.day_start),
            modifier=modifier,
        )

    def _track_states(self, decisions: dict[str, PhaseDecision]) -> list[tuple[str, str, str]]:
        """Each phase's state change since the last decision (phase, old, new); forgets removed phases."""
        changes: list[tuple[str, str, str]] = []
        for phase_id, decision in decisions.items():
            old = self.phase_states.get(phase_id, "")
            if old != decision.state.value:
                changes.append((phase_id, old, decision.state.value))
                self.phase_states[phase_id] = decision.state.value
        for gone in set(self.phase_states) - set(decisions):
            del self.phase_states[gone]
        return changes

    # --- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """What must survive a restart (kept in TitanBrain.status.core): breakers, baselines, the last
        equity and each phase's book (so a restarted Brain neither shrinks to spec.initialEquity nor
        forgets that a Dormant phase still holds positions). Trades are not kept here: the runtime
        replays the recent fills and funding payments from JetStream on start (``BrainRuntime._replay_trades``)."""
        return {
            "band": self.band,
            "equity": None if self.equity is None else to_wire(self.equity),
            "equityTsNs": str(self.equity_ts_ns),
            "books": {
                phase: {
                    "equity": None if b.equity is None else to_wire(b.equity),
                    "realized": to_wire(b.realized),
                    "unrealized": to_wire(b.unrealized),
                    "exposure": to_wire(b.exposure),
                    "dayStart": None if b.day_start_value is None else to_wire(b.day_start_value),
                }
                for phase, b in sorted(self.books.items())
            },
            "day": self.day,
            "dayStartEquity": None if self.day_start_equity is None else to_wire(self.day_start_equity),
            "highWatermark": None if self.high_watermark is None else to_wire(self.high_watermark),
            "budgetVersion": str(self.budget_version),
            "breakers": self.breakers.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BrainCore:
        core = cls()
        if not data:
            return core
        core.band = int(data.get("band", 0) or 0)
        core.equity = None if data.get("equity") in (None, "") else to_decimal(data["equity"])
        core.equity_ts_ns = int(data.get("equityTsNs", 0) or 0)
        for phase, b in (data.get("books") or {}).items():
            core.books[phase] = PhaseBook(
                equity=None if b.get("equity") in (None, "") else to_decimal(b["equity"]),
                realized=to_decimal(b.get("realized") or "0"),
                unrealized=to_decimal(b.get("unrealized") or "0"),
                exposure=to_decimal(b.get("exposure") or "0"),
                day_start_value=None if b.get("dayStart") in (None, "") else to_decimal(b["dayStart"]),
            )
        core.day = None if data.get("day") is None else int(data["day"])
        core.day_start_equity = None if data.get("dayStartEquity") in (None, "") else to_decimal(data["dayStartEquity"])
        core.high_watermark = None if data.get("highWatermark") in (None, "") else to_decimal(data["highWatermark"])
        core.budget_version = int(data.get("budgetVersion", 0) or 0)
        core.breakers = Breakers.from_dict(data.get("breakers") or {})
        return core


def _ratio(num: Decimal, den: Decimal) -> Decimal:
    if den <= 0:
        return Decimal(0)
    return max(Decimal(0), num / den).quantize(Decimal("0.000001"), rounding=ROUND_DOWN)
