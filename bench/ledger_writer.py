"""Benchmark: ledger writer throughput, JetStream -> PostgreSQL.

Publishes ``--events`` execution events (an order update, a fill and a position per simulated trade,
the mix execution produces) to a fresh namespace on a real NATS JetStream, then starts the
LedgerWriter on a fresh database and measures how fast it drains the stream, once per ``--batch``
size (1 = one transaction per event). Everything is verified afterwards (every event recorded
once). ``record_many`` is the database side alone: the same events handed to ``Ledger.record_many``
in batches of 256 on another fresh database, no JetStream. Prints one JSON object; the temporary
databases, streams and buckets are removed.

``--per-message``: events per JetStream message (default 1; more: one ``titan.v1.EventBatch`` per
message, as execution publishes the outcome of a frame of signals). ``--quick``: 1,500 events, batch
256 only (a test runs it and checks ``JSON_KEYS``). ``bench/execution_latency.py`` runs it with
``--batch 256 --per-message 1,192`` and reports ``ledger_events_per_s`` (192 events per message: a
64-signal frame's outcome) and ``ledger_events_per_s_single`` (one event per message).
``client_cpu_us_per_event``: this process's CPU time per event (writer run: receiving, decoding,
preparing, acking; ``record_many``: preparing and sending).

Measured (docs/ledger.md, "Throughput"), ``--events 20000 --batch 256``, 2 shared cores at a load
average of 0.8-2.4, three runs each, alternating with the previous code: 7,815 / 12,080 / 11,366
events/s through JetStream at 48-68 us client CPU per event, against 6,306 / 4,706 / 5,191 events/s at
109-144 us before the pull feed, the two-batch pipeline and packed columns. The 50,000 events/s bar is
not reached: PostgreSQL alone spends ~30 us of CPU per event on this schema.

Usage: python bench/ledger_writer.py [--quick] [--events 6000] [--batch 1,64,256] [--per-message 1,192]
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

from titan.core.bus import ensure_jetstream, new_event_id, publish_event
from titan.core.bus.events import batch_event
from titan.core.catalog import Catalog
from titan.core.ledger import Ledger, LedgerWriter
from titan.v1 import common_pb2, events_pb2, trading_pb2

T0 = 1_700_000_000_000_000_000
JSON_KEYS = ("runs", "max_rss_mb")


def trade_events(i: int) -> list[events_pb2.Event]:
    """The order update, fill and position of the i-th simulated trade."""
    cid, ts = f"bench-{i}-0", T0 + i * 1000
    order = trading_pb2.Order(
        client_order_id=cid, phase_id="bench", signal_id=f"s{i}", leg=0, venue="paper", symbol="BTCUSDT",
        instrument=common_pb2.INSTRUMENT_KIND_PERP, side=common_pb2.SIDE_BUY, order_type=trading_pb2.ORDER_TYPE_LIMIT,
        price="50000.5", quantity="0.01", notional_quote="500.005", state=trading_pb2.ORDER_STATE_FILLED,
        filled_quantity="0.01", average_price="50000.5", fees="0.25", created_at_ns=ts, updated_at_ns=ts, version=2,
    )
    fill = trading_pb2.Fill(
        venue="paper", fill_id=f"f{i}", client_order_id=cid, phase_id="bench", symbol="BTCUSDT",
        instrument=common_pb2.INSTRUMENT_KIND_PERP, side=common_pb2.SIDE_BUY, price="50000.5", quantity="0.01",
        fee="0.25", maker=False, realized_pnl="0", ts_ns=ts,
    )
    pos = trading_pb2.Position(
        phase_id="bench", venue="paper", symbol="BTCUSDT", instrument=common_pb2.INSTRUMENT_KIND_PERP,
        quantity=f"{0.01 * (i + 1):.2f}", average_entry_price="50000.5", mark_price="50000.5", realized_pnl="0",
        unrealized_pnl="0", fees="0.25", funding="0", leverage="1", ts_ns=ts, version=i + 1,
    )
    return [
        events_pb2.Event(event_id=new_event_id("order", cid, 2), source="execution", ts_ns=ts, order=order),
        events_pb2.Event(event_id=new_event_id("fill", "paper", fill.fill_id), source="execution", ts_ns=ts, fill=fill),
        events_pb2.Event(event_id=new_event_id("position", "bench", i), source="execution", ts_ns=ts, position=pos),
    ]


def with_db(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def run_one(args: argparse.Namespace, batch: int, per_message: int) -> dict[str, object]:
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
        events = [ev for i in range(args.events // 3) for ev in trade_events(i)]
        for start in range(0, len(events), per_message):
            group = events[start:start + per_message]
            await publish_event(js, catalog, group[0] if len(group) == 1 else batch_event(group, "execution"))
        t0, cpu0 = time.perf_counter(), time.process_time()
        async with LedgerWriter(nc, catalog, ledger, batch=batch) as writer:
            while writer.applied + writer.duplicates < len(events):
                if time.perf_counter() - t0 > args.timeout:
                    raise TimeoutError(f"batch {batch}: {writer.applied} of {len(events)} after {args.timeout}s")
                await asyncio.sleep(0.01)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            batches = writer.batches
        recorded = await ledger.event_count()
        fills = await ledger.fill_count("bench")
        assert recorded == len(events) and fills == len(events) // 3, (recorded, fills)
        return {"batch": batch, "events_per_message": per_message, "events": len(events), "seconds": round(elapsed, 3),
                "events_per_s": round(len(events) / elapsed), "transactions": batches,
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


async def record_many_only(args: argparse.Namespace, batch: int = 256) -> dict[str, object]:
    db = f"titan_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    ledger = await Ledger.open(with_db(args.pg, db))
    try:
        events = [ev for i in range(args.events // 3) for ev in trade_events(i)]
        t0, cpu0 = time.perf_counter(), time.process_time()
        for start in range(0, len(events), batch):
            await ledger.record_many(events[start:start + batch])
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        assert await ledger.event_count() == len(events)
        return {"batch": batch, "events": len(events), "events_per_s": round(len(events) / elapsed),
                "client_cpu_us_per_event": round(cpu / len(events) * 1e6, 1)}
    finally:
        await ledger.close()
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--batch", default="1,64,256")
    ap.add_argument("--per-message", default="1",
                    help="events per JetStream message (more than 1: an EventBatch, as execution publishes a frame)")
    ap.add_argument("--pg", default=os.environ.get("TITAN_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--nats", default=os.environ.get("TITAN_NATS_URL", "nats://127.0.0.1:4222"))
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--quick", action="store_true", help="1,500 events, batch 256")
    args = ap.parse_args()
    if args.quick:
        args.events, args.batch = 1500, "256"
    runs = [await run_one(args, int(b), int(m)) for m in args.per_message.split(",") for b in args.batch.split(",")]
    direct = await record_many_only(args)
    rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps({"runs": runs, "record_many": direct, "max_rss_mb": rss_mb},
                     indent=2))


if __name__ == "__main__":
    asyncio.run(main())
