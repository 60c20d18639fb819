"""The paper venue: deterministic matching against the current market. Pure; the clock is injected
by the caller (every function takes ``now_ns``), no I/O.

Assumptions (each one is written down in docs/paper-venue.md and has a test):

1. Takers match the displayed book: L2 depth when a synced book exists, else the top of book.
   Levels are walked best-first; a market order stops at its slippage cap (``max_slippage_bps`` of
   the signal, else ``default_max_slippage_bps``) from the best price when it was placed.
2. Displayed liquidity taken by a paper fill is gone until the next book update for that instrument.
3. Size beyond the displayed depth is not filled at once: a market order keeps its remainder working
   (PARTIALLY_FILLED) and matches again on each later book update, until filled or expired after
   ``market_remainder_ttl_ns``; an IOC order cancels its remainder; a limit order rests.
4. With no book at all, a taker fills in full at the last trade price moved against it by
   ``half_spread_bps + slippage_bps`` (the spread and slippage model). No trade either = no fill.
5. A resting limit order fills as maker at its own price when a trade prints through it (a buy
   when a trade is strictly below the limit) for at most the trade's size, or when the opposite
   best price reaches it, for at most the displayed size at or better than the limit.
6. A POST_ONLY order that would take liquidity on arrival is rejected.
7. Fees are ``notional * rate`` in quote currency, maker or taker rate per venue; a negative rate is
   a rebate.
8. Quantities are rounded down to the venue's lot step; an order below one lot is not placed.
9. Funding on perps settles at each funding time: ``amount = -quantity * mark * rate`` (longs pay
   positive rates). It settles on a ``Funding`` event with ``settled`` or when the clock passes the
   announced funding time; each (instrument, funding time) settles once.
10. Perp positions are isolated-margin at their leverage; when the mark price reaches the liquidation
    price (long: ``entry * (1 - 1/leverage + mmr)``, short: ``entry * (1 + 1/leverage - mmr)``) the
    whole position is closed at that mark price as a taker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import NamedTuple

from titan.core.money import CONTEXT, quantize_down
from titan.execution.market import InstrumentMarket

_ZERO = Decimal(0)
_ONE = Decimal(1)
_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    maker: Decimal   # fraction of notional, e.g. 0.0002 = 2 bps; negative = rebate
    taker: Decimal

    def fee(self, notional: Decimal, maker: bool) -> Decimal:
        return notional * (self.maker if maker else self.taker)


@dataclass(frozen=True)
class PaperConfig:
    fees: dict[str, FeeSchedule] = field(
        default_factory=lambda: {
            "binance": FeeSchedule(Decimal("0.001"), Decimal("0.001")),
            "bybit": FeeSchedule(Decimal("0.0002"), Decimal("0.00055")),
        }
    )
    default_fees: FeeSchedule = FeeSchedule(Decimal("0.0002"), Decimal("0.0005"))
    half_spread_bps: Decimal = Decimal(1)
    slippage_bps: Decimal = Decimal(2)
    default_max_slippage_bps: Decimal = Decimal(50)
    lot_step: Decimal = Decimal("0.000001")
    lot_steps: dict[str, Decimal] = field(default_factory=dict)  # per symbol override
    maintenance_margin_rate: Decimal = Decimal("0.005")
    market_remainder_ttl_ns: int = 60 * 1_000_000_000
    starting_capital: Decimal = Decimal(10_000)


class Fill(NamedTuple):
    """One paper fill (a tuple: many are made per signal)."""

    price: Decimal
    quantity: Decimal
    maker: bool


class PaperVenue:
    """Matching, fee, funding and liquidation rules of the simulated venue."""

    def __init__(self, config: PaperConfig | None = None) -> None:
        self.config = config or PaperConfig()
        # Per symbol: its lot step, and whether that is a power of ten (rounding is then one quantize).
        self._lots: dict[str, tuple[Decimal, bool]] = {}

    # --- sizes and fees --------------------------------------------------------------------
    def lot_step(self, symbol: str) -> Decimal:
        return self.config.lot_steps.get(symbol, self.config.lot_step)

    def round_quantity(self, symbol: str, qty: Decimal) -> Decimal:
        lot = self._lots.get(symbol)
        if lot is None:
            step = self.lot_step(symbol)
            lot = self._lots[symbol] = (step, step > 0 and step.as_tuple().digits == (1,))
        step, power_of_ten = lot
        if power_of_ten:  # one quantize, no division
            if qty.adjusted() - step.adjusted() >= CONTEXT.prec:
                return quantize_down(qty, step)
            return qty.quantize(step, rounding=ROUND_DOWN, context=CONTEXT)
        return quantize_down(qty, step)

    def fee(self, venue: str, notional: Decimal, maker: bool) -> Decimal:
        return self.fee_schedule(venue).fee(notional, maker)

    def fee_schedule(self, venue: str) -> FeeSchedule:
        return self.config.fees.get(venue, self.config.default_fees)

    # --- taker -----------------------------------------------------------------------------
    def price_cap(self, market: InstrumentMarket, buy: bool, max_slippage_bps: Decimal | None) -> Decimal | None:
        """Worst price a market order may reach: best opposite price moved by the slippage cap."""
        best = market.best_ask() if buy else market.best_bid()
        if best is None:
            best = market.last
        if best is None:
            return None
        bps = self.config.default_max_slippage_bps if max_slippage_bps is None else max_slippage_bps
        move = best * bps / _BPS
        return best + move if buy else best - move

    def take(
        self, market: InstrumentMarket, buy: bool, qty: Decimal, limit: Decimal | None, *, consume: bool = True
    ) -> list[Fill]:
        """Match ``qty`` as a taker no worse than ``limit`` (None = any price). Marks the displayed
        liquidity it takes as consumed (unless ``consume`` is false: a dry run)."""
        levels = market.levels(buy)
        if levels is None:
            return self._take_synthetic(market, buy, qty, limit)
        fills: list[Fill] = []
        remaining = qty
        for price, size in levels:
            if limit is not None and (price > limit if buy else price < limit):
                break
            take = size if size < remaining else remaining
            if take <= 0:
                continue
            fills.append(Fill(price, take, False))
            if consume:
                market.consume(price, take)
            remaining -= take
            if remaining <= 0:
                break
        return fills

    def _take_synthetic(self, market: InstrumentMarket, buy: bool, qty: Decimal, limit: Decimal | None) -> list[Fill]:
        if market.last is None:
            return []
        bps = self.config.half_spread_bps + self.config.slippage_bps
        move = market.last * bps / _BPS
        price = market.last + move if buy else market.last - move
        if limit is not None and (price > limit if buy else price < limit):
            return []
        return [Fill(price, qty, False)]

    def expected_taker_price(self, market: InstrumentMarket, buy: bool) -> Decimal | None:
        """The price a small taker order would get now: the best opposite price, else the spread
        model applied to the last trade. Signals' quote sizes are converted at this price."""
        best = market.best_ask() if buy else market.best_bid()
        if best is not None:
            return best
        if market.last is None:
            return None
        move = market.last * (self.config.half_spread_bps + self.config.slippage_bps) / _BPS
        return market.last + move if buy else market.last - move

    def would_take(self, market: InstrumentMarket, buy: bool, limit: Decimal) -> bool:
        """Would a limit order at ``limit`` match on arrival (post-only check)?"""
        best = market.best_ask() if buy else market.best_bid()
        if best is None:
            return False
        return best <= limit if buy else best >= limit

    # --- maker -----------------------------------------------------------------------------
    def rest_on_trade(
        self, buy: bool, remaining: Decimal, limit: Decimal, trade_price: Decimal, trade_size: Decimal
    ) -> Fill | None:
        """A trade printing through a resting limit fills it at the limit, up to the trade's size."""
        through = trade_price < limit if buy else trade_price > limit
        if not through or trade_size <= 0:
            return None
        qty = trade_size if trade_size < remaining else remaining
        return Fill(limit, qty, True)

    @staticmethod
    def rest_on_candle(buy: bool, remaining: Decimal, limit: Decimal, low: Decimal, high: Decimal) -> Fill | None:
        """A candle whose range passes through a resting limit (strictly, as for a trade) fills it whole
        at the limit: a candle tells no size at a price (assumption 16)."""
        through = low < limit if buy else high > limit
        return Fill(limit, remaining, True) if through and remaining > 0 else None

    def rest_on_book(self, market: InstrumentMarket, buy: bool, remaining: Decimal, limit: Decimal) -> Fill | None:
        """The opposite side reaching a resting limit fills it at the limit, up to the displayed size
        at or better than the limit."""
        levels = market.levels(buy)
        if not levels:
            return None
        avail = _ZERO
        for price, size in levels:
            if price > limit if buy else price < limit:
                break
            take = min(size, remaining - avail)
            market.consume(price, take)
            avail += take
            if avail >= remaining:
                break
        if avail <= 0:
            return None
        return Fill(limit, avail, True)

    # --- funding and liquidation -----------------------------------------------------------
    @staticmethod
    def funding_amount(quantity: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
        """Funding received (> 0) or paid (< 0) by a position of signed ``quantity``."""
        return -quantity * mark * rate

    def liquidation_price(self, quantity: Decimal, entry: Decimal, leverage: Decimal) -> Decimal | None:
        if quantity == 0 or leverage <= 0:
            return None
        inv = CONTEXT.divide(_ONE, leverage)
        mmr = self.config.maintenance_margin_rate
        if quantity > 0:
            return entry * (_ONE - inv + mmr)
        return entry * (_ONE + inv - mmr)

    def should_liquidate(self, quantity: Decimal, entry: Decimal, leverage: Decimal, mark: Decimal) -> bool:
        liq = self.liquidation_price(quantity, entry, leverage)
        if liq is None:
            return False
        return mark <= liq if quantity > 0 else mark >= liq
