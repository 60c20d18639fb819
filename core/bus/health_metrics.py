"""JetStream and NATS server health as Titan's own metrics (``titan_jetstream_*``, ``titan_nats_*``).

:class:`BusHealth` reads, every ``interval_s``:

* each catalog stream's stored messages and bytes, and each catalog durable consumer's pending,
  ack-pending and redelivered counts, through the JetStream API (``$JS.API.STREAM.INFO`` /
  ``CONSUMER.INFO``: the same connection and permissions the process already has);
* when the server's monitoring endpoint is known, its ``/varz``: client connections, memory, the
  messages in and out and the slow consumers it cut off. Those three are counters on the server
  (since it started); Titan's counters follow them by their increase, so ``rate()`` works and a
  restarted server does not look like a negative rate.

A stream or consumer that does not exist (yet) has no series; any other failed read is counted in
``titan_bus_health_failures_total{source,reason}`` and logged once when a source starts failing and
once when it recovers, never per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import nats.errors
from nats.js import JetStreamManager
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Gauge

from titan.core import metrics
from titan.core.catalog import Catalog, ConsumerSpec
from titan.core.tasks import raise_if_cancelled

log = logging.getLogger("titan.bus.health")


class HealthSource(StrEnum):
    STREAM = "stream"
    CONSUMER = "consumer"
    SERVER = "server"


class ReadFailure(StrEnum):
    TIMEOUT = "timeout"
    NATS_ERROR = "nats_error"
    UNREACHABLE = "unreachable"
    INVALID = "invalid"


def durable_consumers(catalog: Catalog) -> tuple[ConsumerSpec, ...]:
    """The durable consumers the catalog declares (the ledger writer's and the Brain's)."""
    return (catalog.ledger_consumer, catalog.brain_consumer)


@dataclass(frozen=True)
class ServerStats:
    """What Titan shows of the server's /varz."""

    name: str
    connections: int
    memory_bytes: int
    in_messages: int
    out_messages: int
    slow_consumers: int

    @classmethod
    def from_varz(cls, varz: Mapping[str, object]) -> ServerStats:
        """ValueError when a field is missing or not a non-negative integer."""

        def count(key: str) -> int:
            value = varz.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"/varz field {key!r} is {value!r}, not a count")
            return value

        name = varz.get("server_name") or varz.get("server_id")
        if not isinstance(name, str) or not name:
            raise ValueError("/varz names no server (server_name / server_id)")
        return cls(name=name, connections=count("connections"), memory_bytes=count("mem"),
                   in_messages=count("in_msgs"), out_messages=count("out_msgs"),
                   slow_consumers=count("slow_consumers"))


def fetch_varz(monitor_url: str, timeout_s: float) -> ServerStats:
    """GET ``<monitor_url>/varz`` (blocking; run it in a thread)."""
    with urllib.request.urlopen(f"{monitor_url.rstrip('/')}/varz", timeout=timeout_s) as resp:
        body = json.loads(resp.read())
    if not isinstance(body, dict):
        raise ValueError("/varz is not a JSON object")
    return ServerStats.from_varz(body)


class BusHealth:
    """Refreshes the JetStream/NATS health metrics on a timer (``async with`` runs it)."""

    def __init__(self, jsm: JetStreamManager, catalog: Catalog, *, monitor_url: str = "",
                 interval_s: float = 5.0, timeout_s: float = 2.0) -> None:
        self.jsm = jsm
        self.catalog = catalog
        self.monitor_url = monitor_url
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.refreshes = 0
        self._failing: set[str] = set()                         # "<source> <name>" currently failing
        self._server_totals: dict[tuple[str, str], int] = {}   # (field, server) -> the server's last count
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BusHealth:
        self._task = asyncio.create_task(self._run(), name="bus-health")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            raise_if_cancelled()
            await self.refresh()
            await asyncio.sleep(self.interval_s)

    async def refresh(self) -> None:
        """One read of everything; failures are counted and logged, never raised."""
        for stream in self.catalog.streams:
            await self._read_stream(stream.name)
        for consumer in durable_consumers(self.catalog):
            await self._read_consumer(consumer)
        if self.monitor_url:
            await self._read_server()
        self.refreshes += 1

    async def _read_stream(self, name: str) -> None:
        labels = {"stream": name}
        try:
            info = await self.jsm.stream_info(name)
        except NotFoundError:
            _forget(labels, metrics.JS_STREAM_MESSAGES, metrics.JS_STREAM_BYTES)
            return self._recovered(HealthSource.STREAM, name)
        except (nats.errors.Error, TimeoutError) as exc:
            return self._failed(HealthSource.STREAM, name, exc)
        metrics.JS_STREAM_MESSAGES.labels(**labels).set(info.state.messages)
        metrics.JS_STREAM_BYTES.labels(**labels).set(info.state.bytes)
        self._recovered(HealthSource.STREAM, name)

    async def _read_consumer(self, spec: ConsumerSpec) -> None:
        labels = {"stream": spec.stream, "consumer": spec.durable}
        gauges = (metrics.JS_CONSUMER_PENDING, metrics.JS_CONSUMER_ACK_PENDING, metrics.JS_CONSUMER_REDELIVERED)
        what = f"{spec.stream}/{spec.durable}"
        try:
            info = await self.jsm.consumer_info(spec.stream, spec.durable)
        except NotFoundError:  # e.g. the Brain has not created its durable yet
            _forget(labels, *gauges)
            return self._recovered(HealthSource.CONSUMER, what)
        except (nats.errors.Error, TimeoutError) as exc:
            return self._failed(HealthSource.CONSUMER, what, exc)
        for gauge, value in zip(gauges, (info.num_pending, info.num_ack_pending, info.num_redelivered), strict=True):
            gauge.labels(**labels).set(value or 0)
        self._recovered(HealthSource.CONSUMER, what)

    async def _read_server(self) -> None:
        try:
            stats = await asyncio.to_thread(fetch_varz, self.monitor_url, self.timeout_s)
        except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors; bad JSON a ValueError
            return self._failed(HealthSource.SERVER, self.monitor_url, exc)
        metrics.NATS_CONNECTIONS.labels(server=stats.name).set(stats.connections)
        metrics.NATS_MEMORY.labels(server=stats.name).set(stats.memory_bytes)
        self._follow(metrics.NATS_IN_MESSAGES, "in_messages", stats.name, stats.in_messages)
        self._follow(metrics.NATS_OUT_MESSAGES, "out_messages", stats.name, stats.out_messages)
        self._follow(metrics.NATS_SLOW_CONSUMERS, "slow_consumers", stats.name, stats.slow_consumers)
        self._recovered(HealthSource.SERVER, self.monitor_url)

    def _follow(self, counter: Counter, field: str, server: str, total: int) -> None:
        """Move ``counter`` by the server's increase of ``field`` since the last read (all of it on the
        first read and after a server restart, when its count starts again from zero)."""
        key = (field, server)
        last = self._server_totals.get(key)
        increase = total if last is None or total < last else total - last
        self._server_totals[key] = total
        counter.labels(server=server).inc(increase)

    def _failed(self, source: HealthSource, what: str, exc: BaseException) -> None:
        reason = _failure_reason(exc)
        metrics.BUS_HEALTH_FAILURES.labels(source=source.value, reason=reason.value).inc()
        key = f"{source} {what}"
        if key not in self._failing:
            self._failing.add(key)
            log.warning("bus health: cannot read %s %s (%s: %s); its metrics keep their last values until it "
                        "answers", source.value, what, reason.value, exc or type(exc).__name__)

    def _recovered(self, source: HealthSource, what: str) -> None:
        key = f"{source} {what}"
        if key in self._failing:
            self._failing.discard(key)
            log.info("bus health: %s %s answers again", source.value, what)


def _failure_reason(exc: BaseException) -> ReadFailure:
    if isinstance(exc, TimeoutError):
        return ReadFailure.TIMEOUT
    if isinstance(exc, nats.errors.Error):
        return ReadFailure.NATS_ERROR
    if isinstance(exc, ValueError):
        return ReadFailure.INVALID
    return ReadFailure.UNREACHABLE


def _forget(labels: Mapping[str, str], *gauges: Gauge) -> None:
    for gauge in gauges:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels.values())
