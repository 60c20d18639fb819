from titan.v1 import trading_pb2 as _trading_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ControlAuth(_message.Message):
    __slots__ = ("issuer", "issued_at_ns", "nonce", "signature")
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    issuer: str
    issued_at_ns: int
    nonce: str
    signature: bytes
    def __init__(self, issuer: _Optional[str] = ..., issued_at_ns: _Optional[int] = ..., nonce: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("phase_id", "instance")
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    phase_id: str
    instance: str
    def __init__(self, phase_id: _Optional[str] = ..., instance: _Optional[str] = ...) -> None: ...

class SignalBatch(_message.Message):
    __slots__ = ("signals",)
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    signals: _containers.RepeatedCompositeFieldContainer[_trading_pb2.Signal]
    def __init__(self, signals: _Optional[_Iterable[_Union[_trading_pb2.Signal, _Mapping]]] = ...) -> None: ...

class AckBatch(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[_trading_pb2.SignalAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[_trading_pb2.SignalAck, _Mapping]]] = ...) -> None: ...

class SealedSignal(_message.Message):
    __slots__ = ("phase_id", "signal_id", "signal", "signature")
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    phase_id: str
    signal_id: str
    signal: bytes
    signature: bytes
    def __init__(self, phase_id: _Optional[str] = ..., signal_id: _Optional[str] = ..., signal: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SealedBatch(_message.Message):
    __slots__ = ("signals",)
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    signals: _containers.RepeatedCompositeFieldContainer[SealedSignal]
    def __init__(self, signals: _Optional[_Iterable[_Union[SealedSignal, _Mapping]]] = ...) -> None: ...

class UpdateBatch(_message.Message):
    __slots__ = ("updates",)
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[ExecutionUpdate]
    def __init__(self, updates: _Optional[_Iterable[_Union[ExecutionUpdate, _Mapping]]] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("hello", "signal", "signals", "sealed")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    signal: _trading_pb2.Signal
    signals: SignalBatch
    sealed: SealedBatch
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., signal: _Optional[_Union[_trading_pb2.Signal, _Mapping]] = ..., signals: _Optional[_Union[SignalBatch, _Mapping]] = ..., sealed: _Optional[_Union[SealedBatch, _Mapping]] = ...) -> None: ...

class ExecutionUpdate(_message.Message):
    __slots__ = ("ack", "order", "fill", "position", "acks", "hedge", "updates")
    ACK_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    HEDGE_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    ack: _trading_pb2.SignalAck
    order: _trading_pb2.Order
    fill: _trading_pb2.Fill
    position: _trading_pb2.Position
    acks: AckBatch
    hedge: _trading_pb2.HedgeOutcome
    updates: UpdateBatch
    def __init__(self, ack: _Optional[_Union[_trading_pb2.SignalAck, _Mapping]] = ..., order: _Optional[_Union[_trading_pb2.Order, _Mapping]] = ..., fill: _Optional[_Union[_trading_pb2.Fill, _Mapping]] = ..., position: _Optional[_Union[_trading_pb2.Position, _Mapping]] = ..., acks: _Optional[_Union[AckBatch, _Mapping]] = ..., hedge: _Optional[_Union[_trading_pb2.HedgeOutcome, _Mapping]] = ..., updates: _Optional[_Union[UpdateBatch, _Mapping]] = ...) -> None: ...

class GetStateRequest(_message.Message):
    __slots__ = ("phase_id", "auth")
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    phase_id: str
    auth: ControlAuth
    def __init__(self, phase_id: _Optional[str] = ..., auth: _Optional[_Union[ControlAuth, _Mapping]] = ...) -> None: ...

class ExecutionState(_message.Message):
    __slots__ = ("trading_state", "budgets", "positions", "open_orders", "equity", "cpus", "venue", "mode")
    TRADING_STATE_FIELD_NUMBER: _ClassVar[int]
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    VENUE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    trading_state: _trading_pb2.TradingState
    budgets: _containers.RepeatedCompositeFieldContainer[_trading_pb2.Budget]
    positions: _containers.RepeatedCompositeFieldContainer[_trading_pb2.Position]
    open_orders: _containers.RepeatedCompositeFieldContainer[_trading_pb2.Order]
    equity: _containers.RepeatedCompositeFieldContainer[_trading_pb2.EquitySnapshot]
    cpus: _containers.RepeatedScalarFieldContainer[int]
    venue: str
    mode: str
    def __init__(self, trading_state: _Optional[_Union[_trading_pb2.TradingState, _Mapping]] = ..., budgets: _Optional[_Iterable[_Union[_trading_pb2.Budget, _Mapping]]] = ..., positions: _Optional[_Iterable[_Union[_trading_pb2.Position, _Mapping]]] = ..., open_orders: _Optional[_Iterable[_Union[_trading_pb2.Order, _Mapping]]] = ..., equity: _Optional[_Iterable[_Union[_trading_pb2.EquitySnapshot, _Mapping]]] = ..., cpus: _Optional[_Iterable[int]] = ..., venue: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class SetTradingStateRequest(_message.Message):
    __slots__ = ("auth", "state")
    AUTH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    auth: ControlAuth
    state: _trading_pb2.TradingState
    def __init__(self, auth: _Optional[_Union[ControlAuth, _Mapping]] = ..., state: _Optional[_Union[_trading_pb2.TradingState, _Mapping]] = ...) -> None: ...

class FlattenRequest(_message.Message):
    __slots__ = ("auth", "phase_id", "symbol", "reason")
    AUTH_FIELD_NUMBER: _ClassVar[int]
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    auth: ControlAuth
    phase_id: str
    symbol: str
    reason: str
    def __init__(self, auth: _Optional[_Union[ControlAuth, _Mapping]] = ..., phase_id: _Optional[str] = ..., symbol: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class FlattenResponse(_message.Message):
    __slots__ = ("client_order_ids",)
    CLIENT_ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    client_order_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_order_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateBudgetsRequest(_message.Message):
    __slots__ = ("auth", "budgets")
    AUTH_FIELD_NUMBER: _ClassVar[int]
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    auth: ControlAuth
    budgets: _containers.RepeatedCompositeFieldContainer[_trading_pb2.Budget]
    def __init__(self, auth: _Optional[_Union[ControlAuth, _Mapping]] = ..., budgets: _Optional[_Iterable[_Union[_trading_pb2.Budget, _Mapping]]] = ...) -> None: ...

class UpdateBudgetsResponse(_message.Message):
    __slots__ = ("applied", "ignored_stale")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    IGNORED_STALE_FIELD_NUMBER: _ClassVar[int]
    applied: int
    ignored_stale: int
    def __init__(self, applied: _Optional[int] = ..., ignored_stale: _Optional[int] = ...) -> None: ...
