"""Batched frames over real loopback gRPC with events in a real JetStream: a SignalBatch is answered
by one AckBatch in the same order; single signals stay valid; two phases streaming at once produce
exactly one order event per order version and one decision per signal (no order snapshot published
early by the other stream)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict

import grpc
import pytest

from tests.execution.helpers import CONTROL_KEY, KEYS, MODE, OTHER_KEY, budget, control, leg, mark, signal, top
from tests.util import wait_for
from titan.core.bus.events import decode_event, event_kind, unpack
from titan.core.config import Settings
from titan.core.signing import seal_signal
from titan.execution.runtime import ExecutionRuntime, RuntimeOptions
from titan.v1 import execution_pb2, execution_pb2_grpc, trading_pb2

PER_PHASE = 120
FRAME = 8


class Wall:
    def now_ns(self) -> int:
        return time.time_ns()


@pytest.fixture(scope="module")
async def served(nats_url, catalog, bus_js):
    settings = Settings(nats_url=nats_url, pg_dsn="", namespace=catalog.namespace, execution_port=0,
                        metrics_port=0, execution_cpus="", control_key=CONTROL_KEY.decode(),
                        replay_window_ms=600_000)
    rt = ExecutionRuntime(settings, RuntimeOptions(keys=dict(KEYS), metrics=False, freeze_gc=False))
    port = await rt.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = execution_pb2_grpc.ExecutionStub(channel)
    await stub.SetTradingState(control(execution_pb2.SetTradingStateRequest(
        state=trading_pb2.TradingState(mode=MODE.TRADING_MODE_ACTIVE, version=time.time_ns(), set_by="test"))))
    far = time.time_ns() + 3600 * 10**9
    budgets = [budget(phase, version=time.time_ns(), expires_at_ns=far, max_orders_per_minute=100_000,
                      max_open_orders_per_symbol=1000, max_notional="100000000")
               for phase in ("hunter", "scavenger")]
    resp = await stub.UpdateBudgets(control(execution_pb2.UpdateBudgetsRequest(budgets=budgets)))
    assert resp.applied == 2
    # a deep book: every market order fills at once
    rt.servicer.on_market_bytes(top("50000", "1000000", "50000", "1000000").SerializeToString())
    rt.servicer.on_market_bytes(mark("50000").SerializeToString())
    yield rt, stub
    await channel.close()
    await rt.stop()


def _signals(phase: str, key: bytes, n: int, prefix: str) -> list[trading_pb2.Signal]:
    return [signal(Wall(), leg(size="500"), phase=phase, key=key, signal_id=f"{prefix}-{i}") for i in range(n)]


async def _send_in_frames(stub, sigs: list[trading_pb2.Signal]) -> list[trading_pb2.SignalAck]:
    call = stub.StreamSignals()
    acks: list[trading_pb2.SignalAck] = []
    for start in range(0, len(sigs), FRAME):
        frame = sigs[start:start + FRAME]
        await call.write(execution_pb2.StreamRequest(signals=execution_pb2.SignalBatch(signals=frame)))
        while True:
            msg = await asyncio.wait_for(call.read(), 10)
            if msg.WhichOneof("body") == "acks":
                acks.extend(msg.acks.acks)
                break
    await call.done_writing()
    return acks


async def test_batch_acks_in_order_and_single_signals_still_work(served):
    _, stub = served
    sigs = _signals("hunter", KEYS["hunter"], 5, "order")
    call = stub.StreamSignals()
    await call.write(execution_pb2.StreamRequest(signals=execution_pb2.SignalBatch(signals=sigs)))
    msg = await asyncio.wait_for(call.read(), 10)
    assert msg.WhichOneof("body") == "acks"
    assert [a.signal_id for a in msg.acks.acks] == [s.signal_id for s in sigs]
    assert all(a.accepted for a in msg.acks.acks), [a.detail for a in msg.acks.acks]
    single = _signals("hunter", KEYS["hunter"], 1, "single")[0]
    await call.write(execution_pb2.StreamRequest(signal=single))
    while True:
        msg = await asyncio.wait_for(call.read(), 10)
        if msg.WhichOneof("body") in ("ack", "acks"):
            break
    assert msg.WhichOneof("body") == "ack" and msg.ack.signal_id == single.signal_id and msg.ack.accepted
    # a tampered signal inside a batch is rejected on its own; its neighbours are accepted
    mixed = _signals("hunter", KEYS["hunter"], 3, "mixed")
    mixed[1].signature = b"\x00" * 32
    await call.write(execution_pb2.StreamRequest(signals=execution_pb2.SignalBatch(signals=mixed)))
    while True:
        msg = await asyncio.wait_for(call.read(), 10)
        if msg.WhichOneof("body") == "acks":
            break
    assert [a.accepted for a in msg.acks.acks] == [True, False, True]
    assert msg.acks.acks[1].reason == trading_pb2.RejectReason.REJECT_REASON_BAD_SIGNATURE
    await call.done_writing()


async def test_two_concurrent_streams_publish_each_order_event_once(served, bus_js, catalog):
    rt, stub = served
    hunter = _signals("hunter", KEYS["hunter"], PER_PHASE, "conc")
    scavenger = _signals("scavenger", OTHER_KEY, PER_PHASE, "conc")
    acks_h, acks_s = await asyncio.gather(_send_in_frames(stub, hunter), _send_in_frames(stub, scavenger))
    acks = acks_h + acks_s
    assert len(acks) == 2 * PER_PHASE and all(a.accepted for a in acks), [a.detail for a in acks if not a.accepted]
    cids = {cid for a in acks for cid in a.client_order_ids}
    assert len(cids) == 2 * PER_PHASE
    assert await rt.sink.flush(30)

    sub = await bus_js.subscribe(catalog.event_filter("execution", "*"), ordered_consumer=True)
    orders: Counter[str] = Counter()
    versions: Counter[tuple[str, int]] = Counter()
    decisions: Counter[tuple[str, str]] = Counter()
    fills: Counter[str] = Counter()
    message_of: dict[str, int] = {}  # client order id -> the stream sequence of its order event
    together: defaultdict[str, set[int]] = defaultdict(set)  # ... of its fill and its signal's decision
    outcome_messages: set[int] = set()

    async def drain() -> bool:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except TimeoutError:
                return all(decisions[(s.phase_id, s.signal_id)] for s in hunter + scavenger)
            carried = unpack(decode_event(msg.data))
            for event in carried:
                kind = str(event_kind(event))
                if kind == "order" and event.order.client_order_id in cids:
                    orders[event.order.client_order_id] += 1
                    versions[(event.order.client_order_id, event.order.version)] += 1
                    message_of[event.order.client_order_id] = msg.metadata.sequence.stream
                elif kind == "fill" and event.fill.client_order_id in cids:
                    fills[event.fill.client_order_id] += 1
                    together[event.fill.client_order_id].add(msg.metadata.sequence.stream)
                elif kind == "decision" and event.decision.ack.signal_id.startswith("conc-"):
                    decisions[(event.decision.ack.phase_id, event.decision.ack.signal_id)] += 1
                    for cid in event.decision.ack.client_order_ids:
                        together[cid].add(msg.metadata.sequence.stream)
            if any(e.decision.ack.signal_id.startswith("conc-") for e in carried):
                outcome_messages.add(msg.metadata.sequence.stream)

    await wait_for(drain, timeout=30)
    await sub.unsubscribe()
    # each market order is decided and filled within its signal: one order event (its final
    # snapshot), one fill and one decision per signal
    assert set(orders) == cids
    assert max(versions.values()) == 1
    assert Counter(orders.values()) == Counter({1: 2 * PER_PHASE})
    assert set(fills) == cids and max(fills.values()) == 1
    assert len(decisions) == 2 * PER_PHASE and max(decisions.values()) == 1
    # a signal's order, fill and decision travel in one message; a frame's signals share it
    assert all(together[cid] == {message_of[cid]} for cid in cids)
    assert len(outcome_messages) == 2 * PER_PHASE // FRAME


async def test_a_frames_updates_reach_the_phase_as_one_update_batch(served):
    _, stub = served
    sigs = _signals("hunter", KEYS["hunter"], FRAME, "ub")
    call = stub.StreamSignals()
    await call.write(execution_pb2.StreamRequest(signals=execution_pb2.SignalBatch(signals=sigs)))
    cids: set[str] = set()
    updates: list[execution_pb2.ExecutionUpdate] = []
    messages = 0
    while not any(u.WhichOneof("body") == "position" for u in updates):
        msg = await asyncio.wait_for(call.read(), 10)
        body = msg.WhichOneof("body")
        if body == "acks":
            cids = {cid for a in msg.acks.acks for cid in a.client_order_ids}
            continue
        messages += 1
        updates += list(msg.updates.updates) if body == "updates" else [msg]
    await call.done_writing()
    assert len(cids) == FRAME
    # the frame is one input: its orders, its fills, then its one position as the frame left it, in one message
    assert [u.WhichOneof("body") for u in updates] == ["order"] * FRAME + ["fill"] * FRAME + ["position"]
    assert {u.order.client_order_id for u in updates if u.WhichOneof("body") == "order"} == cids
    fills = [u.fill for u in updates if u.WhichOneof("body") == "fill"]
    position = updates[-1].position
    assert position.ts_ns == fills[-1].ts_ns and position.version >= FRAME  # after the frame's last fill
    assert messages == 1


async def test_a_sealed_frame_is_checked_over_its_bytes_before_they_are_parsed(served):
    """What the phase runtime sends: each signal as the bytes its signature covers. One that fails the
    check is answered under its envelope's ids and never parsed; its neighbours are decided as usual."""
    _, stub = served
    sealed = [seal_signal(s) for s in _signals("hunter", KEYS["hunter"], 5, "sealed")]
    _, tampered, foreign, renamed, garbage = sealed  # the first stays as signed
    tampered.signal = tampered.signal.replace(b"500", b"900")  # the leg's size_quote, after signing
    foreign.phase_id = "nobody"  # no key for the phase the envelope names
    renamed.signal_id = "sealed-99"  # the envelope names another signal than the bytes carry
    garbage.signal = b"\xff\xff\xff"  # not a Signal at all: never parsed (the signature fails first)
    call = stub.StreamSignals()
    await call.write(execution_pb2.StreamRequest(sealed=execution_pb2.SealedBatch(signals=sealed)))
    while True:
        msg = await asyncio.wait_for(call.read(), 10)
        if msg.WhichOneof("body") == "acks":
            break
    await call.done_writing()
    acks = list(msg.acks.acks)
    assert [(a.phase_id, a.signal_id) for a in acks] == [
        ("hunter", "sealed-0"), ("hunter", "sealed-1"), ("nobody", "sealed-2"), ("hunter", "sealed-99"),
        ("hunter", "sealed-4")]
    assert acks[0].accepted and len(acks[0].client_order_ids) == 1, acks[0].detail
    assert [a.reason for a in acks[1:]] == [
        trading_pb2.RejectReason.REJECT_REASON_BAD_SIGNATURE,
        trading_pb2.RejectReason.REJECT_REASON_UNKNOWN_PHASE,
        trading_pb2.RejectReason.REJECT_REASON_BAD_SIGNATURE,
        trading_pb2.RejectReason.REJECT_REASON_BAD_SIGNATURE,
    ]
