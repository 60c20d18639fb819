"""Random and malformed signals over real gRPC to a service process: every one is answered, in
order, and the service stays healthy."""

from __future__ import annotations

import os
import signal as signals_
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.execution.helpers import KEY, OTHER_KEY
from tests.execution.test_property import sign_as, signals, signing
from tests.execution.test_recovery import _free_port
from titan.v1 import execution_pb2, execution_pb2_grpc


@pytest.fixture(scope="module")
def service_port(tmp_path_factory):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")}
    env.update(
        TITAN_NATS_URL="", TITAN_PG_DSN="", TITAN_EXECUTION_PORT=str(port),
        TITAN_METRICS_PORT="0", TITAN_HEALTH_PORT="0",
        TITAN_PHASE_KEY_HUNTER=KEY.decode(), TITAN_PHASE_KEY_SCAVENGER=OTHER_KEY.decode(),
        TITAN_CONTROL_KEY="control-key-0123456789abcdef", TITAN_LOG_LEVEL="WARNING",
        TITAN_DATA_DIR=str(tmp_path_factory.mktemp("data")),
    )
    log = (tmp_path_factory.mktemp("svc") / "execution.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "titan.execution"], env=env, stdout=log, stderr=log)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "service exited"
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=0.5).status == 1:
                break
        except grpc.RpcError:
            pass
        assert time.monotonic() < deadline, "service did not become healthy"
        time.sleep(0.1)
    yield port, health
    channel.close()
    proc.send_signal(signals_.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(signals, signing), min_size=1, max_size=40))
def test_every_signal_over_the_wire_is_answered(service_port, batch):
    port, health = service_port
    requests = []
    for sig, how in batch:
        requests.append(execution_pb2.StreamRequest(signal=sign_as(sig, how, garbage=b"\x01")))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = execution_pb2_grpc.ExecutionStub(channel)
        acks = [u.ack for u in stub.StreamSignals(iter(requests), timeout=30) if u.WhichOneof("body") == "ack"]
    assert [(a.phase_id, a.signal_id) for a in acks] == [(r.signal.phase_id, r.signal.signal_id) for r in requests]
    assert all(not a.accepted for a in acks)  # no trading state was ever set: everything fails closed
    assert all(a.reason != 23 for a in acks)  # never INTERNAL
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1
