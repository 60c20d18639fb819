"""The losing-streak kill condition shared by the Scavenger and the Hunter."""

from decimal import Decimal

from titan.phases.runtime.cooldown import LossStreak


def test_more_than_allowed_losses_in_a_row_pause_entries_then_the_streak_restarts() -> None:
    streak = LossStreak()
    assert [streak.record(Decimal(-1), t, allowed=2, pause_ns=100) for t in (1, 2)] == [0, 0]
    assert streak.record(Decimal(0), 3, allowed=2, pause_ns=100) == 0 and streak.losses == 0  # a flat trade breaks it
    assert [streak.record(Decimal("-0.01"), t, allowed=2, pause_ns=100) for t in (4, 5, 6)] == [0, 0, 3]
    assert streak.losses == 0 and streak.until_ns == 106
    assert streak.pausing(105) and not streak.pausing(106)
