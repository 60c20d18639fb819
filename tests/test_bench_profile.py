"""bench/service_profile.py: a py-spy sample goes to the group of its innermost frame that has one."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from service_profile import EVENT_LOOP, OTHER_THREADS, REST, group_of, shares

LOOP = "<module> (titan/execution/__main__.py:22);Runner.run (asyncio/runners.py:118)"


def test_the_innermost_frame_with_a_group_decides() -> None:
    servicer = f"{LOOP};ExecutionServicer.StreamSignals (execution/service.py:236)"
    assert group_of(f"{servicer};Engine.decide (execution/engine/__init__.py:53);fmt (execution/numbers.py:14)"
                    .split(";")) == "engine"
    assert group_of(f"{servicer};JetStreamPublisher.submit (execution/publisher.py:170);"
                    "batches (core/bus/events.py:151)".split(";")) == "publishing"
    assert group_of(f"{LOOP};JetStreamPublisher._run (execution/publisher.py:330);"
                    "Client._send_publish (nats/aio/client.py:1000)".split(";")) == "JetStream client"
    assert group_of(f"{LOOP};_Stream._run (execution/service.py:100)".split(";")) == "servicer and grpc"
    assert group_of(f"{LOOP};open_sealed (/opt/titan/titan/core/signing.py:85)".split(";")) == \
        "opening sealed signals"  # an absolute path too, at a path segment
    assert group_of(LOOP.split(";")) == EVENT_LOOP
    assert group_of(f"{LOOP};Event.set (asyncio/locks.py:190)".split(";")) == REST
    assert group_of(["Thread._bootstrap (threading.py:995)", "Thread.run (threading.py:982)"]) == OTHER_THREADS
    assert group_of(f"{LOOP};helper (mynats/x.py:1)".split(";")) == REST  # "nats/" only at a segment's start


def test_shares_are_of_every_sample_read() -> None:
    raw = "\n".join([
        f"{LOOP};decide (execution/engine/signals.py:60) 3",
        f"{LOOP} 1",
        "not a sample line",
    ])
    result = shares(raw)
    assert result["samples"] == 4
    assert result["shares"] == {"engine": 75.0, EVENT_LOOP: 25.0}
    assert result["top"]["decide (execution/engine/signals.py:60)"] == 75.0
