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


def test_over_idle_time_only_the_last_run_up_to_the_next_input_is_kept_and_runs_before_it() -> None:
    times: list[int] = []
    sched = Scheduler(idle_after_ns=1 * S)
    sched.every(Periodic("brain", Lane.BRAIN, 2 * S, times.append), 2 * S)
    sched.mark_input(0)
    sched.run_until(60 * S - 1, 60 * S)  # the next input comes at 60 s
    assert times == [2 * S]
    sched.run_periodic_at(60 * S, 60 * S)  # the driver runs it right before the input at 60 s
    assert times == [2 * S, 60 * S]
    assert sched.skipped == 28


def test_a_pending_one_off_bounds_the_skip_and_work_resumes_after_it() -> None:
    times: list[int] = []
    sched = Scheduler(idle_after_ns=1 * S)
    sched.every(Periodic("brain", Lane.BRAIN, 2 * S, times.append), 2 * S)
    sched.mark_input(0)
    sched.at(31 * S, Lane.PHASE_TIMER, lambda t: None)  # a part's own timer at 31 s
    sched.run_until(60 * S - 1, 60 * S)
    sched.run_periodic_at(60 * S, 60 * S)
    assert times == [2 * S, 30 * S, 32 * S, 60 * S]  # fresh right before the timer, once after it


def test_without_idle_skipping_every_run_happens() -> None:
    times: list[int] = []
    sched = Scheduler(idle_after_ns=0)
    sched.every(Periodic("brain", Lane.BRAIN, 2 * S, times.append), 2 * S)
    sched.run_until(60 * S - 1, 60 * S)
    assert len(times) == 29 and sched.skipped == 0


def test_a_one_off_scheduled_later_pulls_parked_work_back_before_it() -> None:
    times: list[int] = []
    sched = Scheduler(idle_after_ns=1 * S)
    sched.every(Periodic("brain", Lane.BRAIN, 2 * S, times.append), 2 * S)
    sched.mark_input(0)
    sched.run_until(3 * S, 60 * S)  # ran at 2 s, parked at 60 s (the next market event)
    assert times == [2 * S]
    sched.at(31 * S, Lane.PHASE_TIMER, lambda t: None)  # a timer armed afterwards
    sched.run_until(60 * S - 1, 60 * S)
    sched.run_periodic_at(60 * S, None)
    assert times == [2 * S, 30 * S, 32 * S, 60 * S]
