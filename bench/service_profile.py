"""Benchmark: where the execution service's CPU goes, sampled. Prints one JSON object.

What runs: the real service (``python -m titan.execution``, paper venue) pinned to ``--server-cpus``,
with the same book, market data, NATS and client pinning as ``bench/execution_latency.py`` (whose
parts this script reuses), under two loads in turn:

* ``throughput``: signals in ``SealedBatch`` frames of ``--frame``, ``--window`` frames in flight;
* ``pingpong``: one signal at a time, the next sent when the last one's ack arrives.

During each, ``py-spy record --nonblocking`` samples the service's Python stacks for ``--seconds`` at
``--rate`` Hz (py-spy reads the process's memory; it does not pause it). Each sample is put in the
group of the innermost frame of its stack that belongs to one (``GROUPS``): the engine and the gate,
opening sealed signals, publishing (envelopes, the batch, the outbox), forwarding updates to the phase,
the JetStream client (nats-py), the servicer itself (reading frames, writing acks and updates
through grpc.aio, whose Cython has no Python frames of its own), the event loop with no Python frame
below it (uvloop and grpc's completion queue callbacks), other threads; anything else is ``rest``.

Figures, per load: ``samples`` (how many the shares are of), ``shares`` (per cent of them per group),
``top`` (the innermost frames with the most samples, with their shares), ``signals_per_s`` (acks
received per second while sampling; this client signs each chunk of signals between two chunks, so
the throughput load runs below ``accepted_per_s`` of the latency bench, while py-spy counts only the
samples in which the service ran). py-spy cuts or mixes some coroutine stacks, so shares are good to
a few per cent; a sample in C code called from Python counts for the Python frame that called it.

Needs ``py-spy`` (PyPI, in the ``dev`` extra) and the permission to read another process's memory
(root, or ``kernel.yama.ptrace_scope`` 0). ``--quick``: 3 s of each at 200 Hz.
Usage: python bench/service_profile.py [--quick] [--seconds 15] [--rate 500] [--frame 64] [--window 4]
       [--server-cpus 1] [--client-cpus 0] [--nats URL] [--outbox-fsync]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import execution_latency as latency
from _engine_load import make_signals

JSON_KEYS = ("throughput", "pingpong", "py_spy_version", "rate_hz", "seconds")
REQUIRES_TOOLS = ("py-spy",)

# Where a frame's file is -> its group: a frame belongs to a group when its path has one of the
# group's fragments at the start of a path segment (py-spy shows a file relative to its entry of
# sys.path: ``nats/aio/client.py``, ``execution/gate.py``). The innermost frame of a sample that
# belongs to a group decides the sample's group.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("opening sealed signals", ("core/signing.py",)),
    ("engine", ("execution/engine/", "execution/gate.py", "execution/portfolio.py", "execution/orders.py",
                "execution/paper.py", "execution/market.py", "execution/numbers.py", "core/money.py",
                "core/marketdata/book.py", "core/metrics.py")),
    ("publishing", ("execution/publisher.py", "execution/envelopes.py", "execution/outbox.py", "core/bus/")),
    ("forwarding to the phase", ("execution/routing.py",)),
    ("JetStream client", ("nats/",)),
    ("servicer and grpc", ("execution/service.py", "grpc/")),
)
EVENT_LOOP = "event loop, no Python frame below"
OTHER_THREADS = "other threads"
REST = "rest"


def group_of(frames: list[str]) -> str:
    """The group of one sample: ``frames`` root first, each ``function (file:line)``."""
    if any("Thread._bootstrap" in frame for frame in frames):
        return OTHER_THREADS
    for frame in reversed(frames):
        where = "/" + frame.rpartition(" (")[2]
        for group, parts in GROUPS:
            if any("/" + part in where for part in parts):
                return group
    innermost = frames[-1].partition(" (")[0] if frames else ""
    return EVENT_LOOP if innermost in ("Runner.run", "run_until_complete", "run_forever") else REST


def shares(raw: str, top: int = 12) -> dict[str, Any]:
    """The samples of py-spy's raw output (``frame;frame;... count`` per line) by group."""
    groups: collections.Counter[str] = collections.Counter()
    innermost: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        groups[group_of(frames)] += int(count)
        innermost[frames[-1].replace(str(Path.cwd()) + "/", "")] += int(count)
    total = sum(groups.values())

    def pct(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {"samples": total, "shares": {g: pct(n) for g, n in groups.most_common()},
            "top": {frame: pct(n) for frame, n in innermost.most_common(top)}}


async def sampled(args: argparse.Namespace, pid: int, load: Any) -> tuple[str, int, float]:
    """Run ``load`` (a coroutine function taking a stop event, returning acks received) while py-spy
    samples ``pid``; py-spy's raw output, the acks, and the seconds the load ran."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as out:
        spy = await asyncio.create_subprocess_exec(
            "py-spy", "record", "--nonblocking", "-r", str(args.rate), "-d", str(args.seconds), "-f", "raw",
            "-o", out.name, "-p", str(pid), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        stop = asyncio.Event()
        t0 = time.perf_counter()
        task = asyncio.create_task(load(stop))
        _, err = await spy.communicate()
        stop.set()
        acks = await task
        elapsed = time.perf_counter() - t0
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}")
        return out.read().decode(), acks, elapsed  # py-spy wrote it; a small file


async def profile(args: argparse.Namespace) -> dict[str, Any]:
    phase = "bench-0"
    key = f"{phase}-key-0123456789abcdefghijklmnop".encode()
    out: dict[str, Any] = {}
    async with latency.trading_service(args, [phase], {phase: key}) as (service, stub, _):
        chunk = args.frame * args.window * 8

        async def throughput(stop: asyncio.Event) -> int:
            acks, n = 0, 0
            while not stop.is_set():
                signals = make_signals(phase, key, chunk, f"tp{n}")
                acks += (await latency.stream_frames(stub, signals, args.frame, args.window))["acks"]
                n += 1
            return acks

        async def pingpong(stop: asyncio.Event) -> int:
            acks, n = 0, 0
            while not stop.is_set():
                await latency.ping_pong(stub, make_signals(phase, key, 200, f"pp{n}"), 0)
                acks, n = acks + 200, n + 1
            return acks

        for name, load in (("throughput", throughput), ("pingpong", pingpong)):
            print(f"sampling the service for {args.seconds}s under {name}", file=sys.stderr)
            raw, acks, elapsed = await sampled(args, service.proc.pid, load)  # type: ignore[union-attr]
            out[name] = {**shares(raw), "signals_per_s": round(acks / elapsed, 1)}
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s of each load at 200 Hz")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    latency.add_service_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rate = 3, 200
    return args


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    version = subprocess.run(["py-spy", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    with latency.infrastructure(args, postgres=False):
        result = asyncio.run(profile(args))
    return {**result, "py_spy_version": version, "rate_hz": args.rate, "seconds": args.seconds}


if __name__ == "__main__":
    print(json.dumps(main(parse_args()), indent=2))
