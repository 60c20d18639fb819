"""The phase's own trade count (``on_trade_closed``, ``trades_closed``, the losing-streak cool-down)
counts a hedged unit as one trade, as the backtest's ``closed_trades`` and the Brain do: the spot and
the perp position one signal opened on opposite sides close as one trade once both are flat, with
both legs' realized PnL plus the perp's funding minus both legs' fees."""

from __future__ import annotations

from decimal import Decimal

from titan.backtest.config import BacktestConfig
from titan.backtest.driver import Backtest
from titan.backtest.performance import closed_trades
from titan.core.clock import ManualClock
from titan.execution.orders import client_order_id
from titan.phases.runtime.contract import StrategyBase, StrategyOutput
from titan.phases.runtime.core import PhaseCore
from titan.v1 import common_pb2, execution_pb2, trading_pb2

from .helpers import SENTINEL_SIM_PERMISSIVE, budget

PHASE = "sentinel"
KEY = b"k" * 32
SPOT, PERP = common_pb2.INSTRUMENT_KIND_SPOT, common_pb2.INSTRUMENT_KIND_PERP
BUY, SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL


class Closed(StrategyBase):
    phase_id = PHASE

    def __init__(self) -> None:
        self.closed: list[tuple[str, Decimal]] = []

    def market_filters(self) -> list[tuple[str, str, str]]:
        return []

    def on_event(self, ev: object) -> StrategyOutput:
        return StrategyOutput()

    def set_budget(self, budget: trading_pb2.Budget | None) -> None:
        pass

    def set_params(self, raw: object) -> None:
        pass

    def on_trade_closed(self, symbol: str, pnl: Decimal) -> StrategyOutput:
        self.closed.append((symbol, pnl))
        return StrategyOutput()


class Book:
    """Feeds a PhaseCore the fills and positions execution would send, per instrument."""

    def __init__(self) -> None:
        self.strategy = Closed()
        self.core = PhaseCore(self.strategy, PHASE, KEY, ManualClock(0))
        self.core.apply_budget(budget())
        self.version = 0
        self.totals: dict[int, tuple[Decimal, Decimal, Decimal, Decimal]] = {}  # qty, realized, fees, funding

    def fill(self, signal: str, leg: int, instrument: int, side: int, qty: str, fee: str, realized: str) -> None:
        cid = client_order_id(PHASE, signal, leg)
        self.core.on_update(execution_pb2.ExecutionUpdate(fill=trading_pb2.Fill(
            venue="sim", fill_id=f"{cid}-{self.version}", client_order_id=cid, phase_id=PHASE, symbol="BTCUSDT",
            instrument=instrument, side=side, quantity=qty, fee=fee, realized_pnl=realized)))  # type: ignore[arg-type]
        held, done, fees, funding = self.totals.get(instrument, (Decimal(0), Decimal(0), Decimal(0), Decimal(0)))
        signed = Decimal(qty) if side == BUY else -Decimal(qty)
        self.totals[instrument] = (held + signed, done + Decimal(realized), fees + Decimal(fee), funding)
        self._position(instrument)

    def funding(self, amount: str) -> None:
        held, done, fees, funding = self.totals[PERP]
        self.totals[PERP] = (held, done, fees, funding + Decimal(amount))
        self._position(PERP)

    def _position(self, instrument: int) -> None:
        held, done, fees, funding = self.totals[instrument]
        self.version += 1
        self.core.on_update(execution_pb2.ExecutionUpdate(position=trading_pb2.Position(
            phase_id=PHASE, venue="sim", symbol="BTCUSDT", instrument=instrument, quantity=str(held),  # type: ignore[arg-type]
            realized_pnl=str(done), fees=str(fees), funding=str(funding), version=self.version)))

    def open_carry(self, signal: str = "open-1") -> None:
        self.fill(signal, 0, SPOT, BUY, "1", "2", "0")
        self.fill(signal, 1, PERP, SELL, "1", "2", "0")


def test_a_hedged_position_is_one_trade_with_both_legs_funding_and_fees() -> None:
    book = Book()
    book.open_carry()
    book.funding("3.5")
    book.funding("1.5")
    book.fill("close-1", 0, SPOT, SELL, "1", "2", "100")
    assert book.strategy.closed == [] and book.core.stats.trades_closed == 0   # the spot leg waits for the perp
    book.fill("close-1", 1, PERP, BUY, "1", "2", "-85")
    assert book.strategy.closed == [("BTCUSDT", Decimal("100") - Decimal("85") + Decimal("5") - Decimal("8"))]
    assert book.core.stats.trades_closed == 1


def test_the_perp_leg_closing_first_waits_for_the_spot_leg() -> None:
    book = Book()
    book.open_carry()
    book.fill("close-1", 1, PERP, BUY, "1", "2", "-85")
    assert book.strategy.closed == []
    book.fill("close-1", 0, SPOT, SELL, "1", "2", "100")
    assert book.strategy.closed == [("BTCUSDT", Decimal("7"))]


def test_legs_opened_by_different_signals_are_two_trades() -> None:
    book = Book()
    book.fill("open-1", 0, SPOT, BUY, "1", "2", "0")
    book.fill("open-2", 1, PERP, SELL, "1", "2", "0")
    book.fill("close-1", 0, SPOT, SELL, "1", "2", "100")
    assert book.strategy.closed == [("BTCUSDT", Decimal("96"))]
    book.fill("close-1", 1, PERP, BUY, "1", "2", "-85")
    assert book.strategy.closed == [("BTCUSDT", Decimal("96")), ("BTCUSDT", Decimal("-89"))]


def test_an_unwound_leg_without_a_partner_is_a_trade_of_its_own() -> None:
    """The perp leg of the opening unit never filled: the unwound spot leg closes its trade at once."""
    book = Book()
    book.fill("open-1", 0, SPOT, BUY, "1", "2", "0")
    book.fill("open-1", 2, SPOT, SELL, "1", "2", "-3")   # the unit's unwind step
    assert book.strategy.closed == [("BTCUSDT", Decimal("-7"))]


def test_two_hedged_units_in_a_row_are_two_trades() -> None:
    book = Book()
    for n in (1, 2):
        book.open_carry(f"open-{n}")
        book.fill(f"close-{n}", 0, SPOT, SELL, "1", "1", "-10")
        book.fill(f"close-{n}", 1, PERP, BUY, "1", "1", "4")
    assert book.strategy.closed == [("BTCUSDT", Decimal("-12")), ("BTCUSDT", Decimal("-12"))]   # -10 + 4 - 6 in fees
    assert book.core.stats.trades_closed == 2


def test_a_sentinel_backtest_closes_the_same_trades_in_the_phase_as_in_the_backtest() -> None:
    """The Sentinel's own closed trades (what its runtime counts) are the backtest's, PnL for PnL,
    and the Brain's (which it fed from the same run's events)."""
    params = SENTINEL_SIM_PERMISSIVE
    backtest = Backtest(BacktestConfig(data=("sim:3",), phases=(PHASE,), params={PHASE: params},
                                       initial_equity=Decimal("100000"), sim_hours=6, sim_symbols=("BTCUSDT",)))
    phase = backtest.phases[PHASE]
    seen: list[Decimal] = []
    strategy_closed = phase.strategy.on_trade_closed

    def record(symbol: str, pnl: Decimal) -> StrategyOutput:
        seen.append(pnl)
        return strategy_closed(symbol, pnl)

    phase.strategy.on_trade_closed = record  # type: ignore[method-assign]
    recorder = backtest.run()
    trades = [t for t in closed_trades(recorder.fills, recorder.funding) if t.phase_id == PHASE]
    assert trades, "the permissive Sentinel opened and closed nothing in 6 simulated hours"
    assert phase.stats.trades_closed == len(trades) == len(seen)
    assert seen == [t.pnl for t in trades]
    end = max(t.closed_ns for t in trades)
    assert [t.pnl for t in backtest.brain.performance.window(PHASE, end, 86_400)] == seen
