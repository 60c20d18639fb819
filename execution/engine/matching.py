"""Paper matching: a decided order meets the book at once (taking, post-only, IOC, market with a
slippage cap); what rests fills later on trades, book updates and candles. Market events also mark
positions to market and drive liquidations and funding (``titan.execution.engine.funding``)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from titan.core.money import to_decimal, to_decimal_or
from titan.execution import enums
from titan.execution.engine import funding
from titan.execution.engine.lifecycle import apply_paper_fill, finish, next_fill_id, rest, take_fills
from titan.execution.engine.outputs import Update
from titan.execution.engine.state import ZERO, EngineState
from titan.execution.market import InstrumentMarket
from titan.execution.orders import ACCEPTED, CANCELED, REJECTED, SUBMITTED, ManagedOrder
from titan.execution.paper import Fill
from titan.v1 import market_pb2

OrderType = enums.OrderType
_MARKING = ("mark", "trade", "top", "depth", "candle")
_TAKING = ("top", "depth", "trade", "candle")  # the kinds of market event that can fill a resting order


def place(state: EngineState, order: ManagedOrder, market: InstrumentMarket, slippage_bps: Decimal | None,
          now: int) -> None:
    """Send a NEW order to the paper venue: it takes what the book offers up to its limit; the rest
    rests (limit, market within its cap for a while), is canceled (IOC) or the order is refused
    (post-only that would take)."""
    order.transition(SUBMITTED, now)
    buy = order.is_buy
    order_type = order.order_type
    if order_type == OrderType.ORDER_TYPE_POST_ONLY:
        assert order.price is not None
        if state.paper.would_take(market, buy, order.price):
            finish(state, order, REJECTED, now, "post-only order would take liquidity")
            return
        order.transition(ACCEPTED, now)
        rest(state, order)
        return
    if order_type == OrderType.ORDER_TYPE_MARKET:
        order.price_cap = state.paper.price_cap(market, buy, slippage_bps)
        limit = order.price_cap
    else:
        limit = order.price
    take_fills(state, order, state.paper.take(market, buy, order.quantity, limit), now, market.reference_price())
    if not order.is_open:
        return
    if order_type == OrderType.ORDER_TYPE_IOC:
        finish(state, order, CANCELED, now, "IOC remainder canceled")
        return
    if order.state == SUBMITTED:
        order.transition(ACCEPTED, now)
    if order_type == OrderType.ORDER_TYPE_MARKET:
        order.expires_at_ns = now + state.config.paper.market_remainder_ttl_ns
    rest(state, order)


def on_market(state: EngineState, event: market_pb2.MarketEvent) -> list[Update]:
    now = state.clock.now_ns()
    try:
        market, kind = state.market.apply(event, now)
    except Exception:  # malformed prices: ignore the event (the caller counts it)
        return []
    if kind is None:
        return []
    key = market.key
    work = state.working.get(key) if kind in _TAKING else None  # a mark or funding event fills nothing
    if work and not state.external:
        walk_working(state, work, market, kind, event, now)
    if kind in _MARKING:
        reference = market.reference_price()
        for position in state.portfolio.on_instrument(*key):
            position.mark = reference
        if kind == "mark" and not state.external:
            funding.check_liquidations(state, market, now)
    if kind == "funding" and event.funding.settled and not state.external:
        funding.settle(state, market, event.funding.funding_time_ns, to_decimal(event.funding.rate), now)
    elif (not state.external and market.funding_rate is not None and market.funding_time_ns
          and now >= market.funding_time_ns):
        funding.settle(state, market, market.funding_time_ns, market.funding_rate, now)
    return state.outputs.flush()


def walk_working(
    state: EngineState, work: dict[str, ManagedOrder], market: InstrumentMarket, kind: str,
    event: market_pb2.MarketEvent, now: int,
) -> None:
    """:func:`match_working` over the live dict of an instrument's working orders, without copying
    it: the walk often stops after a few orders (the book ran dry) while thousands may rest. Orders
    that close or come to rest on this instrument during the walk join or leave the dict when it is
    done (:func:`~titan.execution.engine.lifecycle.rest`, ``closed``), so the dict does not change
    under the walk; what the walk sees is what a copy taken before it would hold."""
    state.walking = work
    try:
        match_working(state, work.values(), market, kind, event, now)
    finally:
        state.walking = None
        rested, closed = state.walk_rested, state.walk_closed
        state.walk_rested, state.walk_closed = [], []
        for order in rested:
            work[order.client_order_id] = order
        for cid in closed:
            work.pop(cid, None)


def match_working(
    state: EngineState, work: Iterable[ManagedOrder], market: InstrumentMarket, kind: str,
    event: market_pb2.MarketEvent, now: int,
) -> None:
    """Resting orders of one instrument against a market event of a kind that can fill them."""
    paper = state.paper
    reference = market.reference_price()
    dry = _DryLimits()
    book_only = kind in ("top", "depth")
    for order in work:
        if book_only and dry.exhausted:
            break  # the displayed book has nothing left on either side for anyone
        if not order.is_open:
            continue
        buy = order.is_buy
        if order.order_type == OrderType.ORDER_TYPE_MARKET:
            if not dry.covers(buy, order.price_cap):
                fills = paper.take(market, buy, order.remaining, order.price_cap)
                if not fills:
                    dry.note(buy, order.price_cap, market)
                take_fills(state, order, fills, now, reference)
            continue
        assert order.price is not None
        resting_fill: Fill | None = None
        if kind == "trade":
            resting_fill = paper.rest_on_trade(buy, order.remaining, order.price, to_decimal(event.trade.price),
                                               to_decimal_or(event.trade.size, ZERO))
        elif kind in ("top", "depth") and not dry.covers(buy, order.price):
            resting_fill = paper.rest_on_book(market, buy, order.remaining, order.price)
            if resting_fill is None:
                dry.note(buy, order.price, market)
        elif kind == "candle":
            resting_fill = paper.rest_on_candle(buy, order.remaining, order.price, to_decimal(event.candle.low),
                                                to_decimal(event.candle.high))
        if resting_fill is not None:
            apply_paper_fill(state, order, resting_fill, now, next_fill_id(order), reference)


class _DryLimits:
    """Within one market event: per side (True: buy), the most aggressive limit at which the
    displayed book offered nothing (None: the side has nothing left at all); a side not in the map
    has not come up dry. What paper fills consume only grows during the event, so an order whose
    limit is no more aggressive finds nothing either and is not walked again."""

    __slots__ = ("dry", "exhausted")

    def __init__(self) -> None:
        self.dry: dict[bool, Decimal | None] = {}
        self.exhausted = False  # both sides have nothing left

    def covers(self, buy: bool, limit: Decimal | None) -> bool:
        if buy not in self.dry:
            return False
        dry = self.dry[buy]
        if dry is None:
            return True
        if limit is None:
            return False
        return limit <= dry if buy else limit >= dry

    def note(self, buy: bool, limit: Decimal | None, market: InstrumentMarket) -> None:
        if self.covers(buy, limit):
            return
        levels = market.levels(buy)
        self.dry[buy] = None if levels is not None and next(levels, None) is None else limit
        self.exhausted = len(self.dry) == 2 and self.dry[True] is None and self.dry[False] is None
