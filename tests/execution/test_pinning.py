"""CPU pinning, its metric, and the GC freeze (in a child process: pinning is process-wide)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from titan.execution import pinning

CHILD = r"""
import gc, json, sys
from prometheus_client import REGISTRY
from titan.execution import pinning
cpus = [int(c) for c in sys.argv[1].split(",") if c]
actual = pinning.pin(cpus)
pinning.freeze_gc()
metric = {c: REGISTRY.get_sample_value("titan_execution_cpu_allowed", {"cpu": str(c)}) for c in range(8)}
print(json.dumps({"actual": actual, "metric": metric, "frozen": gc.get_freeze_count(), "gen0": gc.get_threshold()[0]}))
"""


def run_child(arg: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_pins_to_the_requested_cpu_and_exports_it():
    first = min(os.sched_getaffinity(0))
    res = run_child(str(first))
    assert res["actual"] == [first]
    assert res["metric"][str(first)] == 1.0
    others = [v for k, v in res["metric"].items() if k != str(first) and v is not None]
    assert all(v == 0.0 for v in others)
    assert res["frozen"] > 0
    assert res["gen0"] == 50_000


def test_unpinned_reports_every_allowed_cpu():
    res = run_child("")
    assert res["actual"] == sorted(os.sched_getaffinity(0))


def test_unavailable_cpu_is_an_error():
    with pytest.raises(pinning.PinningError):
        pinning.pin([4096])


YOUNG = r"""
import gc, json
from titan.execution import pinning
pinning.freeze_gc()
after_start = gc.get_freeze_count()
class Order:
    __slots__ = ("qty",)
    def __init__(self, qty): self.qty = qty
state = [Order(i) for i in range(10_000)]  # long-lived state allocated after start
tracked_before = len(gc.get_objects())
pinning.freeze_young()
tracked_after = len(gc.get_objects())
frozen = gc.get_freeze_count()
del state  # frozen objects are still freed when their last reference goes
print(json.dumps({"grew": frozen - after_start, "tracked_before": tracked_before, "tracked_after": tracked_after,
                  "frozen_after_del": gc.get_freeze_count(), "frozen": frozen}))
"""


def test_freeze_young_moves_what_was_allocated_since_start_out_of_every_collection():
    out = subprocess.run([sys.executable, "-c", YOUNG], capture_output=True, text=True, timeout=60, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["grew"] >= 10_000  # the state, out of the generations the collector scans
    assert res["tracked_before"] >= 10_000 and res["tracked_after"] < 100
    assert res["frozen"] - res["frozen_after_del"] >= 10_000  # and freed by reference counting
