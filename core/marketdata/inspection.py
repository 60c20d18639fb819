"""``titan data inspect``: what a file was detected as and what a full read found, as plain data."""

from __future__ import annotations

from typing import Any

from .events import PERP
from .files import DataFile
from .timestamps import iso


def summary(f: DataFile) -> dict[str, Any]:
    """Detection and the report of a scanned file, JSON-ready (times as ISO-8601 UTC)."""
    if not f.scanned:
        f.scan()
    d, r = f.detection, f.report
    return {
        "path": str(d.path),
        "format": d.format.value,
        "kind": d.kind.value,
        "venue": d.venue,
        "symbol": d.symbol,
        "instrument": "perp" if d.instrument == PERP else "spot",
        "timeframe": d.timeframe or r.timeframe,
        "container": d.container,
        "header": d.header,
        "rows": r.rows,
        "events": r.events,
        "first": iso(r.first_ns) if r.first_ns is not None else None,
        "last": iso(r.last_ns) if r.last_ns is not None else None,
        "duplicates_dropped": r.duplicates,
        "out_of_order_sorted": r.out_of_order,
        "gap_count": r.gap_count,
        "gaps": [[iso(g.start_ns), iso(g.end_ns)] for g in r.gaps],
        "warnings": r.warnings(),
    }


def render(info: dict[str, Any]) -> str:
    """Human-readable lines for one file."""
    lines = [
        f"{info['path']}",
        f"  format     {info['format']} ({info['kind']}, {info['container']}"
        f"{', header' if info['header'] else ', no header'})",
        f"  instrument {info['venue']} {info['symbol']} {info['instrument']}"
        + (f" {info['timeframe']}" if info["timeframe"] else ""),
        f"  rows       {info['rows']} -> {info['events']} events",
        f"  time       {info['first']} .. {info['last']}",
    ]
    if info["gap_count"]:
        shown = ", ".join(f"{a} .. {b}" for a, b in info["gaps"][:10])
        more = f" (+{info['gap_count'] - 10} more)" if info["gap_count"] > 10 else ""
        lines.append(f"  gaps       {info['gap_count']}: {shown}{more}")
    else:
        lines.append("  gaps       none")
    lines.extend(f"  warning    {w}" for w in info["warnings"])
    return "\n".join(lines)
