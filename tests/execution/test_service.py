"""The gRPC service over real loopback: signed/unsigned/tampered/replayed signals, updates on the
stream, signed control calls, health and reflection, and garbage on the wire."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from tests.execution.helpers import (
    CONTROL_KEY,
    KEYS,
    MODE,
    RejectReason,
    budget,
    control,
    leg,
    mark,
    signal,
    top,
    updates_of,
)
from titan.core.config import Settings
from titan.execution.runtime import ExecutionRuntime, RuntimeOptions
from titan.v1 import execution_pb2, execution_pb2_grpc, trading_pb2


class WallClockish:
    def now_ns(self) -> int:
        return time.time_ns()


@pytest.fixture(scope="module")
async def service():
    settings = Settings(nats_url="", pg_dsn="", execution_port=0, metrics_port=0, execution_cpus="",
                        control_key=CONTROL_KEY.decode(), replay_window_ms=5000)
    rt = ExecutionRuntime(settings, RuntimeOptions(keys=dict(KEYS), metrics=False, freeze_gc=False))
    port = await rt.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = execution_pb2_grpc.ExecutionStub(channel)
    yield rt, stub, channel
    await channel.close()
    await rt.stop()




async def activate(rt, stub):
    req = control(execution_pb2.SetTradingStateRequest(
        state=trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=time.time_ns(), set_by="test")))
    await stub.SetTradingState(req)
    b = budget(version=time.time_ns(), expires_at_ns=time.time_ns() + 3600 * 10**9)
    resp = await stub.UpdateBudgets(control(execution_pb2.UpdateBudgetsRequest(budgets=[b])))
    assert resp.applied == 1
    rt.servicer.on_market_bytes(top("50000", "10", "50000", "10").SerializeToString())
    rt.servicer.on_market_bytes(mark("50000").SerializeToString())


async def read_until(call, pred, limit=50):
    seen = []
    for _ in range(limit):
        msg = await asyncio.wait_for(updates_of(call).read(), 5)
        seen.append(msg)
        if pred(msg):
            return msg, seen
    raise AssertionError(f"not found in {seen}")


def clock():
    return WallClockish()


async def test_health_and_reflection(service):
    _, _, channel = service
    health = health_pb2_grpc.HealthStub(channel)
    resp = await health.Check(health_pb2.HealthCheckRequest(service="titan.v1.Execution"))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = refl.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    answer = await call.read()
    await call.done_writing()
    names = {s.name for s in answer.list_services_response.service}
    assert {"titan.v1.Execution", "grpc.health.v1.Health"} <= names


async def test_signed_signal_is_acked_and_updates_follow(service):
    rt, stub, _ = service
    await activate(rt, stub)
    call = stub.StreamSignals()
    await call.write(execution_pb2.StreamRequest(hello=execution_pb2.Hello(phase_id="hunter", instance="t")))
    sig = signal(clock(), leg(size="5000"))
    await call.write(execution_pb2.StreamRequest(signal=sig))
    first = await asyncio.wait_for(updates_of(call).read(), 5)
    assert first.WhichOneof("body") == "ack"
    assert first.ack.accepted, first.ack.detail
    assert first.ack.received_at_ns <= first.ack.acked_at_ns
    cid = first.ack.client_order_ids[0]
    fill, seen = await read_until(call, lambda m: m.WhichOneof("body") == "fill")
    assert fill.fill.client_order_id == cid
    assert fill.fill.quantity == "0.1"
    (order,) = [m.order for m in seen if m.WhichOneof("body") == "order"]  # the order snapshot comes first
    assert (order.client_order_id, order.state, order.filled_quantity) == (cid, 5, "0.1")
    # the same signal again: one order only
    await call.write(execution_pb2.StreamRequest(signal=sig))
    again, _ = await read_until(call, lambda m: m.WhichOneof("body") == "ack")
    assert again.ack.reason == RejectReason.REJECT_REASON_REPLAYED
    assert list(again.ack.client_order_ids) == [cid]
    await call.done_writing()
    state = await stub.GetState(control(execution_pb2.GetStateRequest(phase_id="hunter")))
    assert [p.quantity for p in state.positions] == ["0.1"]
    assert state.mode == "paper"
    assert list(state.cpus)


@pytest.mark.parametrize("case", ["unsigned", "tampered", "wrong_key", "stale", "unknown_phase"])
async def test_bad_signals_are_rejected(service, case):
    rt, stub, _ = service
    await activate(rt, stub)
    c = clock()
    if case == "unsigned":
        sig, reason = signal(c, key=None), RejectReason.REJECT_REASON_BAD_SIGNATURE
    elif case == "tampered":
        sig, reason = signal(c, leg(size="100")), RejectReason.REJECT_REASON_BAD_SIGNATURE
        sig.legs[0].size_quote = "100000"
    elif case == "wrong_key":
        sig, reason = signal(c, key=b"x" * 32), RejectReason.REJECT_REASON_BAD_SIGNATURE
    elif case == "stale":
        sig, reason = signal(c, created_at_ns=time.time_ns() - 6 * 10**9), RejectReason.REJECT_REASON_STALE
    else:
        sig, reason = signal(c, phase="ghost", key=b"g" * 32), RejectReason.REJECT_REASON_UNKNOWN_PHASE
    call = stub.StreamSignals()
    await call.write(execution_pb2.StreamRequest(signal=sig))
    msg = await asyncio.wait_for(updates_of(call).read(), 5)
    assert not msg.ack.accepted
    assert msg.ack.reason == reason
    await call.done_writing()
    assert await asyncio.wait_for(updates_of(call).read(), 5) is grpc.aio.EOF  # no updates for unauthenticated input


async def test_garbage_on_the_wire_does_not_hurt_the_service(service):
    rt, stub, channel = service
    raw = channel.stream_stream(
        "/titan.v1.Execution/StreamSignals", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    call = raw()
    await call.write(b"\xff\xff\xff\x00garbage")
    with pytest.raises(grpc.aio.AioRpcError):
        await asyncio.wait_for(call.read(), 5)
    # the service still answers
    await activate(rt, stub)
    ok = stub.StreamSignals()
    await ok.write(execution_pb2.StreamRequest(signal=signal(clock(), leg(size="100"))))
    msg = await asyncio.wait_for(ok.read(), 5)
    assert msg.ack.accepted, msg.ack.detail
    await ok.done_writing()


def control_rejects(call, reason):
    return REGISTRY.get_sample_value("titan_execution_control_rejects_total", {"call": call, "reason": reason}) or 0


@pytest.mark.parametrize("case", ["unsigned", "wrong_key", "stale", "replayed_nonce", "tampered"])
async def test_control_calls_need_the_control_key(service, case):
    rt, stub, _ = service
    state = trading_pb2.TradingState(mode=MODE.TRADING_MODE_HALTED, version=time.time_ns())
    req = execution_pb2.SetTradingStateRequest(state=state)
    reason = {"unsigned": "unsigned", "wrong_key": "bad_signature", "stale": "stale",
              "replayed_nonce": "replayed", "tampered": "bad_signature"}[case]
    if case == "wrong_key":
        control(req, key=b"k" * 32)
    elif case == "stale":
        control(req, issued_at_ns=time.time_ns() - 60 * 10**9)
    elif case == "replayed_nonce":
        nonce = uuid.uuid4().hex
        ok = control(execution_pb2.SetTradingStateRequest(
            state=trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=time.time_ns())), nonce=nonce)
        await stub.SetTradingState(ok)
        control(req, nonce=nonce)
    elif case == "tampered":
        control(req)
        req.state.mode = MODE.TRADING_MODE_ACTIVE
    before = control_rejects("SetTradingState", reason)
    mode_before = rt.engine.trading_state.mode
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SetTradingState(req)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert control_rejects("SetTradingState", reason) == before + 1
    assert rt.engine.trading_state.mode == mode_before


async def test_get_state_needs_the_control_key_too(service):
    """Positions, orders and budgets are not an open read."""
    _, stub, _ = service
    before = control_rejects("GetState", "unsigned")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetState(execution_pb2.GetStateRequest(phase_id="hunter"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert control_rejects("GetState", "unsigned") == before + 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetState(control(execution_pb2.GetStateRequest(), key=b"k" * 32))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    state = await stub.GetState(control(execution_pb2.GetStateRequest()))
    assert state.mode == "paper"


async def test_update_budgets_newer_version_wins(service):
    rt, stub, _ = service
    v = time.time_ns()
    resp = await stub.UpdateBudgets(control(execution_pb2.UpdateBudgetsRequest(
        budgets=[budget(phase="scavenger", version=v), budget(phase="scavenger", version=v - 1),
                 budget(phase="scavenger", version=v + 1, max_notional="-5")])))
    assert (resp.applied, resp.ignored_stale) == (1, 1)
    assert rt.engine.gate.budgets["scavenger"].version == v


async def test_flatten_and_halt(service):
    rt, stub, _ = service
    await activate(rt, stub)
    rt.servicer.on_market_bytes(top("3000", "100", "3000", "100", symbol="ETHUSDT").SerializeToString())
    call = stub.StreamSignals()
    await call.write(execution_pb2.StreamRequest(signal=signal(clock(), leg(size="2000", symbol="ETHUSDT"))))
    await call.write(execution_pb2.StreamRequest(signal=signal(clock(), leg(size="3000", symbol="ETHUSDT"))))
    acks = [m async for m in _acks(call, 2)]
    assert all(a.ack.accepted for a in acks), [a.ack.detail for a in acks]
    await call.done_writing()
    resp = await stub.Flatten(control(execution_pb2.FlattenRequest(phase_id="hunter", symbol="ETHUSDT",
                                                                   reason="test")))
    assert len(resp.client_order_ids) == 1
    state = await stub.GetState(control(execution_pb2.GetStateRequest(phase_id="hunter")))
    assert all(p.quantity == "0" for p in state.positions if p.symbol == "ETHUSDT")
    halted = await stub.SetTradingState(control(execution_pb2.SetTradingStateRequest(
        state=trading_pb2.TradingState(mode=MODE.TRADING_MODE_HALTED, version=time.time_ns()))))
    assert halted.mode == MODE.TRADING_MODE_HALTED
    call = stub.StreamSignals()
    await call.write(execution_pb2.StreamRequest(signal=signal(clock(), leg(size="100"))))
    msg = await asyncio.wait_for(updates_of(call).read(), 5)
    assert msg.ack.reason == RejectReason.REJECT_REASON_HALTED
    await call.done_writing()


async def _acks(call, n):
    got = 0
    while got < n:
        msg = await asyncio.wait_for(updates_of(call).read(), 5)
        if msg.WhichOneof("body") == "ack":
            got += 1
            yield msg
