"""When resting paper orders expire: a heap of (expiry, rest sequence, client order id), so a tick and
the question "when is the next one due" cost what is due, not what rests (a thin book can leave
hundreds of thousands of market remainders resting for their minute).

An entry is only a hint: the order it names may have filled, been canceled or expired since. It is
checked against the engine's books when it comes up, and dropped if it no longer rests with that
expiry; the heap is rebuilt from the working orders whenever it has doubled since the last rebuild."""

from __future__ import annotations

import heapq

from titan.execution.market import InstrumentKey
from titan.execution.orders import ManagedOrder

_COMPACT_AT = 4096  # the heap is first rebuilt (stale entries swept) at this size


class Expiries:
    __slots__ = ("_compact_at", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str]] = []
        self._seq = 0  # rest order: within an instrument, the order of its working-orders dict
        self._compact_at = _COMPACT_AT

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, order: ManagedOrder) -> None:
        """``order`` came to rest with an expiry (call once per rest, before it can expire)."""
        self._seq += 1
        heapq.heappush(self._heap, (order.expires_at_ns, self._seq, order.client_order_id))

    def due(self, working: dict[InstrumentKey, dict[str, ManagedOrder]], now: int) -> list[ManagedOrder]:
        """The resting orders whose expiry has come, each once, in the order a walk over the
        working orders would meet them (instrument by instrument, oldest first)."""
        heap = self._heap
        found: dict[str, tuple[InstrumentKey, int, ManagedOrder]] = {}
        while heap and heap[0][0] <= now:
            _, seq, cid = heapq.heappop(heap)
            order = _resting(working, cid)
            if order is None or cid in found:
                continue
            if order.expires_at_ns > now:  # its expiry moved later: it waits for that
                heapq.heappush(heap, (order.expires_at_ns, seq, cid))
                continue
            found[cid] = ((order.venue, order.symbol, order.instrument), seq, order)
        self._compact(working)
        if not found:
            return []
        rank = {key: i for i, key in enumerate(working)}
        return [order for _, _, order in sorted(found.values(), key=lambda f: (rank[f[0]], f[1]))]

    def next_ns(self, working: dict[InstrumentKey, dict[str, ManagedOrder]]) -> int | None:
        """The earliest expiry of a resting order (None: none has one)."""
        heap = self._heap
        while heap and _resting(working, heap[0][2]) is None:
            heapq.heappop(heap)
        self._compact(working)
        return heap[0][0] if heap else None

    def _compact(self, working: dict[InstrumentKey, dict[str, ManagedOrder]]) -> None:
        """Rebuild the heap from the resting orders once it doubled since the last rebuild (so the
        sweep costs O(1) per entry, amortized)."""
        if len(self._heap) < self._compact_at:
            return
        seqs = {cid: seq for _, seq, cid in self._heap}
        self._heap = [(o.expires_at_ns, seqs.get(o.client_order_id, 0), o.client_order_id)
                      for work in working.values() for o in work.values() if o.is_open and o.expires_at_ns]
        heapq.heapify(self._heap)
        self._compact_at = max(_COMPACT_AT, 2 * len(self._heap))


def _resting(working: dict[InstrumentKey, dict[str, ManagedOrder]], cid: str) -> ManagedOrder | None:
    """The open order resting under ``cid`` with an expiry, or None."""
    for work in working.values():
        order = work.get(cid)
        if order is not None:
            return order if order.is_open and order.expires_at_ns else None
    return None
