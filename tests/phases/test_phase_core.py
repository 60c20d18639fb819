"""PhaseCore without any I/O: the gate and signing of what the strategy returns, execution feedback
delivered only when it is the phase's own (acks, orders, fills, positions -> closed trades), strategy
exceptions contained, parameters refused, and the same inputs giving the same signals."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from titan.core.clock import ManualClock
from titan.core.signing import verify_signal
from titan.phases.runtime.contract import StrategyBase, StrategyOutput
from titan.phases.runtime.core import PhaseCore
from titan.phases.runtime.entry_gate import EntryBlock, entry_block
from titan.v1 import common_pb2, execution_pb2, market_pb2, trading_pb2

from .helpers import budget, trade

KEY = b"phase-core-key-0123456789abcdef"
PHASE = "scavenger"
NOW = 1_700_000_000 * 10**9
ACTIVE = trading_pb2.TradingState(mode=common_pb2.TRADING_MODE_ACTIVE)


class Recorder(StrategyBase):
    """Records every callback; opens on each trade event, hedges (an exit) on each fill."""

    phase_id = PHASE

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []
        self.fail_on: str = ""
        self.n = 0

    def market_filters(self) -> list[tuple[str, str, str]]:
        return [("*", "BTCUSDT", "trade")]

    def set_budget(self, budget: trading_pb2.Budget | None) -> None:
        self.seen.append(("budget", budget))

    def set_params(self, raw: Mapping[str, Any]) -> None:
        if "bad" in raw:
            raise ValueError("bad parameter")
        self.seen.append(("params", dict(raw)))

    def _record(self, kind: str, value: object) -> None:
        if kind == self.fail_on:
            raise RuntimeError(f"{kind} broke")
        self.seen.append((kind, value))

    def _signal(self, intent: int, ts_ns: int) -> trading_pb2.Signal:
        self.n += 1
        leg = trading_pb2.Leg(venue="paper", symbol="BTCUSDT", side=common_pb2.SIDE_BUY, size_quote="10")
        return trading_pb2.Signal(signal_id=f"s-{self.n}", intent=intent, legs=[leg], created_at_ns=ts_ns)

    def on_event(self, ev: market_pb2.MarketEvent) -> StrategyOutput:
        self._record("event", ev.trade.price)
        out = StrategyOutput(signals=[self._signal(trading_pb2.INTENT_OPEN, ev.exchange_ts_ns)])
        out.event("SAW", ev.symbol, ev.exchange_ts_ns, price=ev.trade.price)
        return out

    def on_ack(self, ack: trading_pb2.SignalAck) -> StrategyOutput:
        self._record("ack", ack.signal_id)
        return StrategyOutput()

    def on_order(self, order: trading_pb2.Order) -> StrategyOutput:
        self._record("order", order.client_order_id)
        return StrategyOutput()

    def on_fill(self, fill: trading_pb2.Fill) -> StrategyOutput:
        self._record("fill", fill.fill_id)
        return StrategyOutput(signals=[self._signal(trading_pb2.INTENT_CLOSE, fill.ts_ns)])

    def on_position(self, position: trading_pb2.Position) -> StrategyOutput:
        self._record("position", position.quantity)
        return StrategyOutput()

    def on_trade_closed(self, symbol: str, pnl: Decimal) -> StrategyOutput:
        self._record("closed", pnl)
        return StrategyOutput()


def _core(strategy: Recorder | None = None) -> tuple[PhaseCore, Recorder]:
    strat = strategy or Recorder()
    core = PhaseCore(strat, PHASE, KEY, ManualClock(NOW))
    core.apply_budget(budget())
    core.apply_trading_state(ACTIVE)
    return core, strat


def _updates(phase: str) -> list[execution_pb2.ExecutionUpdate]:
    def pos(qty: str, realized: str, version: int) -> execution_pb2.ExecutionUpdate:
        return execution_pb2.ExecutionUpdate(position=trading_pb2.Position(
            phase_id=phase, venue="paper", symbol="BTCUSDT", quantity=qty, realized_pnl=realized, version=version))

    return [
        execution_pb2.ExecutionUpdate(order=trading_pb2.Order(phase_id=phase, client_order_id=f"{phase}-o1")),
        execution_pb2.ExecutionUpdate(fill=trading_pb2.Fill(phase_id=phase, fill_id=f"{phase}-f1", ts_ns=NOW)),
        pos("0.1", "0", 1),
        pos("0", "-3", 2),
    ]


def test_entries_are_gated_stamped_and_signed() -> None:
    core = PhaseCore(Recorder(), PHASE, KEY, ManualClock(NOW))
    assert core.feed(trade("100", ts_ns=NOW)) == []
    assert core.stats.entries_blocked == {EntryBlock.NO_BUDGET: 1} and core.state == "BLOCKED"
    assert [e.kind for e in core.events] == ["SAW"]
    core.apply_budget(budget())
    core.apply_trading_state(ACTIVE)
    (sig,) = core.feed(trade("101", ts_ns=NOW))
    assert sig.phase_id == PHASE and verify_signal(sig, KEY) and core.state == "ACTIVE"
    assert core.events[0].get("price") == "101"
    assert core.on_time() == [] and core.events == []
    with pytest.raises(ValueError, match="16 bytes"):
        PhaseCore(Recorder(), PHASE, b"short", ManualClock(NOW))


def test_own_orders_fills_and_positions_reach_the_strategy_and_close_trades() -> None:
    core, strat = _core()
    strat.seen.clear()
    out = [core.on_update(u) for u in _updates(PHASE)]
    assert strat.seen == [("order", f"{PHASE}-o1"), ("fill", f"{PHASE}-f1"), ("position", "0.1"),
                          ("position", "0"), ("closed", Decimal(-3))]
    (exit_signal,) = out[1]  # the fill's reaction is released (an exit passes the gate) and signed
    assert exit_signal.intent == trading_pb2.INTENT_CLOSE and verify_signal(exit_signal, KEY)
    assert (core.stats.orders, core.stats.fills, core.stats.positions, core.stats.trades_closed) == (1, 1, 2, 1)
    # A repeated (stale) position is not delivered twice and closes nothing.
    assert core.on_update(_updates(PHASE)[3]) == [] and core.stats.stale_positions == 1
    assert strat.seen[-1] == ("closed", Decimal(-3)) and len(strat.seen) == 5


@pytest.mark.parametrize("other", ["hunter", "", "scavenger-b"])
def test_updates_of_another_phase_are_never_delivered(other: str) -> None:
    core, strat = _core()
    strat.seen.clear()
    for update in _updates(other):
        assert core.on_update(update) == []
    assert core.on_update(execution_pb2.ExecutionUpdate(
        ack=trading_pb2.SignalAck(phase_id="hunter", signal_id="h-1", accepted=True))) == []
    assert strat.seen == []
    assert core.stats.trades_closed == 0 and core.stats.foreign_updates == 4 + 1
    assert core.stats.acks_accepted == 0
    # Its own ack still arrives.
    core.on_update(execution_pb2.ExecutionUpdate(ack=trading_pb2.SignalAck(phase_id=PHASE, signal_id="s-1")))
    assert strat.seen == [("ack", "s-1")] and core.stats.acks_rejected == 1


@pytest.mark.parametrize("broken", ["event", "ack", "order", "fill", "position", "closed"])
def test_a_strategy_exception_never_escapes(broken: str) -> None:
    core, strat = _core()
    strat.fail_on = broken
    core.feed(trade("100", ts_ns=NOW))
    core.on_update(execution_pb2.ExecutionUpdate(ack=trading_pb2.SignalAck(phase_id=PHASE, signal_id="s-1")))
    for update in _updates(PHASE):
        core.on_update(update)
    calls = 2 if broken == "position" else 1  # two position updates, one of each other kind
    assert core.stats.strategy_errors == calls
    assert core.stats.trades_closed == 1  # the tracker still saw the position close
    assert core.diagnostics().values["strategy_errors"] == calls


def test_params_are_applied_or_refused() -> None:
    core, strat = _core()
    assert core.apply_params({"x": 1}) and ("params", {"x": 1}) in strat.seen
    assert not core.apply_params({"bad": True})
    assert (core.stats.params_applied, core.stats.params_rejected) == (1, 1)


def test_the_same_inputs_give_the_same_signals() -> None:
    def run() -> list[bytes]:
        core, _ = _core()
        signals = core.feed(trade("100", ts_ns=NOW))
        for update in _updates(PHASE):
            signals += core.on_update(update)
        core.remove_budget(PHASE)
        signals += core.feed(trade("100", ts_ns=NOW))  # no budget: the entry is held back
        return [s.SerializeToString(deterministic=True) for s in signals]

    first = run()
    assert len(first) == 2 and first == run()


GATE_CASES = [
    (None, ACTIVE), (budget(expires_ns=NOW + 10), ACTIVE), (budget(expires_ns=0), ACTIVE),
    (budget(notional="0"), ACTIVE), (budget(weight="x"), ACTIVE),
    (budget(state=common_pb2.PHASE_STATE_HALTED, expires_ns=NOW + 10), ACTIVE),
    (budget(state=common_pb2.PHASE_STATE_DORMANT), None), (budget(expires_ns=NOW + 10), None),
    (budget(), trading_pb2.TradingState(mode=common_pb2.TRADING_MODE_REDUCING)), (budget(), ACTIVE),
]


@pytest.mark.parametrize(("b", "ts"), GATE_CASES)
def test_the_cached_gate_agrees_with_entry_block_at_every_time(
    b: trading_pb2.Budget | None, ts: trading_pb2.TradingState | None,
) -> None:
    clock = ManualClock(NOW)
    core = PhaseCore(Recorder(), PHASE, KEY, clock)
    if b is not None:
        core.apply_budget(b)
    if ts is not None:
        core.apply_trading_state(ts)
    core.apply_budget(budget(phase="hunter"))  # another phase's budget changes nothing
    for step in (0, 9, 1, 5):  # before, at and after the expiry of the budgets that have one
        clock.advance(step)
        assert core.entry_block() == entry_block(PHASE, b, ts, clock.now_ns())
    if b is not None:
        core.remove_budget(PHASE)
        assert core.entry_block() == EntryBlock.NO_BUDGET
