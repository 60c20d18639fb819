"""Parsers of raw public websocket messages (Bybit v5 linear, Binance spot/USDⓈ-M) into MarketEvents.

These are pure functions of (message, receive time) plus a little per-symbol state (Bybit ticker
deltas carry only changed fields). The live source feeds every raw message it receives through them,
the replay source feeds recorded messages (e.g. Bybit ``orderbook.500`` files), and the tests feed
hand-written messages in the venues' documented formats — one parsing path.

Malformed messages raise :class:`~titan.core.marketdata.events.MalformedEvent` with a reason code;
messages that carry no market data (subscription acks, pongs) give an empty list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from titan.core.money import MoneyError, to_decimal, to_wire
from titan.v1.common_pb2 import InstrumentKind
from titan.v1.market_pb2 import MarketEvent

from .events import (
    BUY,
    PERP,
    SELL,
    SPOT,
    MalformedEvent,
    depth_event,
    funding_event,
    liquidation_event,
    mark_event,
    open_interest_event,
    top_event,
    trade_event,
)

NS_PER_MS = 1_000_000

Msg = Mapping[str, Any]


def _ms(value: Any) -> int:
    try:
        return int(value) * NS_PER_MS
    except (TypeError, ValueError):
        raise MalformedEvent("bad_timestamp", repr(value)) from None


def _dec(value: Any) -> str:
    if not isinstance(value, str | int):
        raise MalformedEvent("bad_decimal", repr(value))
    try:
        return to_wire(to_decimal(str(value)))
    except MoneyError:
        raise MalformedEvent("bad_decimal", repr(value)) from None


def _pairs(rows: Any) -> list[tuple[str, str]]:
    if not isinstance(rows, Sequence):
        raise MalformedEvent("bad_levels")
    out: list[tuple[str, str]] = []
    for row in rows:
        if not isinstance(row, Sequence) or len(row) < 2:
            raise MalformedEvent("bad_levels")
        out.append((_dec(row[0]), _dec(row[1])))
    return out


def _side(text: Any) -> Any:
    if text == "Buy":
        return BUY
    if text == "Sell":
        return SELL
    raise MalformedEvent("bad_side", repr(text))


class BybitParser:
    """Bybit v5 public stream messages (``category=linear`` perps by default).

    Topics: ``orderbook.<depth>.<symbol>`` (snapshot/delta), ``publicTrade.<symbol>``,
    ``tickers.<symbol>`` (top of book, mark/index, funding, open interest) and
    ``allLiquidation.<symbol>`` / ``liquidation.<symbol>``.
    """

    venue = "bybit"

    def __init__(self, instrument: InstrumentKind = PERP, venue: str = "bybit") -> None:
        self.instrument = instrument
        self.venue = venue
        self._tickers: dict[str, dict[str, Any]] = {}

    def parse(self, msg: Msg, receive_ts_ns: int) -> list[MarketEvent]:
        topic = msg.get("topic")
        if not isinstance(topic, str):
            return []  # op acks, pongs
        if "data" not in msg:
            raise MalformedEvent("missing_data", topic)
        head = topic.split(".", 1)[0]
        try:
            if head == "orderbook":
                return self._book(msg, receive_ts_ns)
            if head == "publicTrade":
                return self._trades(msg, receive_ts_ns)
            if head == "tickers":
                return self._ticker(msg, receive_ts_ns)
            if head in ("allLiquidation", "liquidation"):
                return self._liquidations(msg, receive_ts_ns)
        except (KeyError, TypeError, AttributeError) as err:
            raise MalformedEvent("bad_shape", f"{topic}: {err!r}") from None
        return []

    def _book(self, msg: Msg, recv: int) -> list[MarketEvent]:
        data = msg["data"]
        kind = msg.get("type")
        if kind not in ("snapshot", "delta"):
            raise MalformedEvent("bad_type", repr(kind))
        u = int(data["u"])
        snapshot = kind == "snapshot" or u == 1  # u == 1: the venue restarted and resent the book
        bids, asks = _pairs(data["b"]), _pairs(data["a"])
        if snapshot:
            # best first, whatever the order on the wire
            bids.sort(key=lambda lv: Decimal(lv[0]), reverse=True)
            asks.sort(key=lambda lv: Decimal(lv[0]))
        return [
            depth_event(
                self.venue,
                str(data["s"]),
                self.instrument,
                bids=bids,
                asks=asks,
                snapshot=snapshot,
                ts_ns=_ms(msg["ts"]),
                receive_ts_ns=recv,
                update_id=u,
                # `u` increases by one per message of a topic: a delta must follow u - 1.
                prev_update_id=0 if snapshot else u - 1,
            )
        ]

    def _trades(self, msg: Msg, recv: int) -> list[MarketEvent]:
        out = []
        for t in msg["data"]:
            out.append(
                trade_event(
                    self.venue,
                    str(t["s"]),
                    self.instrument,
                    price=_dec(t["p"]),
                    size=_dec(t["v"]),
                    taker_side=_side(t["S"]),
                    ts_ns=_ms(t["T"]),
                    receive_ts_ns=recv,
                    trade_id=str(t.get("i", "")),
                )
            )
        return out

    def _ticker(self, msg: Msg, recv: int) -> list[MarketEvent]:
        data = msg["data"]
        symbol = str(data["symbol"])
        ts = _ms(msg["ts"])
        if msg.get("type") == "snapshot" or symbol not in self._tickers:
            state: dict[str, Any] = {}
            self._tickers[symbol] = state
        else:
            state = self._tickers[symbol]
        changed = {k for k, v in data.items() if v not in (None, "")}
        state.update({k: data[k] for k in changed})
        out: list[MarketEvent] = []
        v, inst = self.venue, self.instrument
        if changed & {"bid1Price", "bid1Size", "ask1Price", "ask1Size"} and all(
            state.get(k) not in (None, "") for k in ("bid1Price", "bid1Size", "ask1Price", "ask1Size")
        ):
            out.append(
                top_event(
                    v, symbol, inst,
                    bid_price=_dec(state["bid1Price"]), bid_size=_dec(state["bid1Size"]),
                    ask_price=_dec(state["ask1Price"]), ask_size=_dec(state["ask1Size"]),
                    ts_ns=ts, receive_ts_ns=recv,
                )
            )
        if changed & {"markPrice", "indexPrice"} and state.get("markPrice"):
            index = state.get("indexPrice")
            out.append(
                mark_event(
                    v, symbol, mark_price=_dec(state["markPrice"]),
                    index_price=_dec(index) if index else None, ts_ns=ts, receive_ts_ns=recv,
                )
            )
        if changed & {"fundingRate", "nextFundingTime"} and state.get("fundingRate") not in (None, ""):
            nxt = _ms(state.get("nextFundingTime", 0))
            out.append(
                funding_event(
                    v, symbol, rate=_dec(state["fundingRate"]), funding_time_ns=nxt,
                    next_funding_time_ns=nxt, settled=False, ts_ns=ts, receive_ts_ns=recv,
                )
            )
        if changed & {"openInterest", "openInterestValue"} and state.get("openInterest"):
            oiv = state.get("openInterestValue")
            out.append(
                open_interest_event(
                    v, symbol, open_interest=_dec(state["openInterest"]),
                    open_interest_value=_dec(oiv) if oiv else None, ts_ns=ts, receive_ts_ns=recv,
                )
            )
        return out

    def _liquidations(self, msg: Msg, recv: int) -> list[MarketEvent]:
        data = msg["data"]
        rows = data if isinstance(data, list) else [data]
        out = []
        for r in rows:
            # Bybit reports the *position* side: "Buy" = a long was liquidated -> a SELL order.
            position_side = _side(r.get("S", r.get("side")))
            out.append(
                liquidation_event(
                    self.venue,
                    str(r.get("s", r.get("symbol"))),
                    side=SELL if position_side == BUY else BUY,
                    price=_dec(r.get("p", r.get("price"))),
                    size=_dec(r.get("v", r.get("size"))),
                    ts_ns=_ms(r.get("T", r.get("updatedTime", msg.get("ts")))),
                    receive_ts_ns=recv,
                )
            )
        return out


class BinanceParser:
    """Binance raw stream payloads: spot ``trade``/``aggTrade``/``depthUpdate``/``bookTicker`` and
    USDⓈ-M ``markPriceUpdate``/``forceOrder``. Combined-stream wrappers ``{"stream", "data"}``
    are unwrapped."""

    def __init__(self, instrument: InstrumentKind = SPOT, venue: str = "binance") -> None:
        self.instrument = instrument
        self.venue = venue

    def parse(self, msg: Msg, receive_ts_ns: int) -> list[MarketEvent]:
        if "stream" in msg and isinstance(msg.get("data"), Mapping):
            msg = msg["data"]
        ev_type = msg.get("e")
        try:
            if ev_type == "trade":
                return [self._trade(msg, receive_ts_ns, str(msg["t"]))]
            if ev_type == "aggTrade":
                return [self._trade(msg, receive_ts_ns, str(msg["a"]))]
            if ev_type == "depthUpdate":
                return [self._depth(msg, receive_ts_ns)]
            if ev_type == "markPriceUpdate":
                return self._mark(msg, receive_ts_ns)
            if ev_type == "forceOrder":
                return [self._force_order(msg, receive_ts_ns)]
            if ev_type is None and {"u", "s", "b", "B", "a", "A"} <= msg.keys():
                ts = _ms(msg["T"]) if "T" in msg else receive_ts_ns
                return [
                    top_event(
                        self.venue, str(msg["s"]), self.instrument,
                        bid_price=_dec(msg["b"]), bid_size=_dec(msg["B"]),
                        ask_price=_dec(msg["a"]), ask_size=_dec(msg["A"]),
                        ts_ns=ts, receive_ts_ns=receive_ts_ns,
                    )
                ]
        except (KeyError, TypeError, AttributeError) as err:
            raise MalformedEvent("bad_shape", f"{ev_type}: {err!r}") from None
        return []  # subscription results {"result": null, "id": 1} and unknown events

    def _trade(self, msg: Msg, recv: int, trade_id: str) -> MarketEvent:
        maker = msg["m"]
        if not isinstance(maker, bool):
            raise MalformedEvent("bad_side", repr(maker))
        return trade_event(
            self.venue,
            str(msg["s"]),
            self.instrument,
            price=_dec(msg["p"]),
            size=_dec(msg["q"]),
            taker_side=SELL if maker else BUY,  # buyer is maker -> the seller took liquidity
            ts_ns=_ms(msg["T"]),
            receive_ts_ns=recv,
            trade_id=trade_id,
        )

    def _depth(self, msg: Msg, recv: int) -> MarketEvent:
        first, last = int(msg["U"]), int(msg["u"])
        prev = int(msg["pu"]) if "pu" in msg else first - 1  # futures send `pu`, spot needs U - 1
        return depth_event(
            self.venue,
            str(msg["s"]),
            self.instrument,
            bids=_pairs(msg["b"]),
            asks=_pairs(msg["a"]),
            snapshot=False,
            ts_ns=_ms(msg["E"]),
            receive_ts_ns=recv,
            update_id=last,
            prev_update_id=prev,
        )

    def _mark(self, msg: Msg, recv: int) -> list[MarketEvent]:
        symbol, ts = str(msg["s"]), _ms(msg["E"])
        index = msg.get("i")
        out = [
            mark_event(
                self.venue, symbol, mark_price=_dec(msg["p"]),
                index_price=_dec(index) if index not in (None, "") else None, ts_ns=ts, receive_ts_ns=recv,
            )
        ]
        if msg.get("r") not in (None, ""):
            nxt = _ms(msg["T"])
            out.append(
                funding_event(
                    self.venue, symbol, rate=_dec(msg["r"]), funding_time_ns=nxt,
                    next_funding_time_ns=nxt, settled=False, ts_ns=ts, receive_ts_ns=recv,
                )
            )
        return out

    def _force_order(self, msg: Msg, recv: int) -> MarketEvent:
        o = msg["o"]
        return liquidation_event(
            self.venue,
            str(o["s"]),
            side=_side({"BUY": "Buy", "SELL": "Sell"}.get(str(o["S"]))),
            price=_dec(o.get("ap") or o["p"]),
            size=_dec(o.get("z") or o["q"]),
            ts_ns=_ms(o["T"]),
            receive_ts_ns=recv,
        )
