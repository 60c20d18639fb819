"""Benchmark: ledger writer throughput, JetStream -> PostgreSQL.

Runs the paper engine on ``--signals`` signed market orders (500 USDT, each taking three or four book
levels) and keeps the events execution publishes for them: per signal an order, three or four fills
and a decision (with the signal), and per frame of 64 signals one position. These go to a fresh namespace on a real
NATS JetStream; then the LedgerWriter starts on a fresh database and the bench measures how fast it
drains the stream, once per ``--batch`` size (1 = one transaction per event). Everything is verified
afterwards (every event recorded once). ``record_many`` is the database side alone: the same events
handed to ``Ledger.record_many`` in batches of 256 on another fresh database, no JetStream. Prints one
JSON object; the temporary databases, streams and buckets are removed.

``--per-message``: ``frame`` (the default) publishes each input's events as one ``titan.v1.EventBatch``
message, as execution does (a 64-signal frame: 336 events); a number N regroups the events N per
message (1: one event per message). ``--quick``: 300 signals, batch 256 only (a test runs it and checks
``JSON_KEYS``). ``bench/execution_latency.py`` runs it with ``--batch 256 --per-message frame,1`` and
reports ``ledger_events_per_s`` (frames) and ``ledger_events_per_s_single`` (one event per message).
``client_cpu_us_per_event``: this process's CPU time per event (writer run: receiving, decoding,
preparing, acking; ``record_many``: preparing and sending). ``record_many.server_cpu_us_per_event``:
the CPU time PostgreSQL's backends of that database used per event (read from ``/proc``; null when
the server is not on this machine or its processes cannot be read). Its batches are 256 events, so
each statement's parsing, planning and commit weigh more than in the writer's larger transactions;
the clock ticks are 10 ms, so take it from a run of several seconds (``--signals 8000`` or more).

Until the event mix above, the bench wrote an order, a fill and a position per trade (no decisions,
one fill per order, a position per trade); docs/ledger.md ("Throughput") has the figures of both.

Usage: python bench/ledger_writer.py [--quick] [--signals 1200] [--batch 1,64,256] [--per-message frame,1]
       [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--nats nats://127.0.0.1:4222]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
from _engine_load import PHASE, cpu_ticks, published_frames

from titan.core.bus import ensure_jetstream, publish_event
from titan.core.bus.events import batch_event
from titan.core.catalog import Catalog
from titan.core.ledger import Ledger, LedgerWriter
from titan.v1 import events_pb2

JSON_KEYS = ("runs", "record_many", "max_rss_mb")
FRAME = 64  # signals per frame, as the phase runtime batches them under load


def messages(frames: list[list[events_pb2.Event]], per_message: str) -> list[list[events_pb2.Event]]:
    """The events grouped as JetStream messages: each input's as one (``frame``), or N at a time."""
    if per_message == "frame":
        return frames
    size = int(per_message)
    flat = [event for frame in frames for event in frame]
    return [flat[start:start + size] for start in range(0, len(flat), size)]


def with_db(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def run_one(args: argparse.Namespace, frames: list[list[events_pb2.Event]], batch: int,
                  per_message: str) -> dict[str, object]:
    db = f"titan_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    catalog = Catalog(namespace=f"bench{uuid.uuid4().hex[:8]}")
    nc = await nats.connect(args.nats)
    js = nc.jetstream()
    ledger = await Ledger.open(with_db(args.pg, db))
    try:
        await ensure_jetstream(js, catalog)
        events = [event for frame in frames for event in frame]
        for group in messages(frames, per_message):
            await publish_event(js, catalog, group[0] if len(group) == 1 else batch_event(group, "execution"))
        t0, cpu0 = time.perf_counter(), time.process_time()
        async with LedgerWriter(nc, catalog, ledger, batch=batch) as writer:
            while writer.applied + writer.duplicates < len(events):
                if time.perf_counter() - t0 > args.timeout:
                    raise TimeoutError(f"batch {batch}: {writer.applied} of {len(events)} after {args.timeout}s")
                await asyncio.sleep(0.01)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            fetches, transactions = writer.batches, writer.transactions
        recorded = await ledger.event_count()
        fills = await ledger.fill_count(PHASE)
        assert recorded == len(events) and fills == sum(e.HasField("fill") for e in events), (recorded, fills)
        return {"batch": batch, "events_per_message": per_message, "events": len(events), "seconds": round(elapsed, 3),
                "events_per_s": round(len(events) / elapsed), "fetches": fetches,
                "transactions": transactions,
                "client_cpu_us_per_event": round(cpu / len(events) * 1e6, 1), "recorded_once": recorded == len(events)}
    finally:
        await ledger.close()
        for stream in catalog.streams:
            with contextlib.suppress(Exception):  # absent already
                await js.delete_stream(stream.name)
        for bucket in catalog.buckets:
            with contextlib.suppress(Exception):
                await js.delete_key_value(bucket.name)
        await nc.close()
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


async def backends(ledger: Ledger) -> list[int]:
    """The process ids of PostgreSQL's backends connected to this ledger's database."""
    return [r["pid"] for r in await ledger.pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]


def cpu_s(pids: list[int]) -> float | None:
    """CPU seconds those processes have used, when PostgreSQL runs on this machine and its processes
    can be read (else None)."""
    try:
        return sum(cpu_ticks(pid) for pid in pids) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


async def record_many_only(args: argparse.Namespace, frames: list[list[events_pb2.Event]],
                           batch: int = 256) -> dict[str, object]:
    db = f"titan_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    ledger = await Ledger.open(with_db(args.pg, db))
    try:
        events = [event for frame in frames for event in frame]
        await ledger.record_many(events[:1])  # connected, and the tables' layout read
        pids = await backends(ledger)
        server0 = cpu_s(pids)
        t0, cpu0 = time.perf_counter(), time.process_time()
        for start in range(1, len(events), batch):
            await ledger.record_many(events[start:start + batch])
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        server1 = cpu_s(pids)
        assert await ledger.event_count() == len(events)
        server = None if server0 is None or server1 is None else round((server1 - server0) / len(events) * 1e6, 1)
        return {"batch": batch, "events": len(events), "events_per_s": round(len(events) / elapsed),
                "client_cpu_us_per_event": round(cpu / len(events) * 1e6, 1), "server_cpu_us_per_event": server}
    finally:
        await ledger.close()
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", type=int, default=1200, help="signals run through the engine (~5 events each)")
    ap.add_argument("--batch", default="1,64,256")
    ap.add_argument("--per-message", default="frame",
                    help="'frame': each input's events as one EventBatch message, as execution publishes them;"
                         " N: N events per message")
    ap.add_argument("--pg", default=os.environ.get("TITAN_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--nats", default=os.environ.get("TITAN_NATS_URL", "nats://127.0.0.1:4222"))
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--quick", action="store_true", help="300 signals, batch 256")
    args = ap.parse_args()
    if args.quick:
        args.signals, args.batch = 300, "256"
    frames = published_frames(args.signals, FRAME)
    runs = [await run_one(args, frames, int(b), m) for m in args.per_message.split(",") for b in args.batch.split(",")]
    direct = await record_many_only(args, frames)
    rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps({"runs": runs, "record_many": direct, "max_rss_mb": rss_mb},
                     indent=2))


if __name__ == "__main__":
    asyncio.run(main())
