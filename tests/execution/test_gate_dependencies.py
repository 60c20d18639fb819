"""The gate's dependencies (execution/dependencies.py): past the grace without the ledger writing,
with execution's events waiting for NATS, or at once with the lease held elsewhere, entries are
refused with their own reason while exposure-reducing signals go on; the monitor (execution/health.py)
logs each change, moves titan_execution_degraded and answers /healthz."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from prometheus_client import REGISTRY

from tests.execution.helpers import REDUCE, SELL, RejectReason, leg, make_engine, signal
from titan.execution.dependencies import Dependencies, Dependency
from titan.execution.engine import reason_label
from titan.execution.health import DependencyMonitor
from titan.v1 import events_pb2

GRACE = 5_000_000_000  # the default, GateConfig.dependency_grace_ns
SECOND = 1_000_000_000


def rejects(reason: int) -> float:
    return REGISTRY.get_sample_value("titan_execution_rejects_total", {"reason": reason_label(reason)}) or 0.0


def degraded(reason: int) -> float | None:
    return REGISTRY.get_sample_value("titan_execution_degraded", {"reason": reason_label(reason)})


@dataclass
class Backlog:
    """The publisher as the monitor reads it: events waiting or not, and how many were acknowledged."""

    unpublished: bool = False
    published: int = 0


def test_nothing_watched_never_degrades():
    engine, clock = make_engine()
    clock.advance(9 * SECOND)  # longer than any grace; market data still fresh (10 s)
    assert engine.gate.dependencies.outage(clock.now_ns()) is None
    assert engine.on_signal(signal(clock, leg(size="1000"))).ack.accepted


def test_ledger_silent_beyond_the_grace_refuses_entries_but_not_reductions():
    engine, clock = make_engine()
    deps = engine.gate.dependencies
    assert deps.grace_ns == GRACE
    deps.watch(Dependency.LEDGER, clock.now_ns())
    opened = engine.on_signal(signal(clock, leg(size="1000")))
    assert opened.ack.accepted, opened.ack.detail
    clock.advance(GRACE)  # exactly the grace: still accepted
    assert engine.on_signal(signal(clock, leg(size="1000"))).ack.accepted
    clock.advance(1)
    before = rejects(RejectReason.REJECT_REASON_LEDGER_UNAVAILABLE)
    refused = engine.on_signal(signal(clock, leg(size="1000")))
    assert not refused.ack.accepted and refused.ack.reason == RejectReason.REJECT_REASON_LEDGER_UNAVAILABLE
    assert "only exposure-reducing" in refused.ack.detail and not refused.ack.client_order_ids
    assert rejects(RejectReason.REJECT_REASON_LEDGER_UNAVAILABLE) == before + 1
    reduced = engine.on_signal(signal(clock, leg(side=SELL, size="500"), intent=REDUCE))
    assert reduced.ack.accepted, reduced.ack.detail
    # older news changes nothing; a heartbeat of now brings entries back
    deps.confirm(Dependency.LEDGER, clock.now_ns() - GRACE - 1)
    assert deps.outage(clock.now_ns()) is not None
    deps.confirm(Dependency.LEDGER, clock.now_ns())
    assert engine.on_signal(signal(clock, leg(size="1000"))).ack.accepted


def test_bus_backlog_older_than_the_grace_refuses_entries():
    engine, clock = make_engine()
    deps = engine.gate.dependencies
    deps.watch(Dependency.BUS, clock.now_ns())
    since = clock.now_ns()
    deps.waiting_since(Dependency.BUS, since)
    clock.advance(GRACE + 1)
    deps.waiting_since(Dependency.BUS, since)
    refused = engine.on_signal(signal(clock, leg(size="1000")))
    assert refused.ack.reason == RejectReason.REJECT_REASON_BUS_UNAVAILABLE
    deps.waiting_since(Dependency.BUS, None)  # the backlog drained
    assert engine.on_signal(signal(clock, leg(size="1000"))).ack.accepted


def test_a_lost_lease_refuses_entries_at_once_and_wins_over_other_outages():
    engine, clock = make_engine()
    deps = engine.gate.dependencies
    deps.watch(Dependency.LEASE, clock.now_ns())
    deps.watch(Dependency.LEDGER, clock.now_ns())
    deps.lose(Dependency.LEASE, "held by titan-execution@elsewhere:42")
    refused = engine.on_signal(signal(clock, leg(size="1000")))
    assert refused.ack.reason == RejectReason.REJECT_REASON_LEASE_LOST and "elsewhere:42" in refused.ack.detail
    clock.advance(GRACE + 1)  # the ledger silent too: the lease is still the reason given
    assert deps.outage(clock.now_ns()).dependency is Dependency.LEASE
    deps.confirm(Dependency.LEASE, clock.now_ns())
    assert deps.outage(clock.now_ns()).dependency is Dependency.LEDGER


def test_the_grace_must_be_positive():
    with pytest.raises(ValueError):
        Dependencies(0)


def test_monitor_logs_each_transition_moves_the_metric_and_answers_health(caplog):
    engine, clock = make_engine()
    monitor = DependencyMonitor(engine.gate.dependencies, clock)
    assert monitor.health() == (False, {"status": "starting", "entries": "refused"})
    monitor.watch(Dependency.LEDGER, Dependency.BUS)
    backlog = Backlog()
    caplog.set_level(logging.WARNING, logger="titan.execution.health")
    monitor.backlog(backlog)
    assert monitor.sample().status == "ok" and monitor.health()[0]
    assert degraded(RejectReason.REJECT_REASON_LEDGER_UNAVAILABLE) == 0
    # events wait and none is acknowledged; the ledger's heartbeat keeps coming
    backlog.unpublished = True
    for _ in range(7):  # waiting since the first sample that saw the backlog: 6 s > the grace
        clock.advance(SECOND)
        monitor.ledger_heartbeat(events_pb2.LedgerHeartbeat(writing_at_ns=clock.now_ns()))
        monitor.backlog(backlog)
        monitor.sample()
    ok, body = monitor.health()
    assert ok and body["status"] == "degraded" and body["entries"] == "refused"
    assert body["reason"] == "BUS_UNAVAILABLE" and body["dependency"] == "bus"
    assert body["unavailable_for_s"] == pytest.approx(6.0)
    assert degraded(RejectReason.REJECT_REASON_BUS_UNAVAILABLE) == 1
    assert engine.on_signal(signal(clock, leg(size="1000"))).ack.reason == RejectReason.REJECT_REASON_BUS_UNAVAILABLE
    # JetStream acknowledges again, and the backlog drains
    backlog.published += 3
    backlog.unpublished = False
    monitor.backlog(backlog)
    assert monitor.sample().status == "ok"
    assert degraded(RejectReason.REJECT_REASON_BUS_UNAVAILABLE) == 0
    lines = [r.getMessage() for r in caplog.records]
    assert sum("refuses entries (BUS_UNAVAILABLE)" in line for line in lines) == 1, lines
    assert sum("accepts entries again: bus is back after" in line for line in lines) == 1, lines
    # a heartbeat from a writer clock ahead of this one counts as now, not later
    monitor.ledger_heartbeat(events_pb2.LedgerHeartbeat(writing_at_ns=clock.now_ns() + 60 * SECOND))
    clock.advance(GRACE + 1)
    assert monitor.sample().outage.reason == RejectReason.REJECT_REASON_LEDGER_UNAVAILABLE


def test_an_outbox_that_cannot_journal_refuses_entries_at_once_until_it_journals_again(caplog):
    engine, clock = make_engine()
    monitor = DependencyMonitor(engine.gate.dependencies, clock)
    monitor.watch(Dependency.OUTBOX)
    caplog.set_level(logging.WARNING, logger="titan.execution.health")
    assert monitor.sample().status == "ok"
    clock.advance(GRACE + SECOND)  # no news of the outbox past any grace: a journal that writes is no outage
    assert engine.on_signal(signal(clock, leg(size="1000"))).ack.accepted
    monitor.journal("writing the outbox /x failed (No space left on device)")  # no grace: at once
    refused = engine.on_signal(signal(clock, leg(size="1000")))
    assert refused.ack.reason == RejectReason.REJECT_REASON_OUTBOX_UNAVAILABLE, refused.ack
    assert "No space left on device" in refused.ack.detail and "only exposure-reducing" in refused.ack.detail
    assert engine.on_signal(signal(clock, leg(side=SELL, size="500"), intent=REDUCE)).ack.accepted
    for _ in range(3):
        monitor.sample()
    ok, body = monitor.health()
    assert ok and body["reason"] == "OUTBOX_UNAVAILABLE" and body["dependency"] == "outbox"
    assert degraded(RejectReason.REJECT_REASON_OUTBOX_UNAVAILABLE) == 1
    monitor.journal(None)
    assert monitor.sample().status == "ok" and degraded(RejectReason.REJECT_REASON_OUTBOX_UNAVAILABLE) == 0
    assert engine.on_signal(signal(clock, leg(size="1000"))).ack.accepted
    lines = [r.getMessage() for r in caplog.records]
    assert sum("refuses entries (OUTBOX_UNAVAILABLE)" in line for line in lines) == 1, lines
    assert sum("accepts entries again: outbox is back" in line for line in lines) == 1, lines
