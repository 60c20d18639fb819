"""Protobuf enums as plain namespaces of ints: attribute access on the generated enum wrappers goes
through a slow ``__getattr__``, which the hot path cannot afford."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from titan.v1 import common_pb2, trading_pb2


def fast_enum(wrapper: Any) -> Any:
    ns = SimpleNamespace(**dict(wrapper.items()))
    ns.Name = wrapper.Name
    ns.values = wrapper.values
    ns.items = wrapper.items
    return ns


RejectReason = fast_enum(trading_pb2.RejectReason)
OrderType = fast_enum(trading_pb2.OrderType)
OrderState = fast_enum(trading_pb2.OrderState)
Intent = fast_enum(trading_pb2.Intent)
TradingMode = fast_enum(common_pb2.TradingMode)
PhaseState = fast_enum(common_pb2.PhaseState)
Side = fast_enum(common_pb2.Side)
InstrumentKind = fast_enum(common_pb2.InstrumentKind)
