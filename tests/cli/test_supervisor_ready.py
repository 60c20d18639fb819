"""The supervisor's readiness probe: a child with ``ready`` must report ready before the next child
starts; a probe that never succeeds delays the next child by at most ``ready_timeout_s``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from titan.cli.supervisor import ChildSpec, ChildState, Supervisor

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"]


async def test_next_child_starts_only_after_the_probe_succeeds(tmp_path: Path) -> None:
    marker = tmp_path / "listening"
    writer = [sys.executable, "-c", f"import pathlib, time\ntime.sleep(0.5)\npathlib.Path({str(marker)!r}).touch()\n"
              "while True: time.sleep(0.05)"]
    started: dict[str, float] = {}
    ready_seen: list[float] = []

    def record(kind: str, child: ChildState) -> None:
        if kind == "started":
            started[child.spec.name] = time.monotonic()

    async def probe() -> bool:
        if marker.exists():
            ready_seen.append(time.monotonic())
            return True
        return False

    sup = Supervisor([ChildSpec("subscriber", writer, ready=probe), ChildSpec("publisher", SLEEPER)], on_event=record)
    try:
        await sup.start()
        assert ready_seen and started["publisher"] >= ready_seen[0] >= started["subscriber"]
    finally:
        await sup.stop()
    assert all(c.proc is not None and c.proc.returncode is not None for c in sup.children)


async def test_a_probe_that_never_succeeds_times_out() -> None:
    async def never() -> bool:
        return False

    sup = Supervisor([ChildSpec("slow", SLEEPER, ready=never, ready_timeout_s=0.3), ChildSpec("next", SLEEPER)])
    try:
        await sup.start()
        assert sup.child("next").running  # started anyway, after the timeout
    finally:
        await sup.stop()
