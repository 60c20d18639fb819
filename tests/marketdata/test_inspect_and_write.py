"""`titan data inspect`, the real sample files' row counts, Titan's files (byte-reproducible, never
partial), and the replay counted once in titan_md_events_total."""

from __future__ import annotations

import json
from pathlib import Path

import nats
import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from titan.cli.data_cmd import app
from titan.core.catalog import Catalog
from titan.core.marketdata.files import EventWriter, open_files, partial_path, read_titan
from titan.core.marketdata.gateway import Gateway
from titan.core.marketdata.replay import ReplaySource

from .conftest import BTC_1M, BYBIT_BOOK, DATA, TRADES
from .filemakers import KLINES_HEADER, kline_rows, write_zip

# rows per file, as /work/shared/data/README.md states them (the Bybit file: 50 messages)
README_ROWS = {
    "btc-perp-2022-01_1m.csv": 45_031,
    "binance-btcusdt-trades.csv": 2_001,
    "bybit-xrpusdt-ob500.data.zip": 50,
    "xrp-usdt-perp-5m-futures.csv": 1_999,
    "xrp-usdt-perp-1h-futures.csv": 100,
    "xrp-usdt-perp-8h-funding_rate.csv": 91,
}


def test_real_files_read_with_the_readme_row_counts(data_dir: Path) -> None:
    files = open_files([DATA / name for name in README_ROWS])
    for f in files:
        report = f.scan()
        assert report.rows == README_ROWS[f.path.name], f.path.name
        assert (report.duplicates, report.out_of_order, report.gap_count) == (0, 0, 0)
    btc = files[0]
    assert (btc.detection.format.value, btc.detection.symbol, btc.report.timeframe) == ("csv-candles", "BTCUSDT", "1m")


def test_inspect_prints_what_was_detected(tmp_path: Path, data_dir: Path) -> None:
    path = write_zip(tmp_path / "BTCUSDT-1m-2024-01.zip", "BTCUSDT-1m-2024-01.csv",
                     [KLINES_HEADER, *kline_rows(2), *kline_rows(2, start_ms=1_704_067_200_000 + 300_000)])
    result = CliRunner().invoke(app, ["inspect", "--json", str(path), str(TRADES)])
    assert result.exit_code == 0, result.output
    klines, trades = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert {k: klines[k] for k in ("format", "venue", "symbol", "instrument", "kind", "timeframe", "rows")} == {
        "format": "binance-klines", "venue": "binance", "symbol": "BTCUSDT", "instrument": "perp",
        "kind": "candle", "timeframe": "1m", "rows": 4}
    assert klines["first"] == "2024-01-01T00:01:00Z" and klines["last"] == "2024-01-01T00:07:00Z"
    assert klines["gaps"] == [["2024-01-01T00:02:00Z", "2024-01-01T00:05:00Z"]]
    assert (trades["format"], trades["rows"], trades["gap_count"]) == ("csv-trades", 2001, 0)

    text = CliRunner().invoke(app, ["inspect", str(path)])
    assert text.exit_code == 0
    assert "binance-klines (candle, zip, header)" in text.output
    assert "gaps       1: 2024-01-01T00:02:00Z .. 2024-01-01T00:05:00Z" in text.output


def test_titan_files_are_byte_reproducible(tmp_path: Path, data_dir: Path) -> None:
    events = list(ReplaySource([TRADES, BYBIT_BOOK]).events())
    blobs = []
    for name in ("a.tmd.gz", "other-name.tmd.gz"):
        with EventWriter(tmp_path / name) as w:
            for ev in events:
                w.write(ev)
        blobs.append((tmp_path / name).read_bytes())
    assert blobs[0] == blobs[1]
    assert blobs[0][4:8] == b"\0\0\0\0"  # gzip mtime
    for name in ("cli.tmd.gz", "again.tmd.gz"):
        result = CliRunner().invoke(app, ["replay", str(TRADES), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "cli.tmd.gz").read_bytes() == (tmp_path / "again.tmd.gz").read_bytes()


def test_a_crash_leaves_no_file(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "merged.tmd"
    written = []

    def crash_after_100() -> None:
        with EventWriter(out) as w:
            for n, ev in enumerate(ReplaySource([TRADES]).events()):
                w.write(ev)
                written.append(partial_path(out).exists() and not out.exists())
                if n == 100:
                    raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        crash_after_100()
    assert len(written) == 101 and all(written)
    assert not out.exists() and not partial_path(out).exists()
    with EventWriter(out) as w:
        for ev in ReplaySource([TRADES]).events():
            w.write(ev)
    assert len(list(read_titan(out))) == 2001 and not partial_path(out).exists()


def _metric(**labels: str) -> float:
    return REGISTRY.get_sample_value("titan_md_events_total", labels) or 0.0


async def test_replay_through_the_gateway_is_counted_once(nats_url: str, catalog: Catalog, data_dir: Path) -> None:
    nc = await nats.connect(nats_url)
    try:
        before = _metric(source="replay", venue="binance", kind="trade")
        before_gw = _metric(source="gateway", venue="binance", kind="trade")
        assert await Gateway(nc, catalog).run(ReplaySource([TRADES])) == 2001
        assert _metric(source="replay", venue="binance", kind="trade") == before + 2001
        assert _metric(source="gateway", venue="binance", kind="trade") == before_gw + 2001
    finally:
        await nc.close()


def test_btc_month_scans(data_dir: Path) -> None:
    src = ReplaySource([BTC_1M])
    src.check()
    assert src.reports[0].rows == 45_031 and src.reports[0].warnings() == []
