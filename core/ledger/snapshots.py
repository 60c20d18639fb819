"""Value types of position snapshots (see docs/ledger.md, "Snapshots").

A snapshot is every position folded from the fills and funding payments recorded up to a
:class:`Cursor` (their ``seq`` numbers, assigned in the order rows are recorded). Restoring from it
and replaying the rows recorded after the cursor gives what replaying every row gives."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from titan.v1 import trading_pb2


@dataclass(frozen=True, order=True)
class Cursor:
    """The last fill and funding payment (by ``seq``) a snapshot includes; 0: none."""

    fill_seq: int = 0
    funding_seq: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Positions as of ``cursor``: quantity, average entry, realized PnL, fees, funding, time and
    version of each (marks, leverage and unrealized PnL are not part of it)."""

    cursor: Cursor
    taken_at_ns: int
    positions: tuple[trading_pb2.Position, ...]
    fills_folded: int = 0  # fills the snapshot accounts for, over its whole history


EMPTY = Snapshot(Cursor(), 0, ())


@dataclass(frozen=True)
class FillTotals:
    """What the recorded fills of one order add up to."""

    quantity: Decimal
    notional: Decimal  # sum of quantity x price
    fees: Decimal
