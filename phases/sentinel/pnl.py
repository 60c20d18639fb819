"""The PnL of Sentinel positions split into basis PnL, funding PnL and fees.

One pure function over the ledger's own records (fills and funding payments) and the marks at the
end, so the backtest result and ``titan report`` compute the same numbers. For a hedged position
(long spot, short perp in equal base quantity) the two legs' price PnL together is what the basis
did between entry and exit; any residual delta's PnL is included there and reported as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from titan.core.money import to_decimal
from titan.v1 import common_pb2, trading_pb2

_ZERO = Decimal(0)
SPOT = common_pb2.INSTRUMENT_KIND_SPOT
PERP = common_pb2.INSTRUMENT_KIND_PERP
BUY = common_pb2.SIDE_BUY


@dataclass
class CarryPnL:
    """One symbol's Sentinel PnL in quote currency."""

    symbol: str
    basis_pnl: Decimal = _ZERO      # both legs' price PnL (realized + at the final marks)
    funding_pnl: Decimal = _ZERO    # received (> 0) or paid (< 0)
    fees: Decimal = _ZERO           # paid (> 0)
    spot_quantity: Decimal = _ZERO  # open at the end
    perp_quantity: Decimal = _ZERO
    fills: int = 0
    settlements: int = 0
    _cash: Decimal = field(default=_ZERO, repr=False)

    @property
    def net(self) -> Decimal:
        return self.basis_pnl + self.funding_pnl - self.fees

    @property
    def residual_delta(self) -> Decimal:
        """Base quantity unhedged at the end (0 for a flat or perfectly hedged position)."""
        return self.spot_quantity + self.perp_quantity


def carry_breakdown(
    fills: Iterable[trading_pb2.Fill],
    funding: Iterable[trading_pb2.FundingPayment],
    marks: Mapping[tuple[str, int], Decimal] | None = None,
    phase_id: str = "sentinel",
) -> dict[str, CarryPnL]:
    """Per symbol: price PnL of both legs as cash flows plus the open quantity at ``marks``
    ((symbol, instrument kind) -> price; without a mark an open leg counts at its last fill price),
    funding received, and fees, for ``phase_id``'s records only."""
    out: dict[str, CarryPnL] = {}
    last_price: dict[tuple[str, int], Decimal] = {}
    for f in fills:
        if f.phase_id != phase_id:
            continue
        row = out.setdefault(f.symbol, CarryPnL(f.symbol))
        qty, price = to_decimal(f.quantity), to_decimal(f.price)
        signed = qty if f.side == BUY else -qty
        row._cash -= signed * price
        row.fees += to_decimal(f.fee)
        row.fills += 1
        if f.instrument == PERP:
            row.perp_quantity += signed
        else:
            row.spot_quantity += signed
        last_price[(f.symbol, int(f.instrument))] = price
    for fp in funding:
        if fp.phase_id != phase_id:
            continue
        row = out.setdefault(fp.symbol, CarryPnL(fp.symbol))
        row.funding_pnl += to_decimal(fp.amount)
        row.settlements += 1
    marks = marks or {}
    for symbol, row in out.items():
        value = row._cash
        for kind, qty in ((SPOT, row.spot_quantity), (PERP, row.perp_quantity)):
            if qty:
                value += qty * marks.get((symbol, int(kind)), last_price.get((symbol, int(kind)), _ZERO))
        row.basis_pnl = value
    return out


def totals(rows: Iterable[CarryPnL]) -> dict[str, Decimal]:
    """The breakdown summed over symbols."""
    t = {"basis_pnl": _ZERO, "funding_pnl": _ZERO, "fees": _ZERO, "net": _ZERO}
    for r in rows:
        t["basis_pnl"] += r.basis_pnl
        t["funding_pnl"] += r.funding_pnl
        t["fees"] += r.fees
        t["net"] += r.net
    return t
