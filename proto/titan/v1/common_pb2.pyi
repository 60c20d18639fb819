from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_BUY: _ClassVar[Side]
    SIDE_SELL: _ClassVar[Side]

class InstrumentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTRUMENT_KIND_UNSPECIFIED: _ClassVar[InstrumentKind]
    INSTRUMENT_KIND_SPOT: _ClassVar[InstrumentKind]
    INSTRUMENT_KIND_PERP: _ClassVar[InstrumentKind]

class TradingMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRADING_MODE_UNSPECIFIED: _ClassVar[TradingMode]
    TRADING_MODE_ACTIVE: _ClassVar[TradingMode]
    TRADING_MODE_REDUCING: _ClassVar[TradingMode]
    TRADING_MODE_HALTED: _ClassVar[TradingMode]

class PhaseState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PHASE_STATE_UNSPECIFIED: _ClassVar[PhaseState]
    PHASE_STATE_DORMANT: _ClassVar[PhaseState]
    PHASE_STATE_ACTIVE: _ClassVar[PhaseState]
    PHASE_STATE_THROTTLED: _ClassVar[PhaseState]
    PHASE_STATE_HALTED: _ClassVar[PhaseState]
SIDE_UNSPECIFIED: Side
SIDE_BUY: Side
SIDE_SELL: Side
INSTRUMENT_KIND_UNSPECIFIED: InstrumentKind
INSTRUMENT_KIND_SPOT: InstrumentKind
INSTRUMENT_KIND_PERP: InstrumentKind
TRADING_MODE_UNSPECIFIED: TradingMode
TRADING_MODE_ACTIVE: TradingMode
TRADING_MODE_REDUCING: TradingMode
TRADING_MODE_HALTED: TradingMode
PHASE_STATE_UNSPECIFIED: PhaseState
PHASE_STATE_DORMANT: PhaseState
PHASE_STATE_ACTIVE: PhaseState
PHASE_STATE_THROTTLED: PhaseState
PHASE_STATE_HALTED: PhaseState
