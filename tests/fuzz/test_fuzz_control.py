"""Control calls without the control key or with a wrong one (hypothesis): SetTradingState,
UpdateBudgets, Flatten and GetState with no auth, random auth fields, a random key, a phase's key,
a stale or future issue time, a replayed nonce or a body changed after signing. Each: PERMISSION_DENIED,
titan_execution_control_rejects_total counts it under a reason, nothing changes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.execution.helpers import CONTROL_KEY, KEY, MODE, budget, control
from titan.v1 import execution_pb2, trading_pb2

from .service import Service, metric, run_service

pytestmark = pytest.mark.timeout(600)
CALLS = ("SetTradingState", "UpdateBudgets", "Flatten", "GetState")
REASONS = ("unsigned", "bad_signature", "stale", "replayed")
TRIED: dict[str, int] = {}


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    yield from run_service()


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    for target, n in sorted(TRIED.items()):
        print(f"\nfuzz inputs tried: {target}: {n}")


def request(call: str) -> Any:
    now = time.time_ns()
    if call == "SetTradingState":
        return execution_pb2.SetTradingStateRequest(
            state=trading_pb2.TradingState(mode=MODE.TRADING_MODE_HALTED, version=now, set_by="intruder"))
    if call == "UpdateBudgets":
        return execution_pb2.UpdateBudgetsRequest(budgets=[budget(version=now, max_notional="99999999",
                                                                  issued_at_ns=now, expires_at_ns=now + 10**12)])
    if call == "Flatten":
        return execution_pb2.FlattenRequest(phase_id="hunter")
    return execution_pb2.GetStateRequest(phase_id="hunter")


def rejected_total(call: str) -> float:
    return sum(metric("titan_execution_control_rejects_total", {"call": call, "reason": r}) for r in REASONS)


@fuzz(400)
@given(data=st.data())
def test_control_calls_without_the_key(service: Service, data: st.DataObject) -> None:
    call = data.draw(st.sampled_from(CALLS))
    case = data.draw(st.sampled_from(["none", "random_fields", "random_key", "phase_key", "stale", "future",
                                      "replayed_nonce", "tampered"]))
    TRIED[f"control {case}"] = TRIED.get(f"control {case}", 0) + 1
    req = request(call)
    if case == "random_fields":
        req.auth.issuer = data.draw(st.text(max_size=20))
        req.auth.issued_at_ns = data.draw(st.integers(-(2**63), 2**63 - 1))
        req.auth.nonce = data.draw(st.text(max_size=40))
        req.auth.signature = data.draw(st.binary(max_size=80))
    elif case == "random_key":
        control(req, data.draw(st.binary(min_size=1, max_size=64).filter(lambda k: k != CONTROL_KEY)))
    elif case == "phase_key":
        control(req, KEY)
    elif case in ("stale", "future"):
        offset = data.draw(st.integers(60 * 10**9, 10**18))
        control(req, issued_at_ns=time.time_ns() + (offset if case == "future" else -offset))
    elif case == "replayed_nonce":
        nonce = uuid.uuid4().hex
        service.stub.GetState(control(execution_pb2.GetStateRequest(phase_id="nobody"), nonce=nonce))
        control(req, nonce=nonce)
    elif case == "tampered":
        control(req)
        if call == "Flatten" or call == "GetState":
            req.phase_id = data.draw(st.text(max_size=10).filter(lambda p: p != "hunter"))
        elif call == "SetTradingState":
            req.state.mode = MODE.TRADING_MODE_ACTIVE
        else:
            req.budgets[0].max_notional = str(data.draw(st.integers(0, 10**12)))
    before, state, rejected = service.snapshot(), _budgets(service), rejected_total(call)
    stub_call = getattr(service.stub, call)
    try:
        stub_call(req, timeout=10)
        code = grpc.StatusCode.OK
    except grpc.RpcError as err:
        code = err.code()
    assert code == grpc.StatusCode.PERMISSION_DENIED, (call, case)
    assert rejected_total(call) == rejected + 1
    assert service.snapshot() == before and _budgets(service) == state


def _budgets(service: Service) -> Any:
    state = service.stub.GetState(control(execution_pb2.GetStateRequest()), timeout=10)
    return sorted(b.SerializeToString(deterministic=True) for b in state.budgets)
