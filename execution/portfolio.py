"""Positions and PnL per (phase, venue, symbol, instrument). All money is Decimal.

* A fill that adds to a position moves the average entry price (volume-weighted); a fill against
  it realizes ``(fill price - average entry) * closed quantity`` (sign-adjusted for shorts); a fill
  larger than the position closes it and opens the rest on the other side at the fill price.
* ``realized_pnl`` is before fees, rounded per fill to 1e-12 quote (the average entry is a quotient,
  kept to 38 significant digits); fees (negative = rebate) and funding (received > 0, paid < 0)
  are kept separately. Net PnL = realized + unrealized - fees + funding.
* Unrealized PnL is valued at the instrument's reference price (mark, else mid, else last trade).
* Daily PnL per phase is net PnL minus its value at the last 00:00 UTC roll.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from titan.core.money import CONTEXT, to_decimal_or
from titan.execution.numbers import fmt
from titan.v1 import common_pb2, trading_pb2

_ZERO = Decimal(0)
_ONE = Decimal(1)
NS_PER_DAY = 86_400 * 1_000_000_000
PERP = common_pb2.InstrumentKind.INSTRUMENT_KIND_PERP

# Realized PnL per fill is rounded (half-even) to this quantum, so sums of it are exact and a replay
# of the same fills gives the same figures to the last digit.
PNL_QUANTUM = Decimal("1e-12")

PositionKey = tuple[str, str, str, int]  # (phase, venue, symbol, instrument)


class Position:
    __slots__ = (
        "average_entry",
        "fees",
        "funding",
        "held_since_ns",
        "key",
        "leverage",
        "mark",
        "quantity",
        "realized",
        "updated_ns",
        "version",
    )

    def __init__(self, key: PositionKey) -> None:
        self.key = key
        self.quantity = _ZERO          # signed base quantity
        self.average_entry = _ZERO
        self.realized = _ZERO
        self.fees = _ZERO
        self.funding = _ZERO
        self.leverage = _ONE
        self.mark: Decimal | None = None
        self.updated_ns = 0
        self.held_since_ns = 0         # when the current (non-zero, same-sign) quantity was opened
        self.version = 0

    @property
    def phase_id(self) -> str:
        return self.key[0]

    @property
    def is_perp(self) -> bool:
        return self.key[3] == PERP

    def apply_fill(self, buy: bool, qty: Decimal, price: Decimal, fee: Decimal, now_ns: int) -> Decimal:
        """Book a fill; returns the PnL it realized (before fees)."""
        q = self.quantity
        dq = qty if buy else -qty
        realized = _ZERO
        if q == 0 or (q > 0) == buy:
            new = q + dq
            if q:
                self.average_entry = CONTEXT.divide(self.average_entry * abs(q) + price * qty, abs(new))
            else:
                self.average_entry = price
        else:
            closing = min(qty, abs(q))
            diff = price - self.average_entry if q > 0 else self.average_entry - price
            realized = CONTEXT.multiply(diff, closing).quantize(PNL_QUANTUM, context=CONTEXT)
            new = q + dq
            if new == 0:
                self.average_entry = _ZERO
            elif (new > 0) != (q > 0):  # flipped: the rest opens at the fill price
                self.average_entry = price
        if new == 0 or q == 0 or (new > 0) != (q > 0):  # flat, opened or flipped: a new holding
            self.held_since_ns = now_ns if new else 0
        self.quantity = new
        self.realized += realized
        self.fees += fee
        self.updated_ns = now_ns
        self.version += 1
        return realized

    def apply_funding(self, amount: Decimal, now_ns: int) -> None:
        self.funding += amount
        self.updated_ns = now_ns
        self.version += 1

    def unrealized(self, mark: Decimal | None = None) -> Decimal:
        m = mark if mark is not None else self.mark
        if m is None or self.quantity == 0:
            return _ZERO
        return (m - self.average_entry) * self.quantity

    def net_pnl(self) -> Decimal:
        return self.realized + self.unrealized() - self.fees + self.funding

    def exposure(self) -> Decimal:
        m = self.mark if self.mark is not None else self.average_entry
        return abs(self.quantity) * m

    def liquidation_price(self, maintenance_margin_rate: Decimal) -> Decimal | None:
        """Isolated-margin liquidation price of a perp position (None for spot or flat).

        long: entry * (1 - 1/leverage + mmr); short: entry * (1 + 1/leverage - mmr)."""
        if not self.is_perp or self.quantity == 0 or self.leverage <= 0:
            return None
        inv = CONTEXT.divide(_ONE, self.leverage)
        if self.quantity > 0:
            return self.average_entry * (_ONE - inv + maintenance_margin_rate)
        return self.average_entry * (_ONE + inv - maintenance_margin_rate)

    def to_proto(self, maintenance_margin_rate: Decimal) -> trading_pb2.Position:
        liq = self.liquidation_price(maintenance_margin_rate)
        phase, venue, symbol, instrument = self.key
        return trading_pb2.Position(
            phase_id=phase,
            venue=venue,
            symbol=symbol,
            instrument=instrument,  # type: ignore[arg-type]
            quantity=fmt(self.quantity),
            average_entry_price=fmt(self.average_entry) if self.quantity else "",
            mark_price="" if self.mark is None else fmt(self.mark),
            realized_pnl=fmt(self.realized),
            unrealized_pnl=fmt(self.unrealized()),
            fees=fmt(self.fees),
            funding=fmt(self.funding),
            leverage=fmt(self.leverage),
            liquidation_price="" if liq is None else fmt(liq),
            ts_ns=self.updated_ns,
            version=self.version,
        )

    @classmethod
    def from_proto(cls, p: trading_pb2.Position) -> Position:
        pos = cls((p.phase_id, p.venue, p.symbol, int(p.instrument)))
        pos.quantity = to_decimal_or(p.quantity, _ZERO)
        pos.average_entry = to_decimal_or(p.average_entry_price, _ZERO)
        pos.realized = to_decimal_or(p.realized_pnl, _ZERO)
        pos.fees = to_decimal_or(p.fees, _ZERO)
        pos.funding = to_decimal_or(p.funding, _ZERO)
        pos.leverage = to_decimal_or(p.leverage, _ONE)
        pos.mark = to_decimal_or(p.mark_price, _ZERO) if p.mark_price else None
        pos.updated_ns = p.ts_ns
        # The record does not say when the holding began; its last change bounds it from above, which
        # is safe for funding: a settlement before that change was booked then (or predates it).
        pos.held_since_ns = p.ts_ns if pos.quantity else 0
        pos.version = p.version
        return pos


class Portfolio:
    """Every position, indexed for the risk gate's questions."""

    def __init__(self, starting_capital: Decimal = _ZERO) -> None:
        self.starting_capital = starting_capital
        self.positions: dict[PositionKey, Position] = {}
        self._by_phase: dict[str, list[Position]] = {}
        self._by_instrument: dict[tuple[str, str, int], list[Position]] = {}
        self.day_start_ns = 0
        self._day_start_pnl: dict[str, Decimal] = {}

    def get(self, key: PositionKey) -> Position | None:
        return self.positions.get(key)

    def position(self, key: PositionKey) -> Position:
        pos = self.positions.get(key)
        if pos is None:
            pos = Position(key)
            self.add(pos)
        return pos

    def add(self, pos: Position) -> None:
        self.positions[pos.key] = pos
        self._by_phase.setdefault(pos.key[0], []).append(pos)
        self._by_instrument.setdefault((pos.key[1], pos.key[2], pos.key[3]), []).append(pos)

    def quantity(self, key: PositionKey) -> Decimal:
        pos = self.positions.get(key)
        return _ZERO if pos is None else pos.quantity

    def of_phase(self, phase_id: str) -> list[Position]:
        return self._by_phase.get(phase_id, [])

    def on_instrument(self, venue: str, symbol: str, instrument: int) -> list[Position]:
        return self._by_instrument.get((venue, symbol, instrument), [])

    def __iter__(self) -> Iterator[Position]:
        return iter(self.positions.values())

    def phases(self) -> list[str]:
        return list(self._by_phase)

    # --- aggregates ------------------------------------------------------------------------
    def phase_exposure(self, phase_id: str) -> Decimal:
        total = _ZERO
        for pos in self._by_phase.get(phase_id, ()):
            if pos.quantity:
                total += pos.exposure()
        return total

    def phase_totals(self, phase_id: str) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        """(realized, unrealized, fees, funding, exposure) of one phase."""
        r = u = f = fu = e = _ZERO
        for pos in self._by_phase.get(phase_id, ()):
            r += pos.realized
            u += pos.unrealized()
            f += pos.fees
            fu += pos.funding
            e += pos.exposure()
        return r, u, f, fu, e

    def phase_net_pnl(self, phase_id: str) -> Decimal:
        r, u, f, fu, _ = self.phase_totals(phase_id)
        return r + u - f + fu

    def daily_pnl(self, phase_id: str) -> Decimal:
        return self.phase_net_pnl(phase_id) - self._day_start_pnl.get(phase_id, _ZERO)

    def roll_day(self, now_ns: int) -> bool:
        """At the first call on a new UTC day, remember each phase's net PnL as that day's start."""
        day_start = now_ns - now_ns % NS_PER_DAY
        if day_start == self.day_start_ns:
            return False
        self.day_start_ns = day_start
        self._day_start_pnl = {phase: self.phase_net_pnl(phase) for phase in self._by_phase}
        return True

    def set_day_start(self, phase_id: str, net_pnl: Decimal, now_ns: int) -> None:
        """Recovery: the phase's net PnL at today's 00:00 UTC (from the last equity snapshot before it),
        so a restart does not forget today's losses."""
        self.roll_day(now_ns)
        self._day_start_pnl[phase_id] = net_pnl

    def equity_snapshots(self, now_ns: int) -> list[trading_pb2.EquitySnapshot]:
        """One snapshot per phase (equity = that phase's net PnL) and one ``total`` (starting
        capital + every phase's net PnL)."""
        out: list[trading_pb2.EquitySnapshot] = []
        tr = tu = tf = tfu = te = _ZERO
        for phase in sorted(self._by_phase):
            r, u, f, fu, e = self.phase_totals(phase)
            tr, tu, tf, tfu, te = tr + r, tu + u, tf + f, tfu + fu, te + e
            out.append(_snapshot(phase, r + u - f + fu, r, u, f, fu, e, now_ns))
        out.append(_snapshot("total", self.starting_capital + tr + tu - tf + tfu, tr, tu, tf, tfu, te, now_ns))
        return out


def _snapshot(
    scope: str, equity: Decimal, r: Decimal, u: Decimal, f: Decimal, fu: Decimal, e: Decimal, now_ns: int
) -> trading_pb2.EquitySnapshot:
    return trading_pb2.EquitySnapshot(
        scope=scope,
        equity=fmt(equity),
        realized_pnl=fmt(r),
        unrealized_pnl=fmt(u),
        fees=fmt(f),
        funding=fmt(fu),
        exposure=fmt(e),
        ts_ns=now_ns,
    )
