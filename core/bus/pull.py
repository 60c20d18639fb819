"""A lean pull feed for a durable JetStream consumer: pull requests on a plain NATS inbox, one kept
open ahead of the consumer so the next batch streams in while the current one is handled.

nats-py's ``PullSubscription.fetch`` waits for every message through a task of its own (and a
timer), which costs more than storing the event; here a subscription callback appends each
delivered message to a buffer. The protocol is JetStream's: a request ``{"batch": n, "expires":
ns}`` on ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`` with a reply inbox; the server delivers up
to n messages to that inbox, then, if it delivered fewer before ``expires``, a status message (408).
Each request has its own reply subject, so a late status from an older request never ends the
current one. Messages are acked by the caller as before (``msg.ack()``), after it handled them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

STATUS_HEADER = "Status"
DESCRIPTION_HEADER = "Description"
HEARTBEAT = "100"
REQUEST_ENDED = {"404", "408"}  # no messages (no_wait) / the request expired
GRACE_S = 0.5  # a request the server has not ended this long after it expired is taken as lost


class PullRefused(Exception):
    """The server ended a pull request with an error status (the text is the status line)."""


class ConsumerGone(PullRefused):
    """The server answered a pull request with a status saying the consumer is not there."""


class PullFeed:
    """Delivered messages of ``durable`` on ``stream``, at most ``batch`` per :meth:`fetch`.

    One pull request of ``batch`` messages is kept open while fewer than ``batch`` are buffered, so
    at most two batches are held (not yet acked) at once. Requests expire after ``expires_s``."""

    def __init__(self, nc: Client, stream: str, durable: str, *, batch: int, expires_s: float) -> None:
        if batch < 1 or expires_s <= 0:
            raise ValueError("invalid pull feed settings")
        self._nc = nc
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._batch = batch
        self._expires_s = expires_s
        self._buffer: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._inbox = ""
        self._sub: Subscription | None = None
        self._requests = 0
        self._open = ""  # reply subject of the open request ("" = none open)
        self._owed = 0  # messages the open request may still deliver
        self._open_until = 0.0  # loop time after which the open request is taken as lost
        self._refused: PullRefused | None = None  # an error status, raised by the next fetch

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_message)

    async def stop(self) -> list[Msg]:
        """Unsubscribe; returns the messages delivered and not yet fetched (for the caller to nak)."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            with contextlib.suppress(Exception):  # a closed connection: nothing to unsubscribe from
                await sub.unsubscribe()
        held = list(self._buffer)
        self._buffer.clear()
        self._open = ""
        return held

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers
        if headers and not msg.data and STATUS_HEADER in headers:
            status = headers[STATUS_HEADER]
            if status == HEARTBEAT or msg.subject != self._open:
                return  # a heartbeat, or the end of a request already given up on
            self._open, self._owed = "", 0
            if status not in REQUEST_ENDED:
                description = headers.get(DESCRIPTION_HEADER, "")
                line = f"{status} {description}".strip()
                gone = status == "503" or "consumer" in description.lower()  # no responders / consumer deleted
                self._refused = ConsumerGone(line) if gone else PullRefused(line)
            self._arrived.set()
            return
        self._buffer.append(msg)
        if self._owed > 0:
            self._owed -= 1
            if self._owed == 0:
                self._open = ""
        self._arrived.set()

    async def _request(self) -> None:
        """Open a request for ``batch`` messages unless one is open or a batch is buffered already."""
        loop = asyncio.get_running_loop()
        if self._open and loop.time() < self._open_until:
            return
        if len(self._buffer) >= self._batch:
            return
        self._requests += 1
        reply = f"{self._inbox}.{self._requests}"
        payload = json.dumps({"batch": self._batch, "expires": int(self._expires_s * 1e9)}).encode()
        self._open, self._owed = reply, self._batch
        self._open_until = loop.time() + self._expires_s + GRACE_S
        await self._nc.publish(self._next_subject, payload, reply=reply)

    async def fetch(self, timeout: float) -> list[Msg]:
        """Up to ``batch`` messages, waiting up to ``timeout`` for the first. Raises
        :class:`nats.errors.TimeoutError` when none came, :class:`ConsumerGone` when the server says
        the consumer is missing (:class:`PullRefused` for another error status),
        :class:`nats.errors.ConnectionClosedError` once the client closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._nc.is_closed:
                raise nats.errors.ConnectionClosedError
            if self._refused is not None:
                refused, self._refused = self._refused, None
                raise refused
            if self._buffer:
                count = min(self._batch, len(self._buffer))
                msgs = [self._buffer.popleft() for _ in range(count)]
                await self._request()  # the next batch streams in while this one is handled
                return msgs
            await self._request()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise nats.errors.TimeoutError
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(remaining, self._expires_s + GRACE_S))
            except TimeoutError:
                continue
