from titan.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Intent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTENT_UNSPECIFIED: _ClassVar[Intent]
    INTENT_OPEN: _ClassVar[Intent]
    INTENT_CLOSE: _ClassVar[Intent]
    INTENT_REDUCE: _ClassVar[Intent]

class OrderType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_TYPE_UNSPECIFIED: _ClassVar[OrderType]
    ORDER_TYPE_MARKET: _ClassVar[OrderType]
    ORDER_TYPE_LIMIT: _ClassVar[OrderType]
    ORDER_TYPE_POST_ONLY: _ClassVar[OrderType]
    ORDER_TYPE_IOC: _ClassVar[OrderType]

class RejectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECT_REASON_UNSPECIFIED: _ClassVar[RejectReason]
    REJECT_REASON_BAD_SIGNATURE: _ClassVar[RejectReason]
    REJECT_REASON_UNKNOWN_PHASE: _ClassVar[RejectReason]
    REJECT_REASON_REPLAYED: _ClassVar[RejectReason]
    REJECT_REASON_STALE: _ClassVar[RejectReason]
    REJECT_REASON_MALFORMED: _ClassVar[RejectReason]
    REJECT_REASON_HALTED: _ClassVar[RejectReason]
    REJECT_REASON_REDUCE_ONLY: _ClassVar[RejectReason]
    REJECT_REASON_NO_BUDGET: _ClassVar[RejectReason]
    REJECT_REASON_BUDGET_EXPIRED: _ClassVar[RejectReason]
    REJECT_REASON_PHASE_BLOCKED: _ClassVar[RejectReason]
    REJECT_REASON_SYMBOL_NOT_ALLOWED: _ClassVar[RejectReason]
    REJECT_REASON_MARKET_DATA_STALE: _ClassVar[RejectReason]
    REJECT_REASON_PRICE_BAND: _ClassVar[RejectReason]
    REJECT_REASON_ORDER_NOTIONAL: _ClassVar[RejectReason]
    REJECT_REASON_PHASE_NOTIONAL: _ClassVar[RejectReason]
    REJECT_REASON_LEVERAGE: _ClassVar[RejectReason]
    REJECT_REASON_OPEN_ORDERS: _ClassVar[RejectReason]
    REJECT_REASON_ORDER_RATE: _ClassVar[RejectReason]
    REJECT_REASON_DAILY_LOSS: _ClassVar[RejectReason]
    REJECT_REASON_NOTHING_TO_REDUCE: _ClassVar[RejectReason]
    REJECT_REASON_TTL_EXPIRED: _ClassVar[RejectReason]
    REJECT_REASON_VENUE_REJECTED: _ClassVar[RejectReason]
    REJECT_REASON_INTERNAL: _ClassVar[RejectReason]
    REJECT_REASON_LEDGER_UNAVAILABLE: _ClassVar[RejectReason]
    REJECT_REASON_BUS_UNAVAILABLE: _ClassVar[RejectReason]
    REJECT_REASON_LEASE_LOST: _ClassVar[RejectReason]
    REJECT_REASON_OUTBOX_UNAVAILABLE: _ClassVar[RejectReason]

class OrderState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATE_UNSPECIFIED: _ClassVar[OrderState]
    ORDER_STATE_NEW: _ClassVar[OrderState]
    ORDER_STATE_SUBMITTED: _ClassVar[OrderState]
    ORDER_STATE_ACCEPTED: _ClassVar[OrderState]
    ORDER_STATE_PARTIALLY_FILLED: _ClassVar[OrderState]
    ORDER_STATE_FILLED: _ClassVar[OrderState]
    ORDER_STATE_CANCELED: _ClassVar[OrderState]
    ORDER_STATE_REJECTED: _ClassVar[OrderState]
    ORDER_STATE_EXPIRED: _ClassVar[OrderState]

class HedgeResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEDGE_RESULT_UNSPECIFIED: _ClassVar[HedgeResult]
    HEDGE_RESULT_HEDGED: _ClassVar[HedgeResult]
    HEDGE_RESULT_COMPLETED: _ClassVar[HedgeResult]
    HEDGE_RESULT_UNWOUND: _ClassVar[HedgeResult]
    HEDGE_RESULT_UNFILLED: _ClassVar[HedgeResult]
    HEDGE_RESULT_FAILED: _ClassVar[HedgeResult]
INTENT_UNSPECIFIED: Intent
INTENT_OPEN: Intent
INTENT_CLOSE: Intent
INTENT_REDUCE: Intent
ORDER_TYPE_UNSPECIFIED: OrderType
ORDER_TYPE_MARKET: OrderType
ORDER_TYPE_LIMIT: OrderType
ORDER_TYPE_POST_ONLY: OrderType
ORDER_TYPE_IOC: OrderType
REJECT_REASON_UNSPECIFIED: RejectReason
REJECT_REASON_BAD_SIGNATURE: RejectReason
REJECT_REASON_UNKNOWN_PHASE: RejectReason
REJECT_REASON_REPLAYED: RejectReason
REJECT_REASON_STALE: RejectReason
REJECT_REASON_MALFORMED: RejectReason
REJECT_REASON_HALTED: RejectReason
REJECT_REASON_REDUCE_ONLY: RejectReason
REJECT_REASON_NO_BUDGET: RejectReason
REJECT_REASON_BUDGET_EXPIRED: RejectReason
REJECT_REASON_PHASE_BLOCKED: RejectReason
REJECT_REASON_SYMBOL_NOT_ALLOWED: RejectReason
REJECT_REASON_MARKET_DATA_STALE: RejectReason
REJECT_REASON_PRICE_BAND: RejectReason
REJECT_REASON_ORDER_NOTIONAL: RejectReason
REJECT_REASON_PHASE_NOTIONAL: RejectReason
REJECT_REASON_LEVERAGE: RejectReason
REJECT_REASON_OPEN_ORDERS: RejectReason
REJECT_REASON_ORDER_RATE: RejectReason
REJECT_REASON_DAILY_LOSS: RejectReason
REJECT_REASON_NOTHING_TO_REDUCE: RejectReason
REJECT_REASON_TTL_EXPIRED: RejectReason
REJECT_REASON_VENUE_REJECTED: RejectReason
REJECT_REASON_INTERNAL: RejectReason
REJECT_REASON_LEDGER_UNAVAILABLE: RejectReason
REJECT_REASON_BUS_UNAVAILABLE: RejectReason
REJECT_REASON_LEASE_LOST: RejectReason
REJECT_REASON_OUTBOX_UNAVAILABLE: RejectReason
ORDER_STATE_UNSPECIFIED: OrderState
ORDER_STATE_NEW: OrderState
ORDER_STATE_SUBMITTED: OrderState
ORDER_STATE_ACCEPTED: OrderState
ORDER_STATE_PARTIALLY_FILLED: OrderState
ORDER_STATE_FILLED: OrderState
ORDER_STATE_CANCELED: OrderState
ORDER_STATE_REJECTED: OrderState
ORDER_STATE_EXPIRED: OrderState
HEDGE_RESULT_UNSPECIFIED: HedgeResult
HEDGE_RESULT_HEDGED: HedgeResult
HEDGE_RESULT_COMPLETED: HedgeResult
HEDGE_RESULT_UNWOUND: HedgeResult
HEDGE_RESULT_UNFILLED: HedgeResult
HEDGE_RESULT_FAILED: HedgeResult

class Leg(_message.Message):
    __slots__ = ("venue", "symbol", "instrument", "side", "size_quote", "order_type", "limit_price")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    SIZE_QUOTE_FIELD_NUMBER: _ClassVar[int]
    ORDER_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    venue: str
    symbol: str
    instrument: _common_pb2.InstrumentKind
    side: _common_pb2.Side
    size_quote: str
    order_type: OrderType
    limit_price: str
    def __init__(self, venue: _Optional[str] = ..., symbol: _Optional[str] = ..., instrument: _Optional[_Union[_common_pb2.InstrumentKind, str]] = ..., side: _Optional[_Union[_common_pb2.Side, str]] = ..., size_quote: _Optional[str] = ..., order_type: _Optional[_Union[OrderType, str]] = ..., limit_price: _Optional[str] = ...) -> None: ...

class Signal(_message.Message):
    __slots__ = ("phase_id", "signal_id", "intent", "legs", "stop_price", "target_prices", "confidence", "leverage", "ttl_ms", "created_at_ns", "max_slippage_bps", "setup", "metadata", "signature")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    LEGS_FIELD_NUMBER: _ClassVar[int]
    STOP_PRICE_FIELD_NUMBER: _ClassVar[int]
    TARGET_PRICES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    MAX_SLIPPAGE_BPS_FIELD_NUMBER: _ClassVar[int]
    SETUP_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    phase_id: str
    signal_id: str
    intent: Intent
    legs: _containers.RepeatedCompositeFieldContainer[Leg]
    stop_price: str
    target_prices: _containers.RepeatedScalarFieldContainer[str]
    confidence: float
    leverage: str
    ttl_ms: int
    created_at_ns: int
    max_slippage_bps: int
    setup: str
    metadata: _containers.ScalarMap[str, str]
    signature: bytes
    def __init__(self, phase_id: _Optional[str] = ..., signal_id: _Optional[str] = ..., intent: _Optional[_Union[Intent, str]] = ..., legs: _Optional[_Iterable[_Union[Leg, _Mapping]]] = ..., stop_price: _Optional[str] = ..., target_prices: _Optional[_Iterable[str]] = ..., confidence: _Optional[float] = ..., leverage: _Optional[str] = ..., ttl_ms: _Optional[int] = ..., created_at_ns: _Optional[int] = ..., max_slippage_bps: _Optional[int] = ..., setup: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SignalAck(_message.Message):
    __slots__ = ("phase_id", "signal_id", "accepted", "reason", "detail", "client_order_ids", "received_at_ns", "acked_at_ns")
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    ACKED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    phase_id: str
    signal_id: str
    accepted: bool
    reason: RejectReason
    detail: str
    client_order_ids: _containers.RepeatedScalarFieldContainer[str]
    received_at_ns: int
    acked_at_ns: int
    def __init__(self, phase_id: _Optional[str] = ..., signal_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., reason: _Optional[_Union[RejectReason, str]] = ..., detail: _Optional[str] = ..., client_order_ids: _Optional[_Iterable[str]] = ..., received_at_ns: _Optional[int] = ..., acked_at_ns: _Optional[int] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("client_order_id", "venue_order_id", "phase_id", "signal_id", "leg", "venue", "symbol", "instrument", "side", "order_type", "price", "quantity", "notional_quote", "reduce_only", "state", "filled_quantity", "average_price", "fees", "reason", "created_at_ns", "updated_at_ns", "version")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    VENUE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    LEG_FIELD_NUMBER: _ClassVar[int]
    VENUE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    ORDER_TYPE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_QUOTE_FIELD_NUMBER: _ClassVar[int]
    REDUCE_ONLY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FILLED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRICE_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    venue_order_id: str
    phase_id: str
    signal_id: str
    leg: int
    venue: str
    symbol: str
    instrument: _common_pb2.InstrumentKind
    side: _common_pb2.Side
    order_type: OrderType
    price: str
    quantity: str
    notional_quote: str
    reduce_only: bool
    state: OrderState
    filled_quantity: str
    average_price: str
    fees: str
    reason: str
    created_at_ns: int
    updated_at_ns: int
    version: int
    def __init__(self, client_order_id: _Optional[str] = ..., venue_order_id: _Optional[str] = ..., phase_id: _Optional[str] = ..., signal_id: _Optional[str] = ..., leg: _Optional[int] = ..., venue: _Optional[str] = ..., symbol: _Optional[str] = ..., instrument: _Optional[_Union[_common_pb2.InstrumentKind, str]] = ..., side: _Optional[_Union[_common_pb2.Side, str]] = ..., order_type: _Optional[_Union[OrderType, str]] = ..., price: _Optional[str] = ..., quantity: _Optional[str] = ..., notional_quote: _Optional[str] = ..., reduce_only: _Optional[bool] = ..., state: _Optional[_Union[OrderState, str]] = ..., filled_quantity: _Optional[str] = ..., average_price: _Optional[str] = ..., fees: _Optional[str] = ..., reason: _Optional[str] = ..., created_at_ns: _Optional[int] = ..., updated_at_ns: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class Fill(_message.Message):
    __slots__ = ("venue", "fill_id", "client_order_id", "phase_id", "symbol", "instrument", "side", "price", "quantity", "fee", "maker", "realized_pnl", "ts_ns")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    FILL_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    MAKER_FIELD_NUMBER: _ClassVar[int]
    REALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    venue: str
    fill_id: str
    client_order_id: str
    phase_id: str
    symbol: str
    instrument: _common_pb2.InstrumentKind
    side: _common_pb2.Side
    price: str
    quantity: str
    fee: str
    maker: bool
    realized_pnl: str
    ts_ns: int
    def __init__(self, venue: _Optional[str] = ..., fill_id: _Optional[str] = ..., client_order_id: _Optional[str] = ..., phase_id: _Optional[str] = ..., symbol: _Optional[str] = ..., instrument: _Optional[_Union[_common_pb2.InstrumentKind, str]] = ..., side: _Optional[_Union[_common_pb2.Side, str]] = ..., price: _Optional[str] = ..., quantity: _Optional[str] = ..., fee: _Optional[str] = ..., maker: _Optional[bool] = ..., realized_pnl: _Optional[str] = ..., ts_ns: _Optional[int] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("phase_id", "venue", "symbol", "instrument", "quantity", "average_entry_price", "mark_price", "realized_pnl", "unrealized_pnl", "fees", "funding", "leverage", "liquidation_price", "ts_ns", "version")
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    VENUE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    REALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    UNREALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    LIQUIDATION_PRICE_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    phase_id: str
    venue: str
    symbol: str
    instrument: _common_pb2.InstrumentKind
    quantity: str
    average_entry_price: str
    mark_price: str
    realized_pnl: str
    unrealized_pnl: str
    fees: str
    funding: str
    leverage: str
    liquidation_price: str
    ts_ns: int
    version: int
    def __init__(self, phase_id: _Optional[str] = ..., venue: _Optional[str] = ..., symbol: _Optional[str] = ..., instrument: _Optional[_Union[_common_pb2.InstrumentKind, str]] = ..., quantity: _Optional[str] = ..., average_entry_price: _Optional[str] = ..., mark_price: _Optional[str] = ..., realized_pnl: _Optional[str] = ..., unrealized_pnl: _Optional[str] = ..., fees: _Optional[str] = ..., funding: _Optional[str] = ..., leverage: _Optional[str] = ..., liquidation_price: _Optional[str] = ..., ts_ns: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class FundingPayment(_message.Message):
    __slots__ = ("venue", "symbol", "phase_id", "rate", "position_quantity", "mark_price", "amount", "funding_time_ns")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    POSITION_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FUNDING_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    venue: str
    symbol: str
    phase_id: str
    rate: str
    position_quantity: str
    mark_price: str
    amount: str
    funding_time_ns: int
    def __init__(self, venue: _Optional[str] = ..., symbol: _Optional[str] = ..., phase_id: _Optional[str] = ..., rate: _Optional[str] = ..., position_quantity: _Optional[str] = ..., mark_price: _Optional[str] = ..., amount: _Optional[str] = ..., funding_time_ns: _Optional[int] = ...) -> None: ...

class HedgeOutcome(_message.Message):
    __slots__ = ("phase_id", "signal_id", "symbol", "result", "spot_quantity", "perp_quantity", "residual", "reducing", "steps", "ts_ns")
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SPOT_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PERP_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    RESIDUAL_FIELD_NUMBER: _ClassVar[int]
    REDUCING_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    phase_id: str
    signal_id: str
    symbol: str
    result: HedgeResult
    spot_quantity: str
    perp_quantity: str
    residual: str
    reducing: bool
    steps: int
    ts_ns: int
    def __init__(self, phase_id: _Optional[str] = ..., signal_id: _Optional[str] = ..., symbol: _Optional[str] = ..., result: _Optional[_Union[HedgeResult, str]] = ..., spot_quantity: _Optional[str] = ..., perp_quantity: _Optional[str] = ..., residual: _Optional[str] = ..., reducing: _Optional[bool] = ..., steps: _Optional[int] = ..., ts_ns: _Optional[int] = ...) -> None: ...

class EquitySnapshot(_message.Message):
    __slots__ = ("scope", "equity", "realized_pnl", "unrealized_pnl", "fees", "funding", "exposure", "ts_ns")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    REALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    UNREALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    scope: str
    equity: str
    realized_pnl: str
    unrealized_pnl: str
    fees: str
    funding: str
    exposure: str
    ts_ns: int
    def __init__(self, scope: _Optional[str] = ..., equity: _Optional[str] = ..., realized_pnl: _Optional[str] = ..., unrealized_pnl: _Optional[str] = ..., fees: _Optional[str] = ..., funding: _Optional[str] = ..., exposure: _Optional[str] = ..., ts_ns: _Optional[int] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("phase_id", "state", "weight", "max_notional", "max_order_notional", "max_leverage", "max_orders_per_minute", "max_open_orders_per_symbol", "max_daily_loss", "symbols", "issued_at_ns", "expires_at_ns", "version")
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_ORDER_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_ORDERS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_ORDERS_PER_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    MAX_DAILY_LOSS_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_NS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    phase_id: str
    state: _common_pb2.PhaseState
    weight: str
    max_notional: str
    max_order_notional: str
    max_leverage: str
    max_orders_per_minute: int
    max_open_orders_per_symbol: int
    max_daily_loss: str
    symbols: _containers.RepeatedScalarFieldContainer[str]
    issued_at_ns: int
    expires_at_ns: int
    version: int
    def __init__(self, phase_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.PhaseState, str]] = ..., weight: _Optional[str] = ..., max_notional: _Optional[str] = ..., max_order_notional: _Optional[str] = ..., max_leverage: _Optional[str] = ..., max_orders_per_minute: _Optional[int] = ..., max_open_orders_per_symbol: _Optional[int] = ..., max_daily_loss: _Optional[str] = ..., symbols: _Optional[_Iterable[str]] = ..., issued_at_ns: _Optional[int] = ..., expires_at_ns: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class TradingState(_message.Message):
    __slots__ = ("mode", "reason", "set_by", "ts_ns", "version")
    MODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SET_BY_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    mode: _common_pb2.TradingMode
    reason: str
    set_by: str
    ts_ns: int
    version: int
    def __init__(self, mode: _Optional[_Union[_common_pb2.TradingMode, str]] = ..., reason: _Optional[str] = ..., set_by: _Optional[str] = ..., ts_ns: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...
