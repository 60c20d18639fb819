"""Phase runtime without NATS: entry gate, signing, the gRPC stream (real grpc.aio on loopback) with
reconnect, acks and closed trades flowing back, /metrics and /healthz."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from titan.core.clock import ManualClock
from titan.core.signing import verify_signal
from titan.phases.runtime.contract import StrategyBase, StrategyOutput
from titan.phases.runtime.entry_gate import EntryBlock, entry_block
from titan.phases.runtime.runner import PhaseRuntime, RuntimeConfig
from titan.phases.runtime.trades import ClosedTrade, TradeTracker
from titan.v1 import common_pb2, execution_pb2, market_pb2, trading_pb2

from ..util import http_get, wait_for
from .exec_server import ExecServer, TinyExecution
from .helpers import budget, trade

KEY = b"phase-test-key-0123456789abcdef"
PHASE = "scavenger"
ACTIVE = trading_pb2.TradingState(mode=common_pb2.TRADING_MODE_ACTIVE)
NOW = 1_700_000_000 * 10**9


class OnePerTrade(StrategyBase):
    """A minimal strategy: one entry signal per trade event (what the gate and stream act on)."""

    phase_id = PHASE

    def __init__(self) -> None:
        self.n = 0
        self.acks: list[trading_pb2.SignalAck] = []
        self.closed: list[tuple[str, Decimal]] = []
        self.budget: trading_pb2.Budget | None = None
        self.params: dict[str, Any] = {}

    def market_filters(self) -> list[tuple[str, str, str]]:
        return [("*", "BTCUSDT", "trade")]

    def on_event(self, ev: market_pb2.MarketEvent) -> StrategyOutput:
        self.n += 1
        leg = trading_pb2.Leg(venue="paper", symbol=ev.symbol, side=common_pb2.SIDE_BUY, size_quote="10",
                              order_type=trading_pb2.ORDER_TYPE_MARKET)
        sig = trading_pb2.Signal(phase_id=PHASE, signal_id=f"s-{self.n}", intent=trading_pb2.INTENT_OPEN,
                                 legs=[leg], confidence=0.5, ttl_ms=60_000, created_at_ns=ev.exchange_ts_ns,
                                 setup="test")
        return StrategyOutput(signals=[sig])

    def on_time(self) -> StrategyOutput:
        return StrategyOutput()

    def set_budget(self, budget: trading_pb2.Budget | None) -> None:
        self.budget = budget

    def set_params(self, raw: Mapping[str, Any]) -> None:
        if raw.get("bad"):
            raise ValueError("bad parameter")
        self.params = dict(raw)

    def on_ack(self, ack: trading_pb2.SignalAck) -> StrategyOutput:
        self.acks.append(ack)
        return StrategyOutput()

    def on_trade_closed(self, symbol: str, pnl: Decimal) -> StrategyOutput:
        self.closed.append((symbol, pnl))
        return StrategyOutput()

    @property
    def state(self) -> str:
        return "ACTIVE"

    def diagnostics(self) -> dict[str, float]:
        return {"trades_seen": float(self.n)}


# --- the pure gate ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("b", "ts", "reason"),
    [
        (None, ACTIVE, EntryBlock.NO_BUDGET),
        (budget(expires_ns=NOW), ACTIVE, EntryBlock.EXPIRED),
        (budget(expires_ns=0), ACTIVE, EntryBlock.EXPIRED),
        (budget(notional="0"), ACTIVE, EntryBlock.ZERO),
        (budget(weight="0"), ACTIVE, EntryBlock.ZERO),
        (budget(state=common_pb2.PHASE_STATE_THROTTLED), ACTIVE, EntryBlock.THROTTLED),
        (budget(state=common_pb2.PHASE_STATE_HALTED), ACTIVE, EntryBlock.HALTED),
        (budget(state=common_pb2.PHASE_STATE_DORMANT), ACTIVE, EntryBlock.DORMANT),
        (budget(state=common_pb2.PHASE_STATE_UNSPECIFIED), ACTIVE, EntryBlock.UNSPECIFIED),
        (budget(phase="hunter"), ACTIVE, EntryBlock.WRONG_PHASE),
        (budget(), None, EntryBlock.TRADING_UNKNOWN),
        (budget(), trading_pb2.TradingState(mode=common_pb2.TRADING_MODE_HALTED), EntryBlock.TRADING_HALTED),
        (budget(), trading_pb2.TradingState(mode=common_pb2.TRADING_MODE_REDUCING), EntryBlock.TRADING_REDUCING),
        (budget(), ACTIVE, None),
    ],
)
def test_entry_gate(b: trading_pb2.Budget | None, ts: trading_pb2.TradingState | None, reason: str | None) -> None:
    assert entry_block(PHASE, b, ts, NOW) == reason


def test_trade_tracker_turns_positions_into_closed_trades() -> None:
    tr = TradeTracker()

    def pos(qty: str, realized: str, fees: str, version: int) -> trading_pb2.Position:
        return trading_pb2.Position(phase_id=PHASE, venue="paper", symbol="BTCUSDT", quantity=qty,
                                    realized_pnl=realized, fees=fees, version=version)

    assert tr.on_position(pos("0.1", "0", "0.5", 1)) == []             # opened (fee 0.5 belongs to it)
    assert tr.on_position(pos("0.05", "3", "0.7", 2)) == []            # partly closed
    assert tr.on_position(pos("0.05", "3", "0.7", 2)) == []            # duplicate version ignored
    assert tr.on_position(pos("0", "2", "1", 3)) == [ClosedTrade("BTCUSDT", Decimal("1"))]  # 2 - 1 fees
    assert tr.on_position(pos("-0.1", "2", "1.2", 4)) == []            # a short opens
    assert tr.on_position(pos("0", "0.5", "1.5", 5)) == [ClosedTrade("BTCUSDT", Decimal("-2.0"))]


# --- runtime + gRPC ------------------------------------------------------------------------------------
async def test_signals_are_gated_signed_streamed_and_acked_across_a_reconnect() -> None:
    servicer = TinyExecution({PHASE: KEY})
    server = ExecServer(servicer)
    target = await server.start()
    clock = ManualClock(NOW)
    strat = OnePerTrade()
    rt = PhaseRuntime(strat, RuntimeConfig(PHASE, KEY, execution_target=target, http_port=0, min_backoff_s=0.05,
                                           max_backoff_s=0.2), clock=clock)
    await rt.start()
    try:
        await wait_for(lambda: rt.stream is not None and rt.stream.connected.is_set())
        # No budget yet: the entry is not sent.
        rt.feed(trade("100", ts_ns=NOW))
        assert rt.stats.entries_blocked == {EntryBlock.NO_BUDGET: 1}
        rt.apply_budget(budget())
        rt.feed(trade("100", ts_ns=NOW))
        assert rt.stats.entries_blocked[EntryBlock.TRADING_UNKNOWN] == 1
        rt.apply_trading_state(ACTIVE)
        rt.feed(trade("100", ts_ns=NOW))
        await wait_for(lambda: len(strat.acks) == 1)
        assert len(servicer.signals) == 1 and servicer.bad_signatures == 0
        assert verify_signal(servicer.signals[0], KEY) and strat.acks[0].accepted
        assert servicer.hellos[0].phase_id == PHASE
        # A Halted budget stops the next entry at once.
        rt.apply_budget(budget(state=common_pb2.PHASE_STATE_HALTED, version=2))
        rt.feed(trade("100", ts_ns=NOW))
        assert rt.stats.entries_blocked[EntryBlock.HALTED] == 1 and rt.state == "BLOCKED"
        # A symbol the budget does not allow is not sent either.
        rt.apply_budget(budget(version=3, symbols=("ETHUSDT",)))
        rt.feed(trade("100", ts_ns=NOW))
        assert rt.stats.entries_blocked[EntryBlock.SYMBOL_NOT_ALLOWED] == 1
        rt.apply_budget(budget(version=4))

        # Execution goes away and comes back on the same port: the stream reconnects.
        await server.stop()
        await wait_for(lambda: rt.stream is not None and not rt.stream.connected.is_set())
        await server.start()
        await wait_for(lambda: rt.stream is not None and rt.stream.connected.is_set(), timeout=15)
        assert servicer.streams_opened == 2
        rt.feed(trade("100", ts_ns=NOW))
        await wait_for(lambda: len(strat.acks) == 2)
        assert [s.signal_id for s in servicer.signals] == ["s-3", "s-6"]

        # Position updates from execution close trades in the strategy (two that waited together
        # arrive as one UpdateBatch and are handled one by one, in order).
        positions = [execution_pb2.ExecutionUpdate(position=trading_pb2.Position(
            phase_id=PHASE, venue="paper", symbol="BTCUSDT", quantity=qty, realized_pnl=realized, version=version))
            for qty, realized, version in [("0.1", "0", 1), ("0", "-4", 2)]]
        await servicer.outgoing.put(execution_pb2.ExecutionUpdate(updates=execution_pb2.UpdateBatch(updates=positions)))
        await wait_for(lambda: strat.closed == [("BTCUSDT", Decimal(-4))])

        # /metrics and /healthz
        assert rt.http is not None
        status, body = await http_get(rt.http.port, "/metrics")
        assert status == 200 and 'titan_phase_signals_total{phase="scavenger",setup="test"}' in body
        assert 'titan_phase_entries_blocked_total{phase="scavenger",reason="halted"}' in body
        status, body = await http_get(rt.http.port, "/healthz")
        assert status == 200 and '"stream_connected": true' in body
        status, _ = await http_get(rt.http.port, "/nope")
        assert status == 404
    finally:
        await rt.stop()
        await server.stop()


async def test_expired_signals_are_not_sent_late_and_bad_params_are_refused() -> None:
    with socket.socket() as sock:  # a free port nothing listens on yet
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = ManualClock(NOW)
    strat = OnePerTrade()
    rt = PhaseRuntime(strat, RuntimeConfig(PHASE, KEY, execution_target=f"127.0.0.1:{port}", min_backoff_s=0.05,
                                           max_backoff_s=0.1), clock=clock)
    servicer = TinyExecution({PHASE: KEY})
    server = ExecServer(servicer, port)
    await rt.start()
    try:
        rt.apply_budget(budget())
        rt.apply_trading_state(ACTIVE)
        rt.feed(trade("100", ts_ns=NOW))  # queued while execution is down
        assert rt.stream is not None and rt.stream.pending == 1
        clock.advance(61 * 10**9)  # past the signal's 60 s ttl
        await server.start()
        await wait_for(lambda: rt.stream is not None and rt.stream.connected.is_set(), timeout=15)
        rt.feed(trade("100", ts_ns=clock.now_ns()))
        await wait_for(lambda: len(servicer.signals) == 1)
        assert servicer.signals[0].signal_id == "s-2" and rt.stream.dropped == 1

        assert await rt.apply_params({"x": 1}) and strat.params == {"x": 1}
        assert not await rt.apply_params({"bad": True}) and strat.params == {"x": 1}
        assert rt.stats.params_rejected == 1
    finally:
        await rt.stop()
        await server.stop()


async def test_in_process_mode_keeps_signed_signals_in_the_outbox() -> None:
    rt = PhaseRuntime(OnePerTrade(), RuntimeConfig(PHASE, KEY), clock=ManualClock(NOW))
    rt.apply_budget(budget())
    rt.apply_trading_state(ACTIVE)
    rt.feed(trade("100", ts_ns=NOW))
    assert len(rt.outbox) == 1 and verify_signal(rt.outbox[0], KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        PhaseRuntime(OnePerTrade(), RuntimeConfig(PHASE, b"short"))
    await asyncio.sleep(0)

