"""Bad input: every fault names the file, the line and the problem, or is repaired with a warning."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from titan.cli.data_cmd import app
from titan.core.marketdata.datafile import DataFileError, Gap
from titan.core.marketdata.files import open_file, read_file
from titan.core.marketdata.replay import ReplaySource

from .filemakers import T0_MS, kline_rows, write_text

HEADER = "timestamp,open,high,low,close,volume"
T1, T2, T3 = T0_MS, T0_MS + 60_000, T0_MS + 120_000
MIN = 60 * 10**9


def _candles(*rows: str) -> list[str]:
    return [HEADER, *rows]


GOOD = f"{T1},100,101,99,100.5,3"
CASES = {
    "truncated_line": (_candles(GOOD, f"{T2},100,101"), 3, "wrong columns: 3 values, expected 6 (truncated line?)"),
    "wrong_columns": (["a,b,c", "1,2,3"], 1, "wrong columns: neither candles"),
    "nan_price": (_candles(GOOD, f"{T2},NaN,101,99,100,1"), 3, "open is not a number: 'NaN'"),
    "negative_price": (_candles(GOOD, f"{T2},100,101,-1,100,1"), 3, "low -1 is not positive"),
    "zero_price": (_candles(f"{T1},100,101,99,0,1"), 2, "close 0 is not positive"),
    "negative_volume": (_candles(GOOD, f"{T2},100,101,99,100,-5"), 3, "negative volume -5"),
    "high_below_low": (_candles(f"{T1},100,99,101,100,1"), 2, "high 99 is below low 101"),
    "conflicting_duplicate": (_candles(GOOD, f"{T1},100,101,99,100.7,3"), 3, "conflicts with line 2"),
    "mixed_symbols": (["symbol,timestamp,open,high,low,close,volume", f"BTCUSDT,{GOOD}",
                       f"ETHUSDT,{T2},100,101,99,100,1"], 3, "mixed symbols: ETHUSDT here, BTCUSDT"),
    "bad_time": (_candles(GOOD, "yesterday,100,101,99,100,1"), 3, "bad time: not a time: 'yesterday'"),
    "bad_side": (["timestamp,trade_id,price,quantity,buyer_maker", f"{T1},1,10,1,maybe"], 2,
                 "buyer_maker is not true/false: 'maybe'"),
    "zero_quantity": (["timestamp,trade_id,price,quantity,buyer_maker", f"{T1},1,10,0,true"], 2,
                      "quantity 0 is not positive"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_fault_names_file_line_and_problem(tmp_path: Path, case: str) -> None:
    lines, line, problem = CASES[case]
    path = write_text(tmp_path / f"{case}.csv", lines)
    with pytest.raises(DataFileError) as caught:
        list(ReplaySource([path]).events())
    err = caught.value
    assert (err.path, err.row) == (path, line)
    assert problem in err.problem
    assert str(err).startswith(f"{path}, line {line}: ")


def test_empty_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataFileError, match="empty file") as caught:
        open_file(empty)
    assert caught.value.row is None
    header_only = write_text(tmp_path / "header.csv", [HEADER])
    with pytest.raises(DataFileError, match="empty file: no data rows"):
        list(read_file(header_only))
    with pytest.raises(DataFileError, match="empty file: the JSON array has no rows"):
        open_file(write_text(tmp_path / "BTC_USDT-5m.json", ["[]"]))


def test_truncated_zip_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-1m-2024-01.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("BTCUSDT-1m-2024-01.csv", "\n".join(kline_rows(2000)))
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DataFileError) as caught:
        list(ReplaySource([path]).events())
    assert caught.value.path == path


@pytest.mark.parametrize("kind", ["candles", "trades"])
def test_rows_out_of_order_are_sorted_by_a_scan_and_refused_without(tmp_path: Path, kind: str) -> None:
    if kind == "candles":
        lines = _candles(f"{T2},100,101,99,100,1", GOOD, f"{T3},100,101,99,100,1")
    else:
        lines = ["timestamp,trade_id,price,quantity,buyer_maker", f"{T2},2,10,1,true", f"{T1},1,10,1,false",
                 f"{T3},3,10,1,true"]
    path = write_text(tmp_path / f"unsorted-{kind}.csv", lines)
    with pytest.raises(DataFileError, match="rows out of time order") as caught:
        list(read_file(path))
    assert caught.value.row == 3
    src = ReplaySource([path])
    events = list(src.events())
    assert [e.exchange_ts_ns for e in events] == sorted(e.exchange_ts_ns for e in events)
    assert len(events) == 3 and src.out_of_order == 1
    assert "1 rows out of time order: sorted by time (in memory)" in src.reports[0].warnings()


def test_exact_duplicates_are_dropped_with_a_warning(tmp_path: Path) -> None:
    candles = write_text(tmp_path / "dup.csv", _candles(GOOD, GOOD, f"{T2},100,101,99,100,1"))
    f = open_file(candles)
    report = f.scan()
    assert (report.rows, report.events, report.duplicates) == (3, 2, 1)
    assert "1 duplicate rows dropped" in report.warnings()
    trades = write_text(tmp_path / "trades.csv", ["timestamp,trade_id,price,quantity,buyer_maker",
                                                  f"{T1},7,10,1,true", f"{T1},7,10,1,true", f"{T1},8,10,1,true"])
    assert [e.trade.trade_id for e in read_file(trades)] == ["7", "8"]


def test_gaps_are_listed(tmp_path: Path) -> None:
    path = write_text(tmp_path / "gappy-1m.csv", _candles(GOOD, f"{T0_MS + 240_000},100,101,99,100,1",
                                                          f"{T0_MS + 300_000},100,101,99,100,1"))
    report = open_file(path).scan()
    t0 = T0_MS * 10**6
    assert report.gaps == [Gap(t0 + MIN, t0 + 4 * MIN)] and report.gap_count == 1


def test_cli_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    lines, _, problem = CASES["negative_volume"]
    path = write_text(tmp_path / "neg.csv", lines)
    out = tmp_path / "out.tmd"
    for command in (["replay", str(path), "--out", str(out)], ["inspect", str(path)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1
        assert result.output.strip() == f"error: {path}, line 3: {problem}"
        assert "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.tmd*"))
