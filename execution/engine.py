"""The execution core: signals, market events, control changes and venue reports in; acks, order,
fill, position, funding and equity updates out. Deterministic, clock injected, no I/O.

The gRPC service, the backtest runner and the local driver are thin shells around :class:`Engine`.

Idempotency: a signal id is decided once (a repeat is answered REPLAYED with the original order
ids), client order ids derive from (phase, signal id, leg), and venue fills are booked once per
(venue, fill id). A signal is accepted or rejected as a whole: every leg passes the gate before any
order exists.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from titan.core.clock import Clock
from titan.core.metrics import FILLS, ORDERS, REJECTS, SIGNALS
from titan.core.money import CONTEXT, D, D_or
from titan.execution import enums
from titan.execution import orders as osm
from titan.execution.gate import (
    BudgetView,
    GateConfig,
    LegPlan,
    OpenOrderBook,
    RateWindow,
    RiskGate,
    Verdict,
)
from titan.execution.market import InstrumentMarket, MarketData
from titan.execution.numbers import fmt as s
from titan.execution.orders import IllegalTransition, ManagedOrder, client_order_id
from titan.execution.paper import Fill, PaperConfig, PaperVenue
from titan.execution.portfolio import Portfolio, Position
from titan.v1 import common_pb2, events_pb2, market_pb2, trading_pb2

R = enums.RejectReason
OT = enums.OrderType
Mode = enums.TradingMode
PERP = common_pb2.InstrumentKind.INSTRUMENT_KIND_PERP
BUY = common_pb2.Side.SIDE_BUY
SELL = common_pb2.Side.SIDE_SELL
_ZERO = Decimal(0)
_BPS = Decimal(10_000)
_NS_PER_DAY = 86_400 * 1_000_000_000

# Rejections decided before the signal is known to be authentic: not remembered, not published.
UNAUTHENTICATED = frozenset({R.REJECT_REASON_UNKNOWN_PHASE, R.REJECT_REASON_BAD_SIGNATURE, R.REJECT_REASON_STALE})

Update = (
    trading_pb2.Order
    | trading_pb2.Fill
    | trading_pb2.Position
    | trading_pb2.FundingPayment
    | trading_pb2.EquitySnapshot
    | events_pb2.SignalDecision
    | trading_pb2.TradingState
)


@dataclass(frozen=True)
class EngineConfig:
    venue: str = "paper"                     # "paper" matches internally; anything else = external venue
    gate: GateConfig = field(default_factory=GateConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    dedup_horizon_ns: int = 60 * 1_000_000_000  # decided signal ids remembered this long (>= 2 windows)
    max_remembered_signals: int = 5_000_000
    order_retention_ns: int = 300 * 1_000_000_000  # terminal orders kept in memory this long
    publish_decisions: bool = True


@dataclass(frozen=True, slots=True)
class VenueReport:
    """What an external venue says about one of our orders (mapped from ccxt by live.py)."""

    client_order_id: str
    kind: str                     # "accepted" | "rejected" | "canceled" | "expired" | "fill"
    venue_order_id: str = ""
    reason: str = ""
    fill_id: str = ""
    price: Decimal = _ZERO
    quantity: Decimal = _ZERO
    fee: Decimal = _ZERO
    maker: bool = False
    ts_ns: int = 0


@dataclass(slots=True)
class Decision:
    ack: trading_pb2.SignalAck
    updates: list[Update]
    submissions: list[ManagedOrder]   # orders an external venue must be sent (live mode)
    cancels: list[ManagedOrder]
    pending: list[tuple[ManagedOrder, InstrumentMarket]] = field(default_factory=list)  # paper orders to match
    slippage_bps: Decimal | None = None
    signal: trading_pb2.Signal | None = None  # set when a decision event is due


def reason_label(reason: int) -> str:
    """Metric label of a reject reason: ``REJECT_REASON_BAD_SIGNATURE`` -> ``bad_signature``."""
    return str(R.Name(reason))[len("REJECT_REASON_"):].lower()


class _Seen:
    __slots__ = ("accepted", "cids", "ts")

    def __init__(self, ts: int, accepted: bool, cids: tuple[str, ...]) -> None:
        self.ts = ts
        self.accepted = accepted
        self.cids = cids


class Engine:
    def __init__(self, clock: Clock, keys: dict[str, bytes], config: EngineConfig | None = None) -> None:
        self.clock = clock
        self.config = config or EngineConfig()
        self.external = self.config.venue != "paper"
        self.market = MarketData()
        self.paper = PaperVenue(self.config.paper)
        self.portfolio = Portfolio(self.config.paper.starting_capital)
        self.open_book = OpenOrderBook()
        self.rates = RateWindow()
        self.gate = RiskGate(
            self.config.gate, keys, self.market, self.portfolio, self.open_book, self.rates, self.paper
        )
        self.trading_state = trading_pb2.TradingState(mode=Mode.TRADING_MODE_UNSPECIFIED)
        self.orders: dict[str, ManagedOrder] = {}
        self._working: dict[tuple[str, str, int], list[ManagedOrder]] = {}
        self._terminal: deque[tuple[int, str]] = deque()
        self._seen_order: deque[tuple[int, tuple[str, str]]] = deque()
        self._fill_ids: set[tuple[str, str]] = set()
        self._settled_funding: set[tuple[str, str, int]] = set()
        self._adding_left: dict[str, Decimal] = {}  # cid -> notional still open on adding orders
        # per-input output buffers
        self._out: list[Update] = []   # fills and funding, in the order they happened
        self._tail: list[Update] = []  # decisions and trading states: published after everything else
        self._known_cids: set[str] = set()  # client order ids the ledger knows (recovery)
        self._cancels: list[ManagedOrder] = []  # external venue orders to cancel (expired)
        self._cancel_requested: set[str] = set()
        self._touched_orders: dict[str, ManagedOrder] = {}
        self._touched_positions: dict[tuple[str, str, str, int], Position] = {}
        self._reject_counters = {v: REJECTS.labels(reason=reason_label(v)) for v in R.values()}
        self._signal_counters: dict[tuple[str, str], object] = {}
        self._fill_counters: dict[tuple[str, str], Any] = {}
        self._order_counters: dict[tuple[str, int], Any] = {}

    # ------------------------------------------------------------------------------------------
    # signals
    # ------------------------------------------------------------------------------------------
    def on_signal(self, sig: trading_pb2.Signal, received_ns: int | None = None) -> Decision:
        """Decide and execute: the ack plus every update it caused."""
        d = self.decide(sig, received_ns)
        self.execute(d)
        return d

    def decide(self, sig: trading_pb2.Signal, received_ns: int | None = None) -> Decision:
        """Run the gate and answer. When accepted, the orders exist (registered: they count for the
        gate's open-order, notional and rate rules from now on, and their ids are final) but the
        paper venue has not matched them yet: call :meth:`execute` right after sending the ack."""
        now = self.clock.now_ns()
        received = now if received_ns is None else received_ns
        try:
            verdict = self.gate.evaluate(sig, now)
        except Exception as exc:  # fail closed: an unexpected error is a rejection, never a crash
            verdict = Verdict(R.REJECT_REASON_INTERNAL, f"{type(exc).__name__}")
        phase = sig.phase_id
        ack = trading_pb2.SignalAck(phase_id=phase, signal_id=sig.signal_id, received_at_ns=received)
        submissions: list[ManagedOrder] = []
        pending: list[tuple[ManagedOrder, InstrumentMarket]] = []
        if verdict.reason == R.REJECT_REASON_REPLAYED:
            prior = self.gate.seen.get((phase, sig.signal_id))
            if isinstance(prior, _Seen):
                ack.client_order_ids.extend(prior.cids)
                ack.detail = "signal id already decided: " + ("accepted" if prior.accepted else "rejected")
            ack.reason = verdict.reason  # type: ignore[assignment]
        elif verdict.accepted:
            assert verdict.legs is not None
            cids = [client_order_id(phase, sig.signal_id, p.index) for p in verdict.legs]
            known = self._known_cids
            if any(c in self.orders or c in known for c in cids):  # already executed (memory or ledger)
                ack.reason = R.REJECT_REASON_REPLAYED
                ack.detail = "orders for this signal already exist"
                ack.client_order_ids.extend(cids)
            else:
                try:
                    submissions, pending = self._place(sig, verdict.legs, cids, now)
                    ack.accepted = True
                    ack.client_order_ids.extend(cids)
                except Exception as exc:  # pragma: no cover - defensive
                    ack.reason = R.REJECT_REASON_INTERNAL
                    ack.detail = type(exc).__name__
        else:
            ack.reason = verdict.reason  # type: ignore[assignment]
            ack.detail = verdict.detail
        if ack.reason not in UNAUTHENTICATED and ack.reason != R.REJECT_REASON_REPLAYED:
            self._remember(phase, sig.signal_id, now, ack.accepted, tuple(ack.client_order_ids))
        ack.acked_at_ns = self.clock.now_ns()
        self._count(phase, ack)
        authentic = ack.reason not in UNAUTHENTICATED and ack.reason != R.REJECT_REASON_REPLAYED
        slip = Decimal(sig.max_slippage_bps) if sig.max_slippage_bps else None
        due = sig if self.config.publish_decisions and authentic else None
        return Decision(ack, [], submissions, [], pending, slip, due)

    def execute(self, d: Decision) -> list[Update]:
        """Match a decided signal's paper orders; returns (and stores in ``d.updates``) every update
        in publishing order, the decision event last."""
        if d.pending:
            now = self.clock.now_ns()
            for order, im in d.pending:
                if order.state == osm.NEW:  # not canceled in between (e.g. a halt)
                    self._paper_place(order, im, d.slippage_bps, now)
        if d.signal is not None:  # the decision event, built off the ack path
            self._tail.append(events_pb2.SignalDecision(signal=d.signal, ack=d.ack))
        d.updates = self._flush()
        return d.updates

    def _count(self, phase: str, ack: trading_pb2.SignalAck) -> None:
        known = phase if phase in self.gate.keys else "unknown"
        result = "accepted" if ack.accepted else "rejected"
        c = self._signal_counters.get((known, result))
        if c is None:
            c = self._signal_counters[(known, result)] = SIGNALS.labels(phase=known, result=result)
        c.inc()  # type: ignore[attr-defined]
        if not ack.accepted:
            self._reject_counters[ack.reason].inc()

    def _remember(self, phase: str, signal_id: str, now: int, accepted: bool, cids: tuple[str, ...]) -> None:
        key = (phase, signal_id)
        self.gate.seen[key] = _Seen(now, accepted, cids)
        self._seen_order.append((now, key))
        if len(self._seen_order) > self.config.max_remembered_signals:
            self._prune_seen(now)

    def _place(
        self, sig: trading_pb2.Signal, plans: list[LegPlan], cids: list[str], now: int
    ) -> tuple[list[ManagedOrder], list[tuple[ManagedOrder, InstrumentMarket]]]:
        submissions: list[ManagedOrder] = []
        pending: list[tuple[ManagedOrder, InstrumentMarket]] = []
        expires = sig.created_at_ns + sig.ttl_ms * 1_000_000 if sig.ttl_ms else 0
        self.rates.add(sig.phase_id, now, len(plans))
        for plan, cid in zip(plans, cids, strict=True):
            order = ManagedOrder(
                client_order_id=cid,
                phase_id=sig.phase_id,
                signal_id=sig.signal_id,
                leg=plan.index,
                venue=plan.venue,
                symbol=plan.symbol,
                instrument=plan.instrument,
                side=BUY if plan.buy else SELL,
                order_type=plan.order_type,
                quantity=plan.quantity,
                notional=plan.notional,
                price=plan.limit,
                reduce_only=plan.reduce_only,
                leverage=plan.leverage,
                created_at_ns=now,
                expires_at_ns=expires if plan.order_type != OT.ORDER_TYPE_MARKET else 0,
            )
            self._register(order)
            if self.external:
                order.transition(osm.SUBMITTED, now)
                self._touch(order)
                submissions.append(order)
            else:
                pending.append((order, plan.market))
        return submissions, pending

    def _register(self, order: ManagedOrder) -> None:
        self.orders[order.client_order_id] = order
        adding = _ZERO if order.reduce_only else order.notional
        if adding:
            self._adding_left[order.client_order_id] = adding
        self.open_book.opened(order.phase_id, order.symbol, adding)
        self._touch(order)

    # ------------------------------------------------------------------------------------------
    # paper matching
    # ------------------------------------------------------------------------------------------
    def _paper_place(self, order: ManagedOrder, im: InstrumentMarket, slip: Decimal | None, now: int) -> None:
        order.transition(osm.SUBMITTED, now)
        buy = order.is_buy
        ot = order.order_type
        if ot == OT.ORDER_TYPE_POST_ONLY:
            assert order.price is not None
            if self.paper.would_take(im, buy, order.price):
                self._finish(order, osm.REJECTED, now, "post-only order would take liquidity")
                return
            order.transition(osm.ACCEPTED, now)
            self._rest(order)
            return
        if ot == OT.ORDER_TYPE_MARKET:
            order.price_cap = self.paper.price_cap(im, buy, slip)
            limit = order.price_cap
        else:
            limit = order.price
        for f in self.paper.take(im, buy, order.quantity, limit):
            self._apply_fill(order, f, now, f"{order.client_order_id}-{order.fill_seq + 1}")
            if not order.is_open:
                return
        if ot == OT.ORDER_TYPE_IOC:
            self._finish(order, osm.CANCELED, now, "IOC remainder canceled")
            return
        if order.state == osm.SUBMITTED:
            order.transition(osm.ACCEPTED, now)
        if ot == OT.ORDER_TYPE_MARKET:
            order.expires_at_ns = now + self.config.paper.market_remainder_ttl_ns
        self._rest(order)

    def _rest(self, order: ManagedOrder) -> None:
        key = (order.venue, order.symbol, order.instrument)
        self._working.setdefault(key, []).append(order)
        self._touch(order)

    def _apply_fill(self, order: ManagedOrder, f: Fill, now: int, fill_id: str) -> None:
        key = (order.phase_id, order.venue, order.symbol, order.instrument)
        qty = f.quantity
        buy = order.is_buy
        if order.reduce_only:
            pos_q = self.portfolio.quantity(key)
            room = abs(pos_q) if pos_q != 0 and (pos_q > 0) != buy else _ZERO
            if qty > room:
                qty = room
            if qty <= 0:
                self._finish(order, osm.CANCELED, now, "reduce-only: no position left to reduce")
                return
        self._book_fill(order, qty, f.price, self.paper.fee(order.venue, qty * f.price, f.maker), f.maker, now, fill_id)

    def _book_fill(
        self, order: ManagedOrder, qty: Decimal, price: Decimal, fee: Decimal, maker: bool, now: int, fill_id: str
    ) -> None:
        key = (order.phase_id, order.venue, order.symbol, order.instrument)
        buy = order.is_buy
        order.apply_fill(qty, price, fee, now)
        pos = self.portfolio.position(key)
        if not order.reduce_only and order.instrument == PERP:
            pos.leverage = order.leverage
        realized = pos.apply_fill(buy, qty, price, fee, now)
        im = self.market.get((order.venue, order.symbol, order.instrument))
        ref = im.reference_price() if im is not None else None
        pos.mark = ref if ref is not None else price
        left = self._adding_left.get(order.client_order_id)
        if left is not None:
            used = order.notional * qty / order.quantity
            self._adding_left[order.client_order_id] = left - used
            self.open_book.reduced(order.phase_id, used)
        self._out.append(
            trading_pb2.Fill(
                venue=order.venue,
                fill_id=fill_id,
                client_order_id=order.client_order_id,
                phase_id=order.phase_id,
                symbol=order.symbol,
                instrument=order.instrument,  # type: ignore[arg-type]
                side=order.side,  # type: ignore[arg-type]
                price=s(price),
                quantity=s(qty),
                fee=s(fee),
                maker=maker,
                realized_pnl=s(realized),
                ts_ns=now,
            )
        )
        if self.external:  # venue fill ids are remembered to book each once; paper ids are unique by construction
            self._fill_ids.add((order.venue, fill_id))
        key2 = (order.phase_id, order.venue)
        counter = self._fill_counters.get(key2)
        if counter is None:
            counter = self._fill_counters[key2] = FILLS.labels(phase=order.phase_id, venue=order.venue)
        counter.inc()
        self._touch(order)
        self._touched_positions[key] = pos
        if not order.is_open:
            self._closed(order, now)

    def _finish(self, order: ManagedOrder, state: int, now: int, reason: str) -> None:
        order.transition(state, now, reason)
        self._touch(order)
        self._closed(order, now)

    def _closed(self, order: ManagedOrder, now: int) -> None:
        """Bookkeeping when an order reaches a terminal state."""
        self.open_book.closed(order.phase_id, order.symbol)
        left = self._adding_left.pop(order.client_order_id, None)
        if left:
            self.open_book.reduced(order.phase_id, left)
        work = self._working.get((order.venue, order.symbol, order.instrument))
        if work and order in work:
            work.remove(order)
        self._terminal.append((now, order.client_order_id))
        key = (order.venue, order.state)
        counter = self._order_counters.get(key)
        if counter is None:
            label = osm.OS.Name(order.state)[len("ORDER_STATE_"):].lower()
            counter = self._order_counters[key] = ORDERS.labels(venue=order.venue, state=label)
        counter.inc()

    def _touch(self, order: ManagedOrder) -> None:
        self._touched_orders[order.client_order_id] = order

    def _flush(self) -> list[Update]:
        """Updates of one input in this order: order snapshots, fills and funding, positions, the
        decision. Events are published in this order, so whatever prefix reached JetStream before a
        crash can be completed at restart (see :meth:`restore`): a fill implies its order row, a
        decision implies everything of that signal; fills missing behind an order row and position
        rows lagging their fills are repaired from what was stored."""
        mmr = self.config.paper.maintenance_margin_rate
        out: list[Update] = [o.to_proto() for o in self._touched_orders.values()]
        out.extend(self._out)
        out.extend(p.to_proto(mmr) for p in self._touched_positions.values())
        out.extend(self._tail)
        self._touched_orders.clear()
        self._touched_positions.clear()
        self._out = []
        self._tail = []
        return out

    # ------------------------------------------------------------------------------------------
    # market data
    # ------------------------------------------------------------------------------------------
    def on_market(self, event: market_pb2.MarketEvent) -> list[Update]:
        now = self.clock.now_ns()
        try:
            im, kind = self.market.apply(event, now)
        except Exception:  # malformed prices: ignore the event (the caller counts it)
            return []
        if kind is None:
            return []
        key = im.key
        work = self._working.get(key)
        if work and not self.external:
            self._match_working(list(work), im, kind, event, now)
        if kind in ("mark", "trade", "top", "depth", "candle"):
            ref = im.reference_price()
            for pos in self.portfolio.on_instrument(*key):
                pos.mark = ref
            if kind == "mark" and not self.external:
                self._check_liquidations(im, now)
        if kind == "funding" and event.funding.settled and not self.external:
            self._settle_funding(im, event.funding.funding_time_ns, D(event.funding.rate), now)
        elif not self.external and im.funding_rate is not None and im.funding_time_ns and now >= im.funding_time_ns:
            self._settle_funding(im, im.funding_time_ns, im.funding_rate, now)
        return self._flush()

    def _match_working(
        self, work: list[ManagedOrder], im: InstrumentMarket, kind: str, event: market_pb2.MarketEvent, now: int
    ) -> None:
        for order in work:
            if not order.is_open:
                continue
            buy = order.is_buy
            if order.order_type == OT.ORDER_TYPE_MARKET:
                if kind in ("top", "depth", "trade", "candle"):
                    for f in self.paper.take(im, buy, order.remaining, order.price_cap):
                        self._apply_fill(order, f, now, f"{order.client_order_id}-{order.fill_seq + 1}")
                        if not order.is_open:
                            break
                continue
            assert order.price is not None
            fill: Fill | None = None
            if kind == "trade":
                fill = self.paper.rest_on_trade(buy, order.remaining, order.price, D(event.trade.price),
                                                D_or(event.trade.size, _ZERO))
            elif kind in ("top", "depth"):
                fill = self.paper.rest_on_book(im, buy, order.remaining, order.price)
            elif kind == "candle":
                fill = self.paper.rest_on_candle(buy, order.remaining, order.price, D(event.candle.low),
                                                 D(event.candle.high))
            if fill is not None:
                self._apply_fill(order, fill, now, f"{order.client_order_id}-{order.fill_seq + 1}")

    def _check_liquidations(self, im: InstrumentMarket, now: int) -> None:
        mark = im.mark
        if mark is None:
            return
        for pos in list(self.portfolio.on_instrument(*im.key)):
            if not pos.is_perp or pos.quantity == 0:
                continue
            if not self.paper.should_liquidate(pos.quantity, pos.average_entry, pos.leverage, mark):
                continue
            phase, venue, symbol, instrument = pos.key
            digest = hashlib.sha256(f"{phase}\x1f{venue}\x1f{symbol}\x1f{now}".encode()).hexdigest()[:28]
            order = ManagedOrder(
                client_order_id=f"L{digest}-0",
                phase_id=phase,
                signal_id=f"liquidation:{now}",
                leg=0,
                venue=venue,
                symbol=symbol,
                instrument=instrument,
                side=SELL if pos.quantity > 0 else BUY,
                order_type=OT.ORDER_TYPE_MARKET,
                quantity=abs(pos.quantity),
                notional=abs(pos.quantity) * mark,
                reduce_only=True,
                created_at_ns=now,
            )
            self._register(order)
            order.transition(osm.SUBMITTED, now, "liquidation at mark price")
            self._apply_fill(order, Fill(mark, order.quantity, False), now, f"{order.client_order_id}-1")

    def _settle_funding(self, im: InstrumentMarket, funding_time_ns: int, rate: Decimal, now: int) -> None:
        venue, symbol, instrument = im.key
        if instrument != PERP:
            return
        mark = im.reference_price()
        if mark is None or (venue, symbol, funding_time_ns) in self._settled_funding:
            return
        self._settled_funding.add((venue, symbol, funding_time_ns))
        for pos in self.portfolio.on_instrument(venue, symbol, instrument):
            if pos.quantity == 0:
                continue
            amount = self.paper.funding_amount(pos.quantity, mark, rate)
            pos.apply_funding(amount, now)
            self._touched_positions[pos.key] = pos
            self._out.append(
                trading_pb2.FundingPayment(
                    venue=venue,
                    symbol=symbol,
                    phase_id=pos.phase_id,
                    rate=s(rate),
                    position_quantity=s(pos.quantity),
                    mark_price=s(mark),
                    amount=s(amount),
                    funding_time_ns=funding_time_ns,
                )
            )

    # ------------------------------------------------------------------------------------------
    # time
    # ------------------------------------------------------------------------------------------
    def tick(self) -> list[Update]:
        """Expire orders, settle funding whose time has passed, roll the day, forget old ids."""
        now = self.clock.now_ns()
        for work in list(self._working.values()):
            for order in list(work):
                if order.is_open and order.expires_at_ns and now >= order.expires_at_ns:
                    self._finish(order, osm.EXPIRED, now, "expired")
        if self.external:  # a venue order past its time is canceled at the venue, not expired here
            for order in self.orders.values():
                cid = order.client_order_id
                if (order.is_open and order.expires_at_ns and now >= order.expires_at_ns
                        and cid not in self._cancel_requested):
                    self._cancel_requested.add(cid)
                    self._cancels.append(order)
        if not self.external:
            for im in list(self.market.instruments.values()):
                if im.funding_rate is not None and im.funding_time_ns and now >= im.funding_time_ns:
                    self._settle_funding(im, im.funding_time_ns, im.funding_rate, now)
        self.portfolio.roll_day(now)
        self._prune_seen(now)
        horizon = now - self.config.order_retention_ns
        while self._terminal and self._terminal[0][0] <= horizon:
            _, cid = self._terminal.popleft()
            o = self.orders.get(cid)
            if o is not None and o.is_terminal:
                del self.orders[cid]
        return self._flush()

    def next_due_ns(self) -> int:
        """The earliest time :meth:`tick` has work to do: a working order's expiry, an announced
        funding time that has not settled, or the next UTC midnight (the day roll). Drivers that skip
        idle time (the backtest) tick then; the service ticks on its cadence regardless."""
        now = self.clock.now_ns()
        due = now - now % _NS_PER_DAY + _NS_PER_DAY
        for work in self._working.values():
            for order in work:
                if order.is_open and order.expires_at_ns:
                    due = min(due, order.expires_at_ns)
        if self.external:
            for order in self.orders.values():
                if order.is_open and order.expires_at_ns and order.client_order_id not in self._cancel_requested:
                    due = min(due, order.expires_at_ns)
        else:
            for im in self.market.instruments.values():
                if (im.funding_rate is not None and im.funding_time_ns
                        and (im.key[0], im.key[1], im.funding_time_ns) not in self._settled_funding):
                    due = min(due, im.funding_time_ns)
        return due

    def take_cancels(self) -> list[ManagedOrder]:
        """External venue orders :meth:`tick` found past their expiry: the caller cancels them."""
        out, self._cancels = self._cancels, []
        return out

    def _prune_seen(self, now: int) -> None:
        """Forget decided signal ids older than the dedup horizon; beyond the size cap, also forget
        the oldest ones that are already outside the replay window (a replay of those is STALE)."""
        horizon = now - self.config.dedup_horizon_ns
        safe = now - self.config.gate.replay_window_ns
        cap = self.config.max_remembered_signals
        seen = self.gate.seen
        q = self._seen_order
        while q and (q[0][0] <= horizon or (len(q) > cap and q[0][0] <= safe)):
            _, key = q.popleft()
            seen.pop(key, None)

    def equity(self) -> list[trading_pb2.EquitySnapshot]:
        return self.portfolio.equity_snapshots(self.clock.now_ns())

    # ------------------------------------------------------------------------------------------
    # control
    # ------------------------------------------------------------------------------------------
    def set_trading_state(self, state: trading_pb2.TradingState) -> tuple[bool, list[Update], list[ManagedOrder]]:
        """Apply ``state`` if newer (higher version) than the one in force. HALTED cancels every open
        order. Returns (applied, updates, orders an external venue must cancel)."""
        cur = self.trading_state
        if cur.mode != Mode.TRADING_MODE_UNSPECIFIED and state.version <= cur.version:
            return False, [], []
        self.trading_state = trading_pb2.TradingState()
        self.trading_state.CopyFrom(state)
        self.gate.trading_mode = int(state.mode)
        cancels: list[ManagedOrder] = []
        if state.mode not in (Mode.TRADING_MODE_ACTIVE, Mode.TRADING_MODE_REDUCING):
            cancels = self._cancel_where(lambda o: True, "trading halted")
        self._tail.append(self.trading_state)
        return True, self._flush(), cancels

    def update_budget(self, budget: trading_pb2.Budget) -> str:
        """"applied", "stale" (not newer than the one in force) or "invalid"."""
        try:
            view = BudgetView(budget)
        except (ValueError, ArithmeticError):
            return "invalid"
        cur = self.gate.budgets.get(view.phase_id)
        if cur is not None and view.version <= cur.version:
            return "stale"
        self.gate.budgets[view.phase_id] = view
        return "applied"

    def remove_budget(self, phase_id: str) -> bool:
        """The Brain deleted ``phase_id``'s budget: the gate lets that phase only reduce from now on."""
        return self.gate.budgets.pop(phase_id, None) is not None

    def set_keys(self, keys: dict[str, bytes]) -> None:
        self.gate.keys.clear()
        self.gate.keys.update(keys)

    def flatten(
        self, phase: str, symbol: str, tag: str
    ) -> tuple[list[str], list[Update], list[ManagedOrder], list[ManagedOrder]]:
        """Cancel open orders and close positions of ``phase`` ("" = all) in ``symbol`` ("" = all)
        with reduce-only market orders whose ids derive from ``tag``. Bypasses the gate: flattening
        only ever reduces. Returns (client order ids, updates, submissions, cancels)."""
        now = self.clock.now_ns()

        def match(o: ManagedOrder) -> bool:
            return (not phase or o.phase_id == phase) and (not symbol or o.symbol == symbol) and not o.reduce_only

        cancels = self._cancel_where(match, "flatten")
        cids: list[str] = []
        submissions: list[ManagedOrder] = []
        targets = sorted(
            (p for p in self.portfolio if p.quantity != 0 and (not phase or p.phase_id == phase)
             and (not symbol or p.key[2] == symbol)),
            key=lambda p: p.key,
        )
        for i, pos in enumerate(targets):
            ph, venue, sym, instrument = pos.key
            cid = client_order_id(ph, f"flatten:{tag}", i)
            if cid in self.orders:
                cids.append(cid)
                continue
            im = self.market.get((venue, sym, instrument))
            ref = im.reference_price() if im is not None else None
            qty = abs(pos.quantity)
            order = ManagedOrder(
                client_order_id=cid, phase_id=ph, signal_id=f"flatten:{tag}", leg=i, venue=venue, symbol=sym,
                instrument=instrument, side=SELL if pos.quantity > 0 else BUY, order_type=OT.ORDER_TYPE_MARKET,
                quantity=qty, notional=qty * (ref or pos.average_entry), reduce_only=True, created_at_ns=now,
            )
            self._register(order)
            cids.append(cid)
            if self.external:
                order.transition(osm.SUBMITTED, now, "flatten")
                submissions.append(order)
            elif im is None:
                order.transition(osm.SUBMITTED, now, "flatten")
                order.transition(osm.ACCEPTED, now)
                order.expires_at_ns = now + self.config.paper.market_remainder_ttl_ns
                self._rest(order)
            else:
                self._paper_place(order, im, None, now)
        return cids, self._flush(), submissions, cancels

    def _cancel_where(self, pred: object, reason: str) -> list[ManagedOrder]:
        now = self.clock.now_ns()
        out: list[ManagedOrder] = []
        for order in list(self.orders.values()):
            if order.is_open and pred(order):  # type: ignore[operator]
                if self.external and order.state != osm.NEW:
                    out.append(order)
                elif order.state == osm.NEW:  # decided but never sent: it cannot be canceled, only refused
                    self._finish(order, osm.REJECTED, now, reason)
                else:
                    self._finish(order, osm.CANCELED, now, reason)
        return out

    # ------------------------------------------------------------------------------------------
    # external venue reports (live)
    # ------------------------------------------------------------------------------------------
    def on_venue_report(self, report: VenueReport) -> list[Update]:
        """Map a venue report into the state machine. Unknown orders, duplicate fills and illegal
        transitions are ignored (returned updates are empty for them)."""
        now = self.clock.now_ns()
        order = self.orders.get(report.client_order_id)
        if order is None:
            return []
        try:
            if report.venue_order_id and not order.venue_order_id:
                order.venue_order_id = report.venue_order_id
                self._touch(order)
            if report.kind == "fill":
                if (order.venue, report.fill_id) in self._fill_ids or not report.fill_id:
                    return self._flush()
                qty = min(report.quantity, order.remaining)
                if qty > 0:
                    self._book_fill(order, qty, report.price, report.fee, report.maker, report.ts_ns or now,
                                    report.fill_id)
            elif report.kind == "accepted":
                if order.state == osm.SUBMITTED:
                    order.transition(osm.ACCEPTED, now)
                    self._touch(order)
            elif report.kind in ("rejected", "canceled", "expired") and order.is_open:
                state = {"rejected": osm.REJECTED, "canceled": osm.CANCELED, "expired": osm.EXPIRED}[report.kind]
                if state == osm.REJECTED and order.state not in (osm.NEW, osm.SUBMITTED):
                    state = osm.CANCELED
                self._finish(order, state, now, report.reason or report.kind)
        except IllegalTransition:
            pass
        return self._flush()

    # ------------------------------------------------------------------------------------------
    # recovery and state
    # ------------------------------------------------------------------------------------------
    def restore(
        self,
        positions: Iterable[trading_pb2.Position],
        open_orders: Iterable[trading_pb2.Order],
        fills: Iterable[trading_pb2.Fill] = (),
        decided: Iterable[tuple[str, str, int, bool, tuple[str, ...]]] = (),
        funding: Iterable[trading_pb2.FundingPayment] = (),
        known_orders: Iterable[trading_pb2.Order] = (),
    ) -> list[Update]:
        """Rebuild from the ledger before serving.

        Positions are replayed from every recorded fill and funding payment (in time order) and
        checked against the recorded position rows: the fills are the truth, so a position row that
        lags its fills (a crash between the two events) is corrected, and the corrected position is
        returned for publishing. An order row whose filled quantity exceeds its recorded fills (a crash
        between the order and its fill events) gets the missing fill rebuilt from the order's
        average price and fees (``<client order id>-r<version>``), also returned for publishing.
        Open orders are restored; client order ids of recorded orders (``known_orders``: recent order
        rows, any state) and fills, and recently decided signals (phase, signal id, decided at,
        accepted, client order ids), are remembered so a re-sent signal never executes twice."""
        rows = {(p.phase_id, p.venue, p.symbol, int(p.instrument)): p for p in positions}
        replayed: dict[tuple[str, str, str, int], Position] = {}
        fills = list(fills)
        orders_seen = list(known_orders)
        repaired = self._missing_fills(orders_seen, fills)
        if repaired:
            fills = sorted([*fills, *repaired], key=lambda f: (f.ts_ns, f.venue, f.fill_id))
        repaired_ids = {id(f) for f in repaired}
        corrected: list[Update] = []
        for f in fills:
            key = (f.phase_id, f.venue, f.symbol, int(f.instrument))
            pos = replayed.get(key)
            if pos is None:
                pos = replayed[key] = Position(key)
            realized = pos.apply_fill(f.side == BUY, D(f.quantity), D(f.price), D(f.fee), f.ts_ns)
            if id(f) in repaired_ids:
                f.realized_pnl = s(realized)
                corrected.append(f)
            if self.external:
                self._fill_ids.add((f.venue, f.fill_id))
            self._known_cids.add(f.client_order_id)
        for fp in funding:
            for key, pos in replayed.items():
                if key[0] == fp.phase_id and key[1] == fp.venue and key[2] == fp.symbol and key[3] == PERP:
                    pos.apply_funding(D(fp.amount), fp.funding_time_ns)
                    self._settled_funding.add((fp.venue, fp.symbol, fp.funding_time_ns))
        mmr = self.config.paper.maintenance_margin_rate
        for key in sorted(set(rows) | set(replayed)):
            row = rows.get(key)
            pos = Position.from_proto(row) if row is not None else Position(key)
            truth = replayed.get(key)
            if truth is not None and (
                truth.quantity, truth.realized, truth.fees, truth.funding
            ) != (pos.quantity, pos.realized, pos.fees, pos.funding):
                pos.quantity, pos.average_entry = truth.quantity, truth.average_entry
                pos.realized, pos.fees, pos.funding = truth.realized, truth.fees, truth.funding
                pos.updated_ns = self.clock.now_ns()
                pos.version += 1
                corrected.append(pos.to_proto(mmr))
            self.portfolio.add(pos)
        self._known_cids.update(o.client_order_id for o in orders_seen)
        for o in open_orders:
            order = ManagedOrder.from_proto(o)
            if not order.is_open:
                continue
            self._register(order)
            if order.state == osm.NEW:
                order.state = osm.SUBMITTED
            if not self.external:
                if order.order_type == OT.ORDER_TYPE_MARKET:
                    order.price_cap = None
                    order.expires_at_ns = self.clock.now_ns() + self.config.paper.market_remainder_ttl_ns
                self._rest(order)
        for phase, sid, ts, accepted, cids in decided:
            self._remember(phase, sid, ts, accepted, cids)
            self._known_cids.update(cids)
        self.portfolio.roll_day(self.clock.now_ns())
        self._touched_orders.clear()
        self._touched_positions.clear()
        self._out = []
        self._tail = []
        return corrected

    @staticmethod
    def _missing_fills(orders: list[trading_pb2.Order], fills: list[trading_pb2.Fill]) -> list[trading_pb2.Fill]:
        qty: dict[str, Decimal] = {}
        notional: dict[str, Decimal] = {}
        fees: dict[str, Decimal] = {}
        for f in fills:
            q, p = D(f.quantity), D(f.price)
            qty[f.client_order_id] = qty.get(f.client_order_id, _ZERO) + q
            notional[f.client_order_id] = notional.get(f.client_order_id, _ZERO) + q * p
            fees[f.client_order_id] = fees.get(f.client_order_id, _ZERO) + D(f.fee)
        out: list[trading_pb2.Fill] = []
        for o in orders:
            filled = D_or(o.filled_quantity, _ZERO)
            have = qty.get(o.client_order_id, _ZERO)
            if filled <= have:
                continue
            missing = filled - have
            price = CONTEXT.divide(D_or(o.average_price, _ZERO) * filled - notional.get(o.client_order_id, _ZERO),
                                   missing)
            out.append(trading_pb2.Fill(
                venue=o.venue, fill_id=f"{o.client_order_id}-r{o.version}", client_order_id=o.client_order_id,
                phase_id=o.phase_id, symbol=o.symbol, instrument=o.instrument, side=o.side, price=s(price),
                quantity=s(missing), fee=s(D_or(o.fees, _ZERO) - fees.get(o.client_order_id, _ZERO)),
                maker=False, ts_ns=o.updated_at_ns,
            ))
        return out

    def positions(self, phase: str = "") -> list[trading_pb2.Position]:
        mmr = self.config.paper.maintenance_margin_rate
        return [p.to_proto(mmr) for p in self.portfolio if not phase or p.phase_id == phase]

    def open_orders(self, phase: str = "") -> list[trading_pb2.Order]:
        return [o.to_proto() for o in self.orders.values() if o.is_open and (not phase or o.phase_id == phase)]

    def budgets(self, phase: str = "") -> list[trading_pb2.Budget]:
        return [b.proto for k, b in sorted(self.gate.budgets.items()) if not phase or k == phase]


__all__ = ["Decision", "Engine", "EngineConfig", "Update", "VenueReport"]
