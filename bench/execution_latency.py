"""Benchmark: signal -> ack latency and sustained throughput of the execution service over loopback gRPC.

Starts the real service (``python -m titan.execution``) as its own process with the paper venue, pinned
to ``--server-cpus``, connected to a real NATS JetStream (events are published as in production; market
data is fed on core NATS). N phases each open one StreamSignals stream from a client process pinned to
``--client-cpus``.

Two runs:
  * latency: every phase sends one signal at a time (ping-pong) -> round-trip latency percentiles;
  * throughput: every phase keeps ``--window`` signals in flight -> sustained signals/s.
For every ack the server-side decision time (ack.acked_at_ns - ack.received_at_ns: from the moment
the service has the decoded signal until the ack is built) is recorded too, and the service's own
histogram ``titan_execution_signal_ack_seconds`` (received -> ack written to the stream; bucket upper
bounds, all runs including warm-up) is scraped from its /metrics. Lost acks = signals sent without an
ack. The top-level p50/p99/p999 are the client-side round trips of the latency run. Prints one JSON
object.

Usage: python bench/execution_latency.py [--phases 2] [--signals 20000] [--window 64]
       [--server-cpus 1] [--client-cpus 0] [--nats nats://127.0.0.1:4222]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from titan.core.catalog import Catalog
from titan.core.signing import sign_control, sign_signal
from titan.v1 import common_pb2, execution_pb2, execution_pb2_grpc, market_pb2, trading_pb2

CONTROL_KEY = b"bench-control-key-0123456789abcd"
PERP = common_pb2.InstrumentKind.INSTRUMENT_KIND_PERP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    idx = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[idx] / 1000.0  # ns -> µs


def _summary(values: list[int]) -> dict[str, float]:
    return {
        "p50_us": _pct(values, 0.50),
        "p99_us": _pct(values, 0.99),
        "p999_us": _pct(values, 0.999),
        "mean_us": (statistics.fmean(values) / 1000.0) if values else float("nan"),
        "max_us": (max(values) / 1000.0) if values else float("nan"),
        "n": len(values),
    }


def _histogram_quantiles(text: str, name: str) -> dict[str, object]:
    """Upper bucket bounds of the p50/p99/p999 of a Prometheus histogram (all label sets summed)."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith(name + "_bucket{"):
            continue
        labels, value = line.rsplit(" ", 1)
        le = labels.split('le="', 1)[1].split('"', 1)[0]
        bound = float("inf") if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + float(value)
    if not buckets:
        return {}
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    out: dict[str, object] = {"n": int(total)}
    for label, q in (("p50_le_us", 0.5), ("p99_le_us", 0.99), ("p999_le_us", 0.999)):
        bound = next(b for b in bounds if buckets[b] >= q * total)
        out[label] = "inf" if bound == float("inf") else round(bound * 1e6, 1)
    return out


def _control(req, nonce: str):  # type: ignore[no-untyped-def]
    req.auth.issuer = "bench"
    req.auth.issued_at_ns = time.time_ns()
    req.auth.nonce = nonce
    sign_control(req, CONTROL_KEY)
    return req


def _signals(phase: str, key: bytes, n: int, created_ns: int, prefix: str) -> list[execution_pb2.StreamRequest]:
    out = []
    for i in range(n):
        side = common_pb2.Side.SIDE_BUY if i % 2 == 0 else common_pb2.Side.SIDE_SELL
        sig = trading_pb2.Signal(
            phase_id=phase,
            signal_id=f"{prefix}-{i}",
            intent=trading_pb2.Intent.INTENT_OPEN,
            legs=[trading_pb2.Leg(venue="bybit", symbol="BTCUSDT", instrument=PERP, side=side, size_quote="500",
                                  order_type=trading_pb2.OrderType.ORDER_TYPE_MARKET)],
            confidence=0.6,
            leverage="2",
            created_at_ns=created_ns,
            setup="bench",
        )
        sign_signal(sig, key)
        out.append(execution_pb2.StreamRequest(signal=sig))
    return out


async def _feed(nc, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    subject = catalog.md_subject("bybit", "BTCUSDT", "top")
    inst = common_pb2.InstrumentKind.INSTRUMENT_KIND_PERP
    while True:
        now = time.time_ns()
        for ev in (
            market_pb2.MarketEvent(venue="bybit", symbol="BTCUSDT", instrument=inst, exchange_ts_ns=now,
                                   top=market_pb2.BookTop(bid_price="50000", bid_size="1000000",
                                                          ask_price="50000.5", ask_size="1000000")),
            market_pb2.MarketEvent(venue="bybit", symbol="BTCUSDT", instrument=inst, exchange_ts_ns=now,
                                   mark=market_pb2.MarkPrice(mark_price="50000.25")),
        ):
            await nc.publish(subject, ev.SerializeToString())
        await asyncio.sleep(0.1)


async def _ping_pong(stub, reqs: list[execution_pb2.StreamRequest]) -> tuple[list[int], list[int], int]:  # type: ignore[no-untyped-def]
    call = stub.StreamSignals()
    rtt: list[int] = []
    server: list[int] = []
    rejected = 0
    for req in reqs:
        t0 = time.perf_counter_ns()
        await call.write(req)
        while True:
            msg = await call.read()
            if msg.WhichOneof("body") == "ack":
                break
        rtt.append(time.perf_counter_ns() - t0)
        server.append(msg.ack.acked_at_ns - msg.ack.received_at_ns)
        rejected += not msg.ack.accepted
    await call.done_writing()
    return rtt, server, rejected


async def _stream(stub, reqs: list[execution_pb2.StreamRequest], window: int) -> tuple[int, list[int], int]:  # type: ignore[no-untyped-def]
    call = stub.StreamSignals()
    sem = asyncio.Semaphore(window)
    acks = 0
    rejected = 0
    server: list[int] = []
    done = asyncio.Event()
    total = len(reqs)

    async def reader() -> None:
        nonlocal acks, rejected
        while acks < total:
            msg = await call.read()
            if msg is grpc.aio.EOF:
                break
            if msg.WhichOneof("body") != "ack":
                continue
            acks += 1
            rejected += not msg.ack.accepted
            server.append(msg.ack.acked_at_ns - msg.ack.received_at_ns)
            sem.release()
        done.set()

    task = asyncio.create_task(reader())
    for req in reqs:
        await sem.acquire()
        await call.write(req)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 120)
    await call.done_writing()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
        await task
    return acks, server, rejected


async def main(args: argparse.Namespace) -> dict[str, object]:
    import nats

    phases = [f"bench-{i}" for i in range(args.phases)]
    keys = {p: f"{p}-key-0123456789abcdefghijklmnop".encode() for p in phases}
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    catalog = Catalog(namespace)
    port = _free_port()
    metrics_port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN_")}
    env.update(
        TITAN_NATS_URL=args.nats, TITAN_PG_DSN="", TITAN_NAMESPACE=namespace, TITAN_EXECUTION_HOST="127.0.0.1",
        TITAN_EXECUTION_PORT=str(port), TITAN_EXECUTION_CPUS=args.server_cpus, TITAN_METRICS_PORT=str(metrics_port),
        TITAN_CONTROL_KEY=CONTROL_KEY.decode(), TITAN_REPLAY_WINDOW_MS="600000", TITAN_LOG_LEVEL="WARNING",
    )
    for p, k in keys.items():
        env["TITAN_PHASE_KEY_" + p.upper().replace("-", "_")] = k.decode()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        [sys.executable, "-m", "titan.execution"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if args.client_cpus:  # after the server started: it must not inherit the client's affinity
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    nc = await nats.connect(args.nats)
    feeder = asyncio.create_task(_feed(nc, catalog))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError("service exited: " + (proc.stderr.read().decode() if proc.stderr else ""))
            try:
                r = await health.Check(health_pb2.HealthCheckRequest(service="titan.v1.Execution"), timeout=0.5)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("service did not become healthy")
            await asyncio.sleep(0.1)
        stub = execution_pb2_grpc.ExecutionStub(channel)
        await stub.SetTradingState(_control(execution_pb2.SetTradingStateRequest(
            state=trading_pb2.TradingState(mode=common_pb2.TradingMode.TRADING_MODE_ACTIVE, version=time.time_ns(),
                                           set_by="bench")), uuid.uuid4().hex))
        budgets = [
            trading_pb2.Budget(
                phase_id=p, state=common_pb2.PhaseState.PHASE_STATE_ACTIVE, weight="0.5", max_notional="1000000000",
                max_order_notional="100000", max_leverage="10", max_orders_per_minute=4_000_000_000,
                max_open_orders_per_symbol=1000, symbols=["BTCUSDT"], issued_at_ns=time.time_ns(),
                expires_at_ns=time.time_ns() + 3600 * 10**9, version=time.time_ns(),
            )
            for p in phases
        ]
        await stub.UpdateBudgets(_control(execution_pb2.UpdateBudgetsRequest(budgets=budgets), uuid.uuid4().hex))
        # wait until market data has arrived: a probe signal is accepted
        for attempt in range(100):
            reqs = _signals(phases[0], keys[phases[0]], 1, time.time_ns(), f"probe{attempt}")
            _, _, rej = await _ping_pong(stub, reqs)
            if not rej:
                break
            await asyncio.sleep(0.1)
        created = time.time_ns()
        lat_reqs = {p: _signals(p, keys[p], args.latency_signals, created, "lat") for p in phases}
        tp_reqs = {p: _signals(p, keys[p], args.signals, created, "tp") for p in phases}
        # warm-up
        await asyncio.gather(*(_ping_pong(stub, _signals(p, keys[p], 500, created, "warm")) for p in phases))
        lat = await asyncio.gather(*(_ping_pong(stub, lat_reqs[p]) for p in phases))
        rtt = [x for r in lat for x in r[0]]
        lat_server = [x for r in lat for x in r[1]]
        lat_rejected = sum(r[2] for r in lat)
        t0 = time.perf_counter()
        res = await asyncio.gather(*(_stream(stub, tp_reqs[p], args.window) for p in phases))
        elapsed = time.perf_counter() - t0
        acked = sum(r[0] for r in res)
        sent = args.signals * len(phases)
        tp_server = [x for r in res for x in r[1]]
        tp_rejected = sum(r[2] for r in res)
        state = await stub.GetState(execution_pb2.GetStateRequest())
        import urllib.request

        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        )
        return {
            "phases": len(phases),
            "transport": "grpc.aio loopback, one bidi stream per phase",
            "server_cpus": list(state.cpus),
            "client_cpus": args.client_cpus,
            "events": "JetStream (async batched publisher)",
            "latency_run": {
                "mode": "ping-pong, one signal in flight per phase",
                "signals": len(rtt),
                "rejected": lat_rejected,
                "round_trip": _summary(rtt),
                "server_signal_to_ack": _summary(lat_server),
            },
            "throughput_run": {
                "window_per_phase": args.window,
                "signals_sent": sent,
                "acks": acked,
                "lost_acks": sent - acked,
                "rejected": tp_rejected,
                "seconds": round(elapsed, 3),
                "signals_per_s": round(acked / elapsed, 1),
                "server_signal_to_ack": _summary(tp_server),
            },
            "server_histogram_received_to_ack_written": _histogram_quantiles(
                metrics, "titan_execution_signal_ack_seconds"
            ),
            "p50_us": _pct(rtt, 0.5),
            "p99_us": _pct(rtt, 0.99),
            "p999_us": _pct(rtt, 0.999),
            "signals_per_s": round(acked / elapsed, 1),
            "lost_acks": sent - acked + (args.latency_signals * len(phases) - len(rtt)),
        }
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        await channel.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        js = nc.jetstream()
        for name in [s.name for s in catalog.streams] + [f"KV_{b.name}" for b in catalog.buckets]:
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
        await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", type=int, default=2)
    parser.add_argument("--signals", type=int, default=20_000, help="per phase, throughput run")
    parser.add_argument("--latency-signals", type=int, default=5_000, help="per phase, latency run")
    parser.add_argument("--window", type=int, default=64)
    ncpu = len(os.sched_getaffinity(0))
    parser.add_argument("--server-cpus", default=str(max(os.sched_getaffinity(0))) if ncpu > 1 else "")
    parser.add_argument("--client-cpus", default=str(min(os.sched_getaffinity(0))) if ncpu > 1 else "")
    parser.add_argument("--nats", default=os.environ.get("TITAN_NATS_URL", "nats://127.0.0.1:4222"))
    args = parser.parse_args()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        print(json.dumps(runner.run(main(args)), indent=2))
