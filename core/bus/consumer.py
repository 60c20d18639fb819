"""A durable JetStream pull consumer with explicit acks.

Each message is decoded, handed to an async handler, and acked only after the handler returns.
A handler exception naks the message with a growing delay (JetStream redelivers it); a message that
cannot be decoded, or that the handler rejects with :class:`Reject`, is terminated (never
redelivered) and counted in ``titan_bus_rejects_total{consumer,reason}``. Nothing a message does
stops the fetch loop. A batch handler takes every decoded message of a fetch at once and answers
each (None: ack; :class:`Reject`: terminate; another exception: nak); if it raises, the whole fetch
is naked. With ``pipeline`` > 1 that many batches are handed over at once (the next one while the
previous is still being handled): the handler keeps their order itself.

Messages come through a :class:`~titan.core.bus.pull.PullFeed`, which keeps one pull request open
ahead of the handler so the next batch arrives while the current one is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy

from titan.core.bus.events import InvalidEvent
from titan.core.bus.pull import ConsumerGone, PullFeed
from titan.core.catalog import ConsumerSpec
from titan.core.metrics import BUS_REJECTS
from titan.core.tasks import raise_if_cancelled

log = logging.getLogger("titan.bus")

T = TypeVar("T")


class Reject(Exception):
    """Raised by a handler for a message that can never succeed: it is terminated, not retried."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def consumer_config(spec: ConsumerSpec) -> ConsumerConfig:
    return ConsumerConfig(
        name=spec.durable,
        durable_name=spec.durable,
        description=spec.description,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait_s,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        filter_subject=spec.filter_subject,
    )


class DurableConsumer(Generic[T]):
    """Pull consumer bound to a :class:`ConsumerSpec`.

    ``decode(payload)`` turns a message into a ``T`` and raises (ideally :class:`InvalidEvent` or
    :class:`Reject`, whose ``reason`` becomes the metric label) for a malformed one;
    ``handler(value)`` processes it."""

    def __init__(
        self,
        nc: Client,
        spec: ConsumerSpec,
        handler: Callable[[T], Awaitable[None]] | None,
        decode: Callable[[bytes], T],
        *,
        batch_handler: Callable[[list[T]], Awaitable[list[Exception | None]]] | None = None,
        batch: int = 64,
        pipeline: int = 1,
        fetch_timeout_s: float = 1.0,
        nak_delay_s: float = 0.5,
        max_nak_delay_s: float = 30.0,
    ) -> None:
        if batch < 1 or pipeline < 1 or fetch_timeout_s <= 0 or nak_delay_s < 0 or max_nak_delay_s < nak_delay_s:
            raise ValueError("invalid consumer settings")
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler and batch_handler")
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.spec = spec
        self._handler = handler
        self._batch_handler = batch_handler
        self._decode = decode
        self._batch = batch
        self._pipeline = pipeline
        self._fetch_timeout = fetch_timeout_s
        self._nak_delay = nak_delay_s
        self._max_nak_delay = max_nak_delay_s
        self._feed: PullFeed | None = None
        self._task: asyncio.Task[None] | None = None
        self._fetching: asyncio.Task[list[Msg]] | None = None
        self._stopping = False
        # counters for diagnostics and tests
        self.acked = 0
        self.naked = 0
        self.terminated = 0

    @property
    def name(self) -> str:
        name: str = self.spec.durable
        return name

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def ensure(self) -> ConsumerInfo:
        """Create the durable consumer, or update it to the spec (idempotent)."""
        return await self.js.add_consumer(self.spec.stream, consumer_config(self.spec))

    async def start(self) -> None:
        if self.running:
            return
        await self.ensure()
        self._feed = PullFeed(self.nc, self.spec.stream, self.spec.durable, batch=self._batch,
                              expires_s=self._fetch_timeout)
        await self._feed.start()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.name}")

    async def stop(self) -> None:
        """Stop fetching; a message being handled is finished (and acked) first."""
        self._stopping = True
        if self._fetching is not None and not self._fetching.done():
            self._fetching.cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._feed is not None:
            held = await self._feed.stop()  # delivered, never handed to a handler: back for prompt redelivery
            self._feed = None
            for msg in held:
                with contextlib.suppress(Exception):
                    await msg.nak()

    async def __aenter__(self) -> DurableConsumer[T]:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        handling: deque[asyncio.Task[None]] = deque()  # batches handed over, oldest first
        try:
            await self._fetch_and_handle(handling)
        finally:
            for task in handling:  # finished (settled) before the consumer counts as stopped
                await task

    async def _fetch_and_handle(self, handling: deque[asyncio.Task[None]]) -> None:
        assert self._feed is not None
        feed = self._feed
        backoff = 0.1
        while not self._stopping:
            raise_if_cancelled()
            self._fetching = asyncio.ensure_future(feed.fetch(self._fetch_timeout))
            try:
                msgs = await self._fetching
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except (nats.errors.TimeoutError, TimeoutError):  # an idle fetch window (nats-py raises either)
                backoff = 0.1
                continue
            except Exception as exc:  # connection trouble, consumer deleted, ...: keep trying
                if self._stopping:
                    return
                if isinstance(exc, nats.errors.ConnectionClosedError):  # closed for good, not reconnecting
                    log.warning("consumer %s: NATS connection closed; consumer stopped", self.name)
                    return
                log.warning("consumer %s: fetch failed: %s: %s", self.name, type(exc).__name__, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                if isinstance(exc, (ConsumerGone, nats.js.errors.NotFoundError)):
                    with contextlib.suppress(Exception):
                        await self.ensure()
                continue
            finally:
                self._fetching = None
            backoff = 0.1
            if self._batch_handler is not None:
                if self._pipeline == 1:
                    await self._process_batch(msgs)
                    continue
                while len(handling) >= self._pipeline:
                    await handling.popleft()
                handling.append(asyncio.create_task(self._process_batch(msgs)))
                continue
            for msg in msgs:
                if self._stopping:  # hand the rest back for prompt redelivery
                    with contextlib.suppress(Exception):
                        await msg.nak()
                    continue
                await self._process(msg)

    async def _decoded(self, msg: Msg) -> tuple[T] | None:
        """(value,), or None after terminating an undecodable message."""
        try:
            return (self._decode(msg.data),)
        except Exception as exc:
            await self._undecodable(msg, exc)
        return None

    async def _undecodable(self, msg: Msg, exc: Exception) -> None:
        reason = exc.reason if isinstance(exc, (InvalidEvent, Reject)) else "decode"
        await self._term(msg, reason, exc)

    async def _settle(self, msg: Msg, outcome: Exception | None) -> None:
        if isinstance(outcome, Reject):
            await self._term(msg, outcome.reason, outcome)
        elif outcome is not None:
            await self._nak(msg, outcome)
        else:
            try:
                await msg.ack()
                self.acked += 1
            except Exception as exc:  # the message will be redelivered; handlers are idempotent
                log.warning("consumer %s: ack failed: %s: %s", self.name, type(exc).__name__, exc)

    async def _process(self, msg: Msg) -> None:
        decoded = await self._decoded(msg)
        if decoded is None:
            return
        assert self._handler is not None
        outcome: Exception | None = None
        try:
            await self._handler(decoded[0])
        except Exception as exc:
            outcome = exc
        await self._settle(msg, outcome)

    async def _process_batch(self, msgs: list[Msg]) -> None:
        assert self._batch_handler is not None
        batch: list[tuple[Msg, T]] = []
        decode = self._decode
        for msg in msgs:
            try:
                batch.append((msg, decode(msg.data)))
            except Exception as exc:
                await self._undecodable(msg, exc)
        if not batch:
            return
        try:
            outcomes = await self._batch_handler([value for _, value in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"batch handler answered {len(outcomes)} of {len(batch)} messages")
        except Exception as exc:
            outcomes = [exc] * len(batch)
        for (msg, _), outcome in zip(batch, outcomes, strict=True):
            await self._settle(msg, outcome)

    def _delay_for(self, msg: Msg) -> float:
        try:
            delivered = msg.metadata.num_delivered or 1
        except Exception:
            delivered = 1
        return float(min(self._nak_delay * (2 ** min(delivered - 1, 16)), self._max_nak_delay))

    async def _nak(self, msg: Msg, exc: Exception) -> None:
        delay = self._delay_for(msg)
        log.warning(
            "consumer %s: handler failed (%s: %s); redelivery in %.1fs", self.name, type(exc).__name__, exc, delay
        )
        try:
            await msg.nak(delay=delay)
            self.naked += 1
        except Exception as nak_exc:  # redelivered after ack_wait anyway
            log.warning("consumer %s: nak failed: %s", self.name, nak_exc)

    async def _term(self, msg: Msg, reason: str, exc: Exception) -> None:
        BUS_REJECTS.labels(consumer=self.name, reason=reason).inc()
        self.terminated += 1
        log.warning("consumer %s: rejected message on %s: %s", self.name, msg.subject, exc)
        try:
            await msg.term()
        except Exception as term_exc:
            log.warning("consumer %s: term failed: %s", self.name, term_exc)
