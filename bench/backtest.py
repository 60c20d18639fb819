"""Backtest speed and memory, printed as one JSON object.

* ``candles_per_s``: the SMA cross (titan.backtest.examples) on the BTC 1m month of ../shared/data
  through the whole path — the phase runtime core, signing, the risk gate, the order state machine,
  the paper venue, the Brain core at its cadence, the ledger events and the fingerprint — measured
  side by side in the same run with backtesting.py on the same strategy and candles
  (``backtesting_py_candles_per_s``, ``ratio_vs_backtesting_py``, ``same_trades``);
* ``scavenger_events_per_s``: the sample organism's Scavenger on a simulated day of trades;
* ``peak_rss_mb``: a month of 1m candles for 10 symbols, streamed, in a child process.

Each figure is the median of ``--repeat`` runs after a warm-up; the spread is printed too. ``--quick``
shrinks every workload so the whole script runs in well under a minute (the bench test uses it).

    python bench/backtest.py [--quick] [--repeat 3] [--cpu 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JSON_KEYS = ("quick", "repeat", "load_average")  # checked by tests/test_bench_scripts.py
DATA = ROOT.parent / "shared" / "data" / "btc-perp-2022-01_1m.csv"
sys.path.insert(0, str(ROOT))

SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "DOT", "LTC", "LINK", "AVAX")


def _median_spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def sma_side_by_side(end: str | None, repeat: int) -> dict[str, object]:
    from tests.backtest.reference import compare, load_candles, run_backtesting_py, titan_round_trips
    from titan.backtest import BacktestConfig, run
    from titan.backtest.examples import sma_organism
    from titan.core.marketdata.timestamps import parse_time_ns

    candles = load_candles(DATA, end=end)
    config = BacktestConfig(data=(str(DATA),), end_ns=parse_time_ns(end) + 1 if end else None, keep_events=False)
    params = {"fast": 10, "slow": 20}
    run(BacktestConfig(data=(str(DATA),), end_ns=parse_time_ns("2022-01-01T02:00")),
        organism=sma_organism(params))  # warm-up
    titan_s: list[float] = []
    theirs_s: list[float] = []
    result = None
    theirs: list[object] = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = run(config, organism=sma_organism(params))
        titan_s.append(time.perf_counter() - started)
        theirs, seconds = run_backtesting_py(candles, **params)
        theirs_s.append(seconds)
    assert result is not None
    n = len(candles)
    ours_rate = [n / s for s in titan_s]
    theirs_rate = [n / s for s in theirs_s]
    verdict = compare(titan_round_trips(result.trades), theirs, last_bar_ns=candles.index[-1].value)  # type: ignore[arg-type]
    med, lo, hi = _median_spread(ours_rate)
    bmed, blo, bhi = _median_spread(theirs_rate)
    return {
        "candles": n,
        "candles_per_s": round(med),
        "candles_per_s_spread": [round(lo), round(hi)],
        "backtesting_py_candles_per_s": round(bmed),
        "backtesting_py_candles_per_s_spread": [round(blo), round(bhi)],
        "ratio_vs_backtesting_py": round(med / bmed, 4),
        "same_trades": verdict["same_trades"],
        "titan_trades": verdict["titan_trades"],
        "backtesting_py_trades": verdict["backtesting_py_trades"],
        "trade_mismatches": verdict["mismatches"][:3],
        "titan_fingerprint": result.fingerprint,
    }


def scavenger_day(hours: float, repeat: int) -> dict[str, object]:
    from titan.backtest import BacktestConfig, run

    config = BacktestConfig(data=("sim:1",), sim_hours=hours, sim_stop_runs_s=(hours * 1800,),
                            phases=("scavenger",), keep_events=False)
    rates: list[float] = []
    events = 0
    for _ in range(repeat):
        started = time.perf_counter()
        result = run(config)
        seconds = time.perf_counter() - started
        events = result.stats.market_events
        rates.append(events / seconds)
    med, lo, hi = _median_spread(rates)
    return {"scavenger_events": events, "scavenger_events_per_s": round(med),
            "scavenger_events_per_s_spread": [round(lo), round(hi)], "scavenger_sim_hours": hours}


def _rss_child(folder: str, end: str | None) -> None:
    """In a child process: the sample organism over every file of ``folder``, events not kept."""
    from titan.backtest import BacktestConfig, run
    from titan.core.marketdata.timestamps import parse_time_ns

    started = time.perf_counter()
    result = run(BacktestConfig(data=(folder,), end_ns=parse_time_ns(end) + 1 if end else None, keep_events=False))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"events": result.stats.market_events, "seconds": time.perf_counter() - started,
                      "peak_rss_mb": round(peak_kb / 1024, 1)}))


def peak_rss(lines: int | None, end: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="titan-bench-rss-") as folder:
        rows = DATA.read_text().splitlines()
        body = rows[1:] if lines is None else rows[1:lines]
        for symbol in SYMBOLS:
            Path(folder, f"{symbol.lower()}-perp-2022-01_1m.csv").write_text("\n".join([rows[0], *body]) + "\n")
        done = subprocess.run([sys.executable, __file__, "--rss-child", folder, *(["--end", end] if end else [])],
                              capture_output=True, text=True, check=True)
        child = json.loads(done.stdout.strip().splitlines()[-1])
    return {"peak_rss_mb": child["peak_rss_mb"], "rss_symbols": len(SYMBOLS), "rss_candles": child["events"],
            "rss_run_s": round(child["seconds"], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small workloads (seconds, for the bench test)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    ap.add_argument("--rss-child", help=argparse.SUPPRESS)
    ap.add_argument("--end", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child, args.end)
        return
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    repeat = 1 if args.quick else max(1, args.repeat)
    out: dict[str, object] = {"quick": args.quick, "repeat": repeat, "load_average": list(os.getloadavg())}
    out.update(sma_side_by_side("2022-01-01T12:00" if args.quick else None, repeat))
    out.update(scavenger_day(0.1 if args.quick else 24.0, repeat))
    out.update(peak_rss(300 if args.quick else None, None))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
