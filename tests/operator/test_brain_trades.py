"""The Brain counts trades one per signal everywhere: its performance tracker and its SOFT breaker
see both legs of a hedged close as one trade, and a perp's trade includes the funding its position
paid or received while open (FundingPayment events on the execution stream)."""

from __future__ import annotations

from decimal import Decimal

from titan.core.clock import NS_PER_S
from titan.execution.orders import client_order_id
from titan.operator.brain import BrainCore, BrainPolicy, PhaseKind, PhaseSpec
from titan.operator.brain.breakers import BreakerKind
from titan.operator.brain.feed import observe_event
from titan.v1 import common_pb2, events_pb2, trading_pb2

DAY = 86_400 * NS_PER_S
T0 = 20_000 * DAY + 3600 * NS_PER_S
MINUTE = 60 * NS_PER_S
PHASE = "sentinel"
PHASES = (PhaseSpec("scavenger", PhaseKind.SCAVENGER, symbols=("BTCUSDT",)),
          PhaseSpec(PHASE, PhaseKind.SENTINEL, symbols=("BTCUSDT",)))
SPOT, PERP = common_pb2.INSTRUMENT_KIND_SPOT, common_pb2.INSTRUMENT_KIND_PERP
BUY, SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL


def fill(signal: str, leg: int, instrument: int, side: int, realized: str, fee: str, ts: int,
         symbol: str = "BTCUSDT") -> events_pb2.Event:
    cid = client_order_id(PHASE, signal, leg)
    return events_pb2.Event(event_id=f"{cid}-{ts}", source="execution", ts_ns=ts, fill=trading_pb2.Fill(
        venue="sim", fill_id=f"{cid}-{ts}", client_order_id=cid, phase_id=PHASE, symbol=symbol,
        instrument=instrument, side=side, price="50000", quantity="1", fee=fee, realized_pnl=realized,  # type: ignore[arg-type]
        ts_ns=ts))


def funding(amount: str, ts: int, symbol: str = "BTCUSDT") -> events_pb2.Event:
    return events_pb2.Event(event_id=f"funding-{symbol}-{ts}", source="execution", ts_ns=ts,
                            funding=trading_pb2.FundingPayment(venue="sim", symbol=symbol, phase_id=PHASE,
                                                               amount=amount, funding_time_ns=ts))


def hedged_close(core: BrainCore, policy: BrainPolicy, signal: str, spot: str, perp: str, ts: int) -> None:
    """Both legs of a closing unit, spot first (fee 1 each)."""
    observe_event(core, fill(signal, 0, SPOT, SELL, spot, "1", ts), policy)
    observe_event(core, fill(signal, 1, PERP, BUY, perp, "1", ts), policy)


def started() -> tuple[BrainCore, BrainPolicy]:
    core, policy = BrainCore(), BrainPolicy()
    core.observe_equity("total", Decimal(100_000), T0)
    core.decide(T0, policy, PHASES)
    return core, policy


def trades(core: BrainCore, now: int) -> list[Decimal]:
    return [t.pnl for t in core.performance.window(PHASE, now, 86_400)]


def test_a_hedged_close_that_wins_does_not_extend_a_losing_streak() -> None:
    """A losing hedged close, then one whose spot leg loses and perp leg wins more: three losing
    closing fills in a row, but a losing trade and a winning one, so no SOFT trip."""
    core, policy = started()
    hedged_close(core, policy, "close-1", "-5", "-5", T0 + MINUTE)
    hedged_close(core, policy, "close-2", "-10", "30", T0 + 2 * MINUTE)
    d = core.decide(T0 + 2 * MINUTE, policy, PHASES)
    assert not d.soft_active and d.breaker_changes == ()
    assert trades(core, T0 + 2 * MINUTE) == [Decimal(-12), Decimal(18)]


def test_losing_hedged_closes_count_once_each_toward_the_soft_breaker() -> None:
    core, policy = started()
    for n in (1, 2):   # four losing closing fills, two losing trades
        hedged_close(core, policy, f"close-{n}", "-5", "-5", T0 + n * MINUTE)
    assert not core.decide(T0 + 2 * MINUTE, policy, PHASES).soft_active
    hedged_close(core, policy, "close-3", "-5", "-5", T0 + 3 * MINUTE)
    d = core.decide(T0 + 3 * MINUTE, policy, PHASES)
    assert d.soft_active and [(c.kind, c.tripped) for c in d.breaker_changes] == [(BreakerKind.SOFT, True)]
    assert d.breaker_changes[0].ts_ns == T0 + 3 * MINUTE


def test_a_leg_after_the_decision_revises_its_signals_trade() -> None:
    """close-3's spot leg wins and a decision counts it; its perp leg arrives later and loses more:
    close-3 is then the third losing trade in a row (not a win followed by a trade of its own)."""
    core, policy = started()
    for n in (1, 2):
        hedged_close(core, policy, f"close-{n}", "-5", "-5", T0 + n * MINUTE)
    observe_event(core, fill("close-3", 0, SPOT, SELL, "6", "1", T0 + 3 * MINUTE), policy)
    assert not core.decide(T0 + 3 * MINUTE, policy, PHASES).soft_active   # two losses, then a win so far
    observe_event(core, fill("close-3", 1, PERP, BUY, "-20", "1", T0 + 4 * MINUTE), policy)
    d = core.decide(T0 + 4 * MINUTE, policy, PHASES)
    assert d.soft_active and [(c.kind, c.tripped) for c in d.breaker_changes] == [(BreakerKind.SOFT, True)]
    assert trades(core, T0 + 4 * MINUTE) == [Decimal(-12), Decimal(-12), Decimal(-16)]
    # the streak starts again from zero: one more losing trade does not trip again
    hedged_close(core, policy, "close-5", "-5", "-5", T0 + 5 * MINUTE)
    assert core.decide(T0 + 5 * MINUTE, policy, PHASES).breaker_changes == ()


def test_a_perp_trade_includes_the_funding_paid_and_received_while_open() -> None:
    core, policy = started()
    observe_event(core, funding("3.5", T0 + 8 * 60 * MINUTE), policy)
    observe_event(core, funding("-1.5", T0 + 16 * 60 * MINUTE), policy)
    observe_event(core, funding("9", T0 + 16 * 60 * MINUTE, symbol="ETHUSDT"), policy)  # another position's
    hedged_close(core, policy, "close-1", "100", "-85", T0 + 20 * 60 * MINUTE)
    assert trades(core, T0 + 20 * 60 * MINUTE) == [
        Decimal(100) - Decimal(85) - Decimal(2) + Decimal(2)
    ]  # + 3.5 - 1.5 funding, once
    # the funding is taken by the trade it belongs to: the next trade starts from zero
    hedged_close(core, policy, "close-2", "1", "1", T0 + 21 * 60 * MINUTE)
    assert trades(core, T0 + 21 * 60 * MINUTE)[-1] == Decimal(0)
    observe_event(core, fill("close-3", 1, PERP, BUY, "5", "1", T0 + 22 * 60 * MINUTE, symbol="ETHUSDT"), policy)
    assert trades(core, T0 + 22 * 60 * MINUTE)[-1] == Decimal(5) - Decimal(1) + Decimal(9)


def test_a_spot_close_takes_no_funding() -> None:
    core, policy = started()
    observe_event(core, funding("4", T0 + MINUTE), policy)
    observe_event(core, fill("close-1", 0, SPOT, SELL, "10", "1", T0 + 2 * MINUTE), policy)
    assert trades(core, T0 + 2 * MINUTE) == [Decimal(9)]
    observe_event(core, fill("close-2", 1, PERP, BUY, "10", "1", T0 + 3 * MINUTE), policy)
    assert trades(core, T0 + 3 * MINUTE) == [Decimal(9), Decimal(13)]


def test_a_trade_includes_the_fees_of_the_fills_that_opened_it() -> None:
    """As in the backtest: a trade from flat to flat is its realized PnL minus all its fees plus funding."""
    core, policy = started()
    observe_event(core, fill("open-1", 0, SPOT, BUY, "0", "2", T0), policy)
    observe_event(core, fill("open-1", 1, PERP, SELL, "0", "2", T0), policy)
    assert trades(core, T0) == []
    observe_event(core, funding("5", T0 + 8 * 60 * MINUTE), policy)
    hedged_close(core, policy, "close-1", "100", "-85", T0 + 9 * 60 * MINUTE)
    assert trades(core, T0 + 9 * 60 * MINUTE) == [
        Decimal(100) - Decimal(85) + Decimal(5) - Decimal(4) - Decimal(2)
    ]  # opening and closing fees


def test_a_fill_or_funding_seen_again_counts_once() -> None:
    """A message redelivered after a lost ack, or an event published again inside another batch,
    reaches the feed twice with the same id: the second copy changes nothing."""
    core, policy = started()
    opening = fill("open-1", 1, PERP, SELL, "0", "2", T0)
    payment = funding("5", T0 + 8 * 60 * MINUTE)
    closing = fill("close-1", 1, PERP, BUY, "10", "1", T0 + 9 * 60 * MINUTE)
    for event in (opening, opening, payment, payment, closing, closing):
        observe_event(core, event, policy)
    assert trades(core, T0 + 9 * 60 * MINUTE) == [Decimal(10) - Decimal(1) + Decimal(5) - Decimal(2)]
    core.decide(T0 + 9 * 60 * MINUTE, policy, PHASES)
    assert core.breakers.to_dict() == started()[0].breakers.to_dict()  # one winning trade trips nothing


def test_counted_ids_forget_the_oldest_beyond_their_capacity() -> None:
    from titan.operator.brain.counted import CountedIds

    counted = CountedIds(capacity=3)
    assert [counted.first(i) for i in ("a", "b", "c", "a", "d")] == [True, True, True, False, True]
    assert len(counted) == 3
    assert counted.first("a")        # forgotten: the oldest went when "d" came
    assert not counted.first("d")
    assert counted.first("") and counted.first("")  # no id: cannot be told from a copy, always counts
