"""The risk gate: pure, ordered; the first failing rule rejects with its own reason.

Order (ARCHITECTURE.md, "Execution risk gate"), with the reason each rule returns:

 1. signature ............................ UNKNOWN_PHASE (no key), BAD_SIGNATURE
 2. replay window ........................ STALE (created_at too old or too far ahead), REPLAYED (id seen)
 3. schema / bounds ...................... MALFORMED
 4. time to live ......................... TTL_EXPIRED
 5. trading state ........................ HALTED (rejects everything)
 6. intent ............................... NOTHING_TO_REDUCE (close/reduce without an opposite position)
    trading state REDUCING ............... REDUCE_ONLY (the signal adds exposure)
    dependencies (adding) ................ LEASE_LOST, OUTBOX_UNAVAILABLE, BUS_UNAVAILABLE, LEDGER_UNAVAILABLE
 7. budget (only for exposure-adding) .... NO_BUDGET, BUDGET_EXPIRED, PHASE_BLOCKED
 8. symbol allowed (adding) .............. SYMBOL_NOT_ALLOWED
 9. market data fresh .................... MARKET_DATA_STALE
10. price band (limit legs) .............. PRICE_BAND
11. per-order notional (adding) .......... ORDER_NOTIONAL
12. phase notional (adding) .............. PHASE_NOTIONAL
13. leverage (adding perp legs) .......... LEVERAGE
14. open orders per symbol ............... OPEN_ORDERS
15. order rate .......................... ORDER_RATE
16. daily loss (adding) .................. DAILY_LOSS

A signal is *reducing* when its intent is CLOSE or REDUCE: each leg must then face an opposite
position and its quantity is capped at that position (reduce-only). OPEN always adds exposure.
Without a budget, with an expired one, or with a blocked one, a phase can only reduce; reducing
signals use the gate's default limits for open orders and order rate when no budget is in force.
While a watched dependency is unavailable beyond ``dependency_grace_ns`` (the ledger not writing,
execution's events not reaching NATS, the ledger's lease held elsewhere), every phase can only reduce.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from titan.core.money import CONTEXT, MoneyError, to_decimal, wire_decimal
from titan.core.signing import signature_matches
from titan.execution import enums
from titan.execution.dependencies import Dependencies
from titan.execution.market import InstrumentMarket, MarketData
from titan.execution.paper import PaperVenue
from titan.execution.portfolio import Portfolio
from titan.v1 import common_pb2, trading_pb2

RejectReason = enums.RejectReason
OK = RejectReason.REJECT_REASON_UNSPECIFIED
Mode = enums.TradingMode
PhaseState = enums.PhaseState
BUY = common_pb2.Side.SIDE_BUY
SELL = common_pb2.Side.SIDE_SELL
SPOT = common_pb2.InstrumentKind.INSTRUMENT_KIND_SPOT
PERP = common_pb2.InstrumentKind.INSTRUMENT_KIND_PERP
OrderType = enums.OrderType
INTENT_OPEN = trading_pb2.Intent.INTENT_OPEN
INTENT_CLOSE = trading_pb2.Intent.INTENT_CLOSE
INTENT_REDUCE = trading_pb2.Intent.INTENT_REDUCE
LIMIT_TYPES = frozenset({OrderType.ORDER_TYPE_LIMIT, OrderType.ORDER_TYPE_POST_ONLY, OrderType.ORDER_TYPE_IOC})

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SIGNAL_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces
_ZERO = Decimal(0)
_ONE = Decimal(1)
_MAX_SIGNAL_LEVERAGE = Decimal(1000)
_BPS = Decimal(10_000)
_MIN_PRICE = Decimal("1e-12")
_MAX_PRICE = Decimal("1e12")
NS_PER_MS = 1_000_000
MINUTE_NS = 60 * 1_000_000_000


@dataclass(frozen=True)
class GateConfig:
    replay_window_ns: int = 5_000 * NS_PER_MS
    market_data_max_age_ns: int = 10_000 * NS_PER_MS
    price_band_bps: Decimal = Decimal(200)
    max_legs: int = 4
    max_leg_notional: Decimal = Decimal(1_000_000_000)
    max_leverage: Decimal = Decimal(20)            # global cap above any budget
    default_open_orders_per_symbol: int = 20
    default_orders_per_minute: int = 600
    max_ttl_ms: int = 86_400_000
    dependency_grace_ns: int = 5_000 * NS_PER_MS  # ledger, bus, lease: how long an outage is tolerated


class BudgetView:
    """A validated Budget with parsed Decimals. Empty ``max_order_notional`` = the phase cap; empty
    ``max_daily_loss`` = no daily-loss limit; empty ``max_leverage`` = 1; zero counts = gate defaults."""

    __slots__ = (
        "expires_at_ns",
        "max_daily_loss",
        "max_leverage",
        "max_notional",
        "max_open_orders",
        "max_order_notional",
        "max_per_minute",
        "phase_id",
        "proto",
        "state",
        "symbols",
        "version",
        "weight",
    )

    def __init__(self, b: trading_pb2.Budget) -> None:
        if not _TOKEN.match(b.phase_id):
            raise ValueError(f"bad phase id {b.phase_id!r}")
        self.proto = b
        self.phase_id = b.phase_id
        self.state = int(b.state)
        self.weight = to_decimal(b.weight) if b.weight else _ZERO
        self.max_notional = to_decimal(b.max_notional) if b.max_notional else _ZERO
        self.max_order_notional = to_decimal(b.max_order_notional) if b.max_order_notional else self.max_notional
        self.max_leverage = to_decimal(b.max_leverage) if b.max_leverage else _ONE
        self.max_per_minute = int(b.max_orders_per_minute)
        self.max_open_orders = int(b.max_open_orders_per_symbol)
        self.max_daily_loss: Decimal | None = to_decimal(b.max_daily_loss) if b.max_daily_loss else None
        self.symbols = frozenset(b.symbols)
        self.expires_at_ns = b.expires_at_ns
        self.version = b.version
        for v in (self.weight, self.max_notional, self.max_order_notional, self.max_leverage):
            if v < 0:
                raise ValueError("budget values must be >= 0")


class Leg(NamedTuple):
    """A signal leg's fields, read from the protobuf once per signal: every read of a protobuf field
    builds a new Python object, and the rules read most of them more than once."""

    venue: str
    symbol: str
    instrument: int
    side: int
    order_type: int
    size_quote: str
    limit_price: str


def legs_of(sig: trading_pb2.Signal) -> list[Leg]:
    return [Leg(leg.venue, leg.symbol, leg.instrument, leg.side, leg.order_type, leg.size_quote, leg.limit_price)
            for leg in sig.legs]


@dataclass(slots=True)
class LegPlan:
    """What one accepted leg becomes: an order of ``quantity`` (base) worth ``notional`` (quote)."""

    index: int
    venue: str
    symbol: str
    instrument: int
    buy: bool
    order_type: int
    limit: Decimal | None
    quantity: Decimal
    notional: Decimal
    reduce_only: bool
    market: InstrumentMarket
    leverage: Decimal


@dataclass(slots=True)
class Verdict:
    reason: int
    detail: str = ""
    legs: list[LegPlan] | None = None
    reducing: bool = False

    @property
    def accepted(self) -> bool:
        return bool(self.reason == OK)


class RateWindow:
    """Orders placed per phase in the last minute."""

    __slots__ = ("_times",)

    def __init__(self) -> None:
        self._times: dict[str, deque[int]] = {}

    def count(self, phase: str, now_ns: int) -> int:
        q = self._times.get(phase)
        if not q:
            return 0
        horizon = now_ns - MINUTE_NS
        while q and q[0] <= horizon:
            q.popleft()
        return len(q)

    def add(self, phase: str, now_ns: int, n: int = 1) -> None:
        q = self._times.get(phase)
        if q is None:
            q = self._times[phase] = deque()
        for _ in range(n):
            q.append(now_ns)


class OpenOrderBook:
    """What the gate needs to know about open orders: count per (phase, symbol) and the notional of
    open exposure-adding orders per phase. Maintained by the engine."""

    __slots__ = ("adding_notional", "counts")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.adding_notional: dict[str, Decimal] = {}

    def count(self, phase: str, symbol: str) -> int:
        return self.counts.get((phase, symbol), 0)

    def opened(self, phase: str, symbol: str, adding_notional: Decimal) -> None:
        k = (phase, symbol)
        self.counts[k] = self.counts.get(k, 0) + 1
        if adding_notional:
            self.adding_notional[phase] = self.adding_notional.get(phase, _ZERO) + adding_notional

    def reduced(self, phase: str, adding_notional: Decimal) -> None:
        if adding_notional:
            self.adding_notional[phase] = self.adding_notional.get(phase, _ZERO) - adding_notional

    def closed(self, phase: str, symbol: str) -> None:
        k = (phase, symbol)
        n = self.counts.get(k, 0) - 1
        if n > 0:
            self.counts[k] = n
        else:
            self.counts.pop(k, None)


class RiskGate:
    """Evaluates signals against the state it is given. Holds no I/O; the engine owns the state."""

    def __init__(
        self,
        config: GateConfig,
        keys: dict[str, bytes],
        market: MarketData,
        portfolio: Portfolio,
        open_orders: OpenOrderBook,
        rates: RateWindow,
        venue: PaperVenue,
    ) -> None:
        self.config = config
        self.keys = keys
        self.market = market
        self.portfolio = portfolio
        self.open_orders = open_orders
        self.rates = rates
        self.venue = venue
        self.trading_mode: int = Mode.TRADING_MODE_UNSPECIFIED
        self.budgets: dict[str, BudgetView] = {}
        self.seen: dict[tuple[str, str], object] = {}
        self._valid_pairs: set[tuple[str, str]] = set()
        self.dependencies = Dependencies(config.dependency_grace_ns)

    # --- the gate --------------------------------------------------------------------------
    def evaluate(self, sig: trading_pb2.Signal, now_ns: int, *, verified: bool = False) -> Verdict:
        """The rules in order; the first that fails decides (see the module's list). ``verified``: the
        signature was already checked over the bytes the signal arrived as (a sealed signal)."""
        legs = self._authentic(sig, now_ns, verified)
        if isinstance(legs, Verdict):
            return legs
        reducing = sig.intent != INTENT_OPEN
        held = self._held(sig, legs) if reducing else self._may_add(now_ns)
        if isinstance(held, Verdict):
            return held
        budget = self.budgets.get(sig.phase_id)
        if not reducing:
            refused = self._budget_allows(legs, budget, now_ns)
            if refused is not None:
                return refused
        plans = self._plan_legs(sig, legs, now_ns, held, reducing)
        if isinstance(plans, Verdict):
            return plans
        if not reducing:
            assert budget is not None
            refused = self._within_allocation(sig, plans, budget)
            if refused is not None:
                return refused
        refused = self._within_rates(sig.phase_id, plans, budget, now_ns)
        if refused is not None:
            return refused
        # 16. daily loss
        if not reducing:
            assert budget is not None
            if budget.max_daily_loss is not None and self.portfolio.daily_pnl(sig.phase_id) <= -budget.max_daily_loss:
                return Verdict(RejectReason.REJECT_REASON_DAILY_LOSS,
                               "daily loss limit reached: the phase may only reduce")
        return Verdict(OK, "", plans, reducing)

    def _authentic(self, sig: trading_pb2.Signal, now_ns: int, verified: bool = False) -> Verdict | list[Leg]:
        """Rules 1-5: signature, replay window, schema, ttl, trading state; the signal's legs when
        it passes them."""
        phase = sig.phase_id
        # 1. signature
        key = self.keys.get(phase)
        if key is None:
            return Verdict(RejectReason.REJECT_REASON_UNKNOWN_PHASE, "no signing key for this phase")
        if not verified and not verify_signal(sig, key):
            return Verdict(RejectReason.REJECT_REASON_BAD_SIGNATURE, "signature missing or does not match")
        # 2. replay window
        if abs(now_ns - sig.created_at_ns) > self.config.replay_window_ns:
            return Verdict(RejectReason.REJECT_REASON_STALE, "created_at outside the replay window")
        if (phase, sig.signal_id) in self.seen:
            return Verdict(RejectReason.REJECT_REASON_REPLAYED, "signal id already decided")
        # 3. schema / bounds
        legs = legs_of(sig)
        bad = self._schema(sig, legs)
        if bad:
            return Verdict(RejectReason.REJECT_REASON_MALFORMED, bad)
        # 4. ttl
        if sig.ttl_ms and now_ns > sig.created_at_ns + sig.ttl_ms * NS_PER_MS:
            return Verdict(RejectReason.REJECT_REASON_TTL_EXPIRED, "signal arrived after its ttl")
        # 5. trading state
        if self.trading_mode not in (Mode.TRADING_MODE_ACTIVE, Mode.TRADING_MODE_REDUCING):
            return Verdict(RejectReason.REJECT_REASON_HALTED, "trading is halted")
        return legs

    def _held(self, sig: trading_pb2.Signal, legs: list[Leg]) -> list[Decimal] | Verdict:
        """Rule 6, reducing: every leg has an opposite position to reduce; their sizes."""
        positions: list[Decimal] = []
        for leg in legs:
            q = self.portfolio.quantity((sig.phase_id, leg.venue, leg.symbol, leg.instrument))
            if q == 0 or (q > 0) == (leg.side == BUY):
                return Verdict(RejectReason.REJECT_REASON_NOTHING_TO_REDUCE,
                               f"no opposite position in {leg.symbol} to reduce")
            positions.append(abs(q))
        return positions

    def _may_add(self, now_ns: int) -> list[Decimal] | Verdict:
        """Rule 6, adding: not in REDUCING, and no dependency outage past its grace (degraded mode)."""
        if self.trading_mode == Mode.TRADING_MODE_REDUCING:
            return Verdict(RejectReason.REJECT_REASON_REDUCE_ONLY,
                           "trading state REDUCING: only exposure-reducing signals")
        outage = self.dependencies.outage(now_ns)
        if outage is not None:
            return Verdict(outage.reason, outage.detail)
        return []

    def _budget_allows(self, legs: list[Leg], budget: BudgetView | None, now_ns: int) -> Verdict | None:
        """Rules 7-8 for entries: a live budget in an active state, and every leg's symbol in it."""
        if budget is None:
            return Verdict(RejectReason.REJECT_REASON_NO_BUDGET, "no budget for this phase: it may only reduce")
        if now_ns >= budget.expires_at_ns:
            return Verdict(RejectReason.REJECT_REASON_BUDGET_EXPIRED, "budget expired: the phase may only reduce")
        if budget.state != PhaseState.PHASE_STATE_ACTIVE or budget.weight <= 0:
            return Verdict(RejectReason.REJECT_REASON_PHASE_BLOCKED, "phase state or zero weight blocks entries")
        for leg in legs:
            if leg.symbol not in budget.symbols:
                return Verdict(RejectReason.REJECT_REASON_SYMBOL_NOT_ALLOWED,
                               f"{leg.symbol} is not in the phase's budget")
        return None

    def _plan_legs(self, sig: trading_pb2.Signal, legs: list[Leg], now_ns: int,
                   held: list[Decimal], reducing: bool) -> list[LegPlan] | Verdict:
        """Rules 9-10: fresh market data, each leg sized at the price it would get, limits in the band.
        ``held``: the positions a reducing signal's legs reduce (empty for an entry)."""
        cfg = self.config
        leverage = wire_decimal(sig.leverage) if sig.leverage else _ONE
        plans: list[LegPlan] = []
        for i, leg in enumerate(legs):
            instrument = leg.instrument
            im = self.market.get((leg.venue, leg.symbol, instrument))
            if im is None or now_ns - im.updated_ns > cfg.market_data_max_age_ns:
                return Verdict(RejectReason.REJECT_REASON_MARKET_DATA_STALE, f"no fresh market data for {leg.symbol}")
            ref = im.reference_price()
            if ref is None or ref <= 0:
                return Verdict(RejectReason.REJECT_REASON_MARKET_DATA_STALE, f"no price for {leg.symbol}")
            buy = leg.side == BUY
            otype = leg.order_type or OrderType.ORDER_TYPE_MARKET
            limit = wire_decimal(leg.limit_price) if otype in LIMIT_TYPES else None
            px = limit if limit is not None else (self.venue.expected_taker_price(im, buy) or ref)
            if reducing and sig.intent == INTENT_CLOSE and not leg.size_quote:
                qty = held[i]
            else:
                qty = self.venue.round_quantity(leg.symbol, CONTEXT.divide(wire_decimal(leg.size_quote), px))
                if reducing:
                    qty = min(qty, held[i])
            if qty <= 0:
                return Verdict(RejectReason.REJECT_REASON_MALFORMED, f"leg {i} is smaller than one lot")
            # 10. price band
            if limit is not None and abs(limit - ref) * _BPS > cfg.price_band_bps * ref:
                return Verdict(RejectReason.REJECT_REASON_PRICE_BAND, f"limit {limit} too far from mark {ref}")
            plans.append(
                LegPlan(i, leg.venue, leg.symbol, instrument, buy, otype, limit, qty, qty * px, reducing, im,
                        leverage if instrument == PERP else _ONE)
            )
        return plans

    def _within_allocation(self, sig: trading_pb2.Signal, plans: list[LegPlan], budget: BudgetView) -> Verdict | None:
        """Rules 11-13 for entries: per-order notional, the phase's notional, leverage."""
        for p in plans:
            if p.notional > budget.max_order_notional:
                return Verdict(RejectReason.REJECT_REASON_ORDER_NOTIONAL,
                               f"leg {p.index} notional above the per-order cap")
        phase = sig.phase_id
        total = self.portfolio.phase_exposure(phase) + self.open_orders.adding_notional.get(phase, _ZERO)
        total += sum((p.notional for p in plans), _ZERO)
        if total > budget.max_notional:
            return Verdict(RejectReason.REJECT_REASON_PHASE_NOTIONAL, "phase exposure would exceed its allocation")
        cap = min(budget.max_leverage, self.config.max_leverage)
        for p in plans:  # a perp leg carries the signal's leverage (``_plan_legs``)
            if p.instrument == PERP and p.leverage > cap:
                return Verdict(RejectReason.REJECT_REASON_LEVERAGE, f"leverage {p.leverage} above cap {cap}")
        return None

    def _within_rates(self, phase: str, plans: list[LegPlan], budget: BudgetView | None, now_ns: int) -> Verdict | None:
        """Rules 14-15: open orders per symbol and orders per minute (the budget's, else the defaults)."""
        cfg = self.config
        max_open = (budget.max_open_orders if budget is not None else 0) or cfg.default_open_orders_per_symbol
        for p in plans:
            if self.open_orders.count(phase, p.symbol) >= max_open:
                return Verdict(RejectReason.REJECT_REASON_OPEN_ORDERS, f"{max_open} orders already open in {p.symbol}")
        per_minute = (budget.max_per_minute if budget is not None else 0) or cfg.default_orders_per_minute
        if self.rates.count(phase, now_ns) + len(plans) > per_minute:
            return Verdict(RejectReason.REJECT_REASON_ORDER_RATE, f"more than {per_minute} orders per minute")
        return None

    # --- schema ----------------------------------------------------------------------------
    def _schema(self, sig: trading_pb2.Signal, legs: list[Leg]) -> str:
        """Empty string when the signal is well-formed, else what is wrong."""
        cfg = self.config
        if not _SIGNAL_ID.match(sig.signal_id):
            return "signal_id must be 1-128 printable characters without spaces"
        intent = sig.intent
        if intent not in (INTENT_OPEN, INTENT_CLOSE, INTENT_REDUCE):
            return "unknown intent"
        n = len(legs)
        if n < 1 or n > cfg.max_legs:
            return f"a signal needs 1 to {cfg.max_legs} legs"
        if not (0.0 <= sig.confidence <= 1.0) or math.isnan(sig.confidence):
            return "confidence must be within 0..1"
        if sig.ttl_ms < 0 or sig.ttl_ms > cfg.max_ttl_ms:
            return "ttl_ms out of bounds"
        try:
            if sig.leverage:
                lev = wire_decimal(sig.leverage)
                if lev < _ONE or lev > _MAX_SIGNAL_LEVERAGE:
                    return "leverage must be within 1..1000"
            if sig.stop_price and not _price_ok(wire_decimal(sig.stop_price)):
                return "stop_price out of bounds"
            for t in sig.target_prices:
                if not _price_ok(wire_decimal(t)):
                    return "target price out of bounds"
            seen_legs: set[tuple[str, str, int]] = set()
            for i, (venue, symbol, instrument, side, order_type, size_quote, limit) in enumerate(legs):
                pair = (venue, symbol)
                if pair not in self._valid_pairs:
                    if not _TOKEN.match(venue) or not _TOKEN.match(symbol):
                        return f"leg {i}: venue and symbol must be plain tokens"
                    if len(self._valid_pairs) < 10_000:
                        self._valid_pairs.add(pair)
                if instrument not in (SPOT, PERP):
                    return f"leg {i}: unknown instrument kind"
                if side not in (BUY, SELL):
                    return f"leg {i}: side must be BUY or SELL"
                ident = (venue, symbol, instrument)
                if ident in seen_legs:
                    return f"leg {i}: instrument appears twice"
                seen_legs.add(ident)
                if order_type not in (0, 1, 2, 3, 4):
                    return f"leg {i}: unknown order type"
                if size_quote or intent != INTENT_CLOSE:
                    size = wire_decimal(size_quote)
                    if size <= _ZERO or size > cfg.max_leg_notional:
                        return f"leg {i}: size_quote must be > 0 and <= {cfg.max_leg_notional}"
                if order_type in LIMIT_TYPES and (not limit or not _price_ok(wire_decimal(limit))):
                    return f"leg {i}: limit order needs a limit_price within bounds"
                if intent == INTENT_OPEN and instrument == SPOT and side == SELL:
                    return f"leg {i}: spot cannot be sold short"
        except MoneyError as exc:
            return f"not a decimal: {exc}"
        return ""


def verify_signal(sig: trading_pb2.Signal, key: bytes) -> bool:
    """Same check as ``titan.core.signing.verify_signal`` (HMAC-SHA256 over the deterministic
    serialization with ``signature`` cleared), without copying the message: the signature is taken
    off, the bytes serialized, and the signature put back."""
    signature = sig.signature
    sig.ClearField("signature")
    try:
        data = sig.SerializeToString(deterministic=True)
    finally:
        sig.signature = signature
    return signature_matches(key, data, signature)


def _price_ok(p: Decimal) -> bool:
    return _MIN_PRICE <= p <= _MAX_PRICE
