"""What paper takers see of the book within one update (paper venue assumption 2): the displayed
levels minus what earlier fills took, however many levels those took whole. The walk starts after
the levels already taken whole (``InstrumentMarket.spent``), so it must read exactly what a walk
of the whole side would."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from titan.execution.market import InstrumentMarket
from titan.v1 import common_pb2, market_pb2

PERP = common_pb2.InstrumentKind.INSTRUMENT_KIND_PERP
KEY = ("bybit", "BTCUSDT", PERP)


def depth_event(sizes: list[int], *, snapshot: bool = True) -> market_pb2.MarketEvent:
    bids = [market_pb2.BookLevel(price=str(100 - i), size=str(size)) for i, size in enumerate(sizes)]
    asks = [market_pb2.BookLevel(price=str(101 + i), size=str(size)) for i, size in enumerate(sizes)]
    return market_pb2.MarketEvent(venue="bybit", symbol="BTCUSDT", instrument=PERP,
                                  depth=market_pb2.BookDepth(bids=bids, asks=asks, snapshot=snapshot))


def naive_levels(sizes: list[int], taken: dict[Decimal, Decimal], buy: bool) -> list[tuple[Decimal, Decimal]]:
    prices = [Decimal(101 + i) if buy else Decimal(100 - i) for i in range(len(sizes))]
    left = [(p, Decimal(size) - taken.get(p, Decimal(0))) for p, size in zip(prices, sizes, strict=True)]
    return [(p, q) for p, q in left if q > 0]


def take(market: InstrumentMarket, buy: bool, qty: Decimal) -> None:
    """A taker as the paper venue walks: consume each level read until ``qty`` is taken."""
    levels = market.levels(buy)
    assert levels is not None
    for price, size in levels:
        step = min(size, qty)
        market.consume(price, step)
        qty -= step
        if qty <= 0:
            return


TAKES = st.tuples(st.just("take"), st.booleans(), st.integers(min_value=1, max_value=9), st.just(0))
DIRECT = st.tuples(st.just("consume"), st.booleans(), st.integers(min_value=1, max_value=5),
                   st.integers(min_value=0, max_value=11))  # any level, not only the best: no prefix assumed


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=12),
       steps=st.lists(st.one_of(TAKES, DIRECT), max_size=25))
def test_a_walk_reads_the_displayed_book_minus_what_was_taken(
    sizes: list[int], steps: list[tuple[str, bool, int, int]]
) -> None:
    market = InstrumentMarket(KEY)
    market.apply(depth_event(sizes), 1)
    taken: dict[Decimal, Decimal] = {}
    for op, buy, qty, level in steps:
        expected = naive_levels(sizes, taken, buy)
        levels = market.levels(buy)
        assert levels is not None and list(levels) == expected
        if op == "consume":  # what is left of one level, taken outside a walk
            price, left = next(((p, q) for p, q in expected[level:level + 1]), (None, Decimal(0)))
            if price is not None:
                step = min(left, Decimal(qty))
                taken[price] = taken.get(price, Decimal(0)) + step
                market.consume(price, step)
            continue
        remaining = Decimal(qty)
        for price, size in expected:  # the model's taker
            step = min(size, remaining)
            taken[price] = taken.get(price, Decimal(0)) + step
            remaining -= step
            if remaining <= 0:
                break
        take(market, buy, Decimal(qty))
    for buy in (True, False):
        levels = market.levels(buy)
        assert levels is not None and list(levels) == naive_levels(sizes, taken, buy)


def test_levels_taken_whole_are_skipped_until_the_next_book_update() -> None:
    market = InstrumentMarket(KEY)
    market.apply(depth_event([1] * 6), 1)
    take(market, True, Decimal(3))  # the three best asks, whole
    assert list(market.levels(True) or ()) == [(Decimal(104), 1), (Decimal(105), 1), (Decimal(106), 1)]
    assert market.spent == [0, 3]  # found by that walk: the next one starts after them
    assert next(iter(market.levels(False) or ())) == (Decimal(100), 1)  # the bids are untouched
    market.apply(depth_event([1], snapshot=False), 2)  # a delta of the touch: everything displayed again
    assert market.spent == [0, 0] and market.consumed == {}
    assert [p for p, _ in market.levels(True) or ()] == [Decimal(101 + i) for i in range(6)]
