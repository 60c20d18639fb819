"""Benchmark: the engine's machine instructions per signal, counted by valgrind's callgrind. Prints one
JSON object.

Why a count: on a shared machine the engine's CPU time per signal (``engine_us_per_signal`` of
bench/execution_latency.py) moves by a fifth from one hour to the next, more than most changes to
the engine. The number of instructions the same work executes does not depend on the load, so a
change of one per cent shows. It is a proxy for time, not time: cache misses and branch
mispredictions are not in it.

What is counted: the loop of ``engine_us_per_signal``: ``Engine.decide`` + ``Engine.execute`` of
signed 500 USDT market orders (three fills each), the book refilled every ``REFILL_EVERY`` signals.
Each span of signals between two refills runs inside ``functools.reduce``, and callgrind collects
only there (``--toggle-collect``): the interpreter's start, the imports, the signing, the warm-up
spans and the refills are outside the count. The engine itself never calls ``functools.reduce``
(that would switch the collection off), which the script checks by the count it gets.

Figures:
* ``instructions_per_signal``: instructions executed in the counted spans / signals in them.
* ``by_library``: the share of those instructions executed in each library (the ``python``
  interpreter, ``protobuf``, ``decimal``, ``crypto`` for HMAC and SHA-256, ``libc``, ``other``).
* ``baseline`` (with ``--baseline REV``): the same count for a git revision of this repository, run
  from a temporary worktree imported ahead of this checkout, with the same workload (this checkout's
  ``bench/_engine_load.py``); ``change_pct`` is this checkout against it.

Needs ``valgrind`` (Debian: ``apt-get install valgrind``; ``.ci/install-tools.sh`` installs it as
root). Usage: python bench/engine_instructions.py [--quick] [--signals 2000] [--baseline REV]
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _baseline import ORIGIN, check_origin, checked_out, environment
from _engine_load import REFILL_EVERY

JSON_KEYS = ("instructions_per_signal", "by_library", "signals", "warmup_signals", "python", "valgrind",
             "baseline", "change_pct")
REQUIRES_TOOLS = ("valgrind",)  # tests/test_bench_scripts.py skips the script where one is missing

TOGGLE = "functools_reduce"  # the C function behind functools.reduce (CPython 3.11-3.13)
LIBRARIES = (  # (name in the JSON, what the shared object's file name contains), first match wins
    ("python", "libpython"), ("python", "python3"), ("protobuf", "_message"), ("protobuf", "upb"),
    ("decimal", "_decimal"), ("crypto", "libcrypto"), ("crypto", "_hashlib"), ("libc", "libc.so"),
)


# --- the workload (run under valgrind) ------------------------------------------------------------
def workload(signals: int, warmup_spans: int) -> None:
    """Decide and execute ``warmup_spans`` spans uncounted, then ``signals`` signals in counted spans."""
    from _engine_load import PHASE, PHASE_KEY, book, make_signals, paper_engine

    import titan.execution

    print(f"{ORIGIN} {Path(titan.execution.__file__).parent}", file=sys.stderr)
    engine = paper_engine()
    warmup = warmup_spans * REFILL_EVERY
    items = make_signals(PHASE, PHASE_KEY, warmup + signals, "instructions")

    def step(accepted: int, signal: Any) -> int:
        decision = engine.decide(signal)
        engine.execute(decision)
        return accepted + decision.ack.accepted

    accepted = 0
    for first in range(0, len(items), REFILL_EVERY):
        for event in book(time.time_ns()):
            engine.on_market(event)
        span = items[first:first + REFILL_EVERY]
        if first < warmup:
            for signal in span:
                accepted = step(accepted, signal)
        else:
            accepted = functools.reduce(step, span, accepted)  # counted
    if accepted != len(items):
        raise SystemExit(f"engine_instructions: {len(items) - accepted} of {len(items)} signals rejected")
    if any(engine.working.values()):
        raise SystemExit("engine_instructions: orders rest; the book is too thin for the figure's method")


# --- reading callgrind's output -----------------------------------------------------------------
_NAMED = re.compile(r"^(c?ob)=(?:\((\d+)\))?\s*(.*)$")


def self_cost_by_object(path: Path) -> Counter[str]:
    """Instructions executed in each shared object (self cost: a call's inclusive cost line is
    skipped), read from a callgrind output file (format: valgrind's docs, "Callgrind Format"); their
    sum is checked against the file's own total."""
    names: dict[str, str] = {}
    cost: Counter[str] = Counter()
    current = ""
    skip_next = False
    total = None
    for line in path.read_text().splitlines():
        if not line:
            continue
        if line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
            continue
        head = line[0]
        if head.isdigit() or head in "+-*":
            if skip_next:
                skip_next = False
            else:
                parts = line.split()
                if len(parts) > 1:
                    cost[current] += int(parts[1])
            continue
        if line.startswith("calls="):
            skip_next = True
            continue
        match = _NAMED.match(line)
        if match:
            kind, ident, name = match.groups()
            if ident is not None and name:
                names[ident] = name
            resolved = names.get(ident, name) if ident is not None else name
            if kind == "ob":
                current = resolved
    if total is None or sum(cost.values()) != total:
        raise SystemExit(f"engine_instructions: {path} read as {sum(cost.values())} instructions, "
                         f"its total says {total}")
    return cost


def library(obj: str) -> str:
    name = Path(obj).name
    return next((label for label, part in LIBRARIES if part in name), "other")


# --- running it -----------------------------------------------------------------------------------
def count(signals: int, warmup_spans: int, importable: Path | None) -> dict[str, Any]:
    """Run the workload under callgrind; instructions per counted signal and their split."""
    env = environment(importable, PYTHONHASHSEED="0")  # the same dict and set layouts in every run
    with tempfile.TemporaryDirectory(prefix="titan-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--toggle-collect={TOGGLE}", f"--callgrind-out-file={out}",
               sys.executable, str(Path(__file__).resolve()), "--workload", str(signals),
               "--warmup-spans", str(warmup_spans)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"engine_instructions: the workload failed under valgrind:\n{proc.stderr[-3000:]}")
        check_origin(proc.stderr, importable, "engine_instructions")
        by_object = self_cost_by_object(out)
    total = sum(by_object.values())
    if total < signals * 1000:  # far below anything the engine could do: the toggle did not work
        raise SystemExit(f"engine_instructions: callgrind counted {total} instructions in {TOGGLE}; this "
                         "Python's functools.reduce is not that C function, or the engine called it")
    shares: Counter[str] = Counter()
    for obj, ir in by_object.items():
        shares[library(obj)] += ir
    return {
        "instructions_per_signal": round(total / signals),
        "by_library": {name: round(ir / total, 3) for name, ir in shares.most_common()},
    }


def baseline(rev: str, signals: int, warmup_spans: int) -> dict[str, Any]:
    with checked_out(rev) as (commit, importable):
        return {"rev": rev, "commit": commit, **count(signals, warmup_spans, importable)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 signals after 4 warm-up spans")
    parser.add_argument("--signals", type=int, default=2000, help="counted signals")
    parser.add_argument("--warmup-spans", type=int, default=63, help="uncounted spans of signals first")
    parser.add_argument("--baseline", default="", help="a git revision to count side by side")
    parser.add_argument("--workload", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        workload(args.workload, args.warmup_spans)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("engine_instructions: valgrind is not installed (Debian: apt-get install valgrind)")
    signals, warmup_spans = (200, 4) if args.quick else (args.signals, args.warmup_spans)
    print(f"counting {signals} signals under callgrind (a minute or two)", file=sys.stderr)
    result: dict[str, Any] = count(signals, warmup_spans, None)
    before = baseline(args.baseline, signals, warmup_spans) if args.baseline else None
    version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    result.update(
        signals=signals, warmup_signals=warmup_spans * REFILL_EVERY, python=sys.version.split()[0], valgrind=version,
        baseline=before,
        change_pct=None if before is None else round(
            100.0 * (result["instructions_per_signal"] / before["instructions_per_signal"] - 1.0), 2),
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
