"""Small market data files in the formats users have, written by the tests themselves."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN_MS = 60_000

KLINES_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                 "taker_buy_quote_volume,ignore")


def kline_rows(n: int = 3, *, micro: bool = False, start_ms: int = T0_MS) -> list[str]:
    scale = 1000 if micro else 1
    rows = []
    for i in range(n):
        t = (start_ms + i * MIN_MS) * scale
        o = 100 + i
        rows.append(f"{t},{o}.0,{o + 1}.5,{o - 1}.25,{o}.5,12.5,{t + MIN_MS * scale - 1},1250.0,{40 + i},6.0,600.0,0")
    return rows


def write_zip(path: Path, member: str, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, "\n".join(lines) + "\n")
    return path


def write_text(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def freqtrade_candles(n: int = 4, start_ms: int = T0_MS, step_ms: int = 5 * MIN_MS) -> list[list[float]]:
    return [[start_ms + i * step_ms, 10.0 + i, 11.0 + i, 9.5 + i, 10.5 + i, 3.25 + i] for i in range(n)]


def write_json(path: Path, rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(rows).encode()
    if path.name.endswith(".gz"):
        with gzip.GzipFile(path, "wb", mtime=0) as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def write_frame(path: Path, rows: list[list[float]], columns: list[str]) -> Path:
    """A freqtrade-style feather/parquet file (pandas, ``date`` as UTC datetimes)."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows, columns=columns)
    if "date" in df.columns:
        df["date"] = pd.to_datetime(df["date"], unit="ms", utc=True)
    if path.suffix == ".feather":
        df.to_feather(path)
    else:
        df.to_parquet(path, index=False)
    return path


def as_bytes(rows: list[str]) -> bytes:
    buf = io.StringIO()
    buf.write("\n".join(rows) + "\n")
    return buf.getvalue().encode()
