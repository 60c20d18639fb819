"""The execution service for the fuzz tests: a real ExecutionRuntime (paper venue, real gRPC over
loopback) on its own event loop in a thread, so hypothesis drives it through plain blocking stubs.
Trading is ACTIVE with a budget for ``hunter`` and a book for BTCUSDT: hostile input meets the
whole gate, not just a halted service."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from tests.execution.helpers import CONTROL_KEY, KEYS, MODE, budget, control, mark, top
from titan.core.config import Settings
from titan.execution.runtime import ExecutionRuntime, RuntimeOptions
from titan.v1 import execution_pb2, execution_pb2_grpc, trading_pb2

T = TypeVar("T")


@dataclass
class Service:
    runtime: ExecutionRuntime
    loop: asyncio.AbstractEventLoop
    channel: grpc.Channel
    stub: execution_pb2_grpc.ExecutionStub

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the service's loop (the engine is not thread-safe) and return its result."""
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as err:
                done.set_exception(err)

        self.loop.call_soon_threadsafe(run)
        return done.result(timeout=30)

    def snapshot(self) -> tuple[Any, ...]:
        """What must not change under hostile input: orders, positions, trading state, budgets."""
        def read() -> tuple[Any, ...]:
            engine = self.runtime.engine
            assert engine is not None
            orders = sorted(o.SerializeToString(deterministic=True) for o in engine.open_orders())
            positions = sorted(p.SerializeToString(deterministic=True) for p in engine.positions())
            return (tuple(orders), tuple(positions), engine.trading_state.SerializeToString(deterministic=True))
        return self.call(read)

    def healthy(self) -> bool:
        resp = health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(service="titan.v1.Execution"), timeout=10)
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    def market(self, data: bytes) -> None:
        servicer = self.runtime.servicer
        assert servicer is not None
        self.call(lambda: servicer.on_market_bytes(data))


def metric(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def run_service() -> Iterator[Service]:
    settings = Settings(nats_url="", pg_dsn="", execution_port=0, metrics_port=0, execution_cpus="",
                        control_key=CONTROL_KEY.decode(), replay_window_ms=5000)
    runtime = ExecutionRuntime(settings, RuntimeOptions(keys=dict(KEYS), metrics=False, freeze_gc=False))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="execution-fuzz", daemon=True)
    thread.start()
    port = asyncio.run_coroutine_threadsafe(runtime.start(), loop).result(timeout=60)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = execution_pb2_grpc.ExecutionStub(channel)
    service = Service(runtime, loop, channel, stub)
    try:
        activate(service)
        yield service
    finally:
        channel.close()
        asyncio.run_coroutine_threadsafe(runtime.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def activate(service: Service) -> None:
    now = time.time_ns()
    service.stub.SetTradingState(control(execution_pb2.SetTradingStateRequest(
        state=trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=now, set_by="fuzz"))))
    resp = service.stub.UpdateBudgets(control(execution_pb2.UpdateBudgetsRequest(
        budgets=[budget(version=now, issued_at_ns=now, expires_at_ns=now + 3600 * 10**9)])))
    assert resp.applied == 1
    service.market(top("50000", "10", "50000", "10").SerializeToString())
    service.market(mark("50000").SerializeToString())
