"""The ledger repository against a real PostgreSQL: idempotency keys, version ordering, exact money."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.core.bus import new_event_id
from titan.core.ledger import Ledger, LedgerReject
from titan.core.ledger import rows as ledger_rows
from titan.v1 import common_pb2, events_pb2, trading_pb2

from .builders import T0, fill_event, order_event


async def test_same_event_twice_changes_nothing(ledger: Ledger) -> None:
    ev = fill_event("same-1")
    assert await ledger.record(ev) is True
    before = (await ledger.event_count(), await ledger.fill_count())
    assert await ledger.record(ev) is False
    assert (await ledger.event_count(), await ledger.fill_count()) == before
    assert await ledger.has_event(ev.event_id)


async def test_same_event_recorded_concurrently_applies_once(ledger: Ledger) -> None:
    ev = fill_event("race-1", phase_id="race")
    results = await asyncio.gather(*(ledger.record(ev) for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
    # two event ids for one venue fill, at the same time: still one fill
    a = fill_event("race-2", phase_id="race", event_id="race-a")
    b = fill_event("race-2", phase_id="race", event_id="race-b")
    assert await asyncio.gather(ledger.record(a), ledger.record(b)) == [True, True]
    assert [f.fill_id for f in await ledger.fills("race")] == ["race-1", "race-2"]


async def test_duplicate_fill_insert_is_a_no_op(ledger: Ledger) -> None:
    first = fill_event("dup-1", price="101.25", event_id="evt-a")
    # the same venue fill reported again under another event id, with different numbers
    second = fill_event("dup-1", price="999", quantity="7", event_id="evt-b")
    n = await ledger.fill_count()
    assert await ledger.record(first)
    await ledger.record(second)
    assert await ledger.fill_count() == n + 1
    [stored] = [f for f in await ledger.fills("hunter") if f.fill_id == "dup-1"]
    assert (stored.price, stored.quantity) == ("101.25", "0.25")
    # same fill id on another venue is a different fill
    assert await ledger.record(fill_event("dup-1", venue="bybit"))
    assert await ledger.fill_count() == n + 2


async def test_fill_round_trips_exact_decimals(ledger: Ledger) -> None:
    ev = fill_event("exact-1", price="12345678901234.123456789012345678", quantity="0.000000000000000001",
                    fee="-0.0000001", phase_id="exact")
    await ledger.record(ev)
    [f] = await ledger.fills("exact")
    assert Decimal(f.price) == Decimal("12345678901234.123456789012345678")
    assert f.quantity == "0.000000000000000001"
    assert f.fee == "-0.0000001"
    assert f.side == common_pb2.SIDE_BUY and f.instrument == common_pb2.INSTRUMENT_KIND_PERP


async def test_older_order_version_never_overwrites_newer(ledger: Ledger) -> None:
    coid = "hunter-s1-0"
    assert await ledger.record(order_event(coid, 3, trading_pb2.ORDER_STATE_PARTIALLY_FILLED, filled="0.5"))
    assert await ledger.record(order_event(coid, 2, trading_pb2.ORDER_STATE_ACCEPTED))  # late, older
    order = await ledger.order(coid)
    assert order is not None
    assert (order.version, order.state, order.filled_quantity) == (3, trading_pb2.ORDER_STATE_PARTIALLY_FILLED, "0.5")
    assert [o.client_order_id for o in await ledger.open_orders("hunter")] == [coid]
    assert await ledger.record(order_event(coid, 4, trading_pb2.ORDER_STATE_FILLED, filled="1.5"))
    order = await ledger.order(coid)
    assert order is not None and order.state == trading_pb2.ORDER_STATE_FILLED and order.version == 4
    assert order.price == "100.5" and order.average_price == ""  # "" on the wire <-> NULL in the table
    assert await ledger.open_orders("hunter") == []


async def test_any_arrival_order_ends_at_the_newest_version(ledger: Ledger) -> None:
    states = {1: trading_pb2.ORDER_STATE_NEW, 2: trading_pb2.ORDER_STATE_ACCEPTED,
              3: trading_pb2.ORDER_STATE_PARTIALLY_FILLED, 4: trading_pb2.ORDER_STATE_FILLED}
    for i, perm in enumerate(itertools.permutations(states)):
        coid = f"perm-{i}"
        for v in perm:
            await ledger.record(order_event(coid, v, states[v], phase_id="perm"))
        order = await ledger.order(coid)
        assert order is not None and (order.version, order.state) == (4, trading_pb2.ORDER_STATE_FILLED), perm
    assert len(await ledger.orders("perm")) == 24


async def test_positions_keep_the_latest_version(ledger: Ledger) -> None:
    def pos(version: int, qty: str, instrument: int = common_pb2.INSTRUMENT_KIND_PERP) -> events_pb2.Event:
        p = trading_pb2.Position(phase_id="sentinel", venue="paper", symbol="BTCUSDT", instrument=instrument,
                                 quantity=qty, average_entry_price="100", ts_ns=T0 + version, version=version)
        return events_pb2.Event(event_id=new_event_id("position", "sentinel", instrument, version),
                                source="execution", ts_ns=T0 + version, position=p)

    await ledger.record(pos(2, "-1.5"))
    await ledger.record(pos(1, "-0.5"))
    await ledger.record(pos(1, "2", common_pb2.INSTRUMENT_KIND_SPOT))  # the spot leg is its own position
    positions = {p.instrument: p for p in await ledger.positions("sentinel")}
    assert positions[common_pb2.INSTRUMENT_KIND_PERP].quantity == "-1.5"
    assert positions[common_pb2.INSTRUMENT_KIND_SPOT].quantity == "2"
    assert positions[common_pb2.INSTRUMENT_KIND_PERP].mark_price == ""
    await ledger.record(pos(3, "0"))
    assert [p.instrument for p in await ledger.positions("sentinel")] == [common_pb2.INSTRUMENT_KIND_SPOT]
    assert len(await ledger.positions("sentinel", include_flat=True)) == 2


async def test_funding_equity_allocations_breakers_trading_state(ledger: Ledger) -> None:
    fp = trading_pb2.FundingPayment(venue="paper", symbol="BTCUSDT", phase_id="sentinel", rate="0.0001",
                                    position_quantity="-1.5", mark_price="100", amount="0.015",
                                    funding_time_ns=T0)
    await ledger.record(events_pb2.Event(event_id="fund-1", source="execution", ts_ns=T0, funding=fp))
    await ledger.record(events_pb2.Event(event_id="fund-2", source="execution", ts_ns=T0, funding=fp))
    assert [f.amount for f in await ledger.funding_payments("sentinel")] == ["0.015"]

    for i, eq in enumerate(["1000", "1010.5", "990.25"]):
        snap = trading_pb2.EquitySnapshot(scope="total", equity=eq, exposure="500", ts_ns=T0 + i)
        await ledger.record(events_pb2.Event(event_id=f"eq-{i}", source="execution", ts_ns=T0 + i, equity=snap))
    latest = await ledger.latest_equity()
    assert latest is not None and latest.equity == "990.25" and latest.ts_ns == T0 + 2
    assert [e.equity for e in await ledger.equity_series("total", since_ns=T0 + 1)] == ["1010.5", "990.25"]
    assert await ledger.latest_equity("nobody") is None

    for i, w in enumerate(["0.25", "0.5"]):
        alloc = events_pb2.Allocation(phase_id="hunter", state=common_pb2.PHASE_STATE_ACTIVE, weight=w,
                                      notional="100", equity="1000", reason="test", ts_ns=T0 + i)
        await ledger.record(events_pb2.Event(event_id=f"al-{i}", source="brain", ts_ns=T0 + i, allocation=alloc))
    assert [a.weight for a in await ledger.allocations("hunter")] == ["0.25", "0.5"]
    assert (await ledger.latest_allocations())["hunter"].weight == "0.5"

    br = events_pb2.BreakerEvent(breaker_id="dd-hard", kind=events_pb2.BREAKER_KIND_HARD, tripped=True,
                                 reason="drawdown", equity="850", drawdown="0.15", ts_ns=T0)
    await ledger.record(events_pb2.Event(event_id="br-1", source="brain", ts_ns=T0, breaker=br))
    await ledger.record(events_pb2.Event(event_id="br-1-again", source="brain", ts_ns=T0, breaker=br))
    assert await ledger.breaker_events() == [br]

    for v, mode in [(1, common_pb2.TRADING_MODE_ACTIVE), (2, common_pb2.TRADING_MODE_HALTED)]:
        ts = trading_pb2.TradingState(mode=mode, reason="r", set_by="cli", ts_ns=T0 + v, version=v)
        await ledger.record(events_pb2.Event(event_id=f"ts-{v}", source="brain", ts_ns=T0 + v, trading_state=ts))
    latest_ts = await ledger.latest_trading_state()
    assert latest_ts is not None and latest_ts.mode == common_pb2.TRADING_MODE_HALTED
    assert len(await ledger.trading_states()) == 2


async def test_decisions_and_seen_signal(ledger: Ledger) -> None:
    sig = trading_pb2.Signal(phase_id="scavenger", signal_id="sig-1", intent=trading_pb2.INTENT_OPEN,
                             legs=[trading_pb2.Leg(venue="paper", symbol="BTCUSDT", size_quote="50")],
                             confidence=0.75, created_at_ns=T0, setup="trap.oi_wipeout", signature=b"\x01\x02")
    ack = trading_pb2.SignalAck(phase_id="scavenger", signal_id="sig-1", accepted=True,
                                client_order_ids=["scavenger-sig-1-0"], received_at_ns=T0, acked_at_ns=T0 + 5)
    decision = events_pb2.SignalDecision(signal=sig, ack=ack)
    assert not await ledger.seen_signal("scavenger", "sig-1")
    await ledger.record(events_pb2.Event(event_id="dec-1", source="execution", ts_ns=T0, decision=decision))
    # the same signal replayed: execution rejects it, but the first decision stays the recorded one
    replay = trading_pb2.SignalAck(phase_id="scavenger", signal_id="sig-1", accepted=False,
                                   reason=trading_pb2.REJECT_REASON_REPLAYED, acked_at_ns=T0 + 9)
    await ledger.record(events_pb2.Event(event_id="dec-2", source="execution", ts_ns=T0 + 9,
                                         decision=events_pb2.SignalDecision(signal=sig, ack=replay)))
    assert await ledger.seen_signal("scavenger", "sig-1")
    assert await ledger.decisions("scavenger") == [decision]

    rejected = trading_pb2.SignalAck(phase_id="scavenger", signal_id="sig-2", accepted=False,
                                     reason=trading_pb2.REJECT_REASON_NO_BUDGET, detail="no budget",
                                     acked_at_ns=T0 + 20)
    await ledger.record(events_pb2.Event(event_id="dec-3", source="execution", ts_ns=T0 + 20,
                                         decision=events_pb2.SignalDecision(ack=rejected)))
    newest = await ledger.decisions(limit=1)
    assert newest[0].ack == rejected and not newest[0].HasField("signal")
    assert [d.ack.signal_id for d in await ledger.decisions("scavenger", accepted=False)] == ["sig-2"]


async def test_parameter_proposal_status_updates(ledger: Ledger) -> None:
    proposed = events_pb2.ParameterProposal(proposal_id="p-1", phase_id="hunter", params_json='{"a":1}',
                                            rationale="why", status="proposed", baseline_score="1.2",
                                            candidate_score="1.5", ts_ns=T0)
    await ledger.record(events_pb2.Event(event_id="pp-1", source="ai-quant", ts_ns=T0, proposal=proposed))
    accepted = events_pb2.ParameterProposal(proposal_id="p-1", status="accepted", reason="ok", ts_ns=T0 + 10)
    stale = events_pb2.ParameterProposal(proposal_id="p-1", status="rejected", reason="late", ts_ns=T0 + 5)
    await ledger.record(events_pb2.Event(event_id="pp-2", source="brain", ts_ns=T0 + 10, proposal=accepted))
    await ledger.record(events_pb2.Event(event_id="pp-3", source="brain", ts_ns=T0 + 5, proposal=stale))
    p = await ledger.proposal("p-1")
    assert p is not None
    assert (p.status, p.reason, p.params_json, p.rationale, p.ts_ns) == ("accepted", "ok", '{"a":1}', "why", T0 + 10)
    assert [x.proposal_id for x in await ledger.proposals("hunter", status="accepted")] == ["p-1"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (events_pb2.Event(event_id="bad-1", source="execution", ts_ns=T0), "no_body"),
        (events_pb2.Event(source="execution", fill=trading_pb2.Fill(venue="x", fill_id="1")), "no_event_id"),
        (fill_event("bad-dec", price="12,5", event_id="bad-2"), "bad_decimal"),
        (fill_event("bad-nan", price="NaN", event_id="bad-3"), "bad_decimal"),
        (fill_event("", event_id="bad-4"), "missing"),
        (events_pb2.Event(event_id="bad-5", source="no spaces", fill=trading_pb2.Fill()), "bad_source"),
    ],
)
async def test_malformed_events_are_refused_and_leave_no_trace(
    ledger: Ledger, event: events_pb2.Event, reason: str
) -> None:
    before = await ledger.event_count()
    with pytest.raises(LedgerReject) as info:
        await ledger.record(event)
    assert info.value.reason == reason
    assert await ledger.event_count() == before
    if event.event_id:
        assert not await ledger.has_event(event.event_id)


async def test_events_table_keeps_every_envelope(ledger: Ledger) -> None:
    ev = fill_event("env-1", event_id="env-evt-1", ts_ns=T0 + 77)
    await ledger.record(ev)
    stored = [e for e in await ledger.events(kind="fill", since_ns=T0 + 77) if e.event_id == "env-evt-1"]
    assert stored == [ev]
    async with ledger.pool.acquire() as conn:
        ts = await conn.fetchval("SELECT extract(epoch FROM ts) FROM events WHERE event_id = 'env-evt-1'")
    assert abs(float(ts) - (T0 + 77) / 1e9) < 1e-3


# --- pure row conversion (no database) ------------------------------------------------------------
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-10**12, max_value=10**12)


@given(
    price=decimals, qty=decimals, fee=decimals,
    side=st.sampled_from([common_pb2.SIDE_BUY, common_pb2.SIDE_SELL]),
    ts=st.integers(min_value=0, max_value=2**62),
)
def test_fill_row_round_trip(price: Decimal, qty: Decimal, fee: Decimal, side: int, ts: int) -> None:
    fill = trading_pb2.Fill(venue="v", fill_id="f", client_order_id="c", phase_id="p", symbol="S",
                            side=side, price=str(price), quantity=str(qty), fee=str(fee), realized_pnl="1e-3",
                            ts_ns=ts)
    [st_] = ledger_rows.fill_rows(fill, "e")
    cols = st_.sql.split("(", 1)[1].split(")", 1)[0].split(", ")
    back = ledger_rows.fill_from_row(dict(zip(cols, st_.args, strict=True)))
    assert Decimal(back.price) == price and Decimal(back.quantity) == qty and Decimal(back.fee) == fee
    assert Decimal(back.realized_pnl) == Decimal("0.001") and back.side == side and back.ts_ns == ts


async def test_a_batch_ends_where_the_same_events_one_by_one_end(ledger: Ledger) -> None:
    """record_many: one transaction, the same outcome as recording each event in turn."""
    coid, phase = "batch-o", "batchp"
    sig = trading_pb2.Signal(phase_id=phase, signal_id="bs", intent=trading_pb2.INTENT_OPEN,
                             legs=[trading_pb2.Leg(venue="paper", symbol="BTCUSDT", size_quote="50")])
    first = trading_pb2.SignalAck(phase_id=phase, signal_id="bs", accepted=True, acked_at_ns=T0)
    replayed = trading_pb2.SignalAck(phase_id=phase, signal_id="bs", accepted=False,
                                     reason=trading_pb2.REJECT_REASON_REPLAYED, acked_at_ns=T0 + 1)
    fill = fill_event("batch-f1", phase_id=phase)
    events = [
        order_event(coid, 3, trading_pb2.ORDER_STATE_FILLED, filled="1.5", phase_id=phase),
        order_event(coid, 2, trading_pb2.ORDER_STATE_ACCEPTED, phase_id=phase),  # older, later in the batch
        fill,
        fill,                                                       # the same event twice in one batch
        fill_event("batch-f1", phase_id=phase, event_id="batch-f1-again"),  # the same fact, another id
        events_pb2.Event(event_id="batch-d1", source="execution", ts_ns=T0,
                         decision=events_pb2.SignalDecision(signal=sig, ack=first)),
        events_pb2.Event(event_id="batch-d2", source="execution", ts_ns=T0 + 1,
                         decision=events_pb2.SignalDecision(signal=sig, ack=replayed)),
        fill_event("batch-bad", price="1e", phase_id=phase),        # refused before the database
    ]
    results = await ledger.record_many(events)
    assert results[:7] == [True, True, True, False, True, True, True]
    assert isinstance(results[7], LedgerReject) and results[7].reason == "bad_decimal"
    order = await ledger.order(coid)
    assert order is not None and (order.version, order.filled_quantity) == (3, "1.5")
    assert [f.fill_id for f in await ledger.fills(phase)] == ["batch-f1"]
    assert [d.ack for d in await ledger.decisions(phase)] == [first]  # the first decision stays
    assert await ledger.record_many(events[:7]) == [False] * 7      # all of it again: nothing changes
    assert await ledger.record_many([]) == []


async def test_a_batch_reduces_each_key_as_one_by_one_would(ledger: Ledger) -> None:
    """Several versions of a key in one batch: the newest wins, the first among equal versions, and
    an id already recorded contributes nothing; array columns keep awkward characters."""
    phase = "reducep"

    def position(event_id: str, version: int, quantity: str) -> events_pb2.Event:
        body = trading_pb2.Position(phase_id=phase, venue="paper", symbol="BTCUSDT",
                                    instrument=common_pb2.INSTRUMENT_KIND_PERP, quantity=quantity,
                                    ts_ns=T0 + version, version=version)
        return events_pb2.Event(event_id=event_id, source="execution", ts_ns=T0 + version, position=body)

    assert await ledger.record(position("red-p1", 1, "1"))
    cids = ['x"y', "a,b", "{c}", "back\\slash", "NULL"]
    ack = trading_pb2.SignalAck(phase_id=phase, signal_id="rs", accepted=True, client_order_ids=cids,
                                acked_at_ns=T0)
    batch = [
        position("red-p1", 1, "1"),
        position("red-p3a", 3, "3"),
        position("red-p2", 2, "2"),
        position("red-p3b", 3, "4"),      # the same version again: the first one stays
        events_pb2.Event(event_id="red-d", source="execution", ts_ns=T0,
                         decision=events_pb2.SignalDecision(ack=ack)),
    ]
    assert await ledger.record_many(batch) == [False, True, True, True, True]
    [held] = await ledger.positions(phase)
    assert (held.version, held.quantity) == (3, "3")
    [decision] = await ledger.decisions(phase)
    assert list(decision.ack.client_order_ids) == cids


async def test_a_batch_applies_the_bodies_of_its_new_events_only(ledger: Ledger) -> None:
    """Each table's rows are applied for the events new to the ledger: when every event of a batch
    is new, without looking each one up; when one is not, its body is left out even though its row
    would fit (here a different fill under an id already recorded, keys all distinct)."""
    phase = "newonlyp"
    assert await ledger.record(fill_event("F1", phase_id=phase, event_id="newonly-x"))
    again = fill_event("F2", phase_id=phase, event_id="newonly-x")  # a recorded id, another body
    fresh = [fill_event(f"F{n}", phase_id=phase) for n in range(3, 6)]
    assert await ledger.record_many([again, *fresh]) == [False, True, True, True]
    assert sorted(f.fill_id for f in await ledger.fills(phase)) == ["F1", "F3", "F4", "F5"]
    all_new = [fill_event(f"F{n}", phase_id=phase) for n in range(6, 9)]
    assert await ledger.record_many(all_new) == [True, True, True]
    assert len(await ledger.fills(phase)) == 7
