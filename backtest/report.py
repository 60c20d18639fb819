"""The result folder of a backtest.

    summary.json        the figures, fingerprint and counts (`titan backtest --json` prints the same)
    fingerprint.txt     the sha256 of the canonical ledger (titan.backtest.record)
    ledger/<table>.jsonl every ledger row by table (orders and positions: the last version per key)
    trades.csv          the closed trades
    equity.csv          total and per-phase equity snapshots
    report.html         plotly: equity and drawdown, PnL by phase, allocation over time, trades on price
    equity.png, drawdown.png

Every file is written to a temporary name and renamed, so a crashed run leaves no half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from titan.backtest.result import BacktestResult
from titan.v1 import events_pb2

TABLES = {
    "order": "orders", "fill": "fills", "position": "positions", "funding": "funding_payments",
    "equity": "equity_snapshots", "decision": "signal_decisions", "allocation": "allocations",
    "breaker": "breaker_events", "trading_state": "trading_states",
}


def write_result(result: BacktestResult, out: Path) -> list[Path]:
    """Write every file of the result folder; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = [
        _write(out / "summary.json", json.dumps(result.summary(), indent=2, sort_keys=True) + "\n"),
        _write(out / "fingerprint.txt", result.fingerprint + "\n"),
        _write(out / "trades.csv", _trades_csv(result)),
        _write(out / "equity.csv", _equity_csv(result)),
    ]
    written += _write_ledger(result.events, out / "ledger")
    written.append(_write(out / "report.html", _html(result)))
    written += _pngs(result, out)
    return written


def _write(path: Path, text: str | bytes) -> Path:
    tmp = path.with_name(path.name + ".partial")
    data = text.encode() if isinstance(text, str) else text
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _write_ledger(events: Iterable[events_pb2.Event], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[str]] = {}
    latest: dict[str, dict[Any, str]] = {"order": {}, "position": {}}
    for event in events:
        kind = event.WhichOneof("body") or ""
        if kind not in TABLES:
            continue
        body = getattr(event, kind)
        line = json.dumps({"event_id": event.event_id, **json_format.MessageToDict(
            body, preserving_proto_field_name=True)}, sort_keys=True)
        if kind == "order":
            latest["order"][body.client_order_id] = line
        elif kind == "position":
            latest["position"][(body.phase_id, body.venue, body.symbol, body.instrument)] = line
        else:
            rows.setdefault(kind, []).append(line)
    for kind, by_key in latest.items():
        rows[kind] = list(by_key.values())
    return [_write(folder / f"{TABLES[kind]}.jsonl", "".join(line + "\n" for line in lines))
            for kind, lines in sorted(rows.items())]


def _trades_csv(result: BacktestResult) -> str:
    buf = io.StringIO()
    fields = ["phase_id", "venue", "symbol", "instrument", "side", "opened_ns", "closed_ns", "quantity",
              "entry_price", "exit_price", "pnl", "fees", "funding"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for trade in result.trades:
        writer.writerow(trade.row())
    return buf.getvalue()


def _equity_csv(result: BacktestResult) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["scope", "ts_ns", "equity", "exposure"])
    for scope, points in sorted(result.equity.items()):
        for p in points:
            writer.writerow([scope, p.ts_ns, str(p.equity), str(p.exposure)])
    return buf.getvalue()


def _times(ts: Iterable[int]) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1e9, tz=UTC) for t in ts]


def _drawdown(values: list[float]) -> list[float]:
    peak = float("-inf")
    out = []
    for v in values:
        peak = max(peak, v)
        out.append(-(peak - v) / peak if peak > 0 else 0.0)
    return out


def _allocations(events: Iterable[events_pb2.Event]) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for event in events:
        if event.WhichOneof("body") == "allocation":
            a = event.allocation
            out.setdefault(a.phase_id, []).append((a.ts_ns, float(a.weight or 0)))
    return out


def _html(result: BacktestResult) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=5, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=("Equity (quote)", "Drawdown", "PnL by phase", "Allocation weight",
                                        "Price and trades"))
    total = result.equity.get("total", [])
    values = [float(p.equity) for p in total]  # floats only for plotting
    fig.add_trace(go.Scatter(x=_times(p.ts_ns for p in total), y=values, name="equity"), row=1, col=1)
    fig.add_trace(go.Scatter(x=_times(p.ts_ns for p in total), y=_drawdown(values), name="drawdown",
                             fill="tozeroy"), row=2, col=1)
    for phase in result.phases:
        points = result.equity.get(phase, [])
        fig.add_trace(go.Scatter(x=_times(p.ts_ns for p in points), y=[float(p.equity) for p in points],
                                 name=f"{phase} PnL"), row=3, col=1)
    for phase, series in sorted(_allocations(result.events).items()):
        fig.add_trace(go.Scatter(x=_times(t for t, _ in series), y=[w for _, w in series], name=f"{phase} weight",
                                 line_shape="hv"), row=4, col=1)
    traded = {(t.venue, t.symbol) for t in result.trades}
    for (venue, symbol, _instrument), series in sorted(result.prices.items()):
        if traded and (venue, symbol) not in traded:
            continue
        fig.add_trace(go.Scatter(x=_times(t for t, _ in series), y=[p for _, p in series],
                                 name=f"{symbol} price", line={"width": 1}), row=5, col=1)
        break  # one instrument: the first traded one
    for side, marker in (("long", "triangle-up"), ("short", "triangle-down")):
        trades = [t for t in result.trades if t.side == side]
        if trades:
            fig.add_trace(go.Scatter(x=_times(t.opened_ns for t in trades), y=[float(t.entry_price) for t in trades],
                                     mode="markers", marker={"symbol": marker, "size": 9}, name=f"{side} entries"),
                          row=5, col=1)
            fig.add_trace(go.Scatter(x=_times(t.closed_ns for t in trades), y=[float(t.exit_price) for t in trades],
                                     mode="markers", marker={"symbol": "x", "size": 7}, name=f"{side} exits"),
                          row=5, col=1)
    m = result.metrics.total
    fig.update_layout(height=1400, title=(
        f"Titan backtest · return {m.total_return:+.2%} · max drawdown {m.max_drawdown:.2%} · "
        f"{m.trades} trades · fingerprint {result.fingerprint[:12]}"))
    return str(fig.to_html(include_plotlyjs="cdn", full_html=True))


def _pngs(result: BacktestResult, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    total = result.equity.get("total", [])
    times = mdates.date2num(_times(p.ts_ns for p in total))  # type: ignore[no-untyped-call]
    values = [float(p.equity) for p in total]
    written = []
    for name, series, title in (("equity.png", values, "Equity (quote)"),
                                ("drawdown.png", _drawdown(values), "Drawdown")):
        fig, ax = plt.subplots(figsize=(10, 3.5))
        ax.plot(times, series, linewidth=1)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.xaxis_date()
        fig.autofmt_xdate()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        plt.close(fig)
        written.append(_write(out / name, buf.getvalue()))
    return written


__all__ = ["TABLES", "write_result"]
