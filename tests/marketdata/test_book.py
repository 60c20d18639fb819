"""Order book maintenance on the real Bybit XRPUSDT orderbook.500 recording, and gap handling."""

from __future__ import annotations

import json
import zipfile
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from titan.core.marketdata.book import OrderBook
from titan.core.marketdata.events import PERP, depth_event
from titan.core.marketdata.files import read_file
from titan.v1.market_pb2 import BookDepth, MarketEvent

from .conftest import BYBIT_BOOK


def _raw_lines() -> list[dict[str, object]]:
    with zipfile.ZipFile(BYBIT_BOOK) as zf:
        return [json.loads(line) for line in zf.read(zf.namelist()[0]).decode().splitlines() if line.strip()]


def test_bybit_book_reconstructs_crossed_free(data_dir: Path) -> None:
    events = list(read_file(BYBIT_BOOK))
    assert len(events) == 50
    assert events[0].depth.snapshot and not any(e.depth.snapshot for e in events[1:])
    assert {(e.venue, e.symbol, e.instrument) for e in events} == {("bybit", "XRPUSDT", PERP)}
    book = OrderBook("XRPUSDT")
    for ev in events:
        assert book.apply(ev.depth)
        assert not book.is_crossed()
        bids, asks = book.bids(), book.asks()
        assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
        assert [p for p, _ in asks] == sorted(p for p, _ in asks)
        assert all(q > 0 for _, q in bids + asks)
    assert book.gaps == 0 and book.synced
    assert book.update_id == 20254918
    # the venue keeps 500 levels a side: deletes of levels falling out of range balance the adds
    assert book.depth() == (500, 500)

    # independent check: the final book equals the last state of every level seen in the raw file
    want: dict[str, dict[Decimal, Decimal]] = {"b": {}, "a": {}}
    for msg in _raw_lines():
        data = msg["data"]
        assert isinstance(data, dict)
        for side in ("b", "a"):
            for price, size in data[side]:
                want[side][Decimal(price)] = Decimal(size)
    assert dict(book.bids()) == {p: q for p, q in want["b"].items() if q != 0}
    assert dict(book.asks()) == {p: q for p, q in want["a"].items() if q != 0}
    assert book.best_bid() == (Decimal("1.9537"), want["b"][Decimal("1.9537")])
    assert book.best_ask() == (Decimal("1.9538"), want["a"][Decimal("1.9538")])
    assert book.bids(3) == book.bids()[:3] and book.asks(2) == book.asks()[:2]


def test_size_zero_removes_a_level(data_dir: Path) -> None:
    events = list(read_file(BYBIT_BOOK))
    book = OrderBook()
    removed = 0
    for ev in events:
        zeros = [(side, Decimal(lv.price)) for side in ("bids", "asks") for lv in getattr(ev.depth, side)
                 if Decimal(lv.size) == 0]
        before = {side: dict(getattr(book, side)()) for side in ("bids", "asks")}
        book.apply(ev.depth)
        after = {side: dict(getattr(book, side)()) for side in ("bids", "asks")}
        for side, price in zeros:
            assert price in before[side], "the recording deletes levels that exist"
            assert price not in after[side]
            removed += 1
    assert removed == 18  # counted in the raw file: 18 deletes across the 49 deltas


def _depth(update_id: int, prev: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]],
           snapshot: bool = False) -> BookDepth:
    ev: MarketEvent = depth_event("x", "XRPUSDT", PERP, bids=bids, asks=asks, snapshot=snapshot, ts_ns=1,
                                  update_id=update_id, prev_update_id=prev)
    return ev.depth


def test_gap_unsyncs_until_next_snapshot() -> None:
    book = OrderBook()
    assert not book.apply(_depth(5, 4, [("1", "1")], []))  # delta before any snapshot: ignored
    assert book.apply(_depth(10, 0, [("1.0", "5"), ("0.9", "1")], [("1.1", "2")], snapshot=True))
    assert book.apply(_depth(11, 10, [("1.0", "6")], []))
    assert not book.apply(_depth(11, 10, [("1.0", "7")], []))  # stale duplicate
    assert book.stale == 1 and book.best_bid() == (Decimal("1.0"), Decimal("6"))
    assert not book.apply(_depth(13, 12, [("0.95", "3")], []))  # 12 missing: a gap
    assert book.gaps == 1 and not book.synced
    assert not book.apply(_depth(14, 13, [("0.95", "3")], []))
    assert book.size_at(Decimal("0.95")) == 0
    assert book.apply(_depth(20, 0, [("1.0", "1")], [("1.2", "1")], snapshot=True))
    assert book.synced and book.bids() == [(Decimal("1.0"), Decimal("1"))]
    assert book.apply(_depth(21, 20, [("1.2", "1")], []))
    assert book.is_crossed()  # bid at the ask price


levels = st.lists(
    st.tuples(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=5)), max_size=30
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(levels, levels), min_size=1, max_size=20))
def test_book_matches_a_dict_model(updates: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]]) -> None:
    book = OrderBook()
    book.apply(_depth(1, 0, [], [], snapshot=True))
    model: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}
    for i, (bids, asks) in enumerate(updates, start=2):
        b = [(str(p), str(q)) for p, q in bids]
        a = [(str(p + 100), str(q)) for p, q in asks]
        assert book.apply(_depth(i, i - 1, b, a))
        for side, rows in (("bids", b), ("asks", a)):
            for p, q in rows:
                if Decimal(q) == 0:
                    model[side].pop(Decimal(p), None)
                else:
                    model[side][Decimal(p)] = Decimal(q)
    assert book.bids() == sorted(model["bids"].items(), reverse=True)
    assert book.asks() == sorted(model["asks"].items())
    assert not book.is_crossed()
