from titan.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Trade(_message.Message):
    __slots__ = ("price", "size", "taker_side", "trade_id")
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TAKER_SIDE_FIELD_NUMBER: _ClassVar[int]
    TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    price: str
    size: str
    taker_side: _common_pb2.Side
    trade_id: str
    def __init__(self, price: _Optional[str] = ..., size: _Optional[str] = ..., taker_side: _Optional[_Union[_common_pb2.Side, str]] = ..., trade_id: _Optional[str] = ...) -> None: ...

class BookLevel(_message.Message):
    __slots__ = ("price", "size")
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    price: str
    size: str
    def __init__(self, price: _Optional[str] = ..., size: _Optional[str] = ...) -> None: ...

class BookTop(_message.Message):
    __slots__ = ("bid_price", "bid_size", "ask_price", "ask_size")
    BID_PRICE_FIELD_NUMBER: _ClassVar[int]
    BID_SIZE_FIELD_NUMBER: _ClassVar[int]
    ASK_PRICE_FIELD_NUMBER: _ClassVar[int]
    ASK_SIZE_FIELD_NUMBER: _ClassVar[int]
    bid_price: str
    bid_size: str
    ask_price: str
    ask_size: str
    def __init__(self, bid_price: _Optional[str] = ..., bid_size: _Optional[str] = ..., ask_price: _Optional[str] = ..., ask_size: _Optional[str] = ...) -> None: ...

class BookDepth(_message.Message):
    __slots__ = ("snapshot", "bids", "asks", "update_id", "prev_update_id")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    BIDS_FIELD_NUMBER: _ClassVar[int]
    ASKS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    PREV_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    snapshot: bool
    bids: _containers.RepeatedCompositeFieldContainer[BookLevel]
    asks: _containers.RepeatedCompositeFieldContainer[BookLevel]
    update_id: int
    prev_update_id: int
    def __init__(self, snapshot: _Optional[bool] = ..., bids: _Optional[_Iterable[_Union[BookLevel, _Mapping]]] = ..., asks: _Optional[_Iterable[_Union[BookLevel, _Mapping]]] = ..., update_id: _Optional[int] = ..., prev_update_id: _Optional[int] = ...) -> None: ...

class Funding(_message.Message):
    __slots__ = ("rate", "funding_time_ns", "next_funding_time_ns", "settled")
    RATE_FIELD_NUMBER: _ClassVar[int]
    FUNDING_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FUNDING_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    rate: str
    funding_time_ns: int
    next_funding_time_ns: int
    settled: bool
    def __init__(self, rate: _Optional[str] = ..., funding_time_ns: _Optional[int] = ..., next_funding_time_ns: _Optional[int] = ..., settled: _Optional[bool] = ...) -> None: ...

class MarkPrice(_message.Message):
    __slots__ = ("mark_price", "index_price")
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    INDEX_PRICE_FIELD_NUMBER: _ClassVar[int]
    mark_price: str
    index_price: str
    def __init__(self, mark_price: _Optional[str] = ..., index_price: _Optional[str] = ...) -> None: ...

class OpenInterest(_message.Message):
    __slots__ = ("open_interest", "open_interest_value")
    OPEN_INTEREST_FIELD_NUMBER: _ClassVar[int]
    OPEN_INTEREST_VALUE_FIELD_NUMBER: _ClassVar[int]
    open_interest: str
    open_interest_value: str
    def __init__(self, open_interest: _Optional[str] = ..., open_interest_value: _Optional[str] = ...) -> None: ...

class Liquidation(_message.Message):
    __slots__ = ("side", "price", "size")
    SIDE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    side: _common_pb2.Side
    price: str
    size: str
    def __init__(self, side: _Optional[_Union[_common_pb2.Side, str]] = ..., price: _Optional[str] = ..., size: _Optional[str] = ...) -> None: ...

class Candle(_message.Message):
    __slots__ = ("timeframe", "open_time_ns", "close_time_ns", "open", "high", "low", "close", "volume", "trade_count", "closed")
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    OPEN_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    timeframe: str
    open_time_ns: int
    close_time_ns: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    trade_count: int
    closed: bool
    def __init__(self, timeframe: _Optional[str] = ..., open_time_ns: _Optional[int] = ..., close_time_ns: _Optional[int] = ..., open: _Optional[str] = ..., high: _Optional[str] = ..., low: _Optional[str] = ..., close: _Optional[str] = ..., volume: _Optional[str] = ..., trade_count: _Optional[int] = ..., closed: _Optional[bool] = ...) -> None: ...

class MarketEvent(_message.Message):
    __slots__ = ("venue", "symbol", "instrument", "exchange_ts_ns", "receive_ts_ns", "seq", "trade", "top", "depth", "funding", "mark", "open_interest", "liquidation", "candle")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_TS_NS_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TS_NS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TRADE_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    MARK_FIELD_NUMBER: _ClassVar[int]
    OPEN_INTEREST_FIELD_NUMBER: _ClassVar[int]
    LIQUIDATION_FIELD_NUMBER: _ClassVar[int]
    CANDLE_FIELD_NUMBER: _ClassVar[int]
    venue: str
    symbol: str
    instrument: _common_pb2.InstrumentKind
    exchange_ts_ns: int
    receive_ts_ns: int
    seq: int
    trade: Trade
    top: BookTop
    depth: BookDepth
    funding: Funding
    mark: MarkPrice
    open_interest: OpenInterest
    liquidation: Liquidation
    candle: Candle
    def __init__(self, venue: _Optional[str] = ..., symbol: _Optional[str] = ..., instrument: _Optional[_Union[_common_pb2.InstrumentKind, str]] = ..., exchange_ts_ns: _Optional[int] = ..., receive_ts_ns: _Optional[int] = ..., seq: _Optional[int] = ..., trade: _Optional[_Union[Trade, _Mapping]] = ..., top: _Optional[_Union[BookTop, _Mapping]] = ..., depth: _Optional[_Union[BookDepth, _Mapping]] = ..., funding: _Optional[_Union[Funding, _Mapping]] = ..., mark: _Optional[_Union[MarkPrice, _Mapping]] = ..., open_interest: _Optional[_Union[OpenInterest, _Mapping]] = ..., liquidation: _Optional[_Union[Liquidation, _Mapping]] = ..., candle: _Optional[_Union[Candle, _Mapping]] = ...) -> None: ...

class MarketEventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[MarketEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[MarketEvent, _Mapping]]] = ...) -> None: ...
