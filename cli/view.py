"""The `titan up` live view: a pure model fed with titan.v1.Event messages, rendered with rich
(or summarised as JSON lines with --headless)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich.console import Group
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from titan.core.money import D
from titan.v1 import common_pb2, events_pb2, trading_pb2

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[Decimal], width: int = 60) -> str:
    if not values:
        return ""
    pts = values[-width:]
    lo, hi = min(pts), max(pts)
    if hi == lo:
        return SPARK[3] * len(pts)
    span = hi - lo
    return "".join(SPARK[int((v - lo) / span * (len(SPARK) - 1))] for v in pts)


def percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


@dataclass
class SignalRow:
    ts_ns: int
    phase: str
    symbol: str
    side: str
    size: str
    accepted: bool
    reason: str


@dataclass
class OrganismView:
    equity: deque[tuple[int, Decimal]] = field(default_factory=lambda: deque(maxlen=600))
    phase_pnl: dict[str, dict[str, str]] = field(default_factory=dict)
    allocations: dict[str, events_pb2.Allocation] = field(default_factory=dict)
    positions: dict[tuple[str, str], trading_pb2.Position] = field(default_factory=dict)
    signals: deque[SignalRow] = field(default_factory=lambda: deque(maxlen=12))
    latencies_ns: deque[int] = field(default_factory=lambda: deque(maxlen=5000))
    breakers: dict[str, events_pb2.BreakerEvent] = field(default_factory=dict)
    trading_mode: str = "unknown"
    counts: dict[str, int] = field(default_factory=lambda: {"signals": 0, "accepted": 0, "fills": 0})
    started_at: float = field(default_factory=time.monotonic)

    def apply(self, event: events_pb2.Event) -> None:
        kind = event.WhichOneof("body")
        if kind == "decision":
            sig, ack = event.decision.signal, event.decision.ack
            leg = sig.legs[0] if sig.legs else trading_pb2.Leg()
            self.counts["signals"] += 1
            self.counts["accepted"] += int(ack.accepted)
            self.signals.appendleft(
                SignalRow(
                    ts_ns=ack.acked_at_ns or event.ts_ns,
                    phase=sig.phase_id,
                    symbol=leg.symbol,
                    side=common_pb2.Side.Name(leg.side).removeprefix("SIDE_").lower(),
                    size=leg.size_quote,
                    accepted=ack.accepted,
                    reason="" if ack.accepted else trading_pb2.RejectReason.Name(ack.reason).removeprefix(
                        "REJECT_REASON_"
                    ).lower(),
                )
            )
            if ack.acked_at_ns and ack.received_at_ns and ack.acked_at_ns >= ack.received_at_ns:
                self.latencies_ns.append(ack.acked_at_ns - ack.received_at_ns)
        elif kind == "equity":
            snap = event.equity
            if snap.scope == "total":
                self.equity.append((snap.ts_ns, D(snap.equity or "0")))
            else:
                self.phase_pnl[snap.scope] = {
                    "equity": snap.equity, "realized": snap.realized_pnl, "unrealized": snap.unrealized_pnl,
                    "fees": snap.fees, "funding": snap.funding,
                }
        elif kind == "allocation":
            self.allocations[event.allocation.phase_id] = event.allocation
        elif kind == "position":
            pos = event.position
            key = (pos.phase_id, pos.symbol)
            if pos.quantity and D(pos.quantity) != 0:
                self.positions[key] = pos
            else:
                self.positions.pop(key, None)
        elif kind == "fill":
            self.counts["fills"] += 1
        elif kind == "breaker":
            kind_name = events_pb2.BreakerKind.Name(event.breaker.kind).removeprefix("BREAKER_KIND_").lower()
            self.breakers[kind_name] = event.breaker
        elif kind == "trading_state":
            self.trading_mode = common_pb2.TradingMode.Name(event.trading_state.mode).removeprefix("TRADING_MODE_")

    # --- summaries --------------------------------------------------------------------------
    def latency_us(self) -> dict[str, float]:
        values = sorted(self.latencies_ns)
        return {f"p{int(q * 1000) / 10:g}": percentile(values, q) / 1000 for q in (0.5, 0.99, 0.999)}

    def summary(self) -> dict[str, Any]:
        equity = self.equity[-1][1] if self.equity else None
        return {
            "equity": str(equity) if equity is not None else None,
            "trading_state": self.trading_mode,
            "allocations": {p: {"weight": a.weight, "state": _state(a.state)} for p, a in self.allocations.items()},
            "positions": len(self.positions),
            "breakers": {k: b.tripped for k, b in self.breakers.items()},
            "latency_us": self.latency_us(),
            **self.counts,
        }

    # --- rendering --------------------------------------------------------------------------
    def render(self) -> Layout:
        layout = Layout()
        layout.split_column(Layout(name="top", size=7), Layout(name="mid"), Layout(name="bottom", size=14))
        layout["top"].split_row(Layout(self._equity_panel(), ratio=2), Layout(self._state_panel()))
        layout["mid"].split_row(Layout(self._allocation_panel()), Layout(self._positions_panel()))
        layout["bottom"].update(self._signals_panel())
        return layout

    def _equity_panel(self) -> Panel:
        values = [v for _, v in self.equity]
        if values:
            first, last = values[0], values[-1]
            change = last - first
            colour = "green" if change >= 0 else "red"
            head = Text.assemble(("equity ", "bold"), (f"{last:,.2f}", "bold"), (f"  ({change:+,.2f})", colour))
        else:
            head = Text("equity: waiting for the first snapshot…", style="dim")
        return Panel(Group(head, Text(sparkline(values), style="cyan")), title="Equity")

    def _state_panel(self) -> Panel:
        lat = self.latency_us()
        tripped = [k for k, b in self.breakers.items() if b.tripped]
        mode_style = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "bold red"}.get(self.trading_mode, "dim")
        lines = [
            Text.assemble("trading  ", (self.trading_mode, mode_style)),
            Text.assemble("breakers ", (", ".join(tripped) or "clear", "red" if tripped else "green")),
            Text(
                f"signals  {self.counts['signals']}  accepted {self.counts['accepted']}  fills {self.counts['fills']}"
            ),
            Text(f"ack µs   p50 {lat['p50']:.0f}  p99 {lat['p99']:.0f}  p99.9 {lat['p99.9']:.0f}"),
        ]
        return Panel(Group(*lines), title="Organism")

    def _allocation_panel(self) -> Panel:
        table = Table(expand=True, box=None)
        for col in ("phase", "state", "weight", "notional", "lev", "pnl"):
            table.add_column(col, justify="left" if col in ("phase", "state") else "right")
        for phase, alloc in sorted(self.allocations.items()):
            pnl = self.phase_pnl.get(phase, {})
            total = sum((D(pnl[k] or "0") for k in ("realized", "unrealized") if k in pnl), Decimal(0))
            table.add_row(
                phase, _state(alloc.state), f"{D(alloc.weight or '0'):.2f}", f"{D(alloc.notional or '0'):,.0f}",
                f"{alloc.max_leverage}x", f"{total:+,.2f}",
            )
        return Panel(table, title="Allocation")

    def _positions_panel(self) -> Panel:
        table = Table(expand=True, box=None)
        for col in ("phase", "symbol", "qty", "entry", "mark", "uPnL"):
            table.add_column(col, justify="left" if col in ("phase", "symbol") else "right")
        for (phase, symbol), pos in sorted(self.positions.items()):
            table.add_row(phase, symbol, pos.quantity, pos.average_entry_price, pos.mark_price, pos.unrealized_pnl)
        return Panel(table, title="Open positions")

    def _signals_panel(self) -> Panel:
        table = Table(expand=True, box=None)
        for col in ("time", "phase", "symbol", "side", "size", "result"):
            table.add_column(col)
        for row in self.signals:
            when = time.strftime("%H:%M:%S", time.gmtime(row.ts_ns / 1e9))
            result = Text("accepted", style="green") if row.accepted else Text(row.reason, style="yellow")
            table.add_row(when, row.phase, row.symbol, row.side, row.size, result)
        return Panel(table, title="Recent signals")


def _state(state: int) -> str:
    return common_pb2.PhaseState.Name(state).removeprefix("PHASE_STATE_").capitalize()
