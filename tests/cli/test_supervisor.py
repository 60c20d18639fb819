"""The `titan up` supervisor: ordered start, restart with backoff, clean reverse-order stop."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.util import wait_for
from titan.cli.supervisor import ChildSpec, ChildState, Supervisor
from titan.core.infra.procs import pid_alive

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.05)",
]


async def test_start_restart_and_stop(tmp_path: Path) -> None:
    crash_marker = tmp_path / "crashed-once"
    crasher = [
        sys.executable,
        "-c",
        f"import pathlib, sys, time\np = pathlib.Path({str(crash_marker)!r})\n"
        "if not p.exists():\n    p.touch(); sys.exit(3)\nwhile True: time.sleep(0.05)",
    ]
    events: list[tuple[str, str]] = []

    def record(kind: str, child: ChildState) -> None:
        events.append((kind, child.spec.name))

    sup = Supervisor(
        [ChildSpec("a", SLEEPER), ChildSpec("b", crasher), ChildSpec("c", STUBBORN, grace_s=0.5)],
        backoff_initial_s=0.2,
        on_event=record,
    )
    await sup.start()
    assert [e for e in events if e[0] == "started"] == [("started", "a"), ("started", "b"), ("started", "c")]
    watcher = asyncio.create_task(sup.watch())
    await wait_for(lambda: ("crashed", "b") in events, timeout=10)
    assert sup.child("b").last_exit == 3
    await wait_for(lambda: sup.child("b").running and sup.child("b").restarts == 1, timeout=10)
    pids = [c.pid for c in sup.children]
    assert all(p is not None and pid_alive(p) for p in pids)

    await sup.stop()
    await watcher
    assert [e[1] for e in events if e[0] == "stopped"] == ["c", "b", "a"]
    assert not any(pid_alive(p) for p in pids if p is not None)
    assert sup.child("c").last_exit is not None and sup.child("c").last_exit < 0  # killed after the grace period


async def test_backoff_grows_and_caps() -> None:
    sup = Supervisor([ChildSpec("x", SLEEPER)], backoff_initial_s=1, backoff_max_s=5)
    child = sup.child("x")
    delays = []
    for n in range(1, 6):
        child.restarts = n
        delays.append(sup._backoff(child))
    assert delays == [1, 2, 4, 5, 5]
