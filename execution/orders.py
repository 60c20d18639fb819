"""The order state machine.

States and the only legal transitions::

    NEW -> SUBMITTED | REJECTED
    SUBMITTED -> ACCEPTED | PARTIALLY_FILLED | FILLED | CANCELED | REJECTED | EXPIRED
    ACCEPTED -> PARTIALLY_FILLED | FILLED | CANCELED | EXPIRED
    PARTIALLY_FILLED -> PARTIALLY_FILLED | FILLED | CANCELED | EXPIRED
    FILLED, CANCELED, REJECTED, EXPIRED: terminal

Any other move raises :class:`IllegalTransition` and leaves the order unchanged. Fills can only move an
order forward and never beyond its quantity. Every change bumps ``version``.

Client order ids are derived from (phase, signal id, leg) so a retried or redelivered signal maps onto
the same order and can never create a second one.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from titan.core.money import CONTEXT
from titan.execution.numbers import fmt
from titan.v1 import common_pb2, trading_pb2

BUY = common_pb2.Side.SIDE_BUY
SELL = common_pb2.Side.SIDE_SELL

OrderState = trading_pb2.OrderState
NEW = OrderState.ORDER_STATE_NEW
SUBMITTED = OrderState.ORDER_STATE_SUBMITTED
ACCEPTED = OrderState.ORDER_STATE_ACCEPTED
PARTIALLY_FILLED = OrderState.ORDER_STATE_PARTIALLY_FILLED
FILLED = OrderState.ORDER_STATE_FILLED
CANCELED = OrderState.ORDER_STATE_CANCELED
REJECTED = OrderState.ORDER_STATE_REJECTED
EXPIRED = OrderState.ORDER_STATE_EXPIRED

TRANSITIONS: dict[int, frozenset[int]] = {
    NEW: frozenset({SUBMITTED, REJECTED}),
    SUBMITTED: frozenset({ACCEPTED, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED}),
    ACCEPTED: frozenset({PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED}),
    PARTIALLY_FILLED: frozenset({PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED}),
    FILLED: frozenset(),
    CANCELED: frozenset(),
    REJECTED: frozenset(),
    EXPIRED: frozenset(),
}
TERMINAL = frozenset({FILLED, CANCELED, REJECTED, EXPIRED})
OPEN = frozenset({NEW, SUBMITTED, ACCEPTED, PARTIALLY_FILLED})

_ZERO = Decimal(0)
CLIENT_ORDER_ID_LEN = 32  # fits Binance (36) and Bybit (36) client id limits


class IllegalTransition(Exception):
    pass


class OverFill(IllegalTransition):
    pass


def client_order_id(phase_id: str, signal_id: str, leg: int) -> str:
    """Deterministic, venue-safe client order id: ``T`` + 28 hex chars of
    sha256(phase, signal id) + ``-`` + leg (up to 99 legs)."""
    digest = hashlib.sha256(f"{phase_id}\x1f{signal_id}".encode()).hexdigest()[:28]
    return f"T{digest}-{leg}"


class ManagedOrder:
    """One order and its lifecycle. Money and sizes are Decimal."""

    __slots__ = (
        "average_price",
        "client_order_id",
        "created_at_ns",
        "expires_at_ns",
        "fees",
        "fill_seq",
        "filled",
        "instrument",
        "leg",
        "leverage",
        "notional",
        "order_type",
        "phase_id",
        "price",
        "price_cap",
        "quantity",
        "reason",
        "reduce_only",
        "side",
        "signal_id",
        "state",
        "symbol",
        "updated_at_ns",
        "venue",
        "venue_order_id",
        "version",
    )

    def __init__(
        self,
        *,
        client_order_id: str,
        phase_id: str,
        signal_id: str,
        leg: int,
        venue: str,
        symbol: str,
        instrument: int,
        side: int,
        order_type: int,
        quantity: Decimal,
        notional: Decimal,
        price: Decimal | None = None,
        reduce_only: bool = False,
        leverage: Decimal = Decimal(1),
        created_at_ns: int = 0,
        expires_at_ns: int = 0,
        price_cap: Decimal | None = None,
    ) -> None:
        if quantity <= 0:
            raise ValueError("order quantity must be > 0")
        self.client_order_id = client_order_id
        self.venue_order_id = ""
        self.phase_id = phase_id
        self.signal_id = signal_id
        self.leg = leg
        self.venue = venue
        self.symbol = symbol
        self.instrument = instrument
        self.side = side
        self.order_type = order_type
        self.price = price
        self.quantity = quantity
        self.notional = notional
        self.reduce_only = reduce_only
        self.leverage = leverage
        self.state: int = NEW
        self.filled = _ZERO
        self.average_price = _ZERO
        self.fees = _ZERO
        self.reason = ""
        self.created_at_ns = created_at_ns
        self.updated_at_ns = created_at_ns
        self.expires_at_ns = expires_at_ns
        self.price_cap = price_cap  # worst price a market order may take (slippage cap)
        self.version = 1
        self.fill_seq = 0

    # --- state -----------------------------------------------------------------------------
    @property
    def is_buy(self) -> bool:
        return self.side == BUY

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    def transition(self, to: int, now_ns: int, reason: str = "") -> None:
        if to not in TRANSITIONS[self.state]:
            raise IllegalTransition(
                f"order {self.client_order_id}: {OrderState.Name(self.state)} -> {OrderState.Name(to)} is not allowed"
            )
        self.state = to
        if reason:
            self.reason = reason
        self.updated_at_ns = now_ns
        self.version += 1

    def apply_fill(self, qty: Decimal, price: Decimal, fee: Decimal, now_ns: int) -> None:
        """Book a fill: quantity, volume-weighted average price, fees, and the state it implies."""
        if qty <= 0:
            raise IllegalTransition(f"order {self.client_order_id}: fill quantity must be > 0")
        if self.state not in (SUBMITTED, ACCEPTED, PARTIALLY_FILLED):
            raise IllegalTransition(f"order {self.client_order_id}: cannot fill in {OrderState.Name(self.state)}")
        new_filled = self.filled + qty
        if new_filled > self.quantity:
            raise OverFill(f"order {self.client_order_id}: fill {qty} exceeds remaining {self.remaining}")
        if self.filled:
            self.average_price = CONTEXT.divide(self.average_price * self.filled + price * qty, new_filled)
        else:
            self.average_price = price
        self.filled = new_filled
        self.fees += fee
        self.fill_seq += 1
        self.transition(FILLED if new_filled == self.quantity else PARTIALLY_FILLED, now_ns)

    # --- wire ------------------------------------------------------------------------------
    def to_proto(self) -> trading_pb2.Order:
        return trading_pb2.Order(
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            phase_id=self.phase_id,
            signal_id=self.signal_id,
            leg=self.leg,
            venue=self.venue,
            symbol=self.symbol,
            instrument=self.instrument,  # type: ignore[arg-type]
            side=self.side,  # type: ignore[arg-type]
            order_type=self.order_type,  # type: ignore[arg-type]
            price="" if self.price is None else fmt(self.price),
            quantity=fmt(self.quantity),
            notional_quote=fmt(self.notional),
            reduce_only=self.reduce_only,
            state=self.state,  # type: ignore[arg-type]
            filled_quantity=fmt(self.filled),
            average_price=fmt(self.average_price) if self.filled else "",
            fees=fmt(self.fees),
            reason=self.reason,
            created_at_ns=self.created_at_ns,
            updated_at_ns=self.updated_at_ns,
            version=self.version,
        )

    @classmethod
    def from_proto(cls, o: trading_pb2.Order) -> ManagedOrder:
        """Rebuild an order from its last recorded snapshot (recovery)."""
        from titan.core.money import to_decimal, to_decimal_or

        order = cls(
            client_order_id=o.client_order_id,
            phase_id=o.phase_id,
            signal_id=o.signal_id,
            leg=o.leg,
            venue=o.venue,
            symbol=o.symbol,
            instrument=int(o.instrument),
            side=int(o.side),
            order_type=int(o.order_type),
            quantity=to_decimal(o.quantity),
            notional=to_decimal_or(o.notional_quote, _ZERO),
            price=to_decimal(o.price) if o.price else None,
            reduce_only=o.reduce_only,
            created_at_ns=o.created_at_ns,
        )
        order.venue_order_id = o.venue_order_id
        order.state = int(o.state)
        order.filled = to_decimal_or(o.filled_quantity, _ZERO)
        order.average_price = to_decimal_or(o.average_price, _ZERO)
        order.fees = to_decimal_or(o.fees, _ZERO)
        order.reason = o.reason
        order.updated_at_ns = o.updated_at_ns
        order.version = o.version or 1
        return order
