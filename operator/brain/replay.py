"""The Brain's replay after a restart, message by message in stream order, as a pure object.

A closed trade is only counted whole if the Brain saw its position open: the opening fills' fees
and the funding paid since are carried (:meth:`BrainCore.carry`) to the fill that closes it. So the
replay does not start at the performance window: it starts where the last one left its checkpoint
(a :class:`titan.v1.BrainCarry`: what every open position carried through a stream sequence), or
at the stream's start. Messages stored before the window only carry; the trades of those inside it
are counted too. The new checkpoint is the carry as it stood just before the window (or at the end,
when no message was inside it): the next restart's window starts later, so it can start there.

The NATS shell (:meth:`titan.operator.runtime.BrainRuntime._replay_trades`) fetches the messages
and stores the checkpoint; this module decides what they change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from titan.core.money import MoneyError, to_decimal, to_wire
from titan.operator.brain.engine import BrainCore, PositionKey
from titan.operator.brain.feed import replayed_trade
from titan.v1 import events_pb2


def checkpoint(through_seq: int, carried: Mapping[PositionKey, Decimal], ts_ns: int) -> events_pb2.BrainCarry:
    """The checkpoint of ``carried`` after stream sequence ``through_seq`` (positions that carry
    nothing are left out)."""
    return events_pb2.BrainCarry(
        through_seq=through_seq, ts_ns=ts_ns,
        carried=[events_pb2.CarriedAmount(phase_id=key.phase_id, venue=key.venue, symbol=key.symbol,
                                          instrument=key.instrument,  # type: ignore[arg-type]
                                          amount=to_wire(amount))
                 for key, amount in sorted(carried.items()) if amount],
    )


def carried_of(stored: events_pb2.BrainCarry) -> dict[PositionKey, Decimal]:
    """What a checkpoint says each position carried. Raises MoneyError on a malformed amount."""
    carried: dict[PositionKey, Decimal] = {}
    for row in stored.carried:
        key = PositionKey(row.phase_id, row.venue, row.symbol, int(row.instrument))
        carried[key] = carried.get(key, Decimal(0)) + to_decimal(row.amount)
    return carried


class Replay:
    """Feeds replayed messages into ``core``: from ``after_seq + 1`` (``carried`` being what the
    positions carried through ``after_seq``), counting trades from messages stored at or after
    ``window_start_ns``. ``trades`` counts what was recorded, ``refused`` the events with a malformed
    amount; :meth:`checkpoint` is the next checkpoint."""

    def __init__(self, core: BrainCore, window_start_ns: int, after_seq: int = 0,
                 carried: Mapping[PositionKey, Decimal] | None = None) -> None:
        self.core = core
        self.window_start_ns = window_start_ns
        self.after_seq = after_seq
        self.trades = 0
        self.refused = 0
        self._last_seq = after_seq
        self._before_window: tuple[int, dict[PositionKey, Decimal]] | None = None
        core.adopt_carried(carried or {})

    def message(self, seq: int, stored_ns: int, events: Iterable[events_pb2.Event]) -> None:
        """One stored message: stream sequence ``seq``, stored at ``stored_ns``, its events."""
        if self._before_window is None and stored_ns >= self.window_start_ns:
            self._before_window = (self._last_seq, self.core.carried())
        counting = self._before_window is not None
        for event in events:
            try:
                trade = replayed_trade(self.core, event)
            except MoneyError:  # refused live too: it never counted
                self.refused += 1
                continue
            if trade is not None and counting:
                self.core.performance.record(trade)
                self.trades += 1
        self._last_seq = seq

    def checkpoint(self, ts_ns: int) -> events_pb2.BrainCarry:
        """The carry just before the window's first message, or after the last one replayed."""
        seq, carried = self._before_window or (self._last_seq, self.core.carried())
        return checkpoint(seq, carried, ts_ns)


__all__ = ["Replay", "carried_of", "checkpoint"]
