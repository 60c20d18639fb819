"""The `titan up` live view: a pure model fed with titan.v1.Event and MarketEvent messages, rendered
with rich (or summarised as JSON lines with --headless).

What it shows is what execution accounts, nothing estimated:
- equity and the allocation table's PnL come from one batch of execution's equity snapshots, so the
  phases' net PnL (realized + unrealized - fees + funding) add up to the equity change since the
  starting capital, to the cent;
- open positions are valued at the latest mark of their instrument (mark price, else last trade),
  so mark and uPnL move with the market between snapshots;
- prices and quantities are shown with as many decimals as the market quotes them, money in cents.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from rich.console import Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from titan.core.money import to_decimal
from titan.v1 import common_pb2, events_pb2, market_pb2, trading_pb2

SPARK = "▁▂▃▄▅▆▇█"
MONEY_DP = 2  # quote-currency amounts (USDT): cents
PNL_PARTS = ("realized", "unrealized", "fees", "funding")
WIDE_WIDTH, TALL_HEIGHT = 120, 40  # below either, the compact layout
NARROW_WIDTH = 100  # below, allocation and positions stack instead of sitting side by side
FULL_TABLE_WIDTH = 140  # from here the tables side by side have room for every column
DEFAULT_PRICE_DP, DEFAULT_QTY_DP = 2, 4  # until the market's trades show the instrument's precision


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


def decimals(text: str) -> int:
    """Decimal places a venue wrote a number with ("64123.5" -> 1, "0.001" -> 3)."""
    exponent = to_decimal(text).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def fmt(value: Decimal, dp: int, sign: bool = False) -> str:
    rounded = value.quantize(Decimal(1).scaleb(-dp), rounding=ROUND_HALF_EVEN)
    return f"{rounded:{'+' if sign else ''},.{dp}f}"


def fmt_duration(seconds: float) -> str:
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


@dataclass
class SignalRow:
    ts_ns: int
    phase: str
    symbol: str
    side: str
    size: str
    accepted: bool
    reason: str


@dataclass(frozen=True)
class PhaseNet:
    """One phase's (or the total's) accounting from an equity snapshot."""

    realized: Decimal
    unrealized: Decimal
    fees: Decimal
    funding: Decimal
    ts_ns: int

    @property
    def net(self) -> Decimal:
        return self.realized + self.unrealized - self.fees + self.funding

    @classmethod
    def of(cls, snap: trading_pb2.EquitySnapshot) -> PhaseNet:
        return cls(
            to_decimal(snap.realized_pnl or "0"),
            to_decimal(snap.unrealized_pnl or "0"),
            to_decimal(snap.fees or "0"),
            to_decimal(snap.funding or "0"),
            snap.ts_ns,
        )


@dataclass(frozen=True)
class RunInfo:
    """What the view says about the run itself."""

    source: str = ""
    started_at: float = 0.0                    # wall clock (time.time())
    stop_runs_at: tuple[float, ...] = ()       # wall clock times of scripted stop-runs
    not_runnable: tuple[str, ...] = ()         # phases enabled in the manifests this build cannot run
    enabled: tuple[str, ...] = ()              # phases launched
    quant_at: str = ""                         # the nightly AI Quant's time of day ("" = not running)
    quant_target: str = ""                     # the phase it tunes


@dataclass
class OrganismView:
    run: RunInfo = field(default_factory=RunInfo)
    now: Callable[[], float] = time.time
    equity: deque[tuple[int, Decimal]] = field(default_factory=lambda: deque(maxlen=600))
    total: PhaseNet | None = None
    phase_net: dict[str, PhaseNet] = field(default_factory=dict)
    allocations: dict[str, events_pb2.Allocation] = field(default_factory=dict)
    positions: dict[tuple[str, str], trading_pb2.Position] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    marked_by_mark: set[str] = field(default_factory=set)  # symbols with a mark-price feed
    price_dp: dict[str, int] = field(default_factory=dict)
    qty_dp: dict[str, int] = field(default_factory=dict)
    signals: deque[SignalRow] = field(default_factory=lambda: deque(maxlen=12))
    latencies_ns: deque[int] = field(default_factory=lambda: deque(maxlen=5000))
    breakers: dict[str, events_pb2.BreakerEvent] = field(default_factory=dict)
    trading_mode: str = "unknown"
    counts: dict[str, int] = field(default_factory=lambda: {"signals": 0, "accepted": 0, "fills": 0})

    # --- input ------------------------------------------------------------------------------
    def apply(self, event: events_pb2.Event) -> None:
        kind = event.WhichOneof("body")
        if kind == "decision":
            self._decision(event)
        elif kind == "equity":
            snap = event.equity
            if snap.scope == "total":
                self.equity.append((snap.ts_ns, to_decimal(snap.equity or "0")))
                self.total = PhaseNet.of(snap)
            else:
                self.phase_net[snap.scope] = PhaseNet.of(snap)
        elif kind == "allocation":
            self.allocations[event.allocation.phase_id] = event.allocation
        elif kind == "position":
            self._position(event.position)
        elif kind == "fill":
            self.counts["fills"] += 1
        elif kind == "breaker":
            kind_name = events_pb2.BreakerKind.Name(event.breaker.kind).removeprefix("BREAKER_KIND_").lower()
            self.breakers[kind_name] = event.breaker
        elif kind == "trading_state":
            self.trading_mode = common_pb2.TradingMode.Name(event.trading_state.mode).removeprefix("TRADING_MODE_")

    def apply_market(self, event: market_pb2.MarketEvent) -> None:
        """A mark price (or, for instruments without a mark feed, a trade) moves the positions' marks."""
        kind = event.WhichOneof("payload")
        if kind == "mark" and event.mark.mark_price:
            self.marked_by_mark.add(event.symbol)
            self.marks[event.symbol] = to_decimal(event.mark.mark_price)
        elif kind == "trade" and event.trade.price:
            self._learn_precision(event.symbol, event.trade.price, event.trade.size)
            if event.symbol not in self.marked_by_mark:
                self.marks[event.symbol] = to_decimal(event.trade.price)

    def _decision(self, event: events_pb2.Event) -> None:
        sig, ack = event.decision.signal, event.decision.ack
        leg = sig.legs[0] if sig.legs else trading_pb2.Leg()
        self.counts["signals"] += 1
        self.counts["accepted"] += int(ack.accepted)
        reason = "" if ack.accepted else (
            trading_pb2.RejectReason.Name(ack.reason).removeprefix("REJECT_REASON_").lower())
        self.signals.appendleft(SignalRow(
            ts_ns=ack.acked_at_ns or event.ts_ns, phase=sig.phase_id, symbol=leg.symbol,
            side=common_pb2.Side.Name(leg.side).removeprefix("SIDE_").lower(), size=leg.size_quote,
            accepted=ack.accepted, reason=reason,
        ))
        if ack.acked_at_ns and ack.received_at_ns and ack.acked_at_ns >= ack.received_at_ns:
            self.latencies_ns.append(ack.acked_at_ns - ack.received_at_ns)

    def _position(self, pos: trading_pb2.Position) -> None:
        key = (pos.phase_id, pos.symbol)
        if pos.quantity and to_decimal(pos.quantity) != 0:
            self.positions[key] = pos
            if pos.mark_price and pos.symbol not in self.marks:
                self.marks[pos.symbol] = to_decimal(pos.mark_price)
        else:
            self.positions.pop(key, None)

    def _learn_precision(self, symbol: str, price: str, qty: str) -> None:
        """The instrument's tick and lot as the venue prints them in trades (averages, marks and
        computed quantities carry more digits than the instrument has)."""
        if not symbol:
            return
        if price:
            self.price_dp[symbol] = max(self.price_dp.get(symbol, 0), decimals(price))
        if qty:
            self.qty_dp[symbol] = max(self.qty_dp.get(symbol, 0), decimals(qty))

    # --- numbers ----------------------------------------------------------------------------
    def mark_of(self, pos: trading_pb2.Position) -> Decimal | None:
        mark = self.marks.get(pos.symbol)
        if mark is None and pos.mark_price:
            mark = to_decimal(pos.mark_price)
        return mark

    def unrealized(self, pos: trading_pb2.Position) -> Decimal | None:
        """Linear contracts: quantity x (mark - entry), at the live mark."""
        mark = self.mark_of(pos)
        if mark is None or not pos.average_entry_price:
            return None
        return to_decimal(pos.quantity) * (mark - to_decimal(pos.average_entry_price))

    def starting_capital(self) -> Decimal | None:
        """Equity minus everything earned: what the phases' net PnL is measured against."""
        if not self.equity or self.total is None:
            return None
        return self.equity[-1][1] - self.total.net

    def equity_change(self) -> Decimal | None:
        return None if self.total is None else self.total.net

    def phase_pnl(self, phase: str) -> Decimal:
        net = self.phase_net.get(phase)
        return net.net if net is not None else Decimal(0)

    def phase_state(self, phase: str) -> str:
        if phase == "ai-quant" and self.run.quant_at:
            return f"nightly {self.run.quant_at.removesuffix(' UTC')}"
        if phase in self.run.not_runnable:
            return "cannot run"
        alloc = self.allocations.get(phase)
        return _state(alloc.state) if alloc is not None else "starting"

    def phases(self) -> list[str]:
        scheduled = {"ai-quant"} if self.run.quant_at else set()
        return sorted(set(self.allocations) | set(self.phase_net) | set(self.run.enabled) | set(self.run.not_runnable)
                      | scheduled)

    def next_stop_run(self) -> float | None:
        now = self.now()
        upcoming = [t for t in self.run.stop_runs_at if t > now]
        return min(upcoming) - now if upcoming else None

    def latency_us(self) -> dict[str, float]:
        values = sorted(self.latencies_ns)
        return {f"p{int(q * 1000) / 10:g}": percentile(values, q) / 1000 for q in (0.5, 0.99, 0.999)}

    def summary(self) -> dict[str, Any]:
        equity = self.equity[-1][1] if self.equity else None
        change = self.equity_change()
        return {
            "equity": str(equity) if equity is not None else None,
            "equity_change": str(change) if change is not None else None,
            "trading_state": self.trading_mode,
            "allocations": {p: {"weight": a.weight, "state": self.phase_state(p)} for p, a in self.allocations.items()},
            "phase_pnl": {p: str(n.net) for p, n in sorted(self.phase_net.items())},
            "positions": len(self.positions),
            "breakers": {k: b.tripped for k, b in self.breakers.items()},
            "latency_us": self.latency_us(),
            "uptime_s": round(self.now() - self.run.started_at, 1) if self.run.started_at else None,
            "source": self.run.source,
            **self.counts,
        }

    # --- rendering --------------------------------------------------------------------------
    def render(self, width: int = 200, height: int = 50) -> Layout:
        """The whole screen for a terminal of ``width`` x ``height``: below 120 columns or 40 rows a
        compact layout with fewer columns; every panel is sized to show its rows."""
        compact = width < WIDE_WIDTH or height < TALL_HEIGHT
        layout = Layout()
        head = 4 if compact else 7
        alloc_rows = max(1, len(self.phases())) + 3
        pos_rows = max(1, min(len(self.positions), 8)) + 3
        narrow = width < NARROW_WIDTH  # the two tables one above the other, each the full width
        mid = alloc_rows + pos_rows if narrow else max(alloc_rows, pos_rows)
        layout.split_column(Layout(name="top", size=head), Layout(name="mid", size=mid), Layout(name="bottom"))
        if compact:
            layout["top"].update(self._header_panel())
        else:
            layout["top"].split_row(Layout(self._equity_panel(), ratio=2), Layout(self._state_panel()))
        few_columns = compact or (not narrow and width < FULL_TABLE_WIDTH)
        tables = (Layout(self._allocation_panel(few_columns), size=alloc_rows if narrow else None),
                  Layout(self._positions_panel(few_columns), size=pos_rows if narrow else None))
        if narrow:
            layout["mid"].split_column(*tables)
        else:
            layout["mid"].split_row(*tables)
        signal_rows = max(1, height - head - mid - 3)
        layout["bottom"].update(self._signals_panel(compact, signal_rows))
        return layout

    def _equity_line(self) -> Text:
        if not self.equity:
            return Text("equity: waiting for the first snapshot…", style="dim")
        last = self.equity[-1][1]
        change = self.equity_change() or Decimal(0)
        colour = "green" if change >= 0 else "red"
        return Text.assemble(("equity ", "bold"), (fmt(last, MONEY_DP), "bold"),
                             (f"  ({fmt(change, MONEY_DP, sign=True)})", colour))

    def _run_line(self) -> Text:
        parts = []
        if self.run.started_at:
            parts.append(f"up {fmt_duration(self.now() - self.run.started_at)}")
        if self.run.source:
            parts.append(f"source {self.run.source}")
        nxt = self.next_stop_run()
        if nxt is not None:
            parts.append(f"stop-run in {fmt_duration(nxt)}")
        return Text("  ".join(parts), style="dim")

    def _mode_text(self) -> Text:
        style = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "bold red"}.get(self.trading_mode, "dim")
        return Text(self.trading_mode, style=style)

    def _breakers_text(self) -> Text:
        tripped = [k for k, b in self.breakers.items() if b.tripped]
        return Text(", ".join(tripped) or "clear", style="red" if tripped else "green")

    def _header_panel(self) -> Panel:
        first = self._equity_line()
        first.append("  ")
        first.append_text(Text.assemble("trading ", self._mode_text(), "  breakers ", self._breakers_text()))
        second = Text(f"signals {self.counts['signals']} accepted {self.counts['accepted']} "
                      f"fills {self.counts['fills']}  ")
        second.append_text(self._run_line())
        return Panel(Group(first, second), title="Titan")

    def _equity_panel(self) -> Panel:
        values = [v for _, v in self.equity]
        net = self.total
        breakdown = Text("", style="dim")
        if net is not None:
            breakdown = Text(
                f"realized {fmt(net.realized, MONEY_DP, True)}  unrealized {fmt(net.unrealized, MONEY_DP, True)}  "
                f"fees {fmt(-net.fees, MONEY_DP, True)}  funding {fmt(net.funding, MONEY_DP, True)}", style="dim")
        return Panel(Group(self._equity_line(), breakdown, Text(sparkline(values), style="cyan"), self._run_line()),
                     title="Equity")

    def _state_panel(self) -> Panel:
        lat = self.latency_us()
        lines = [
            Text.assemble("trading  ", self._mode_text()),
            Text.assemble("breakers ", self._breakers_text()),
            Text(f"signals  {self.counts['signals']}  accepted {self.counts['accepted']}  "
                 f"fills {self.counts['fills']}"),
            Text(f"ack µs   p50 {lat['p50']:.0f}  p99 {lat['p99']:.0f}  p99.9 {lat['p99.9']:.0f}"),
        ]
        return Panel(Group(*lines), title="Organism")

    def _allocation_panel(self, compact: bool) -> Panel:
        cols: Sequence[str] = ("phase", "state", "weight", "pnl") if compact else (
            "phase", "state", "weight", "notional", "lev", "pnl")
        table = _table(cols, left=("phase", "state"))
        phases = self.phases()
        for phase in phases:
            alloc = self.allocations.get(phase)
            state = self.phase_state(phase)
            cells: dict[str, RenderableType] = {
                "phase": phase,
                "state": Text(state, style="dim red" if state == "cannot run" else ""),
                "weight": f"{to_decimal(alloc.weight or '0'):.2f}" if alloc else "-",
                "notional": fmt(to_decimal(alloc.notional or "0"), 0) if alloc else "-",
                "lev": f"{alloc.max_leverage}x" if alloc else "-",
                "pnl": fmt(self.phase_pnl(phase), MONEY_DP, sign=True) if phase in self.phase_net else "-",
            }
            table.add_row(*(cells[c] for c in cols))
        if not phases:
            return Panel(Text("waiting for the Brain's first allocation…", style="dim"), title="Allocation")
        return Panel(table, title="Allocation")

    def _positions_panel(self, compact: bool) -> Panel:
        if not self.positions:
            return Panel(Text("no open positions", style="dim"), title="Open positions")
        cols: Sequence[str] = ("symbol", "qty", "mark", "uPnL") if compact else (
            "phase", "symbol", "qty", "entry", "mark", "uPnL")
        table = _table(cols, left=("phase", "symbol"))
        for (phase, symbol), pos in sorted(self.positions.items()):
            pdp, qdp = self.price_dp.get(symbol, DEFAULT_PRICE_DP), self.qty_dp.get(symbol, DEFAULT_QTY_DP)
            mark, upnl = self.mark_of(pos), self.unrealized(pos)
            cells: dict[str, RenderableType] = {
                "phase": phase, "symbol": symbol, "qty": fmt(to_decimal(pos.quantity), qdp),
                "entry": fmt(to_decimal(pos.average_entry_price or "0"), pdp),
                "mark": fmt(mark, pdp) if mark is not None else "-",
                "uPnL": Text(fmt(upnl, MONEY_DP, sign=True), style="green" if upnl >= 0 else "red")
                if upnl is not None else "-",
            }
            table.add_row(*(cells[c] for c in cols))
        return Panel(table, title="Open positions")

    def _signals_panel(self, compact: bool, rows: int) -> Panel:
        if not self.signals:
            return Panel(Text("no signals yet", style="dim"), title="Recent signals")
        cols: Sequence[str] = ("time", "phase", "symbol", "side", "result") if compact else (
            "time", "phase", "symbol", "side", "size", "result")
        table = _table(cols, left=cols)
        for row in list(self.signals)[:rows]:
            cells: dict[str, RenderableType] = {
                "time": time.strftime("%H:%M:%S", time.gmtime(row.ts_ns / 1e9)),
                "phase": row.phase, "symbol": row.symbol, "side": row.side,
                "size": fmt(to_decimal(row.size), MONEY_DP) if row.size else "-",
                "result": Text("accepted", style="green") if row.accepted else Text(row.reason, style="yellow"),
            }
            table.add_row(*(cells[c] for c in cols))
        return Panel(table, title="Recent signals")


def _table(cols: Sequence[str], left: Sequence[str]) -> Table:
    table = Table(expand=True, box=None, pad_edge=False)
    for col in cols:  # numbers are never cut: a narrow terminal shortens the names instead
        if col in left:
            table.add_column(col, justify="left", no_wrap=True, overflow="ellipsis")
        else:
            table.add_column(col, justify="right", no_wrap=True, min_width=max(len(col), 7))
    return table


def _state(state: int) -> str:
    return common_pb2.PhaseState.Name(state).removeprefix("PHASE_STATE_").capitalize()
