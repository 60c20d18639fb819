"""Phase 3, the Sentinel: market-neutral spot/perp cash-and-carry. A pure class: market events,
timer ticks and its own orders, fills and positions in; hedged two-leg Signals and events out, on an
injected clock. No I/O.

Every ``sample_interval_ms`` of market time (the exchange time of the quotes) and per symbol, with
spot and perp quotes (keyed by (venue, instrument kind), never by a venue's name):

1. the basis (perp - spot)/spot of the mids goes into the rolling statistics (z-score, percentile,
   confidence); the executable basis is the depth-weighted one for ``depth_size_quote`` (spot asks,
   perp bids), or ask/bid from the tops without a book;
2. the local regime from the spot samples (CRASH: a fall beyond ``crash_drop``);
3. holding: the hedge monitor first (net delta beyond tolerance -> one reducing order; the perp's
   liquidation price closer than ``liquidation_atrs`` ATRs -> close), then the risk limits
   (critical -> close), then the exits (CRASH, basis blow-out, funding flip, max holding time,
   convergence); a CLOSE is one two-leg signal executed as a hedged unit;
4. EXPAND (z >= expand_z with enough confidence) only while under the per-symbol target, when the
   annualised carry (basis above its mean plus the expected funding at the venue's own interval)
   after both legs' fees and slippage clears ``min_carry_apr`` and no risk limit is hit. A rich spot
   (z <= -expand_z) would need a spot short: refused with a reason, never sent.

At most one signal per symbol is in flight: the next waits for its ack and its orders to finish,
so a failed leg is never answered with a duplicate order (execution settles the unit itself).
Execution reports each hedged unit's outcome (``on_hedge``): a unit that ended holding nothing
(unfilled, or unwound to nothing) leaves no entry basis behind; a failed one left a residual delta,
and no entry is made in that symbol until the positions show the delta back within tolerance.

Each symbol's quotes, statistics and positions are a :class:`~titan.phases.sentinel.state.SymbolState`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from titan.core.clock import NS_PER_MS, Clock
from titan.core.money import CONTEXT, to_decimal, to_decimal_or, to_wire
from titan.phases.runtime.contract import StrategyBase, StrategyOutput
from titan.phases.sentinel import carry, hedge_monitor
from titan.phases.sentinel.params import SentinelParams
from titan.phases.sentinel.state import SymbolState
from titan.phases.sentinel.stats import Action, BasisSignal, BasisStats, depth_weighted_basis
from titan.phases.sentinel.stats import basis as basis_of
from titan.v1 import common_pb2, market_pb2, trading_pb2

PHASE_ID = "sentinel"

# event kinds
BASIS_SAMPLE = "BASIS_SAMPLE"
ENTRY_SENT = "ENTRY_SENT"
ENTRY_BLOCKED = "ENTRY_BLOCKED"
ENTRY_REFUSED = "ENTRY_REFUSED"
EXIT_SENT = "EXIT_SENT"
REBALANCE_SENT = "REBALANCE_SENT"
SIGNAL_REJECTED = "SIGNAL_REJECTED"
RISK_LIMIT = "RISK_LIMIT"
HEDGE_SETTLED = "HEDGE_SETTLED"
HEDGE_FAILED = "HEDGE_FAILED"

SPOT = common_pb2.INSTRUMENT_KIND_SPOT
PERP = common_pb2.INSTRUMENT_KIND_PERP
_ZERO = Decimal(0)
_BPS = Decimal(10_000)
_INFLIGHT_SLACK_NS = 300 * 10**9  # without an answer, the symbol is free again after this
_RESULT_NAMES = {
    trading_pb2.HEDGE_RESULT_HEDGED: "hedged", trading_pb2.HEDGE_RESULT_COMPLETED: "completed",
    trading_pb2.HEDGE_RESULT_UNWOUND: "unwound", trading_pb2.HEDGE_RESULT_UNFILLED: "unfilled",
    trading_pb2.HEDGE_RESULT_FAILED: "failed",
}
_TERMINAL = frozenset({
    trading_pb2.ORDER_STATE_FILLED, trading_pb2.ORDER_STATE_CANCELED, trading_pb2.ORDER_STATE_REJECTED,
    trading_pb2.ORDER_STATE_EXPIRED,
})


class SentinelStrategy(StrategyBase):
    """The Sentinel's decision core. See the module docstring."""

    def __init__(self, params: SentinelParams | None = None, *, clock: Clock, phase_id: str = PHASE_ID) -> None:
        self.phase_id = phase_id
        self.clock = clock
        self.params = params or SentinelParams()
        self.budget: trading_pb2.Budget | None = None
        self.symbols: dict[str, SymbolState] = {}
        self._next_sample_ns: int | None = None
        self.market_ns = 0                                # exchange time of the latest quote
        self._sent: dict[str, tuple[str, float]] = {}   # signal id -> (symbol, executable basis)
        # Hedged units sent whose outcome has not come: their symbol stays in flight until it does (a
        # leg's order can finish, and its position arrive, before the other leg's).
        self._units: set[str] = set()
        self._seq = 0
        self._peak_pnl = _ZERO
        self.counters: dict[str, int] = {}
        self._reset_symbols()

    # --- configuration ----------------------------------------------------------------------------
    def _reset_symbols(self) -> None:
        p = self.params
        old = self.symbols
        self.symbols = {}
        for sym in p.symbols:
            st = old.get(sym)
            if st is None:
                st = SymbolState(sym, BasisStats(sym, p.window_size, p.min_samples, p.expand_z, p.contract_z))
            elif st.stats.window.size != p.window_size:
                st.stats = BasisStats(sym, p.window_size, p.min_samples, p.expand_z, p.contract_z)
            else:
                st.stats.min_samples, st.stats.expand_z, st.stats.contract_z = p.min_samples, p.expand_z, p.contract_z
            self.symbols[sym] = st

    def set_params(self, raw: Mapping[str, Any] | SentinelParams) -> None:
        params = raw if isinstance(raw, SentinelParams) else SentinelParams.model_validate(dict(raw))
        self.params = params
        self._reset_symbols()

    def set_budget(self, budget: trading_pb2.Budget | None) -> None:
        self.budget = budget if budget is None or budget.phase_id == self.phase_id else self.budget

    def market_filters(self) -> list[tuple[str, str, str]]:
        return [("*", sym, "*") for sym in self.params.symbols]

    # --- state ------------------------------------------------------------------------------------
    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def equity(self) -> Decimal:
        if self.budget is None:
            return _ZERO
        try:
            return to_decimal_or(self.budget.max_notional, _ZERO)
        except ValueError:
            return _ZERO

    def pnl(self) -> Decimal:
        return sum((v for st in self.symbols.values() for v in st.pnl.values()), _ZERO)

    def diagnostics(self) -> dict[str, float]:
        out: dict[str, float] = {"equity": float(self.equity()), "pnl": float(self.pnl())}
        for sym, st in self.symbols.items():
            if st.last is not None:
                out[f"{sym}.basis_bps"] = st.last.basis * 1e4
                out[f"{sym}.zscore"] = st.last.zscore
            apr = st.funding.expected_apr()
            if apr is not None:
                out[f"{sym}.funding_apr"] = float(apr)
            out[f"{sym}.net_delta"] = float(hedge_monitor.net_delta(st.spot_quantity, st.perp_quantity))
            out[f"{sym}.spot_quantity"] = float(st.spot_quantity)
            out[f"{sym}.perp_quantity"] = float(st.perp_quantity)
            out[f"{sym}.unit_residual"] = float(st.residual)
        for k, v in sorted(self.counters.items()):
            out[k] = float(v)
        return out

    # --- driving ----------------------------------------------------------------------------------
    # The Sentinel's time is the market's: samples, holding times and cool-downs follow the exchange
    # time of its quotes, so a replay at any speed and a backtest decide alike. Signals carry the
    # clock's time (execution checks it), and waiting for execution's answer uses the clock too.
    def next_wakeup_ns(self) -> int | None:
        return None  # no timers: samples are taken as the quotes arrive

    def on_event(self, ev: market_pb2.MarketEvent) -> StrategyOutput:
        out = StrategyOutput()
        st = self.symbols.get(ev.symbol)
        if st is None:
            return out
        p = self.params
        kind = ev.WhichOneof("payload")
        spot = ev.instrument == SPOT and ev.venue == p.spot_venue
        perp = ev.instrument == PERP and ev.venue == p.perp_venue
        if not (spot or perp):
            return out
        ts = ev.exchange_ts_ns or ev.receive_ts_ns
        self._sample_due(ts, out)
        quote = st.spot if spot else st.perp
        try:
            if kind == "top":
                quote.on_top(ev.top, ts)
            elif kind == "depth":
                quote.on_depth(ev.depth, ts)
            elif kind == "mark" and perp:
                st.mark = to_decimal(ev.mark.mark_price)
            elif kind == "funding" and perp:
                f = ev.funding
                st.funding.on_funding(to_decimal(f.rate), f.funding_time_ns, f.next_funding_time_ns, f.settled)
            elif kind == "trade" and perp:
                self._range(st, to_decimal(ev.trade.price))
        except (ValueError, ArithmeticError):
            self._count("malformed_events")
        if perp and kind in ("top", "depth") and quote.mid is not None:
            self._range(st, quote.mid)
        return out

    def _sample_due(self, ts: int, out: StrategyOutput) -> None:
        """At the first quote at or after a sample boundary, sample every symbol as it was known."""
        interval = self.params.sample_interval_ms * NS_PER_MS
        if ts > self.market_ns:
            self.market_ns = ts
        if self._next_sample_ns is None:
            self._next_sample_ns = ts - ts % interval + interval
            return
        if ts < self._next_sample_ns:
            return
        self._next_sample_ns = ts - ts % interval + interval
        for st in self.symbols.values():
            self._sample(st, ts, out)

    @staticmethod
    def _range(st: SymbolState, price: Decimal) -> None:
        if price <= 0:
            return
        st.range_high = price if st.range_high is None else max(st.range_high, price)
        st.range_low = price if st.range_low is None else min(st.range_low, price)

    # --- feedback ---------------------------------------------------------------------------------
    def on_ack(self, ack: trading_pb2.SignalAck) -> StrategyOutput:
        out = StrategyOutput()
        sent = self._sent.get(ack.signal_id)
        if sent is None:
            return out
        st = self.symbols.get(sent[0])
        if st is None:
            return out
        if not ack.accepted:
            self._units.discard(ack.signal_id)
            self._count("signals_rejected")
            out.event(SIGNAL_REJECTED, st.symbol, self.clock.now_ns(), signal=ack.signal_id,
                      reason=trading_pb2.RejectReason.Name(ack.reason), detail=ack.detail)
            if st.inflight == ack.signal_id:
                st.inflight = ""
            if not st.holding:
                st.entry_basis = None
        return out

    def on_order(self, order: trading_pb2.Order) -> StrategyOutput:
        st = self.symbols.get(order.symbol)
        if st is None:
            return StrategyOutput()
        open_ids = st.open_orders.setdefault(order.signal_id, set())
        if order.state in _TERMINAL:
            open_ids.discard(order.client_order_id)
        else:
            open_ids.add(order.client_order_id)
        if not open_ids:
            st.open_orders.pop(order.signal_id, None)
            if st.inflight == order.signal_id and order.signal_id not in self._units:
                st.inflight = ""  # a hedged unit is free only with its outcome (on_hedge)
        return StrategyOutput()

    def on_hedge(self, outcome: trading_pb2.HedgeOutcome) -> StrategyOutput:
        """A hedged unit settled: its orders are done (the symbol is free), and what it holds is known."""
        out = StrategyOutput()
        st = self.symbols.get(outcome.symbol)
        if st is None:
            return out
        name = _RESULT_NAMES.get(outcome.result, "unknown")
        self._count(f"units_{name}")
        st.open_orders.pop(outcome.signal_id, None)
        self._units.discard(outcome.signal_id)
        if st.inflight == outcome.signal_id:
            st.inflight = ""
        held = to_decimal_or(outcome.spot_quantity, _ZERO)
        now = self.clock.now_ns()
        if outcome.result == trading_pb2.HEDGE_RESULT_FAILED:
            # the positions (sent before the outcome) show whether the hedge monitor has work to do
            if hedge_monitor.rebalance(st.spot_quantity, st.perp_quantity, self.params.delta_tolerance) is not None:
                st.residual = to_decimal_or(outcome.residual, _ZERO)
            out.event(HEDGE_FAILED, st.symbol, now, signal=outcome.signal_id, residual=outcome.residual,
                      spot=outcome.spot_quantity, perp=outcome.perp_quantity)
            return out
        if not outcome.reducing and held == 0 and not st.holding:
            st.entry_basis = None  # the entry did not take: nothing is held at that basis
        out.event(HEDGE_SETTLED, st.symbol, now, signal=outcome.signal_id, result=name,
                  spot=outcome.spot_quantity, perp=outcome.perp_quantity, steps=outcome.steps)
        return out

    def on_position(self, position: trading_pb2.Position) -> StrategyOutput:
        st = self.symbols.get(position.symbol)
        if st is None:
            return StrategyOutput()
        was = st.holding
        qty = to_decimal_or(position.quantity, _ZERO)
        if position.instrument == PERP:
            st.perp_quantity = qty
            st.perp_entry = to_decimal_or(position.average_entry_price, _ZERO)
            st.perp_leverage = to_decimal_or(position.leverage, Decimal(1)) or Decimal(1)
        else:
            st.spot_quantity = qty
        st.pnl[int(position.instrument)] = (
            to_decimal_or(position.realized_pnl, _ZERO) + to_decimal_or(position.unrealized_pnl, _ZERO)
            + to_decimal_or(position.funding, _ZERO) - to_decimal_or(position.fees, _ZERO)
        )
        if (
            st.residual
            and hedge_monitor.rebalance(st.spot_quantity, st.perp_quantity, self.params.delta_tolerance) is None
        ):
            st.residual = _ZERO  # the failed unit's delta is back within tolerance (or flat)
        if st.holding and not was:
            st.opened_ns = self.market_ns
            if st.entry_basis is None:
                st.entry_basis = st.last.basis if st.last is not None else 0.0
        elif was and not st.holding:
            st.entry_basis = None
        return StrategyOutput()

    # --- the sample -------------------------------------------------------------------------------
    def _sample(self, st: SymbolState, now: int, out: StrategyOutput) -> None:
        p = self.params
        spot_mid, perp_mid = st.spot.mid, st.perp.mid
        if spot_mid is None or perp_mid is None:
            return
        self._close_range(st, perp_mid)
        st.spot_history.append(float(spot_mid))
        while len(st.spot_history) > p.window_size:
            st.spot_history.popleft()
        st.regime = carry.regime(list(st.spot_history), p.crash_drop, p.volatile_return_sd)
        sig = st.stats.add(basis_of(spot_mid, perp_mid), now)
        st.last = sig
        self._count("samples")
        if st.inflight and self.clock.now_ns() < st.inflight_until_ns:
            return
        self._units.discard(st.inflight)  # its outcome is overdue: the symbol is free again
        st.inflight = ""
        if now - st.last_signal_ns < p.signal_cooldown_ms * NS_PER_MS:
            return
        if st.holding and self._manage(st, sig, now, out):
            return
        self._maybe_expand(st, sig, now, out)

    def _close_range(self, st: SymbolState, price: Decimal) -> None:
        high = st.range_high if st.range_high is not None else price
        low = st.range_low if st.range_low is not None else price
        prev = st.last_close if st.last_close is not None else price
        tr = max(high - low, abs(high - prev), abs(low - prev))
        st.ranges.append(float(tr))
        while len(st.ranges) > self.params.atr_samples:
            st.ranges.popleft()
        st.last_close, st.range_high, st.range_low = price, None, None

    def _executable_basis(self, st: SymbolState) -> float | None:
        dw = depth_weighted_basis(st.spot.levels(True), st.perp.levels(False), self.params.depth_size_quote)
        if dw is not None:
            return dw
        if st.spot.ask is None or st.perp.bid is None:
            return None
        return basis_of(st.spot.ask, st.perp.bid)

    def _risk(self, st_prices: dict[str, Decimal]) -> hedge_monitor.RiskReport:
        p = self.params
        delta = _ZERO
        gross = _ZERO
        for sym, st in self.symbols.items():
            price = st_prices.get(sym)
            if price is None:
                continue
            delta += hedge_monitor.net_delta(st.spot_quantity, st.perp_quantity) * price
            gross += (abs(st.spot_quantity) + abs(st.perp_quantity)) * price
        equity = self.equity()
        pnl = self.pnl()
        self._peak_pnl = max(self._peak_pnl, pnl)
        drawdown = CONTEXT.divide(self._peak_pnl - pnl, equity) if equity > 0 else _ZERO
        limits = hedge_monitor.RiskLimits(p.max_delta_ratio, p.critical_delta_ratio, p.max_gross_leverage,
                               p.daily_drawdown_limit, p.critical_drawdown)
        return hedge_monitor.evaluate_risk(limits, delta, gross, equity, drawdown)

    def _prices(self) -> dict[str, Decimal]:
        return {sym: st.spot.mid for sym, st in self.symbols.items() if st.spot.mid is not None}

    # --- a held position --------------------------------------------------------------------------
    def _manage(self, st: SymbolState, sig: BasisSignal, now: int, out: StrategyOutput) -> bool:
        """Hedge monitor, risk limits and exits for a held position; True when a signal was sent."""
        p = self.params
        fix = hedge_monitor.rebalance(st.spot_quantity, st.perp_quantity, p.delta_tolerance)
        if fix is not None:
            self._send_rebalance(st, fix, now, out)
            return True
        reason: str | None = None
        if st.perp_quantity < 0 and st.perp_entry > 0 and st.mark is not None:
            liq = hedge_monitor.short_liquidation_price(st.perp_entry, st.perp_leverage, p.maintenance_margin_rate)
            dist = hedge_monitor.liquidation_distance_atrs(liq, st.mark, st.atr())
            if dist is not None and dist < p.liquidation_atrs:
                reason = hedge_monitor.RiskCode.LIQUIDATION_DISTANCE
        if reason is None:
            report = self._risk(self._prices())
            if report.critical:
                reason = ",".join(report.violations)
                out.event(RISK_LIMIT, st.symbol, now, violations=reason)
        if reason is None:
            entry = st.entry_basis if st.entry_basis is not None else sig.basis
            hold = carry.Holding(st.spot_quantity, st.perp_quantity, entry, st.opened_ns)
            z = sig.zscore if sig.samples >= p.min_samples else None
            reason = carry.exit_reason(p, hold, sig.basis, z, st.funding.negative_streak(st.opened_ns), st.regime, now,
                                    st.funding.expected_apr())
        if reason is None:
            return False
        self._send_close(st, reason, sig, now, out)
        return True

    # --- entries ----------------------------------------------------------------------------------
    def _maybe_expand(self, st: SymbolState, sig: BasisSignal, now: int, out: StrategyOutput) -> None:
        p = self.params
        if sig.samples < p.min_samples or sig.confidence < p.min_confidence:
            return
        if sig.zscore <= -p.expand_z:
            # spot rich over the perp: the carry would need a spot short, which Titan does not do
            self._count("refused_reverse_carry")
            out.event(ENTRY_REFUSED, st.symbol, now, reason=carry.EntryBlock.REVERSE_CARRY, zscore=f"{sig.zscore:.2f}")
            return
        if sig.action != Action.EXPAND:
            return
        block = self._expand_block(st, now)
        if isinstance(block, str):
            self._count(f"blocked_{block}")
            out.event(ENTRY_BLOCKED, st.symbol, now, reason=block, zscore=f"{sig.zscore:.2f}")
            return
        notional, executable, expected = block
        self._send_open(st, notional, executable, expected, sig, now, out)

    def _expand_block(self, st: SymbolState, now: int) -> str | tuple[Decimal, float, carry.Carry]:
        """Why no EXPAND now, or (notional per leg, executable basis, carry)."""
        p = self.params
        if st.residual:
            return carry.EntryBlock.RESIDUAL
        if st.regime == carry.Regime.CRASH:
            return carry.EntryBlock.CRASH
        spot_mid = st.spot.mid
        assert spot_mid is not None and st.spot.bid is not None and st.spot.ask is not None
        if (st.spot.ask - st.spot.bid) * _BPS > p.max_spread_bps * spot_mid:
            return carry.EntryBlock.SPREAD_WIDE
        executable = self._executable_basis(st)
        if executable is None:
            return carry.EntryBlock.NO_DEPTH
        apr = st.funding.expected_apr()
        mean = Decimal(repr(st.stats.window.mean))
        c = carry.carry(p, Decimal(repr(executable)), mean, apr) if apr is not None else None
        block = carry.entry_block(p, Decimal(repr(executable)), c)
        if block is not None:
            return block
        report = self._risk(self._prices())
        if not report.within_limits:
            return report.violations[0]
        held = st.spot_quantity * spot_mid
        notional = carry.clip_notional(p, self.equity(), held, st.regime)
        if notional <= 0:
            return carry.EntryBlock.AT_TARGET
        assert c is not None
        return notional, executable, c

    # --- signals ----------------------------------------------------------------------------------
    def _signal(self, st: SymbolState, intent: int, setup: str, now: int, basis: float) -> trading_pb2.Signal:
        """A signal of ``st`` decided at market time ``now``, created at the clock's time."""
        p = self.params
        self._seq += 1
        clock_ns = self.clock.now_ns()
        sid = f"sentinel-{st.symbol}-{clock_ns // NS_PER_MS}-{self._seq}"
        sig = trading_pb2.Signal(
            phase_id=self.phase_id, signal_id=sid, intent=intent, confidence=1.0,  # type: ignore[arg-type]
            ttl_ms=p.ttl_ms, created_at_ns=clock_ns, max_slippage_bps=p.max_slippage_bps, setup=setup,
        )
        sig.metadata["hedge"] = p.hedge_policy
        sig.metadata["hedge_deadline_ms"] = str(p.leg_deadline_ms)
        sig.metadata["basis"] = f"{basis:.8f}"
        self._sent[sid] = (st.symbol, basis)
        st.inflight = sid
        st.inflight_until_ns = clock_ns + (p.ttl_ms + 10 * p.leg_deadline_ms) * NS_PER_MS + _INFLIGHT_SLACK_NS
        st.last_signal_ns = now
        return sig

    def _leg(self, st: SymbolState, perp: bool, buy: bool, size_quote: Decimal | None) -> trading_pb2.Leg:
        p = self.params
        venue = p.order_venue or (p.perp_venue if perp else p.spot_venue)
        return trading_pb2.Leg(
            venue=venue, symbol=st.symbol, instrument=PERP if perp else SPOT,
            side=common_pb2.SIDE_BUY if buy else common_pb2.SIDE_SELL,
            size_quote=to_wire(size_quote) if size_quote is not None else "", order_type=trading_pb2.ORDER_TYPE_MARKET,
        )

    def _send_open(self, st: SymbolState, notional: Decimal, executable: float, c: carry.Carry, sig: BasisSignal,
                   now: int, out: StrategyOutput) -> None:
        p = self.params
        signal = self._signal(st, trading_pb2.INTENT_OPEN, "sentinel.carry_open", now, executable)
        signal.confidence = max(0.0, min(1.0, sig.confidence))
        lev = p.leverage
        if st.spot.mid is not None and st.atr() > 0:
            lev = hedge_monitor.max_leverage_for(st.spot.mid, st.atr(), p.liquidation_atrs, p.maintenance_margin_rate,
                                                 p.leverage)
        signal.leverage = to_wire(lev)
        signal.legs.extend([self._leg(st, False, True, notional), self._leg(st, True, False, notional)])
        self._units.add(signal.signal_id)
        if st.entry_basis is None:
            st.entry_basis = executable
        self._count("entries_sent")
        out.signals.append(signal)
        out.event(ENTRY_SENT, st.symbol, now, signal=signal.signal_id, notional=to_wire(notional),
                  basis_bps=f"{executable * 1e4:.2f}", zscore=f"{sig.zscore:.2f}",
                  carry_apr=f"{float(c.total_apr):.4f}", funding_apr=f"{float(c.funding_apr):.4f}",
                  leverage=signal.leverage)

    def _send_close(self, st: SymbolState, reason: str, sig: BasisSignal, now: int, out: StrategyOutput) -> None:
        signal = self._signal(st, trading_pb2.INTENT_CLOSE, f"sentinel.exit.{reason}", now, sig.basis)
        if st.spot_quantity > 0:
            signal.legs.append(self._leg(st, False, False, None))
        if st.perp_quantity < 0:
            signal.legs.append(self._leg(st, True, True, None))
        if len(signal.legs) == 2:
            self._units.add(signal.signal_id)
        self._count(f"exit_{reason}")
        out.signals.append(signal)
        out.event(EXIT_SENT, st.symbol, now, signal=signal.signal_id, reason=reason,
                  basis_bps=f"{sig.basis * 1e4:.2f}", spot=to_wire(st.spot_quantity), perp=to_wire(st.perp_quantity))

    def _send_rebalance(self, st: SymbolState, fix: hedge_monitor.Rebalance, now: int, out: StrategyOutput) -> None:
        perp = fix.instrument == "perp"
        price = (st.perp.mid if perp else st.spot.mid) or _ZERO
        signal = self._signal(st, trading_pb2.INTENT_REDUCE, "sentinel.rebalance", now,
                              st.last.basis if st.last else 0.0)
        del signal.metadata["hedge"]  # one leg: nothing to pair
        signal.legs.append(self._leg(st, perp, not fix.sell, fix.quantity * price))
        self._count("rebalances_sent")
        out.signals.append(signal)
        out.event(REBALANCE_SENT, st.symbol, now, signal=signal.signal_id, instrument=fix.instrument,
                  quantity=to_wire(fix.quantity), spot=to_wire(st.spot_quantity), perp=to_wire(st.perp_quantity))


__all__ = ["PHASE_ID", "SentinelStrategy"]
