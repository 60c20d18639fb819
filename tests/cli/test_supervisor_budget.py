"""A child that keeps crashing is restarted until the restart budget is spent, then marked failed
(and not started again); the others keep running."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.util import wait_for
from titan.cli.supervisor import ChildSpec, ChildState, Supervisor

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"]


async def test_a_crash_loop_spends_the_budget_and_fails(tmp_path: Path) -> None:
    counter = tmp_path / "starts"
    crasher = [sys.executable, "-c",
               f"import pathlib, sys\np = pathlib.Path({str(counter)!r})\n"
               "with p.open('a') as fh: fh.write('x')\nsys.exit(7)"]
    events: list[tuple[str, str]] = []

    def record(kind: str, child: ChildState) -> None:
        events.append((kind, child.spec.name))

    sup = Supervisor([ChildSpec("steady", SLEEPER), ChildSpec("broken", crasher)], backoff_initial_s=0.05,
                     backoff_max_s=0.1, max_restarts=3, on_event=record)
    await sup.start()
    watcher = asyncio.create_task(sup.watch())
    try:
        await wait_for(lambda: ("failed", "broken") in events, timeout=30)
        broken = sup.child("broken")
        assert [c.spec.name for c in sup.failed()] == ["broken"]
        assert broken.failed and broken.last_exit == 7 and broken.restarts == 3
        assert events.count(("crashed", "broken")) == 3
        assert counter.read_text() == "x" * 4  # the first start and three restarts, then no more
        assert sup.child("steady").running
    finally:
        await sup.stop()
        await watcher
    assert counter.read_text() == "x" * 4
