"""The backtest's one queue: order at equal times, deliveries never in the past, idle time skipped."""

from __future__ import annotations

from titan.backtest.scheduler import Lane, Periodic, Scheduler

S = 1_000_000_000


def test_equal_times_run_market_then_deliveries_then_periodic_work_in_insertion_order() -> None:
    ran: list[str] = []
    sched = Scheduler()
    sched.at(10, Lane.PHASE_TIMER, lambda t: ran.append("timer"))
    sched.at(10, Lane.DELIVERY, lambda t: ran.append("delivery-1"))
    sched.every(Periodic("brain", Lane.BRAIN, 100, lambda t: ran.append("brain")), 10)
    sched.at(10, Lane.MARKET, lambda t: ran.append("market"))
    sched.at(10, Lane.DELIVERY, lambda t: ran.append("delivery-2"))
    sched.at(10, Lane.ENGINE_TICK, lambda t: ran.append("tick"))
    sched.run_until(10, None)
    assert ran == ["market", "delivery-1", "delivery-2", "tick", "brain", "timer"]


def test_a_delivery_is_never_scheduled_in_the_past() -> None:
    seen: list[int] = []
    sched = Scheduler()
    sched.at(50, Lane.DELIVERY, lambda t: sched.at(t - 20, Lane.DELIVERY, seen.append))
    sched.run_until(100, None)
    assert seen == [50]


def test_periodic_work_runs_on_its_cadence_while_inputs_arrive() -> None:
    times: list[int] = []
    sched = Scheduler(idle_after_ns=10 * S)
    sched.every(Periodic("equity", Lane.EQUITY, 2 * S, times.append), 2 * S)
    sched.mark_input(0)
    sched.run_until(9 * S, 9 * S)
    assert times == [2 * S, 4 * S, 6 * S, 8 * S]


def test_over_idle_time_only_the_last_run_before_the_next_input_is_kept() -> None:
    times: list[int] = []
    sched = Scheduler(idle_after_ns=1 * S)
    sched.every(Periodic("brain", Lane.BRAIN, 2 * S, times.append), 2 * S)
    sched.mark_input(0)
    sched.run_until(60 * S - 1, 60 * S)  # the next input comes at 60 s
    assert times == [2 * S, 58 * S]
    assert sched.skipped == 27


def test_a_pending_delivery_bounds_the_skip_like_an_input() -> None:
    times: list[int] = []
    sched = Scheduler(idle_after_ns=1 * S)
    sched.every(Periodic("brain", Lane.BRAIN, 2 * S, times.append), 2 * S)
    sched.mark_input(0)
    sched.at(31 * S, Lane.PHASE_TIMER, lambda t: None)  # a part's own timer at 31 s
    sched.run_until(60 * S - 1, 60 * S)
    assert times[:2] == [2 * S, 30 * S]  # fresh right before the timer
    assert times[-1] == 58 * S


def test_without_idle_skipping_every_run_happens() -> None:
    times: list[int] = []
    sched = Scheduler(idle_after_ns=0)
    sched.every(Periodic("brain", Lane.BRAIN, 2 * S, times.append), 2 * S)
    sched.run_until(60 * S - 1, 60 * S)
    assert len(times) == 29 and sched.skipped == 0
