"""The live view model: events in, the numbers a person sees out."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from rich.console import Console

from titan.cli.view import OrganismView, RunInfo, percentile, sparkline
from titan.v1 import common_pb2, events_pb2, market_pb2, trading_pb2


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


# --- the numbers reconcile, marks are live, the layout fits ------------------------------------

def _snapshots(ts: int, phases: dict[str, tuple[str, str, str, str]], capital: Decimal) -> list[events_pb2.Event]:
    """Execution's batch: one snapshot per phase (equity = its net PnL) and the total."""
    out, totals = [], [Decimal(0)] * 4
    for phase, parts in phases.items():
        r, u, f, fu = (Decimal(p) for p in parts)
        totals = [a + b for a, b in zip(totals, (r, u, f, fu), strict=True)]
        out.append(events_pb2.Event(equity=trading_pb2.EquitySnapshot(
            scope=phase, equity=str(r + u - f + fu), realized_pnl=parts[0], unrealized_pnl=parts[1], fees=parts[2],
            funding=parts[3], ts_ns=ts)))
    r, u, f, fu = totals
    out.append(events_pb2.Event(equity=trading_pb2.EquitySnapshot(
        scope="total", equity=str(capital + r + u - f + fu), realized_pnl=str(r), unrealized_pnl=str(u), fees=str(f),
        funding=str(fu), ts_ns=ts)))
    return out


def _render(view: OrganismView, width: int, height: int) -> list[str]:
    console = Console(width=width, height=height, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(view.render(width, height))
    return console.export_text().splitlines()


def _busy_view(now: float = 1_000.0) -> OrganismView:
    run = RunInfo(source="sim", started_at=now - 3725, stop_runs_at=(now + 90,), not_runnable=("ai-quant",),
                  enabled=("scavenger", "hunter"))
    view = OrganismView(run=run, now=lambda: now)
    for ev in _snapshots(1, {"scavenger": ("-3.10", "-9.33", "0.4512", "0.12"), "hunter": ("2.5", "0", "0.1", "0")},
                         Decimal(1000)):
        view.apply(ev)
    for phase, state in (("scavenger", common_pb2.PHASE_STATE_ACTIVE), ("hunter", common_pb2.PHASE_STATE_DORMANT)):
        view.apply(events_pb2.Event(allocation=events_pb2.Allocation(
            phase_id=phase, weight="0.5", notional="500", max_leverage="10", state=state)))
    # the market prints BTCUSDT with a 0.1 tick and a 0.001 lot
    view.apply_market(market_pb2.MarketEvent(symbol="BTCUSDT", trade=market_pb2.Trade(price="64010.7", size="0.125")))
    view.apply(events_pb2.Event(position=trading_pb2.Position(
        phase_id="scavenger", symbol="BTCUSDT", quantity="-0.0120004513", average_entry_price="64000.48123456",
        mark_price="64100.0", unrealized_pnl="-1.19")))
    view.apply_market(market_pb2.MarketEvent(symbol="BTCUSDT", mark=market_pb2.MarkPrice(mark_price="64777.3")))
    for i in range(20):
        view.apply(_decision(i, accepted=i % 2 == 0, latency_ns=1000))
    return view


def test_phase_pnl_sums_to_the_equity_change() -> None:
    view = _busy_view()
    phases = {"scavenger": ("-3.10", "-9.33", "0.4512", "0.12"), "hunter": ("2.5", "0", "0.1", "0")}
    equity = view.equity[-1][1]
    summed = sum((Decimal(v) for v in view.summary()["phase_pnl"].values()), Decimal(0))
    assert view.equity_change() == summed == equity - Decimal(1000)
    expected = {p: Decimal(r) + Decimal(u) - Decimal(f) + Decimal(fu) for p, (r, u, f, fu) in phases.items()}
    assert {p: view.phase_pnl(p) for p in phases} == expected
    text = "\n".join(_render(view, 200, 50))
    # what a person reads: equity, its change, and per-phase PnL that add up (to the cent)
    assert f"{equity:,.2f}" in text and f"({summed:+,.2f})" in text
    assert f"{expected['scavenger']:+,.2f}" in text and f"{expected['hunter']:+,.2f}" in text


def test_positions_are_valued_at_the_live_mark_with_the_markets_precision() -> None:
    view = _busy_view()
    (pos,) = view.positions.values()
    assert view.unrealized(pos) == Decimal("-0.0120004513") * (Decimal("64777.3") - Decimal("64000.48123456"))
    text = "\n".join(_render(view, 200, 50))
    row = next(line for line in text.splitlines() if "BTCUSDT" in line and "scavenger" in line)
    # averages and computed quantities shown at the instrument's tick and lot, uPnL in cents
    assert "64,777.3" in row and "64,000.5" in row and "-0.012 " in row and "-9.32" in row
    assert "64,000.48" not in row and "-0.0120" not in row
    assert "64100" not in row and "-1.19" not in row  # not the fill-time mark
    view.apply_market(market_pb2.MarketEvent(symbol="BTCUSDT", mark=market_pb2.MarkPrice(mark_price="63000.1")))
    row = next(line for line in _render(view, 200, 50) if "BTCUSDT" in line and "scavenger" in line)
    assert "63,000.1" in row and "+12.01" in row  # -0.0120004513 x (63000.1 - 64000.48123456) = 12.00502


def test_money_is_rounded_to_cents() -> None:
    text = "\n".join(_render(_busy_view(), 200, 50))
    assert "0.4512" not in text and "-0.00" not in text.replace("+0.00", "")
    assert re.search(r"fees -0\.55\b", text)


@pytest.mark.parametrize(("width", "height"), [(80, 24), (100, 30), (120, 40), (140, 45), (200, 50)])
def test_layout_fits_the_terminal_and_no_panel_is_empty(width: int, height: int) -> None:
    lines = _render(_busy_view(), width, height)
    assert len(lines) <= height and all(len(line) <= width for line in lines)
    text = "\n".join(lines)
    for phase in ("scavenger", "hunter", "ai-quant"):
        assert phase in text, phase
    assert "cannot run" in text and "BTCUSDT" in text and "accepted" in text
    assert "-12.76" in text and "+2.40" in text and "-9.32" in text and "…" not in text
    assert "up 1h02m05s" in text and "source sim" in text and "stop-run in 1m30s" in text


def test_empty_panels_say_why() -> None:
    text = "\n".join(_render(OrganismView(), 80, 24))
    assert "no open positions" in text and "no signals yet" in text and "waiting" in text
