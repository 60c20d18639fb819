"""The Sentinel strategy on hand-made quotes: entries as one two-leg signal, EXPAND only under
target, exits only when holding, a reverse carry refused with a reason, the hedge monitor's
rebalance, one signal in flight per symbol, and no look-ahead in the funding edge."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from titan.core.clock import ManualClock
from titan.core.marketdata.events import PERP, SPOT, funding_event, top_event
from titan.phases.runtime.core import PhaseCore
from titan.phases.sentinel import strategy
from titan.phases.sentinel.params import SentinelParams
from titan.phases.sentinel.strategy import SentinelStrategy
from titan.v1 import common_pb2, execution_pb2, trading_pb2

S = 10**9
MIN = 60 * S
H = 3600 * S
T0 = 1_700_000_000 * S - (1_700_000_000 * S) % H
KEY = b"k" * 32

PERMISSIVE: dict[str, Any] = {
    "sampleIntervalMs": 60_000, "windowSize": 30, "minSamples": 10, "minConfidence": 0.0,
    "minCarryApr": "0", "minBasisBps": "1", "signalCooldownMs": 0, "spotTakerFeeBps": "1", "perpTakerFeeBps": "1",
    "expectedSlippageBps": "0", "maxSpreadBps": "50",
}


def budget(now: int) -> trading_pb2.Budget:
    return trading_pb2.Budget(phase_id="sentinel", state=common_pb2.PHASE_STATE_ACTIVE, weight="0.5",
                              max_notional="100000", symbols=["BTCUSDT"], expires_at_ns=now + 100 * H, version=1)


class Desk:
    def __init__(self, **params: Any) -> None:
        self.clock = ManualClock(T0)
        self.strategy = SentinelStrategy(SentinelParams.model_validate({**PERMISSIVE, **params}), clock=self.clock)
        self.core = PhaseCore(self.strategy, "sentinel", KEY, self.clock)
        self.core.apply_budget(budget(T0))
        self.core.apply_trading_state(trading_pb2.TradingState(mode=common_pb2.TRADING_MODE_ACTIVE, version=1))
        self.signals: list[trading_pb2.Signal] = []
        self.events: list[strategy.PhaseEvent] = []  # type: ignore[name-defined]
        self.version = 0

    def quote(self, basis_bps: float, spot: float = 40_000.0) -> None:
        perp = spot * (1 + basis_bps / 1e4)
        now = self.clock.now_ns()
        for inst, mid in ((SPOT, spot), (PERP, perp)):
            ev = top_event("sim", "BTCUSDT", inst, bid_price=f"{mid - 0.5:.2f}", bid_size="5",
                           ask_price=f"{mid + 0.5:.2f}", ask_size="5", ts_ns=now)
            self.signals += self.core.feed(ev)
            self.events += self.core.events

    def funding(self, rate: str, settled: bool = True) -> None:
        now = self.clock.now_ns()
        ft = now - now % (8 * H)
        ev = funding_event("sim", "BTCUSDT", rate=rate, funding_time_ns=ft if settled else ft + 8 * H,
                           next_funding_time_ns=ft + 8 * H, settled=settled, ts_ns=now)
        self.signals += self.core.feed(ev)

    def minute(self, basis_bps: float, spot: float = 40_000.0) -> list[trading_pb2.Signal]:
        before = len(self.signals)
        self.clock.advance(MIN - S)
        self.quote(basis_bps, spot)   # the quote a second before the sample ...
        self.clock.advance(S)
        self.quote(basis_bps, spot)   # ... is sampled at the first quote past the boundary
        return self.signals[before:]

    def position(self, instrument: int, qty: str) -> None:
        self.version += 1
        pos = trading_pb2.Position(phase_id="sentinel", venue="sim", symbol="BTCUSDT", instrument=instrument,  # type: ignore[arg-type]
                                   quantity=qty, average_entry_price="40000", leverage="2", version=self.version)
        self.signals += self.core.on_update(execution_pb2.ExecutionUpdate(position=pos))

    def done(self, signal: trading_pb2.Signal) -> None:
        """The signal's orders filled; a hedged unit's outcome follows them, as execution sends it."""
        for i in range(len(signal.legs)):
            o = trading_pb2.Order(phase_id="sentinel", signal_id=signal.signal_id, symbol="BTCUSDT",
                                  client_order_id=f"{signal.signal_id}-{i}", state=trading_pb2.ORDER_STATE_FILLED)
            self.core.on_update(execution_pb2.ExecutionUpdate(order=o))
        if "hedge" in signal.metadata and len(signal.legs) == 2:
            outcome = trading_pb2.HedgeOutcome(phase_id="sentinel", signal_id=signal.signal_id, symbol="BTCUSDT",
                                               result=trading_pb2.HEDGE_RESULT_HEDGED,
                                               reducing=signal.intent != trading_pb2.INTENT_OPEN)
            self.signals += self.core.on_update(execution_pb2.ExecutionUpdate(hedge=outcome))

    def warm(self, n: int = 20) -> None:
        self.funding("0.0001")
        for i in range(n):
            assert self.minute(2.0 + (i % 3)) == []


def kinds(desk: Desk, kind: str) -> list[Any]:
    return [e for e in desk.events if e.kind == kind]


def test_entry_is_one_hedged_two_leg_signal_of_equal_notional() -> None:
    desk = Desk()
    desk.warm()
    sent = desk.minute(30.0)
    assert len(sent) == 1
    sig = sent[0]
    assert sig.intent == trading_pb2.INTENT_OPEN and sig.setup == "sentinel.carry_open"
    spot, perp = sig.legs
    assert (spot.instrument, spot.side) == (common_pb2.INSTRUMENT_KIND_SPOT, common_pb2.SIDE_BUY)
    assert (perp.instrument, perp.side) == (common_pb2.INSTRUMENT_KIND_PERP, common_pb2.SIDE_SELL)
    assert spot.size_quote == perp.size_quote == "5000"   # 10 % clip of 100 000, half per leg
    assert sig.metadata["hedge"] == "complete" and int(sig.metadata["hedge_deadline_ms"]) > 0
    assert sig.max_slippage_bps > 0 and sig.signature  # signed by the core
    assert desk.minute(30.0) == []  # in flight: no duplicate before its orders finish
    ev = kinds(desk, strategy.ENTRY_SENT)[0]
    assert Decimal(ev.get("funding_apr")) > 0


def test_no_entry_without_a_known_funding_interval() -> None:
    desk = Desk()
    for i in range(20):
        desk.minute(2.0 + (i % 3))
    assert desk.minute(30.0) == []
    assert kinds(desk, strategy.ENTRY_BLOCKED)[-1].get("reason") == "funding_interval_unknown"


def test_contract_only_when_holding_and_exit_on_convergence() -> None:
    desk = Desk(targetFraction="0.1", minCarryApr="0.2")   # the funding alone (~11 %) does not clear it
    desk.warm()
    assert desk.minute(-1.0) == []  # z <= 0 while flat: no CONTRACT (the original fired every tick)
    entry = desk.minute(30.0)[0]
    desk.position(common_pb2.INSTRUMENT_KIND_SPOT, "0.125")
    desk.position(common_pb2.INSTRUMENT_KIND_PERP, "-0.125")
    desk.done(entry)
    assert desk.minute(20.0) == []  # held, basis still rich
    out = desk.minute(0.0)
    assert len(out) == 1
    close = out[0]
    assert close.intent == trading_pb2.INTENT_CLOSE and close.setup == "sentinel.exit.convergence"
    assert [(leg.instrument, leg.side, leg.size_quote) for leg in close.legs] == [
        (common_pb2.INSTRUMENT_KIND_SPOT, common_pb2.SIDE_SELL, ""),
        (common_pb2.INSTRUMENT_KIND_PERP, common_pb2.SIDE_BUY, ""),
    ]


def test_expand_only_under_target() -> None:
    desk = Desk(targetFraction="0.1", clipFraction="0.1")
    desk.warm()
    entry = desk.minute(30.0)[0]
    desk.position(common_pb2.INSTRUMENT_KIND_SPOT, "0.125")    # 5 000 at 40 000 = the whole target
    desk.position(common_pb2.INSTRUMENT_KIND_PERP, "-0.125")
    desk.done(entry)
    assert desk.minute(35.0) == []
    assert kinds(desk, strategy.ENTRY_BLOCKED)[-1].get("reason") == "at_target"


def test_reverse_carry_is_refused_with_a_reason_and_never_sent() -> None:
    desk = Desk()
    desk.warm()
    assert desk.minute(-30.0) == []
    refused = kinds(desk, strategy.ENTRY_REFUSED)
    assert refused and refused[-1].get("reason") == "reverse_carry_needs_spot_short"
    assert desk.strategy.counters["refused_reverse_carry"] == 1


def test_hedge_monitor_rebalances_a_drifted_delta_with_one_reducing_leg() -> None:
    desk = Desk()
    desk.warm()
    entry = desk.minute(30.0)[0]
    desk.position(common_pb2.INSTRUMENT_KIND_SPOT, "0.125")
    desk.position(common_pb2.INSTRUMENT_KIND_PERP, "-0.100")  # 20 % unhedged
    desk.done(entry)
    out = desk.minute(20.0)
    assert len(out) == 1 and out[0].intent == trading_pb2.INTENT_REDUCE and out[0].setup == "sentinel.rebalance"
    (leg,) = out[0].legs
    assert (leg.instrument, leg.side) == (common_pb2.INSTRUMENT_KIND_SPOT, common_pb2.SIDE_SELL)
    assert Decimal(leg.size_quote) == Decimal("0.025") * Decimal("40000")
    assert "hedge" not in out[0].metadata


def test_rejected_entry_frees_the_symbol_and_crash_unwinds() -> None:
    desk = Desk(targetFraction="0.1")
    desk.warm()
    entry = desk.minute(30.0)[0]
    ack = trading_pb2.SignalAck(phase_id="sentinel", signal_id=entry.signal_id, accepted=False,
                                reason=trading_pb2.REJECT_REASON_PHASE_NOTIONAL)
    desk.core.on_update(execution_pb2.ExecutionUpdate(ack=ack))
    assert desk.strategy.symbols["BTCUSDT"].inflight == ""
    again = desk.minute(30.0)[0]
    desk.position(common_pb2.INSTRUMENT_KIND_SPOT, "0.125")
    desk.position(common_pb2.INSTRUMENT_KIND_PERP, "-0.125")
    desk.done(again)
    out = desk.minute(20.0, spot=37_000.0)   # -7.5 % from the window high
    assert len(out) == 1 and out[0].setup == "sentinel.exit.regime_crash"


def test_funding_flip_closes_and_the_edge_uses_only_settled_or_announced_rates() -> None:
    desk = Desk(fundingFlipPeriods=2, targetFraction="0.1")
    desk.warm()
    entry = desk.minute(30.0)[0]
    desk.position(common_pb2.INSTRUMENT_KIND_SPOT, "0.125")
    desk.position(common_pb2.INSTRUMENT_KIND_PERP, "-0.125")
    desk.done(entry)
    fs = desk.strategy.symbols["BTCUSDT"].funding
    desk.clock.advance(8 * H)
    desk.funding("-0.0002")
    assert fs.negative_streak() == 1 and desk.minute(25.0) == []
    desk.clock.advance(8 * H)
    desk.funding("-0.0003")
    out = desk.minute(25.0)
    assert len(out) == 1 and out[0].setup == "sentinel.exit.funding_flip"


def test_spot_and_perp_positions_of_one_symbol_are_two_positions_for_the_phase_core() -> None:
    """Execution versions each instrument's position on its own: a perp update with the spot's
    version number is not stale."""
    desk = Desk()
    for inst, qty in ((common_pb2.INSTRUMENT_KIND_SPOT, "0.5"), (common_pb2.INSTRUMENT_KIND_PERP, "-0.5")):
        pos = trading_pb2.Position(phase_id="sentinel", venue="sim", symbol="BTCUSDT", instrument=inst,  # type: ignore[arg-type]
                                   quantity=qty, version=1)
        desk.core.on_update(execution_pb2.ExecutionUpdate(position=pos))
    st = desk.strategy.symbols["BTCUSDT"]
    assert (st.spot_quantity, st.perp_quantity) == (Decimal("0.5"), Decimal("-0.5"))
    assert desk.core.stats.stale_positions == 0


def test_a_sample_uses_only_quotes_known_before_its_boundary() -> None:
    """No look-ahead: the quote that crosses a sample boundary is not part of that sample."""
    desk = Desk()
    desk.warm()
    desk.clock.advance(MIN)
    desk.quote(30.0)                       # the first quote past the boundary: samples the old quotes
    assert desk.signals == [] and desk.strategy.symbols["BTCUSDT"].last is not None
    assert desk.strategy.symbols["BTCUSDT"].last.basis < 0.0006
    desk.clock.advance(MIN)
    desk.quote(30.0)                       # the next boundary sees it
    assert len(desk.signals) == 1 and desk.signals[0].intent == trading_pb2.INTENT_OPEN


def test_negative_funding_settled_before_the_entry_does_not_close_it() -> None:
    desk = Desk(fundingFlipPeriods=2, targetFraction="0.1")
    desk.funding("-0.0002")
    desk.clock.advance(8 * H)
    desk.funding("-0.0001")
    desk.funding("0.0003", settled=False)    # the venue now predicts a positive rate
    desk.warm()
    entry = desk.minute(30.0)[0]
    desk.position(common_pb2.INSTRUMENT_KIND_SPOT, "0.125")
    desk.position(common_pb2.INSTRUMENT_KIND_PERP, "-0.125")
    desk.done(entry)
    assert desk.strategy.symbols["BTCUSDT"].funding.negative_streak() >= 2
    assert desk.minute(25.0) == []           # no churn: the streak predates the position
