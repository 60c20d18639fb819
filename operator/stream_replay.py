"""The NATS side of the Brain's replay (:mod:`titan.operator.brain.replay` decides what each message
changes): the messages its durable consumer already acked, read again from TITAN_EVENTS by an
ephemeral consumer, and the carry checkpoint in the control bucket.

Two uses:
* at a restart, :meth:`StreamReplay.into` feeds the Brain's core from the checkpoint to the ack
  floor (trades counted from the performance window on) and stores the carry as it stood before
  the window as the next checkpoint;
* while the Brain runs, :meth:`StreamReplay.advance` moves the checkpoint up to the window's start
  on a scratch core, so that the next restart reads a window and a little more, however long ago
  the last one was.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence

import nats.errors
from google.protobuf.message import DecodeError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from titan.core.bus import InvalidEvent, StateStore, decode_event, unpack
from titan.core.catalog import Catalog
from titan.core.clock import NS_PER_S
from titan.core.money import MoneyError
from titan.operator.brain import BrainCore
from titan.operator.brain.replay import Replay, carried_of
from titan.v1 import events_pb2

log = logging.getLogger("titan.brain")

FETCH = 256  # messages per fetch
StoredMessage = tuple[int, int, Sequence[events_pb2.Event]]  # stream sequence, stored at (ns), its events


class StreamReplay:
    """Replays of the Brain durable's acked messages, and the carry checkpoint they leave."""

    def __init__(self, js: JetStreamContext, catalog: Catalog, store: StateStore) -> None:
        self.js = js
        self.catalog = catalog
        self.store = store

    async def ack_floor(self) -> int | None:
        """The stream sequence through which the Brain's durable has acked everything; None before
        its first start (it will deliver everything itself)."""
        spec = self.catalog.brain_consumer
        try:
            info = await self.js.consumer_info(spec.stream, spec.durable)
        except NotFoundError:
            return None
        return info.ack_floor.stream_seq or 0

    async def into(self, core: BrainCore, window_start_ns: int, upto: int, now_ns: int) -> int:
        """Feed ``core`` the messages after the checkpoint through ``upto``; store the next checkpoint.
        Returns the trades recorded."""
        replay = await self._from_checkpoint(core, window_start_ns, upto)
        if replay.after_seq < upto:
            async with contextlib.aclosing(self._stored(replay.after_seq, upto)) as stored:
                async for seq, stored_ns, events in stored:
                    replay.message(seq, stored_ns, events)
        await self._finish(replay, now_ns)
        return replay.trades

    async def advance(self, window_start_ns: int, upto: int, now_ns: int) -> int | None:
        """Move the checkpoint (or make the first, from the stream's start) over the acked messages
        (through ``upto``) stored before ``window_start_ns``, on a scratch core; returns the new
        checkpoint's sequence, or None when it did not move."""
        replay = await self._from_checkpoint(BrainCore(), window_start_ns, upto)
        if replay.after_seq >= upto:
            return None
        async with contextlib.aclosing(self._stored(replay.after_seq, upto)) as messages:
            async for seq, stored_ns, events in messages:
                if stored_ns >= window_start_ns:
                    break
                replay.message(seq, stored_ns, events)
        checkpoint = await self._finish(replay, now_ns)
        return None if checkpoint is None else checkpoint.through_seq

    async def _from_checkpoint(self, core: BrainCore, window_start_ns: int, upto: int) -> Replay:
        """A replay into ``core`` from the stored checkpoint, or from the stream's start when there is
        none the durable can go on from."""
        try:
            stored = await self.store.get_brain_carry()
            if stored is not None and stored.through_seq <= upto:
                return Replay(core, window_start_ns, stored.through_seq, carried_of(stored))
            if stored is not None:  # the durable was made again since: it counted from the start
                log.warning("carry checkpoint at sequence %d is past the Brain's ack floor %d: replaying from "
                            "the start", stored.through_seq, upto)
        except (DecodeError, MoneyError) as exc:
            log.warning("carry checkpoint unreadable (%s): replaying from the start", exc)
        return Replay(core, window_start_ns)

    async def _finish(self, replay: Replay, now_ns: int) -> events_pb2.BrainCarry | None:
        """Log what was refused and store the next checkpoint if it moved on."""
        if replay.refused:
            log.warning("replay: %d events with a malformed amount left out", replay.refused)
        checkpoint = replay.checkpoint(now_ns)
        if checkpoint.through_seq <= replay.after_seq:
            return None
        await self.store.put_brain_carry(checkpoint)
        return checkpoint

    async def _stored(self, after_seq: int, upto: int) -> AsyncGenerator[StoredMessage, None]:
        """The fills, funding payments and execution batches stored after ``after_seq`` through ``upto``:
        each message's stream sequence, when it was stored, and its events (undecodable ones skipped)."""
        spec = self.catalog.brain_consumer
        fills = self.catalog.event_subject("execution", "fill")
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after_seq else DeliverPolicy.ALL,
            opt_start_seq=after_seq + 1 if after_seq else None,
            filter_subjects=[fills, *(self.catalog.event_subject("execution", kind) for kind in ("funding", "batch"))],
            ack_policy=AckPolicy.NONE, inactive_threshold=30.0,
        )
        sub = await self.js.pull_subscribe(fills, stream=spec.stream, config=config)
        try:
            while True:
                try:
                    msgs = await sub.fetch(FETCH, timeout=1.0)
                except (nats.errors.TimeoutError, TimeoutError):
                    return  # nothing more stored
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq > upto:
                        return  # the durable delivers the rest
                    try:
                        events = unpack(decode_event(msg.data))
                    except InvalidEvent:
                        continue
                    yield seq, int(msg.metadata.timestamp.timestamp() * NS_PER_S), events
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
