from titan.v1 import common_pb2 as _common_pb2
from titan.v1 import trading_pb2 as _trading_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BreakerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_KIND_UNSPECIFIED: _ClassVar[BreakerKind]
    BREAKER_KIND_HARD: _ClassVar[BreakerKind]
    BREAKER_KIND_SOFT: _ClassVar[BreakerKind]
BREAKER_KIND_UNSPECIFIED: BreakerKind
BREAKER_KIND_HARD: BreakerKind
BREAKER_KIND_SOFT: BreakerKind

class SignalDecision(_message.Message):
    __slots__ = ("signal", "ack")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    signal: _trading_pb2.Signal
    ack: _trading_pb2.SignalAck
    def __init__(self, signal: _Optional[_Union[_trading_pb2.Signal, _Mapping]] = ..., ack: _Optional[_Union[_trading_pb2.SignalAck, _Mapping]] = ...) -> None: ...

class Allocation(_message.Message):
    __slots__ = ("phase_id", "state", "weight", "notional", "max_leverage", "equity", "reason", "ts_ns")
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    phase_id: str
    state: _common_pb2.PhaseState
    weight: str
    notional: str
    max_leverage: str
    equity: str
    reason: str
    ts_ns: int
    def __init__(self, phase_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.PhaseState, str]] = ..., weight: _Optional[str] = ..., notional: _Optional[str] = ..., max_leverage: _Optional[str] = ..., equity: _Optional[str] = ..., reason: _Optional[str] = ..., ts_ns: _Optional[int] = ...) -> None: ...

class BreakerEvent(_message.Message):
    __slots__ = ("breaker_id", "kind", "tripped", "reason", "equity", "drawdown", "phase_id", "ts_ns")
    BREAKER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TRIPPED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    DRAWDOWN_FIELD_NUMBER: _ClassVar[int]
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    breaker_id: str
    kind: BreakerKind
    tripped: bool
    reason: str
    equity: str
    drawdown: str
    phase_id: str
    ts_ns: int
    def __init__(self, breaker_id: _Optional[str] = ..., kind: _Optional[_Union[BreakerKind, str]] = ..., tripped: _Optional[bool] = ..., reason: _Optional[str] = ..., equity: _Optional[str] = ..., drawdown: _Optional[str] = ..., phase_id: _Optional[str] = ..., ts_ns: _Optional[int] = ...) -> None: ...

class ParameterProposal(_message.Message):
    __slots__ = ("proposal_id", "phase_id", "params_json", "rationale", "status", "baseline_score", "candidate_score", "reason", "ts_ns")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_SCORE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    phase_id: str
    params_json: str
    rationale: str
    status: str
    baseline_score: str
    candidate_score: str
    reason: str
    ts_ns: int
    def __init__(self, proposal_id: _Optional[str] = ..., phase_id: _Optional[str] = ..., params_json: _Optional[str] = ..., rationale: _Optional[str] = ..., status: _Optional[str] = ..., baseline_score: _Optional[str] = ..., candidate_score: _Optional[str] = ..., reason: _Optional[str] = ..., ts_ns: _Optional[int] = ...) -> None: ...

class PhaseDiagnostics(_message.Message):
    __slots__ = ("phase_id", "ts_ns", "state", "values", "notes")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    phase_id: str
    ts_ns: int
    state: str
    values: _containers.ScalarMap[str, float]
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, phase_id: _Optional[str] = ..., ts_ns: _Optional[int] = ..., state: _Optional[str] = ..., values: _Optional[_Mapping[str, float]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class CarriedAmount(_message.Message):
    __slots__ = ("phase_id", "venue", "symbol", "instrument", "amount")
    PHASE_ID_FIELD_NUMBER: _ClassVar[int]
    VENUE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    phase_id: str
    venue: str
    symbol: str
    instrument: _common_pb2.InstrumentKind
    amount: str
    def __init__(self, phase_id: _Optional[str] = ..., venue: _Optional[str] = ..., symbol: _Optional[str] = ..., instrument: _Optional[_Union[_common_pb2.InstrumentKind, str]] = ..., amount: _Optional[str] = ...) -> None: ...

class BrainCarry(_message.Message):
    __slots__ = ("through_seq", "carried", "ts_ns")
    THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    CARRIED_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    through_seq: int
    carried: _containers.RepeatedCompositeFieldContainer[CarriedAmount]
    ts_ns: int
    def __init__(self, through_seq: _Optional[int] = ..., carried: _Optional[_Iterable[_Union[CarriedAmount, _Mapping]]] = ..., ts_ns: _Optional[int] = ...) -> None: ...

class LedgerHeartbeat(_message.Message):
    __slots__ = ("writing_at_ns", "ts_ns", "writer", "failing_since_ns")
    WRITING_AT_NS_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    WRITER_FIELD_NUMBER: _ClassVar[int]
    FAILING_SINCE_NS_FIELD_NUMBER: _ClassVar[int]
    writing_at_ns: int
    ts_ns: int
    writer: str
    failing_since_ns: int
    def __init__(self, writing_at_ns: _Optional[int] = ..., ts_ns: _Optional[int] = ..., writer: _Optional[str] = ..., failing_since_ns: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "source", "ts_ns", "order", "fill", "position", "funding", "equity", "decision", "allocation", "breaker", "proposal", "trading_state", "hedge", "batch")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    TRADING_STATE_FIELD_NUMBER: _ClassVar[int]
    HEDGE_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    source: str
    ts_ns: int
    order: _trading_pb2.Order
    fill: _trading_pb2.Fill
    position: _trading_pb2.Position
    funding: _trading_pb2.FundingPayment
    equity: _trading_pb2.EquitySnapshot
    decision: SignalDecision
    allocation: Allocation
    breaker: BreakerEvent
    proposal: ParameterProposal
    trading_state: _trading_pb2.TradingState
    hedge: _trading_pb2.HedgeOutcome
    batch: EventBatch
    def __init__(self, event_id: _Optional[str] = ..., source: _Optional[str] = ..., ts_ns: _Optional[int] = ..., order: _Optional[_Union[_trading_pb2.Order, _Mapping]] = ..., fill: _Optional[_Union[_trading_pb2.Fill, _Mapping]] = ..., position: _Optional[_Union[_trading_pb2.Position, _Mapping]] = ..., funding: _Optional[_Union[_trading_pb2.FundingPayment, _Mapping]] = ..., equity: _Optional[_Union[_trading_pb2.EquitySnapshot, _Mapping]] = ..., decision: _Optional[_Union[SignalDecision, _Mapping]] = ..., allocation: _Optional[_Union[Allocation, _Mapping]] = ..., breaker: _Optional[_Union[BreakerEvent, _Mapping]] = ..., proposal: _Optional[_Union[ParameterProposal, _Mapping]] = ..., trading_state: _Optional[_Union[_trading_pb2.TradingState, _Mapping]] = ..., hedge: _Optional[_Union[_trading_pb2.HedgeOutcome, _Mapping]] = ..., batch: _Optional[_Union[EventBatch, _Mapping]] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...
