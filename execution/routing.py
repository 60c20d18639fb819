"""Which engine update goes to which phase, and as which ``ExecutionUpdate``.

A phase's stream carries the updates of its own orders and positions: order snapshots, fills,
position snapshots and the outcomes of its hedged units, in the order the engine produced them (for
one input: orders, then fills, then positions, then outcomes). Funding payments, equity snapshots,
signal decisions and trading states stay on the bus: a position snapshot already carries the funding
it accumulated. Updates without a phase go nowhere.

Pure and deterministic: the gRPC servicer calls it (as :func:`phase_messages`, batched for the
wire) once the updates are in JetStream, the backtest driver calls it on the engine's output directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from titan.execution.engine import Update
from titan.v1 import execution_pb2, trading_pb2

_FIELD = {trading_pb2.Order: "order", trading_pb2.Fill: "fill", trading_pb2.Position: "position",
          trading_pb2.HedgeOutcome: "hedge"}  # the updates a phase receives, by their ExecutionUpdate field


def _routed(updates: Iterable[Update]) -> Iterator[tuple[str, str, Update]]:
    """Each update a phase receives, with its phase id and its ExecutionUpdate field."""
    for update in updates:
        field = _FIELD.get(type(update))
        if field is not None and update.phase_id:  # type: ignore[union-attr]
            yield update.phase_id, field, update  # type: ignore[union-attr]


def phase_updates(updates: Iterable[Update]) -> dict[str, list[execution_pb2.ExecutionUpdate]]:
    """The stream messages per phase id, each phase's in the order of ``updates``."""
    by_phase: dict[str, list[execution_pb2.ExecutionUpdate]] = {}
    for phase, field, update in _routed(updates):
        msg = execution_pb2.ExecutionUpdate()
        getattr(msg, field).CopyFrom(update)
        by_phase.setdefault(phase, []).append(msg)
    return by_phase


def phase_messages(updates: Iterable[Update], per_message: int = 512) -> dict[str, list[execution_pb2.ExecutionUpdate]]:
    """The same updates as :func:`phase_updates`, as few stream messages as possible: up to
    ``per_message`` of a phase's updates in one ``UpdateBatch``, in order, each copied once (a
    lone update goes as itself)."""
    by_phase: dict[str, list[execution_pb2.ExecutionUpdate]] = {}
    filling: dict[str, _Filling] = {}  # per phase, its last message (reading a batch's size back is dear)
    for phase, field, update in _routed(updates):
        last = filling.get(phase)
        if last is None or last.held >= per_message:
            message = execution_pb2.ExecutionUpdate()
            by_phase.setdefault(phase, []).append(message)
            last = filling[phase] = _Filling(message.updates.updates.add)
        getattr(last.add(), field).CopyFrom(update)
        last.held += 1
    for phase, messages in by_phase.items():
        if filling[phase].held == 1:
            messages[-1] = messages[-1].updates.updates[0]
    return by_phase


class _Filling:
    """A phase's ``UpdateBatch`` being filled: its ``add`` and how many updates it holds."""

    __slots__ = ("add", "held")

    def __init__(self, add: Callable[[], execution_pb2.ExecutionUpdate]) -> None:
        self.add = add
        self.held = 0


def ack_update(ack: trading_pb2.SignalAck) -> execution_pb2.ExecutionUpdate:
    """The stream message of a signal's ack (written to the signal's own stream, never routed)."""
    return execution_pb2.ExecutionUpdate(ack=ack)
