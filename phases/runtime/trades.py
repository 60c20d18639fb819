"""Closed trades from a phase's fills and position updates (:class:`TradeTracker`), as the
backtest counts them, hedged units' two legs as one trade."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from titan.core.money import to_decimal_or
from titan.v1 import common_pb2, trading_pb2


@dataclass(frozen=True)
class _Totals:
    """A position's cumulative realized PnL, fees and funding at one update."""

    realized: Decimal
    fees: Decimal
    funding: Decimal

    def since(self, start: _Totals) -> Decimal:
        """A trade's PnL between two updates: realized minus fees plus funding."""
        return (self.realized - start.realized) - (self.fees - start.fees) + (self.funding - start.funding)


_ZERO_TOTALS = _Totals(Decimal(0), Decimal(0), Decimal(0))


class PositionKey(NamedTuple):
    """A position is one instrument: spot and perp of the same symbol and venue are two."""

    venue: str
    symbol: str
    instrument: int


@dataclass(frozen=True)
class _OpenTrade:
    start: _Totals
    opened_by: str  # the signal whose fill opened it ("": unknown)
    long: bool


@dataclass(frozen=True)
class ClosedTrade:
    symbol: str
    pnl: Decimal


def _position_key(pos: trading_pb2.Position | trading_pb2.Fill) -> PositionKey:
    return PositionKey(pos.venue, pos.symbol, int(pos.instrument))


def signal_of(client_order_id: str) -> str:
    """The signal part of a client order id (``<signal part>-<leg>``); every leg and hedge step of one
    signal shares it."""
    return client_order_id.rpartition("-")[0] or client_order_id


_SPOT, _PERP = int(common_pb2.INSTRUMENT_KIND_SPOT), int(common_pb2.INSTRUMENT_KIND_PERP)
_HEDGE_PAIR = {_SPOT: _PERP, _PERP: _SPOT}  # the instrument of a hedged leg's partner


class TradeTracker:
    """Turns the phase's fills and Position updates into closed trades, as the backtest's
    ``closed_trades`` counts them: a trade opens when an instrument's quantity leaves zero and closes
    when it returns to zero (or flips sign); its PnL is the change of realized PnL minus fees plus
    funding over its life. The spot and the perp position of one symbol on opposite sides that the
    same signal opened (a hedged unit's legs) are one trade: the leg that closes first waits for the
    other, and the trade closes with it, with both legs' PnL. The opening signal is that of the last
    fill seen before the position left zero (execution sends an order's fills before the position
    they make). Updates with an older version are ignored."""

    def __init__(self) -> None:
        self._qty: dict[PositionKey, Decimal] = {}
        self._open: dict[PositionKey, _OpenTrade] = {}
        self._version: dict[PositionKey, int] = {}
        self._last: dict[PositionKey, _Totals] = {}
        self._last_signal: dict[PositionKey, str] = {}
        self._waiting: dict[PositionKey, Decimal] = {}  # open hedge leg -> PnL of its partner, closed first

    def is_stale(self, pos: trading_pb2.Position) -> bool:
        """An update older than (or the same as) one already seen."""
        return bool(pos.version) and pos.version <= self._version.get(_position_key(pos), 0)

    def on_fill(self, fill: trading_pb2.Fill) -> None:
        """Remember which signal last traded the instrument: it opens the position the next update shows."""
        self._last_signal[_position_key(fill)] = signal_of(fill.client_order_id)

    def on_position(self, pos: trading_pb2.Position) -> list[ClosedTrade]:
        key = _position_key(pos)
        if self.is_stale(pos):
            return []
        self._version[key] = pos.version
        qty = to_decimal_or(pos.quantity, Decimal(0))
        now = _Totals(
            to_decimal_or(pos.realized_pnl, Decimal(0)),
            to_decimal_or(pos.fees, Decimal(0)),
            to_decimal_or(pos.funding, Decimal(0)),
        )
        prev = self._qty.get(key, Decimal(0))
        self._qty[key] = qty
        before = self._last.get(key, _ZERO_TOTALS)
        self._last[key] = now
        closed: list[ClosedTrade] = []
        if prev != 0 and (qty == 0 or (qty > 0) != (prev > 0)):
            trade = self._open.pop(key, None)
            if trade is not None:
                closed.extend(self._close(key, trade, now.since(trade.start)))
        if qty != 0 and key not in self._open:
            # From flat, the trade starts before the fill that opened it (its fee belongs to it);
            # after a flip, at this update.
            self._open[key] = _OpenTrade(before if prev == 0 else now, self._last_signal.get(key, ""), qty > 0)
        return closed

    def _close(self, key: PositionKey, trade: _OpenTrade, pnl: Decimal) -> list[ClosedTrade]:
        """The trade, or nothing while its hedge partner is still open (it then closes both)."""
        symbol = key.symbol
        partner_pnl = self._waiting.pop(key, None)
        if partner_pnl is not None:
            return [ClosedTrade(symbol, partner_pnl + pnl)]
        partner = self._partner(key, trade)
        if partner is None:
            return [ClosedTrade(symbol, pnl)]
        self._waiting[partner] = pnl
        return []

    def _partner(self, key: PositionKey, trade: _OpenTrade) -> PositionKey | None:
        """The other leg of the hedged unit that opened ``trade``, when it is still open."""
        other_kind = _HEDGE_PAIR.get(key.instrument)
        if not trade.opened_by or other_kind is None:
            return None
        for other, held in self._open.items():
            if (other.symbol == key.symbol and other.instrument == other_kind and held.opened_by == trade.opened_by
                    and held.long != trade.long and other not in self._waiting):
                return other
        return None
