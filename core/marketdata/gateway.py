"""The market-data gateway: publishes a source's events on NATS, and the matching subscriber.

Each event goes to ``titan.md.<venue>.<symbol>.<kind>`` (from the Catalog) as compact protobuf
bytes on core NATS (not persisted). One gateway connection publishes in event order, and NATS keeps
the order per publisher, so a subscriber sees every stream in time order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from titan.core.catalog import Catalog
from titan.core.metrics import BUS_REJECTS, MD_EVENTS, MD_GAPS, MD_LAG, MD_LAST_EVENT
from titan.core.tasks import raise_if_cancelled
from titan.v1.market_pb2 import MarketEvent

from .events import MalformedEvent, decode, encode, subject_of, validate
from .source import Source

log = logging.getLogger("titan.marketdata")

GATEWAY = "md-gateway"
FLUSH_AT_END_S = 5


@dataclass
class SeqTracker:
    """Per-stream sequence gap detection (venue, symbol, instrument) -> last seq."""

    last: dict[tuple[str, str, int], int] = field(default_factory=dict)
    gaps: int = 0

    def check(self, ev: MarketEvent) -> bool:
        """True when ``ev`` follows its stream's previous event; counts gaps in titan_md_gaps_total."""
        if not ev.seq:
            return True
        key = (ev.venue, ev.symbol, int(ev.instrument))
        prev = self.last.get(key)
        self.last[key] = ev.seq
        if prev is not None and ev.seq != prev + 1:
            self.gaps += 1
            MD_GAPS.labels(ev.venue, ev.symbol).inc()
            return False
        return True


def observe(source: str, ev: MarketEvent, kind: str) -> None:
    """Export one event's metrics: count, lag (receive - exchange time), last event time."""
    MD_EVENTS.labels(source, ev.venue, kind).inc()
    if ev.exchange_ts_ns:
        MD_LAST_EVENT.labels(ev.venue, ev.symbol).set(ev.exchange_ts_ns / 1e9)
        if ev.receive_ts_ns:
            MD_LAG.labels(ev.venue, ev.symbol).set((ev.receive_ts_ns - ev.exchange_ts_ns) / 1e9)


class Gateway:
    """Publishes MarketEvents on NATS. Invalid events are dropped and counted, never published."""

    def __init__(self, nc: Client, catalog: Catalog, *, source_name: str = "gateway", flush_every: int = 5000):
        self.nc = nc
        self.catalog = catalog
        self.source_name = source_name
        self.flush_every = flush_every
        self.published = 0
        self.rejected = 0

    async def publish(self, ev: MarketEvent) -> bool:
        try:
            validate(ev)
            subject = subject_of(self.catalog, ev)
        except (MalformedEvent, ValueError) as err:
            reason = err.reason if isinstance(err, MalformedEvent) else "bad_subject_token"
            BUS_REJECTS.labels(GATEWAY, reason).inc()
            self.rejected += 1
            log.debug("dropped market event: %s", err)
            return False
        await self.nc.publish(subject, encode(ev))
        observe(self.source_name, ev, subject.rsplit(".", 1)[1])
        self.published += 1
        if self.published % self.flush_every == 0:
            await self.nc.flush()
        return True

    async def run(self, source: Source, on_event: Callable[[MarketEvent], None] | None = None) -> int:
        """Publish everything ``source`` streams until it ends (or the task is cancelled). The source
        counts its own events under its name; the gateway counts what it published as ``gateway``.
        ``on_event`` sees each event after it was published."""
        try:
            async for ev in source.stream():
                if await self.publish(ev) and on_event is not None:
                    on_event(ev)
                raise_if_cancelled()  # publishing flat out, a publish waits for forced flushes
        finally:
            await self._flush_at_end()
            await source.aclose()
        return self.published


    async def _flush_at_end(self) -> None:
        """Push out what is buffered. Market data is not durable (core NATS): at shutdown a server
        too slow to answer costs at most the last events, said in the log, never a failed exit."""
        if not self.nc.is_connected:
            return
        try:
            await self.nc.flush(timeout=FLUSH_AT_END_S)
        except (nats.errors.Error, TimeoutError, asyncio.InvalidStateError) as err:
            log.warning("the last market events may not have reached NATS: the final flush failed (%s)",
                        type(err).__name__)


Handler = Callable[[MarketEvent], Awaitable[None]]


async def subscribe(
    nc: Client,
    catalog: Catalog,
    handler: Handler,
    *,
    venue: str = "*",
    symbol: str = "*",
    kind: str = "*",
    consumer: str = "md-subscriber",
) -> tuple[Subscription, SeqTracker]:
    """Subscribe to market events; malformed messages are counted (titan_bus_rejects_total) and
    skipped, sequence gaps counted (titan_md_gaps_total). Returns the subscription and its tracker."""
    tracker = SeqTracker()

    async def on_msg(msg: Msg) -> None:
        try:
            ev = decode(msg.data)
        except MalformedEvent as err:
            BUS_REJECTS.labels(consumer, err.reason).inc()
            return
        tracker.check(ev)
        await handler(ev)

    sub = await nc.subscribe(
        catalog.md_filter(venue, symbol, kind), cb=on_msg, pending_msgs_limit=1_000_000,
        pending_bytes_limit=512 * 1024 * 1024,
    )
    return sub, tracker
