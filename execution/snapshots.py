"""Position snapshots in the ledger, taken by execution.

A snapshot is the fold (``titan.execution.engine.recovery.fold_into``) of every fill and funding
payment recorded up to a cursor, computed from the ledger's rows alone, never from the engine's
memory: the fills stay the truth. :func:`take` folds what was recorded since the newest snapshot into
the next one; execution runs it after start and every ``snapshot_interval_s``, so a restart replays
only the rows recorded since (see docs/ledger.md, "Snapshots")."""

from __future__ import annotations

import asyncio
import logging

from titan.core.ledger import Ledger
from titan.core.ledger.snapshots import Cursor, Snapshot
from titan.execution.engine.recovery import fold, fold_into, snapshot_position

log = logging.getLogger("titan.execution")

CHUNK = 2_000  # fills folded between two yields to the event loop
PAGE = 50_000  # fills (by seq) loaded at once; each page is folded in time order


async def take(ledger: Ledger, now_ns: int) -> Snapshot | None:
    """Fold the rows recorded since the newest snapshot into a new one and store it; None if
    nothing was recorded since (or another process stored a newer one meanwhile)."""
    base = await ledger.latest_snapshot()
    upto = await ledger.cursor()
    if upto <= base.cursor:
        return None
    positions = fold(base.positions, ())
    folded = 0
    for low in range(base.cursor.fill_seq, upto.fill_seq, PAGE):  # bounded memory, in record order
        fills = await ledger.fills_after(Cursor(low, 0), Cursor(min(low + PAGE, upto.fill_seq), 0))
        for start in range(0, len(fills), CHUNK):
            fold_into(positions, fills[start:start + CHUNK])
            await asyncio.sleep(0)  # the hot path runs on this loop too
        folded += len(fills)
    fold_into(positions, (), await ledger.funding_after(base.cursor, upto))
    snapshot = Snapshot(upto, now_ns, tuple(snapshot_position(positions[key]) for key in sorted(positions)),
                        base.fills_folded + folded)
    if not await ledger.save_snapshot(snapshot):
        return None
    log.info("ledger snapshot: %d positions at fill %d, funding %d (%d fills folded now, %d in all)",
             len(snapshot.positions), upto.fill_seq, upto.funding_seq, folded, snapshot.fills_folded)
    return snapshot
