"""The live view model: events in, the numbers a person sees out."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console

from titan.cli.view import OrganismView, percentile, sparkline
from titan.v1 import common_pb2, events_pb2, trading_pb2


def _decision(n: int, accepted: bool, latency_ns: int) -> events_pb2.Event:
    ev = events_pb2.Event(event_id=f"d{n}", source="execution", ts_ns=n)
    sig = ev.decision.signal
    sig.phase_id, sig.signal_id = "scavenger", f"s{n}"
    sig.legs.add(symbol="BTCUSDT", side=common_pb2.SIDE_BUY, size_quote="100")
    ack = ev.decision.ack
    ack.accepted = accepted
    ack.reason = trading_pb2.REJECT_REASON_UNSPECIFIED if accepted else trading_pb2.REJECT_REASON_PRICE_BAND
    ack.received_at_ns, ack.acked_at_ns = 1_000_000, 1_000_000 + latency_ns
    return ev


def test_view_tracks_signals_equity_allocations_positions() -> None:
    view = OrganismView()
    for i in range(100):
        view.apply(_decision(i, accepted=i % 4 != 0, latency_ns=(i + 1) * 1000))
    for i, eq in enumerate(("1000", "1010", "995.5")):
        view.apply(events_pb2.Event(event_id=f"e{i}", equity=trading_pb2.EquitySnapshot(scope="total", equity=eq)))
    view.apply(events_pb2.Event(allocation=events_pb2.Allocation(
        phase_id="scavenger", weight="1", notional="995.5", max_leverage="20", state=common_pb2.PHASE_STATE_ACTIVE)))
    view.apply(events_pb2.Event(position=trading_pb2.Position(phase_id="scavenger", symbol="BTCUSDT", quantity="0.01")))
    view.apply(events_pb2.Event(position=trading_pb2.Position(phase_id="scavenger", symbol="ETHUSDT", quantity="1")))
    view.apply(events_pb2.Event(position=trading_pb2.Position(phase_id="scavenger", symbol="ETHUSDT", quantity="0")))
    view.apply(events_pb2.Event(trading_state=trading_pb2.TradingState(mode=common_pb2.TRADING_MODE_HALTED)))

    summary = view.summary()
    assert summary["signals"] == 100 and summary["accepted"] == 75
    assert summary["equity"] == "995.5"
    assert summary["positions"] == 1
    assert summary["trading_state"] == "HALTED"
    assert summary["allocations"] == {"scavenger": {"weight": "1", "state": "Active"}}
    assert summary["latency_us"]["p50"] == 51.0  # latencies 1..100 µs
    assert summary["latency_us"]["p99"] == 99.0
    assert view.signals[0].reason == "" and view.signals[3].reason == "price_band"

    console = Console(width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(view.render(), height=40)
    text = console.export_text()
    assert "995.50" in text and "HALTED" in text and "price_band" in text and "scavenger" in text


def test_sparkline_and_percentile() -> None:
    assert sparkline([]) == ""
    assert sparkline([Decimal(1)] * 3) == "▄▄▄"
    line = sparkline([Decimal(v) for v in (1, 2, 3, 4, 5, 6, 7, 8)])
    assert line[0] == "▁" and line[-1] == "█"
    assert percentile([], 0.5) == 0
    assert percentile([1, 2, 3], 0.5) == 2
