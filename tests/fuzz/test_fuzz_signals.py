"""Hostile input on execution's gRPC stream (hypothesis): garbage bytes, wrong wire types, oversized
and deeply repeated messages, unknown enums and hostile values, replayed and stale signatures, a
phase signing for another phase. For each input: the service stays up, nothing changes (no order,
position or trading-state change), the answer carries a reason code, and the reject metric counts it.
Each test prints how many inputs it tried."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.execution.helpers import KEY, KEYS, OTHER_KEY, RejectReason, leg, signal
from titan.core.signing import sign_signal
from titan.execution.engine.outputs import reason_label
from titan.v1 import common_pb2, execution_pb2, trading_pb2

from .service import Service, metric, run_service

pytestmark = pytest.mark.timeout(600)

def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MAX_MESSAGE = 4 * 1024 * 1024  # the server's grpc.max_receive_message_length


class Wall:
    def now_ns(self) -> int:
        return time.time_ns()


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    yield from run_service()


@pytest.fixture(scope="module")
def baseline(service: Service) -> tuple[Any, ...]:
    """One real accepted signal first (so replays have something to replay), then the state to keep."""
    accepted = signal(Wall(), leg(size="100"), signal_id="fuzz-accepted")
    ack = exchange(service, accepted)
    assert ack.accepted, ack.detail
    return service.snapshot()


def exchange(service: Service, sig: trading_pb2.Signal) -> trading_pb2.SignalAck:
    """One signal on its own stream; its ack."""
    responses = service.stub.StreamSignals(iter([execution_pb2.StreamRequest(signal=sig)]), timeout=15)
    for update in responses:
        if update.WhichOneof("body") == "ack":
            return update.ack
    raise AssertionError("no ack")


def rejects(reason: int) -> float:
    return metric("titan_execution_rejects_total", {"reason": reason_label(reason)})


def assert_rejected(service: Service, baseline: tuple[Any, ...], sig: trading_pb2.Signal,
                    expected: set[int] | None = None) -> int:
    ack = exchange(service, sig)
    assert not ack.accepted, (sig, ack)
    assert ack.reason not in (RejectReason.REJECT_REASON_UNSPECIFIED, RejectReason.REJECT_REASON_INTERNAL), (sig, ack)
    if expected is not None:
        assert ack.reason in expected, (sig, ack)
    assert service.snapshot() == baseline
    return int(ack.reason)


def counted(service: Service, baseline: tuple[Any, ...], sig: trading_pb2.Signal,
            expected: set[int] | None = None) -> None:
    before = {r: rejects(r) for r in RejectReason.values()}
    reason = assert_rejected(service, baseline, sig, expected)
    assert rejects(reason) == before[reason] + 1


TRIED: dict[str, int] = {}


def tried(target: str) -> None:
    TRIED[target] = TRIED.get(target, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    for target, n in sorted(TRIED.items()):
        print(f"\nfuzz inputs tried: {target}: {n}")


# --- bytes on the wire ----------------------------------------------------------------------------

def raw_stream(service: Service, payload: bytes) -> list[bytes] | grpc.RpcError:
    call = service.channel.stream_stream(
        "/titan.v1.Execution/StreamSignals", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        return list(call(iter([payload]), timeout=15))
    except grpc.RpcError as err:
        return err


def wrong_wire_types() -> st.SearchStrategy[bytes]:
    """A StreamRequest whose `signal` field (2) arrives as a varint or fixed64 instead of a message,
    or a Signal whose string fields arrive as varints."""
    varint = st.integers(0, 2**63 - 1).map(_varint)
    as_varint = varint.map(lambda v: b"\x10" + v)  # field 2, wire type 0
    as_fixed = st.binary(min_size=8, max_size=8).map(lambda b: b"\x11" + b)  # field 2, wire type 1
    inner = st.lists(st.tuples(st.integers(1, 20), varint), min_size=1, max_size=8).map(
        lambda fields: b"".join(_varint(n << 3) + v for n, v in fields))
    as_bad_signal = inner.map(lambda body: b"\x12" + _varint(len(body)) + body)
    return st.one_of(as_varint, as_fixed, as_bad_signal)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


@fuzz(300)
@given(payload=st.one_of(st.binary(max_size=2048), wrong_wire_types()))
def test_garbage_bytes(service: Service, baseline: tuple[Any, ...], payload: bytes) -> None:
    tried("StreamSignals garbage bytes / wrong wire types")
    answer = raw_stream(service, payload)
    if isinstance(answer, grpc.RpcError):  # not a StreamRequest: the stream is refused
        assert answer.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT,
                                 grpc.StatusCode.UNKNOWN), answer
    else:  # it parsed: whatever it said was not accepted
        for raw in answer:
            update = execution_pb2.ExecutionUpdate.FromString(raw)
            if update.WhichOneof("body") == "ack":
                assert not update.ack.accepted and update.ack.reason != RejectReason.REJECT_REASON_UNSPECIFIED
    assert service.snapshot() == baseline
    assert service.healthy()


def test_oversized_and_deeply_repeated(service: Service, baseline: tuple[Any, ...]) -> None:
    answer = raw_stream(service, b"\x12" + _varint(MAX_MESSAGE) + b"\x00" * MAX_MESSAGE)
    assert isinstance(answer, grpc.RpcError) and answer.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    tried("StreamSignals oversized / repeated")
    for n in (64, 1_000, 50_000):  # legs: repeated far beyond any real signal, under the size limit
        many = signal(Wall(), *[leg(size="1") for _ in range(n)])
        counted(service, baseline, many, {RejectReason.REJECT_REASON_MALFORMED})
        tried("StreamSignals oversized / repeated")
    long_id = signal(Wall(), signal_id="x" * 1_000_000)
    assert_rejected(service, baseline, long_id)
    tried("StreamSignals oversized / repeated")
    assert service.healthy()


# --- hostile values, correctly signed --------------------------------------------------------------

DECIMALS = st.one_of(st.sampled_from(["", "nan", "NaN", "inf", "-inf", "-1", "0", "-0", "1e999", "1e-999",
                                      "0x10", "1_000", " 1", "1 ", "１", "1/2", "100" * 300, "-100", "+5"]),
                     st.text(max_size=40))
UNKNOWN_ENUM = st.integers(min_value=50, max_value=2**31 - 1)


@st.composite
def hostile_signal(draw: st.DrawFn) -> trading_pb2.Signal:
    """A signal for hunter, signed with hunter's key, with at least one defect."""
    legs = [trading_pb2.Leg(
        venue=draw(st.sampled_from(["bybit", "", "nowhere", "bybit\x00"])),
        symbol=draw(st.sampled_from(["BTCUSDT", "ETHUSDT", "", "DOGEUSDT", "btcusdt", "BTCUSDT" * 50])),
        instrument=draw(st.sampled_from([common_pb2.INSTRUMENT_KIND_PERP, common_pb2.INSTRUMENT_KIND_SPOT, 0, 77])),
        side=draw(st.sampled_from([common_pb2.SIDE_BUY, common_pb2.SIDE_SELL, 0, 99])),
        size_quote=draw(st.one_of(st.just("100"), DECIMALS)),
        order_type=draw(st.sampled_from([trading_pb2.ORDER_TYPE_MARKET, trading_pb2.ORDER_TYPE_LIMIT, 0, 42])),
        limit_price=draw(st.one_of(st.just(""), DECIMALS)),
    ) for _ in range(draw(st.integers(0, 4)))]
    sig = trading_pb2.Signal(
        phase_id="hunter", signal_id=draw(st.text(min_size=1, max_size=64)) + f"-{time.time_ns()}",
        intent=draw(st.sampled_from([trading_pb2.INTENT_OPEN, trading_pb2.INTENT_CLOSE, 0, 13])),
        legs=legs, confidence=draw(st.floats(allow_nan=True, allow_infinity=True)),
        leverage=draw(st.one_of(st.just(""), DECIMALS)), ttl_ms=draw(st.integers(-(2**63), 2**63 - 1)),
        created_at_ns=time.time_ns(), max_slippage_bps=draw(st.integers(0, 2**32 - 1)), setup="fuzz",
    )
    defect = draw(st.sampled_from(["enum", "size", "no_legs", "symbol", "leverage"]))
    if defect == "no_legs" or not sig.legs:
        del sig.legs[:]
    elif defect == "enum":
        sig.legs[0].side = draw(UNKNOWN_ENUM)
    elif defect == "size":
        sig.legs[0].size_quote = draw(st.sampled_from(["nan", "-1", "0", "", "inf", "1e999", "abc"]))
    elif defect == "symbol":
        sig.legs[0].symbol = draw(st.sampled_from(["DOGEUSDT", "", "BTC/USDT", "btcusdt"]))
    else:
        sig.leverage = draw(st.sampled_from(["nan", "-3", "1e999", "abc", "10000"]))
    sign_signal(sig, KEY)
    return sig


@fuzz(400)
@given(sig=hostile_signal())
def test_hostile_values(service: Service, baseline: tuple[Any, ...], sig: trading_pb2.Signal) -> None:
    tried("StreamSignals hostile values / unknown enums")
    counted(service, baseline, sig)


# --- signatures -------------------------------------------------------------------------------------

@fuzz(400)
@given(data=st.data())
def test_signatures(service: Service, baseline: tuple[Any, ...], data: st.DataObject) -> None:
    case = data.draw(st.sampled_from(["other_phase_key", "signs_for_other_phase", "random_key", "tampered",
                                      "stale", "future", "replayed", "unknown_phase"]))
    tried(f"StreamSignals signatures ({case})")
    size = str(data.draw(st.integers(1, 5000)))  # every input distinct, within the budget when valid
    sig = signal(Wall(), leg(size=size), key=None)
    expected = {RejectReason.REJECT_REASON_BAD_SIGNATURE}
    if case == "other_phase_key":  # hunter's signal signed with scavenger's key
        sign_signal(sig, OTHER_KEY)
    elif case == "signs_for_other_phase":  # hunter's key used to sign as scavenger
        sig.phase_id = "scavenger"
        sign_signal(sig, KEY)
    elif case == "random_key":
        sign_signal(sig, data.draw(st.binary(min_size=16, max_size=64).filter(lambda k: k not in KEYS.values())))
    elif case == "tampered":
        sign_signal(sig, KEY)
        sig.legs[0].size_quote = data.draw(st.sampled_from(["1000", "100.0", "99", size + "0"]))
    elif case in ("stale", "future"):
        offset = data.draw(st.integers(6 * 10**9, 10**18))
        sig.created_at_ns = time.time_ns() + (offset if case == "future" else -offset)
        sign_signal(sig, KEY)
        expected = {RejectReason.REJECT_REASON_STALE}
    elif case == "replayed":
        sig = signal(Wall(), leg(size=size), signal_id="fuzz-accepted")
        expected = {RejectReason.REJECT_REASON_REPLAYED}
    else:
        sig.phase_id = data.draw(st.text(min_size=1, max_size=20).filter(lambda p: p not in KEYS))
        sign_signal(sig, data.draw(st.binary(min_size=16, max_size=32)))
        expected = {RejectReason.REJECT_REASON_UNKNOWN_PHASE}
    counted(service, baseline, sig, expected)
