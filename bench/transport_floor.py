"""Benchmark: the floor under the signal -> ack round trip on each transport the execution service
could stand on, with nothing behind it. Prints one JSON object.

Why: the service's ping-pong round trip (``rtt_p99_us`` of bench/execution_latency.py) has a bar of
1 000 µs and 1.5 x a bare grpc.aio echo's p99, and a goal of 250 µs. A lone signal costs the service
four to five echo messages' worth of CPU and about 14 context switches, a third of its CPU in the
kernel. Before choosing a transport with fewer thread hand-offs, measure what each one costs when it
does nothing but answer: that is the best any service built on it could do on this machine.

What runs, one server process per transport pinned to ``--server-cpus``, the client in this process
pinned to ``--client-cpus``, ping-pong (the next request sent when the last reply arrived): request
bytes of one sealed signal frame as a phase sends it, reply bytes of one accepted signal's ack.

* ``grpc_aio``: a grpc.aio bidi stream echo on asyncio's default loop (``echo_rtt_*`` of the latency
  bench).
* ``grpc_aio_uvloop``: the same server on uvloop, as the execution service runs.
* ``grpc_sync``: grpc's thread-pool server, the handler a plain generator (no event loop).
* ``tcp_uvloop``: the same bytes as length-prefixed frames over one TCP connection, asyncio streams on
  uvloop, server and client: no HTTP/2, no gRPC.

The gRPC servers are all called by the same grpc.aio client (as the phases call execution);
``tcp_uvloop`` has its own client, so its figure is a transport's floor end to end.

Figures per transport: ``rtt_p50_us``, ``rtt_p99_us``, ``rtt_p999_us`` (exact, from raw samples,
warm-up excluded), ``server_cpu_us_per_message`` (the server process's CPU time, all threads, over
the timed messages) and ``server_switches_per_message`` (context switches of all its threads, from
``/proc``). Each transport runs ``--repeats`` times, the transports interleaved (A B C D A B C D ...);
each figure is the median over repeats, with the minimum and maximum in ``spread``.

Usage: python bench/transport_floor.py [--quick] [--messages 5000] [--warmup 1000] [--repeats 3]
       [--server-cpus 1] [--client-cpus 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import struct
import sys
from collections.abc import Awaitable, Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from _engine_load import make_signals
from execution_latency import (
    RoundTrip,
    ack_bytes,
    echo_round_trips,
    echo_server,
    rtt_figures,
    sealed_frame,
    spawn,
    stop,
    timed_round_trips,
)

from titan.core.infra.procs import free_port, wait_port

JSON_KEYS = ("transports", "request_bytes", "reply_bytes", "messages", "warmup", "repeats", "load_average",
             "server_cpus", "client_cpus", "spread")
TRANSPORTS = ("grpc_aio", "grpc_aio_uvloop", "grpc_sync", "tcp_uvloop")
FIGURES = ("rtt_p50_us", "rtt_p99_us", "rtt_p999_us", "server_cpu_us_per_message", "server_switches_per_message")
_LENGTH = struct.Struct("<I")


# --- servers (each runs in its own pinned process) ---------------------------------------------------
def serve_grpc_sync(port: int, reply: bytes) -> None:
    def chat(request_iterator: Any, context: Any) -> Any:
        for _ in request_iterator:
            yield reply

    handler = grpc.method_handlers_generic_handler("bench.Echo", {"Chat": grpc.stream_stream_rpc_method_handler(chat)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


async def serve_tcp(port: int, reply: bytes) -> None:
    framed = _LENGTH.pack(len(reply)) + reply

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
                await reader.readexactly(size)
                writer.write(framed)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def serve(transport: str, port: int, reply_size: int) -> None:
    reply = b"\x0a" + b"x" * (reply_size - 1)
    if transport == "grpc_aio":
        asyncio.run(echo_server(port, reply_size))
        return
    if transport == "grpc_sync":
        serve_grpc_sync(port, reply)
        return
    import uvloop

    if transport == "grpc_aio_uvloop":
        uvloop.run(echo_server(port, reply_size))
    else:
        uvloop.run(serve_tcp(port, reply))


# --- clients (the gRPC ones: the latency bench's echo client) ---------------------------------------
async def tcp_round_trips(port: int, request: bytes, run: Callable[[RoundTrip], Awaitable[Any]]) -> Any:
    """``run(round_trip)`` over one TCP connection to the frame server on ``port`` (listening)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framed = _LENGTH.pack(len(request)) + request

    async def round_trip() -> None:
        writer.write(framed)
        (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        await reader.readexactly(size)

    try:
        return await run(round_trip)
    finally:
        writer.close()


def measure(args: argparse.Namespace, transport: str, request: bytes, reply_size: int) -> dict[str, float]:
    """One run of one transport: its server started, ping-pong, the figures."""
    port = free_port()
    proc = spawn([sys.executable, str(Path(__file__)), "--serve", transport, "--port", str(port),
                  "--reply-size", str(reply_size)], args.server_cpus, os.environ.copy())

    async def timed(round_trip: RoundTrip) -> dict[str, float]:
        samples, cpu_us, switches = await timed_round_trips(round_trip, proc.pid, args.warmup, args.messages)
        return {**rtt_figures(samples), "server_cpu_us_per_message": round(cpu_us, 1),
                "server_switches_per_message": round(switches, 2)}

    try:
        if transport == "tcp_uvloop":
            import uvloop

            wait_port(port, 30, pid=proc.pid)
            result: dict[str, float] = uvloop.run(tcp_round_trips(port, request, timed))
        else:
            result = asyncio.run(echo_round_trips(port, request, timed))
        if proc.poll() is not None:
            raise RuntimeError(f"{transport} server exited with {proc.returncode}")
        return result
    finally:
        stop(proc)


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    request = sealed_frame(make_signals("bench-0", b"k" * 32, 1, "lat")).SerializeToString()
    reply_size = ack_bytes("bench-0")
    runs: dict[str, list[dict[str, float]]] = {t: [] for t in args.transports}
    for repeat in range(args.repeats):
        for transport in args.transports:
            print(f"repeat {repeat + 1}/{args.repeats}: {transport}", file=sys.stderr)
            runs[transport].append(measure(args, transport, request, reply_size))
    return {
        "transports": {t: {f: statistics.median(r[f] for r in rs) for f in FIGURES} for t, rs in runs.items()},
        "spread": {t: {f: [min(r[f] for r in rs), max(r[f] for r in rs)] for f in FIGURES} for t, rs in runs.items()},
        "request_bytes": len(request),
        "reply_bytes": reply_size,
        "messages": args.messages,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "server_cpus": args.server_cpus,
        "client_cpus": args.client_cpus,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few messages, once")
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--transports", nargs="+", choices=TRANSPORTS, default=list(TRANSPORTS))
    affinity = sorted(os.sched_getaffinity(0))
    two = len(affinity) >= 2
    parser.add_argument("--server-cpus", default=str(affinity[-1]) if two else "")
    parser.add_argument("--client-cpus", default=str(affinity[0]) if two else "")
    parser.add_argument("--serve", choices=TRANSPORTS, default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--reply-size", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.messages, args.warmup, args.repeats = 300, 100, 1
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve:
        serve(arguments.serve, arguments.port, arguments.reply_size)
    else:
        print(json.dumps(main(arguments), indent=2))
