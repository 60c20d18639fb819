"""Garbage on the market-data subjects (hypothesis): random bytes and protobuf-valid events with
hostile values, through the decoder every phase runs on its subjects (titan.core.marketdata.events
.decode + kind_of) and through execution's market-data handler (on_market_bytes on a real runtime).
Each input: no exception escapes, a reason code (MalformedEvent.reason; titan_bus_rejects_total
for execution), and no order or position changes. Each test prints how many inputs it tried."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from titan.core.marketdata.events import MalformedEvent, decode, kind_of
from titan.execution.service import RejectLog
from titan.v1 import common_pb2, market_pb2

from .service import Service, metric, run_service

pytestmark = pytest.mark.timeout(600)

REASONS = {"bad_decimal", "bad_level", "empty_payload", "inconsistent_candle", "missing_instrument",
           "missing_side", "missing_timestamp", "non_positive", "undecodable", "unknown_kind"}
HOSTILE_NUMBERS = st.one_of(
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "-1", "0", "-0", "1e999", "1e-999", "0x10", "1_000",
                     " 1", "１", "1/2", "9" * 400, "-50000"]),
    st.text(max_size=30))
TRIED: dict[str, int] = {}


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    for target, n in sorted(TRIED.items()):
        print(f"\nfuzz inputs tried: {target}: {n}")


@st.composite
def hostile_event(draw: st.DrawFn) -> market_pb2.MarketEvent:
    """A protobuf-valid MarketEvent for BTCUSDT whose numbers are hostile."""
    ev = market_pb2.MarketEvent(
        venue=draw(st.sampled_from(["bybit", "", "sim"])), symbol=draw(st.sampled_from(["BTCUSDT", "", "X" * 500])),
        instrument=draw(st.sampled_from([common_pb2.INSTRUMENT_KIND_PERP, 0, 99])),
        exchange_ts_ns=draw(st.integers(-(2**63), 2**63 - 1)), receive_ts_ns=draw(st.integers(-(2**63), 2**63 - 1)),
        seq=draw(st.integers(0, 2**64 - 1)))
    kind = draw(st.sampled_from(["trade", "top", "mark", "funding", "depth", "candle"]))
    n = HOSTILE_NUMBERS
    if kind == "trade":
        ev.trade.CopyFrom(market_pb2.Trade(price=draw(n), size=draw(n), taker_side=draw(st.integers(0, 50))))
    elif kind == "top":
        ev.top.CopyFrom(market_pb2.BookTop(bid_price=draw(n), bid_size=draw(n), ask_price=draw(n), ask_size=draw(n)))
    elif kind == "mark":
        ev.mark.CopyFrom(market_pb2.MarkPrice(mark_price=draw(n), index_price=draw(n)))
    elif kind == "funding":
        ev.funding.CopyFrom(market_pb2.Funding(rate=draw(n), funding_time_ns=draw(st.integers(-(2**63), 2**63 - 1)),
                                               settled=draw(st.booleans())))
    elif kind == "depth":
        levels = st.lists(st.builds(market_pb2.BookLevel, price=n, size=n), max_size=5)
        ev.depth.CopyFrom(market_pb2.BookDepth(snapshot=draw(st.booleans()), bids=draw(levels), asks=draw(levels)))
    else:
        ev.candle.CopyFrom(market_pb2.Candle(open=draw(n), high=draw(n), low=draw(n), close=draw(n), volume=draw(n)))
    return ev


def payloads() -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=512), hostile_event().map(lambda ev: ev.SerializeToString()))


@fuzz(1500)
@given(data=payloads())
def test_the_phase_decoder_names_a_reason(data: bytes) -> None:
    TRIED["market data decode (phases' subjects)"] = TRIED.get("market data decode (phases' subjects)", 0) + 1
    try:
        ev = decode(data)
        kind_of(ev)
    except MalformedEvent as err:
        reason = err.reason
    else:
        reason = ""
    if reason:
        assert reason in REASONS, reason
        return
    # accepted: then every number in it is a finite decimal
    for field in _numbers(ev):
        try:
            assert Decimal(field).is_finite(), ev
        except InvalidOperation:
            raise AssertionError(f"accepted a non-number {field!r}: {ev}") from None


NUMERIC = {"trade": ("price", "size"), "top": ("bid_price", "bid_size", "ask_price", "ask_size"),
           "mark": ("mark_price", "index_price"), "funding": ("rate",),
           "candle": ("open", "high", "low", "close", "volume")}


def _numbers(ev: market_pb2.MarketEvent) -> list[str]:
    """The decimal fields an accepted event carries (empty optional ones left out)."""
    kind = ev.WhichOneof("payload") or ""
    payload = getattr(ev, kind) if kind else None
    if kind == "depth":
        return [x for lv in (*ev.depth.bids, *ev.depth.asks) for x in (lv.price, lv.size)]
    return [getattr(payload, name) for name in NUMERIC.get(kind, ()) if getattr(payload, name)]


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    yield from run_service()


def book(service: Service) -> tuple[object, ...]:
    def read() -> tuple[object, ...]:
        engine = service.runtime.engine
        assert engine is not None
        return (tuple(o.client_order_id for o in engine.open_orders()),
                tuple((p.symbol, p.quantity) for p in engine.positions()))
    return service.call(read)


def md_rejects() -> float:
    labels = ({"consumer": "execution-md", "reason": r} for r in (*REASONS, "invalid"))
    return sum(metric("titan_bus_rejects_total", label) for label in labels)


@fuzz(600)
@given(data=payloads())
def test_execution_market_handler_survives(service: Service, data: bytes) -> None:
    target = "market data into execution (on_market_bytes)"
    TRIED[target] = TRIED.get(target, 0) + 1
    before = book(service)
    service.market(data)  # raises here if anything escaped the handler
    assert book(service) == before
    assert service.healthy()


@fuzz(200)
@given(data=payloads())
def test_execution_counts_what_the_phases_refuse(service: Service, data: bytes) -> None:
    """What the phases' decoder refuses, execution drops too, counted once under the same reason."""
    target = "market data execution must refuse (reason counted)"
    TRIED[target] = TRIED.get(target, 0) + 1
    try:
        kind_of(decode(data))
        return
    except MalformedEvent as err:
        reason = err.reason
    label = {"consumer": "execution-md", "reason": reason}
    before, rejected = book(service), md_rejects()
    counted = metric("titan_bus_rejects_total", label)
    service.market(data)
    assert md_rejects() == rejected + 1, data
    assert metric("titan_bus_rejects_total", label) == counted + 1, (reason, data)
    assert book(service) == before


def test_execution_logs_what_it_drops_at_most_once_a_minute_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    rejects = RejectLog("md-log-test", every_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="titan.execution"):
        for n in range(5):
            rejects.drop("undecodable", f"garbage {n}")
        now[0] = 61.0
        rejects.drop("undecodable", "garbage 5")
        rejects.drop("bad_decimal", "nan")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("md-log-test")]
    assert lines == [
        "md-log-test: dropped 1 malformed message (undecodable), the last: garbage 0",
        "md-log-test: dropped 5 malformed messages (undecodable), the last: garbage 5",
        "md-log-test: dropped 1 malformed message (bad_decimal), the last: nan",
    ]
    assert metric("titan_bus_rejects_total", {"consumer": "md-log-test", "reason": "undecodable"}) == 6
