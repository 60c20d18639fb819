"""Statistic: how often the Scavenger trades the simulator's scripted stop-runs.

For each seed and each of ``--cases`` start times (spread over the hour and across days, since the
history prelude's length and the hourly candles' alignment depend on the start), the simulator plays
72 h of history and a scripted run ``--at`` seconds after the start on every symbol; the Scavenger,
with the sample TitanPhase's params, sees every event in-process on the events' own clock. Counts
the symbols whose run fired, and the abort reasons seen. Prints one JSON object.

``--quick``: one seed, one case, BTCUSDT only.

Usage: python bench/scripted_stop_runs.py [--quick] [--seeds 1-6] [--cases 25] [--at 20] [--symbols BTCUSDT,ETHUSDT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from titan.core.clock import ManualClock
from titan.core.marketdata.sim import DEFAULT_START_NS, SimConfig, Simulator
from titan.phases.runtime.contract import StrategyOutput
from titan.phases.scavenger import strategy
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.strategy import ScavengerStrategy
from titan.v1 import common_pb2, trading_pb2

SAMPLE = Path(__file__).resolve().parents[1] / "crds" / "samples" / "titanphase-scavenger.yaml"
S = 10**9
JSON_KEYS = ("scripted_runs", "fired", "fired_share", "per_seed", "abort_reasons_seen", "seconds")


def seeds_of(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def budget(symbols: tuple[str, ...], now_ns: int) -> trading_pb2.Budget:
    return trading_pb2.Budget(phase_id="scavenger", state=common_pb2.PHASE_STATE_ACTIVE, weight="1",
                              max_notional="1000", max_leverage="10", symbols=list(symbols),
                              expires_at_ns=now_ns + 10**15, version=1)


def one(seed: int, start_ns: int, at_s: float, symbols: tuple[str, ...], params: ScavengerParams) -> (
    tuple[set[str], Counter[str]]
):
    cfg = SimConfig(seed=seed, symbols=symbols, start_ns=start_ns, history_hours=72, scripted_runs_s=(at_s,))
    clock = ManualClock(start_ns - 73 * 3600 * S)
    strat = ScavengerStrategy(params, clock=clock)
    strat.set_budget(budget(symbols, start_ns))
    out = StrategyOutput()
    for ev in Simulator(cfg).events(start_ns + round((at_s + 10) * S)):
        clock.set(max(clock.now_ns(), ev.exchange_ts_ns))
        out.extend(strat.on_event(ev))
    fired = {e.symbol for e in out.events if e.kind == strategy.TRAP_FIRED and e.ts_ns >= start_ns}
    reasons = Counter(e.get("reason") for e in out.events if e.kind == strategy.TRAP_ABORTED and e.ts_ns >= start_ns)
    return fired, reasons


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1-6")
    ap.add_argument("--cases", type=int, default=25)
    ap.add_argument("--at", type=float, default=20.0)
    ap.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    ap.add_argument("--quick", action="store_true", help="one seed, one case, BTCUSDT")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.cases, args.symbols = "1", 1, "BTCUSDT"
    symbols = tuple(args.symbols.split(","))
    raw = yaml.safe_load(SAMPLE.read_text())["spec"]["params"]
    params = ScavengerParams.model_validate({**raw, "symbols": list(symbols)})
    t0 = time.monotonic()
    runs = fired_total = 0
    per_seed: dict[int, dict[str, int]] = {}
    reasons: Counter[str] = Counter()
    for seed in seeds_of(args.seeds):
        hist: Counter[int] = Counter()
        for i in range(args.cases):
            start = DEFAULT_START_NS + 300 * 86_400 * S + i * (7 * 60 * S + 137_000_000) + i * 86_400 * S // 3
            fired, why = one(seed, start, args.at, symbols, params)
            hist[len(fired)] += 1
            runs += len(symbols)
            fired_total += len(fired)
            reasons.update(why)
            print(f"seed {seed} case {i + 1}/{args.cases}: fired {sorted(fired)}", file=sys.stderr)
        per_seed[seed] = {f"{k}_of_{len(symbols)}_fired": v for k, v in sorted(hist.items())}
    print(json.dumps({
        "scripted_runs": runs, "fired": fired_total, "fired_share": round(fired_total / max(runs, 1), 4),
        "per_seed": per_seed, "abort_reasons_seen": dict(reasons), "seconds": round(time.monotonic() - t0, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
