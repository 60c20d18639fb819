"""The Brain's re-decide loop on looptime's fake clock: budgets are re-issued every interval, before they expire.

kopf runs in the test's own event loop (``kopf.operator`` as a task, stopped by a flag) next to kmock's
Kubernetes emulator, so looptime fast-forwards the operator's re-decide loop (an asyncio task, not a kopf
timer): a minute of operator time passes in well under that in real time. NATS JetStream is real. Two
things make that work:

* The Brain's clock (``OperatorConfig.clock``) follows the loop's fake time, so budgets are issued and
  expire in fake time.
* looptime moves its clock to the next timer as soon as the loop has nothing ready, even while a reply from
  an outside server is on its way: a NATS request's 5 s timeout would then expire at once. While a NATS
  request or connect is pending, an executor call is kept pending too; that is looptime's own rule for outside
  work (it then lets the fake time flow no faster than the real time), so NATS timeouts stay real timeouts.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import kmock
import kopf
import pytest
from nats.aio.client import Client

from tests.operator.kube_helpers import BRAINS_URL, PHASES_URL, Emulator, declare_resources, sample
from tests.util import wait_for
from titan.core.bus import StateStore, connect, ensure_jetstream
from titan.core.catalog import Catalog
from titan.core.clock import NS_PER_S
from titan.operator.kopf_app import OperatorConfig, build_registry
from titan.v1 import trading_pb2

INTERVAL_S = OperatorConfig().interval_s  # the Brain's default re-issue interval (10 s)
TTL_S = 30                                # riskPolicy.budgetTtlSeconds in the sample TitanBrain
INTERVALS = 6                             # 60 s of fake time: two TTLs
PHASES = ("hunter", "scavenger")

pytestmark = [pytest.mark.timeout(120)]
Result = TypeVar("Result")


@dataclass
class LoopClock:
    """Epoch nanoseconds that move with the running loop's (fake) time."""

    base_ns: int

    def now_ns(self) -> int:
        return self.base_ns + round(asyncio.get_running_loop().time() * NS_PER_S)


@dataclass(frozen=True)
class Seen:
    at_ns: int  # the fake clock when the test received the budget
    budget: trading_pb2.Budget


def _in_real_time(call: Callable[..., Awaitable[Result]]) -> Callable[..., Awaitable[Result]]:
    """Keep an executor call pending while ``call`` waits for the NATS server (see the module docstring)."""

    @functools.wraps(call)
    async def wrapper(*args: Any, **kwargs: Any) -> Result:
        done = threading.Event()
        asyncio.get_running_loop().run_in_executor(None, done.wait)
        try:
            return await call(*args, **kwargs)
        finally:
            done.set()

    return wrapper


def _timer_issues(seen: list[Seen]) -> list[trading_pb2.Budget]:
    """The budgets issued after the first decision (the create/resume handlers all decide at once)."""
    start = seen[0].budget.issued_at_ns
    out: dict[int, trading_pb2.Budget] = {}
    for s in seen:
        if s.budget.issued_at_ns > start:
            out.setdefault(s.budget.issued_at_ns, s.budget)
    return [out[k] for k in sorted(out)]


@pytest.mark.asyncio(loop_scope="function")  # a loop of its own: its fake time starts at 0 and ends here
@pytest.mark.looptime(end=3600)
async def test_the_timer_reissues_budgets_every_interval_before_they_expire(
    nats_url: str, catalog: Catalog, monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    real_start = time.perf_counter()
    fake_start = loop.time()
    clock = LoopClock(base_ns=time.time_ns() - round(fake_start * NS_PER_S))
    for name in ("connect", "request"):
        monkeypatch.setattr(Client, name, _in_real_time(getattr(Client, name)))

    nc = await connect(nats_url, "titan-tests-looptime")
    js = nc.jetstream()
    await ensure_jetstream(js, catalog)
    store = await StateStore.open(js, catalog)
    seen: dict[str, list[Seen]] = {p: [] for p in PHASES}

    async def collect() -> None:
        async for key, budget in store.watch_budgets():
            if key in seen and budget is not None:
                seen[key].append(Seen(clock.now_ns(), budget))

    def reissued(phase: str, times: int) -> bool:
        return bool(seen[phase]) and len(_timer_issues(seen[phase])) >= times

    # Started before the operator: kopf cancels the tasks created during its run when it stops.
    collector = asyncio.create_task(collect())
    stop = asyncio.Event()
    try:
        async with Emulator() as emu, kmock.Server(emu):
            declare_resources(emu)
            for name in ("titanbrain.yaml", "titanphase-scavenger.yaml", "titanphase-hunter.yaml"):
                doc = sample(name)
                resp = await emu.post(BRAINS_URL if doc["kind"] == "TitanBrain" else PHASES_URL, json=doc)
                assert resp.status in (200, 201), await resp.text()
            config = OperatorConfig(nats_url=nats_url, catalog_namespace=catalog.namespace,
                                    kube_server=str(emu.url).rstrip("/"), clock=clock)
            operator = asyncio.create_task(kopf.operator(
                registry=build_registry(config), clusterwide=True, standalone=True, stop_flag=stop))
            try:
                for phase in PHASES:  # real-time limits; the polls sleep in fake time
                    await wait_for(lambda p=phase: reissued(p, INTERVALS), timeout=60, interval=0.5)
            finally:
                stop.set()
                await operator
                for sig in (signal.SIGINT, signal.SIGTERM):  # kopf installs them in the main thread
                    loop.remove_signal_handler(sig)
        end_ns = clock.now_ns()
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        await nc.close()
    fake_s, real_s = loop.time() - fake_start, time.perf_counter() - real_start

    assert fake_s >= INTERVALS * INTERVAL_S
    for phase in PHASES:
        budgets = [s.budget for s in seen[phase]]
        versions = [b.version for b in budgets]
        assert versions == sorted(set(versions)), f"{phase}: versions not strictly increasing: {versions}"
        for s in seen[phase]:
            b = s.budget
            assert b.expires_at_ns - b.issued_at_ns == TTL_S * NS_PER_S
            assert b.issued_at_ns <= s.at_ns < b.expires_at_ns, f"{phase}: v{b.version} arrived expired"
        for prev, nxt in itertools.pairwise(budgets):
            assert nxt.issued_at_ns < prev.expires_at_ns, f"{phase}: v{prev.version} expired before v{nxt.version}"
        assert budgets[-1].expires_at_ns > end_ns  # still valid when the operator stopped

        # The loop: one re-issue per interval, never early; the n-th one within the n-th interval.
        start = budgets[0].issued_at_ns
        issues = _timer_issues(seen[phase])
        assert len(issues) >= INTERVALS
        at = [start] + [b.issued_at_ns for b in issues]
        gaps_s = [(b - a) / NS_PER_S for a, b in itertools.pairwise(at)]
        assert all(INTERVAL_S <= g < TTL_S for g in gaps_s), f"{phase}: re-issue gaps {gaps_s}"
        for n, issued in enumerate(at[1:INTERVALS + 1], start=1):
            assert n * INTERVAL_S <= (issued - start) / NS_PER_S < (n + 1) * INTERVAL_S, (phase, n, gaps_s)
        print(f"\n{phase}: re-issued after {gaps_s} s (fake)")
    # both phases' budgets come from the same decisions
    assert [b.version for b in _timer_issues(seen["hunter"])][:INTERVALS] == \
        [b.version for b in _timer_issues(seen["scavenger"])][:INTERVALS]
    print(f"fake time {fake_s:.1f} s in real time {real_s:.2f} s")
