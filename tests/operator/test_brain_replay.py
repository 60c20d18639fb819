"""The Brain's replay after a restart, without NATS: what messages before the performance window
change (only what positions carry), what those inside it change (trades too), and the checkpoint
it leaves for the next restart."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.operator.test_runtime_performance import PHASE, closing_fill, funding_paid
from titan.core.money import MoneyError
from titan.operator.brain import BrainCore
from titan.operator.brain.engine import PositionKey
from titan.operator.brain.replay import Replay, carried_of, checkpoint
from titan.v1 import common_pb2

WINDOW = 1_000
POSITION = PositionKey(PHASE, "paper", "BTCUSDT", int(common_pb2.INSTRUMENT_KIND_PERP))


def test_messages_before_the_window_carry_and_those_inside_also_count_trades() -> None:
    core = BrainCore()
    replay = Replay(core, WINDOW)
    replay.message(1, 10, [closing_fill(1, "0", 10)])             # opens: fee 0.1 carried
    replay.message(2, 20, [closing_fill(2, "5", 20)])             # closes before the window: no trade
    replay.message(3, 30, [closing_fill(3, "0", 30), funding_paid("-0.3", 31)])  # opens again, pays
    replay.message(4, WINDOW, [funding_paid("0.05", WINDOW)])     # inside: still carried
    replay.message(5, WINDOW + 1, [closing_fill(5, "2", WINDOW + 1)])
    assert replay.trades == 1
    assert [t.pnl for t in core.performance.window(PHASE, WINDOW + 1, 10**9)] == [
        Decimal("2") - Decimal("0.1") - Decimal("0.1") - Decimal("0.3") + Decimal("0.05")]
    stored = replay.checkpoint(ts_ns=99)
    assert stored.through_seq == 3 and stored.ts_ns == 99   # the carry just before the window's first message
    assert carried_of(stored) == {POSITION: Decimal("-0.4")}


def test_with_nothing_inside_the_window_the_checkpoint_is_the_last_message() -> None:
    replay = Replay(BrainCore(), WINDOW, after_seq=7, carried={POSITION: Decimal("-1")})
    replay.message(8, 10, [funding_paid("-0.5", 10)])
    assert replay.trades == 0
    stored = replay.checkpoint(ts_ns=0)
    assert stored.through_seq == 8 and carried_of(stored) == {POSITION: Decimal("-1.5")}


def test_a_checkpoint_round_trips_and_leaves_out_what_carries_nothing() -> None:
    other = PositionKey("hunter", "paper", "ETHUSDT", int(common_pb2.INSTRUMENT_KIND_SPOT))
    stored = checkpoint(12, {POSITION: Decimal("-0.25"), other: Decimal(0)}, ts_ns=5)
    assert carried_of(stored) == {POSITION: Decimal("-0.25")}
    stored.carried[0].amount = "1e"
    with pytest.raises(MoneyError):
        carried_of(stored)


def test_an_event_with_a_malformed_amount_is_counted_as_refused() -> None:
    bad = funding_paid("-0.3", 10)
    bad.funding.amount = "lots"
    replay = Replay(BrainCore(), WINDOW)
    replay.message(1, 10, [bad, funding_paid("-0.2", 11)])
    assert replay.refused == 1
    assert carried_of(replay.checkpoint(ts_ns=0)) == {POSITION: Decimal("-0.2")}
