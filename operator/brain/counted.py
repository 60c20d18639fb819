"""The ids of the events the Brain has counted, so that an event delivered again is not counted
twice: a message redelivered after its ack was lost, or an event published again inside a
different batch (execution's outbox replayed after JetStream's duplicate window). The ledger drops
such copies by id; this gives the Brain the same property for the most recent ``capacity`` ids."""

from __future__ import annotations

from collections import deque

DEFAULT_CAPACITY = 100_000  # fill and funding ids: days of trading for every phase, ~10 MB


class CountedIds:
    """A bounded set of event ids, oldest forgotten first."""

    __slots__ = ("_ids", "_order", "capacity")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def first(self, event_id: str) -> bool:
        """True (and remembered) the first time ``event_id`` is seen; False for a copy. An event
        without an id cannot be told from a copy and always counts."""
        if not event_id:
            return True
        if event_id in self._ids:
            return False
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())
        return True

    def __len__(self) -> int:
        return len(self._order)
