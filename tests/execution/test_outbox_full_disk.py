"""A full disk under execution's outbox, for real: a small tmpfs filled to the last byte makes the
journal's ``write()`` fail with ENOSPC. From the first batch that misses the journal, the gate refuses
entries (``OUTBOX_UNAVAILABLE``) while reductions go on; once space is free, a batch is journaled and
JetStream has every event that waited in memory (the publisher starts only then, so they wait for
sure), entries are accepted again — and nothing was lost.
(Mounting needs root or CAP_SYS_ADMIN; elsewhere the test is skipped, under CI=true it fails.)"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.execution.helpers import REDUCE, SELL, RejectReason, leg, make_engine, signal
from tests.util import wait_for
from titan.core.catalog import Catalog
from titan.execution.dependencies import Dependency
from titan.execution.engine import reason_label
from titan.execution.health import DependencyMonitor
from titan.execution.outbox import Outbox
from titan.execution.publisher import JetStreamPublisher

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs of its own, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "titan-test", str(disk)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a small tmpfs for the full-disk test: {mounted.stderr.strip()}")
        pytest.skip(f"mounting a tmpfs needs root: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; returns it (unlink it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):  # big blocks, then the last partial ones
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        return filler
    finally:
        os.close(fd)


def write_errors() -> float:
    return REGISTRY.get_sample_value("titan_execution_outbox_errors_total", {"reason": "write"}) or 0.0


def degraded() -> float | None:
    return REGISTRY.get_sample_value("titan_execution_degraded",
                                     {"reason": reason_label(RejectReason.REJECT_REASON_OUTBOX_UNAVAILABLE)})


async def test_a_full_disk_refuses_entries_until_the_outbox_journals_again(
    small_disk: Path, bus_js, catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="titan.execution")
    engine, clock = make_engine()
    monitor = DependencyMonitor(engine.gate.dependencies, clock)
    monitor.watch(Dependency.OUTBOX)
    publisher = JetStreamPublisher(bus_js, catalog, outbox=Outbox.open(small_disk / "outbox"))
    publisher.on_journal = monitor.journal
    submitted = 0  # (JetStream takes events only once the publisher starts, after the disk is freed)

    def handle(*legs, intent=None, signal_id: str):
        nonlocal submitted
        decision = engine.on_signal(signal(clock, *legs, signal_id=signal_id) if intent is None
                                    else signal(clock, *legs, signal_id=signal_id, intent=intent))
        publisher.submit(decision.updates)  # as the service does, once the ack is on its way
        submitted += len(decision.updates)
        return decision.ack

    assert handle(leg(size="100"), signal_id="before").accepted
    assert publisher.journal_problem is None and monitor.sample().status == "ok"

    filler = fill(small_disk)
    failures = write_errors()
    accepted_while_full = 0
    while publisher.journal_problem is None:  # the segment's last page may still take a batch or two
        assert accepted_while_full < 50, "the outbox kept journaling on a full disk"
        ack = handle(leg(size="100"), signal_id=f"full-{accepted_while_full}")
        assert ack.accepted, ack
        accepted_while_full += 1
    assert "No space left on device" in publisher.journal_problem
    assert write_errors() == failures + 1

    refused = handle(leg(size="100"), signal_id="refused")
    assert not refused.accepted and refused.reason == RejectReason.REJECT_REASON_OUTBOX_UNAVAILABLE, refused
    assert "No space left on device" in refused.detail and "only exposure-reducing" in refused.detail
    assert handle(leg(side=SELL, size="50"), intent=REDUCE, signal_id="reduce").accepted
    report = monitor.sample()
    assert report.status == "degraded" and report.body()["reason"] == "OUTBOX_UNAVAILABLE"
    assert degraded() == 1
    assert write_errors() > failures + 1  # each batch on the full disk failed and was counted

    filler.unlink()
    # journaled,
    assert handle(leg(size="100"), signal_id="freed").reason == RejectReason.REJECT_REASON_OUTBOX_UNAVAILABLE
    assert "could not journal wait in memory" in publisher.journal_problem  # but what missed it is not safe yet
    assert handle(leg(size="100"), signal_id="still").reason == RejectReason.REJECT_REASON_OUTBOX_UNAVAILABLE
    await publisher.start()
    await wait_for(lambda: publisher.journal_problem is None, timeout=20)  # memory-only events in JetStream
    assert handle(leg(size="100"), signal_id="after").accepted
    assert monitor.sample().status == "ok" and degraded() == 0

    assert await publisher.flush(10) and publisher.published == submitted  # nothing lost
    await publisher.stop()
    assert not (small_disk / "outbox").exists()
    lines = [r.getMessage() for r in caplog.records]
    assert sum("refuses entries (OUTBOX_UNAVAILABLE)" in line for line in lines) == 1, lines
    assert sum("accepts entries again: outbox is back" in line for line in lines) == 1, lines
