"""Builders for execution tests: a signed signal, a budget, market events, a ready engine."""

from __future__ import annotations

import time
import uuid
from collections import deque
from decimal import Decimal
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from titan.core.clock import ManualClock
from titan.core.signing import sign_control, sign_signal
from titan.execution.engine import Engine, EngineConfig
from titan.v1 import common_pb2, market_pb2, trading_pb2

T0 = 1_700_000_000_000_000_000
KEY = b"hunter-test-key-0123456789abcdef"
OTHER_KEY = b"scavenger-key-0123456789abcdef!!"
KEYS = {"hunter": KEY, "scavenger": OTHER_KEY}

BUY = common_pb2.Side.SIDE_BUY
SELL = common_pb2.Side.SIDE_SELL
SPOT = common_pb2.InstrumentKind.INSTRUMENT_KIND_SPOT
PERP = common_pb2.InstrumentKind.INSTRUMENT_KIND_PERP
MODE = common_pb2.TradingMode
PhaseState = common_pb2.PhaseState
RejectReason = trading_pb2.RejectReason
OrderType = trading_pb2.OrderType
OrderState = trading_pb2.OrderState
OPEN = trading_pb2.Intent.INTENT_OPEN
CLOSE = trading_pb2.Intent.INTENT_CLOSE
REDUCE = trading_pb2.Intent.INTENT_REDUCE

_counter = [0]


def leg(
    symbol: str = "BTCUSDT",
    side: int = BUY,
    size: str = "1000",
    *,
    venue: str = "bybit",
    instrument: int = PERP,
    order_type: int = OrderType.ORDER_TYPE_MARKET,
    limit: str = "",
) -> trading_pb2.Leg:
    return trading_pb2.Leg(
        venue=venue, symbol=symbol, instrument=instrument, side=side, size_quote=size, order_type=order_type,
        limit_price=limit,
    )


def signal(
    clock: ManualClock,
    *legs: trading_pb2.Leg,
    phase: str = "hunter",
    intent: int = OPEN,
    signal_id: str | None = None,
    key: bytes | None = KEY,
    leverage: str = "",
    ttl_ms: int = 0,
    created_at_ns: int | None = None,
    max_slippage_bps: int = 0,
) -> trading_pb2.Signal:
    if signal_id is None:
        _counter[0] += 1
        signal_id = f"sig-{_counter[0]}"
    sig = trading_pb2.Signal(
        phase_id=phase,
        signal_id=signal_id,
        intent=intent,
        legs=list(legs) or [leg()],
        confidence=0.7,
        leverage=leverage,
        ttl_ms=ttl_ms,
        created_at_ns=clock.now_ns() if created_at_ns is None else created_at_ns,
        max_slippage_bps=max_slippage_bps,
        setup="test",
    )
    if key is not None:
        sign_signal(sig, key)
    return sig


def budget(phase: str = "hunter", version: int = 1, **kw: object) -> trading_pb2.Budget:
    fields: dict[str, object] = {
        "phase_id": phase,
        "state": PhaseState.PHASE_STATE_ACTIVE,
        "weight": "0.5",
        "max_notional": "100000",
        "max_order_notional": "60000",
        "max_leverage": "10",
        "max_orders_per_minute": 100,
        "max_open_orders_per_symbol": 5,
        "max_daily_loss": "1000",
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "issued_at_ns": T0,
        "expires_at_ns": T0 + 3_600 * 10**9,
        "version": version,
    }
    fields.update(kw)
    return trading_pb2.Budget(**fields)  # type: ignore[arg-type]


def trading_state(mode: int, version: int) -> trading_pb2.TradingState:
    return trading_pb2.TradingState(mode=mode, reason="test", set_by="test", ts_ns=T0, version=version)  # type: ignore[arg-type]


def md(
    symbol: str = "BTCUSDT", venue: str = "bybit", instrument: int = PERP, **payload: object
) -> market_pb2.MarketEvent:
    payload.setdefault("exchange_ts_ns", time.time_ns())  # a valid event carries its time
    return market_pb2.MarketEvent(venue=venue, symbol=symbol, instrument=instrument, **payload)  # type: ignore[arg-type]


def top(bid: str, bid_size: str, ask: str, ask_size: str, **kw: object) -> market_pb2.MarketEvent:
    return md(top=market_pb2.BookTop(bid_price=bid, bid_size=bid_size, ask_price=ask, ask_size=ask_size), **kw)


def depth(bids: list[tuple[str, str]], asks: list[tuple[str, str]], **kw: object) -> market_pb2.MarketEvent:
    return md(
        depth=market_pb2.BookDepth(
            snapshot=True,
            bids=[market_pb2.BookLevel(price=p, size=q) for p, q in bids],
            asks=[market_pb2.BookLevel(price=p, size=q) for p, q in asks],
        ),
        **kw,
    )


def trade(price: str, size: str = "1", **kw: object) -> market_pb2.MarketEvent:
    return md(trade=market_pb2.Trade(price=price, size=size, taker_side=BUY), **kw)


def mark(price: str, **kw: object) -> market_pb2.MarketEvent:
    return md(mark=market_pb2.MarkPrice(mark_price=price, index_price=price), **kw)


def funding(rate: str, funding_time_ns: int, settled: bool, **kw: object) -> market_pb2.MarketEvent:
    return md(funding=market_pb2.Funding(rate=rate, funding_time_ns=funding_time_ns, settled=settled), **kw)


def make_engine(
    *, mode: int = MODE.TRADING_MODE_ACTIVE, with_budget: bool = True, config: EngineConfig | None = None,
    book: bool = True,
) -> tuple[Engine, ManualClock]:
    clock = ManualClock(T0)
    engine = Engine(clock, dict(KEYS), config)
    engine.set_trading_state(trading_state(mode, 1))
    if with_budget:
        assert engine.update_budget(budget()) == "applied"
    if book:
        engine.on_market(top("50000", "10", "50000", "10"))
        engine.on_market(mark("50000"))
        engine.on_market(top("3000", "100", "3000", "100", symbol="ETHUSDT"))
    return engine, clock


def orders_of(updates: list[object]) -> list[trading_pb2.Order]:
    return [u for u in updates if isinstance(u, trading_pb2.Order)]


def fills_of(updates: list[object]) -> list[trading_pb2.Fill]:
    return [u for u in updates if isinstance(u, trading_pb2.Fill)]


def positions_of(updates: list[object]) -> list[trading_pb2.Position]:
    return [u for u in updates if isinstance(u, trading_pb2.Position)]


def dec(text: str) -> Decimal:
    return Decimal(text)


CONTROL_KEY = b"control-key-0123456789abcdefghij"
M = TypeVar("M", bound=Message)


def control(request: M, key: bytes = CONTROL_KEY, *, nonce: str | None = None, issued_at_ns: int | None = None) -> M:
    """``request`` with a signed ControlAuth (fresh nonce, issued now unless told otherwise)."""
    request.auth.issuer = "test"  # type: ignore[attr-defined]
    request.auth.issued_at_ns = time.time_ns() if issued_at_ns is None else issued_at_ns  # type: ignore[attr-defined]
    request.auth.nonce = nonce or uuid.uuid4().hex  # type: ignore[attr-defined]
    sign_control(request, key)
    return request


class Updates:
    """Reads a StreamSignals call one update at a time, as a phase sees them: the updates of an
    ``UpdateBatch`` one by one, in order (acks and ``AckBatch`` as they come)."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self._waiting: deque[Any] = deque()

    async def read(self) -> Any:
        if not self._waiting:
            msg = await self.call.read()
            if msg is grpc.aio.EOF or msg.WhichOneof("body") != "updates":
                return msg
            self._waiting.extend(msg.updates.updates)
        return self._waiting.popleft()


_READERS: dict[int, tuple[Any, Updates]] = {}


def updates_of(call: Any) -> Updates:
    """The one :class:`Updates` reader of ``call`` (so what a batch brought is not lost between reads)."""
    entry = _READERS.get(id(call))
    if entry is None or entry[0] is not call:
        entry = _READERS[id(call)] = (call, Updates(call))
    return entry[1]
