"""Phase 1, the Scavenger: pre-computed tripwires, burst detection, confirmation, a signed-ready Signal.

A pure class: market events in, tripwires, trap events and Signals out, on an injected clock. No I/O.

* Generator ("web"), every ``update_interval_ms``: per symbol, tripwires from the last 50 structure
  candles (range high/low, ATR regime, ADX trend context) and the detectors (liquidation cluster,
  previous-day levels, Bollinger squeeze, OI wipeout, funding squeeze, basis).
* Detector ("spider"), per trade: trades within 0.1% of an armed trigger are counted in 100 ms windows;
  ≥ N trades spring the trap; a confirmation runs 200 ms later (LONG holds at ≥ trigger·0.9995).
* Executor ("bite"): cooldowns, micro-CVD agreement and burst quality ≥ 0.3, acceleration and ADX
  vetoes, velocity-based order type and limit, quarter-Kelly size capped by the budget, stop, target.
* Kill condition: more than ``max_consecutive_losses`` losing trades in a row → cool-down, reported.

Each symbol's market state is a :class:`~titan.phases.scavenger.state.SymbolState`; the executor's
entry, size and signal are pure functions in :mod:`titan.phases.scavenger.entry`.

Timing: burst windows, velocity and CVD use exchange time; confirmations, cooldowns and the generator
cadence use the injected clock. A driver sets the clock (or uses the wall clock), then calls
:meth:`on_event` per event and :meth:`on_time` periodically; both first run whatever is due.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from titan.core.clock import NS_PER_MS, Clock
from titan.core.marketdata.candles import CandleAggregator, timeframe_ns
from titan.core.money import to_decimal, to_decimal_or, to_wire
from titan.phases import indicators
from titan.phases.runtime.contract import StrategyBase, StrategyOutput
from titan.phases.runtime.cooldown import LossStreak
from titan.phases.scavenger import tripwires
from titan.phases.scavenger.entry import Veto, entry_plan, entry_signal, position_size
from titan.phases.scavenger.flow import Burst
from titan.phases.scavenger.params import ScavengerParams
from titan.phases.scavenger.state import STRUCTURE_KEEP, Candles, PendingTrap, SymbolState, candle_bar
from titan.phases.scavenger.tripwires import Direction, Tripwire
from titan.v1 import common_pb2, market_pb2, trading_pb2

PHASE_ID = "scavenger"

# Event kinds
TRAP_MAP_UPDATED = "TRAP_MAP_UPDATED"
TRAP_SPRUNG = "TRAP_SPRUNG"
TRAP_CONFIRMED = "TRAP_CONFIRMED"
TRAP_ABORTED = "TRAP_ABORTED"
TRAP_FIRED = "TRAP_FIRED"
SYMBOL_BLACKLISTED = "SYMBOL_BLACKLISTED"
LOSS_COOLDOWN = "LOSS_COOLDOWN"
LOSS_COOLDOWN_OVER = "LOSS_COOLDOWN_OVER"

STATE_ACTIVE = "ACTIVE"
STATE_COOLDOWN = "COOLDOWN"

_FEED_LAG_SPAN_NS = 5 * 10**9  # the feed lag used by the timer is the largest seen over this span


class ScavengerStrategy(StrategyBase):
    """The Scavenger's decision core. See the module docstring."""

    def __init__(self, params: ScavengerParams | None = None, *, clock: Clock, phase_id: str = PHASE_ID) -> None:
        self.phase_id = phase_id
        self.clock = clock
        self.params = params or ScavengerParams()
        self.budget: trading_pb2.Budget | None = None
        self.symbols: dict[str, SymbolState] = {}
        self._activations: dict[str, int] = {}        # trap id -> last activation (clock ns)
        self._pending: dict[str, PendingTrap] = {}       # trap id -> confirmation
        self._sent: dict[str, tuple[str, str]] = {}   # signal id -> (symbol, trap id)
        self._next_rebuild_ns: int | None = None
        self._seq = 0
        self.streak = LossStreak()
        self._cooldown_reported = False
        self.counters: dict[str, int] = {}
        self._reset_symbols()

    # --- configuration ----------------------------------------------------------------------------
    def _reset_symbols(self) -> None:
        old = self.symbols
        self.symbols = {}
        for sym in self.params.symbols:
            st = old.get(sym)
            if st is None or st.burst.window_ns != self.params.volume_window_ms * NS_PER_MS or (
                self.params.structure_timeframe not in st.candles
            ):
                fresh = SymbolState(sym, self.params)
                if st is not None:  # keep the market history across a parameter change
                    for tf, c in st.candles.items():
                        if tf in fresh.candles:
                            fresh.candles[tf].bars.update(c.bars)
                    fresh.oi, fresh.funding, fresh.spot, fresh.perp = st.oi, st.funding, st.spot, st.perp
                    fresh.price, fresh.exponent, fresh.velocity, fresh.cvd = st.price, st.exponent, st.velocity, st.cvd
                st = fresh
            st.burst.min_trades = self.params.min_trades_in_window
            sc = st.candles[self.params.structure_timeframe]
            sc.keep = max(sc.keep, STRUCTURE_KEEP)
            self.symbols[sym] = st

    def set_params(self, raw: Mapping[str, Any] | ScavengerParams) -> None:
        """Validate and apply parameters (raises pydantic's ValidationError, a ValueError, when
        invalid; the previous parameters then stay). Tripwires are rebuilt at the next tick."""
        params = raw if isinstance(raw, ScavengerParams) else ScavengerParams.model_validate(dict(raw))
        self.params = params
        self._reset_symbols()
        self._next_rebuild_ns = None

    def set_budget(self, budget: trading_pb2.Budget | None) -> None:
        self.budget = budget if budget is None or budget.phase_id == self.phase_id else self.budget

    def market_filters(self) -> list[tuple[str, str, str]]:
        return [("*", sym, "*") for sym in self.params.symbols]

    # --- state ------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return STATE_COOLDOWN if self.streak.pausing(self.clock.now_ns()) else STATE_ACTIVE

    def tripwires(self, symbol: str | None = None) -> list[Tripwire]:
        if symbol is not None:
            st = self.symbols.get(symbol)
            return list(st.tripwires) if st else []
        return [t for st in self.symbols.values() for t in st.tripwires]

    def place_tripwires(self, symbol: str, traps: list[Tripwire]) -> None:
        """Replace a symbol's tripwires by hand (tests, replays, manual levels); the generator's next
        scheduled rebuild is deferred by one interval."""
        self.symbols[symbol].tripwires = list(traps)
        self._next_rebuild_ns = self.clock.now_ns() + self.params.update_interval_ms * NS_PER_MS

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def diagnostics(self) -> dict[str, float]:
        out: dict[str, float] = {
            "tripwires": float(sum(len(st.tripwires) for st in self.symbols.values())),
            "symbols_with_traps": float(sum(1 for st in self.symbols.values() if st.tripwires)),
            "pending_confirmations": float(len(self._pending)),
            "consecutive_losses": float(self.streak.losses),
            "cooldown": 1.0 if self.state == STATE_COOLDOWN else 0.0,
            "equity": float(self._equity()),
        }
        for k, v in sorted(self.counters.items()):
            out[k] = float(v)
        return out

    def _equity(self) -> Decimal:
        if self.budget is None:
            return Decimal(0)
        try:
            return to_decimal_or(self.budget.max_notional, Decimal(0))
        except ValueError:
            return Decimal(0)

    # --- driving ----------------------------------------------------------------------------------
    def on_time(self) -> StrategyOutput:
        """Run everything due at the clock's now: closing burst windows, confirmations, the
        generator, the end of a cool-down."""
        out = StrategyOutput()
        now = self.clock.now_ns()
        for st in self.symbols.values():
            # Windows are in exchange time: the clock closes one only once the feed, which arrives
            # ``feed_lag_ns`` behind the clock, has passed its end (0 in replays on event time).
            burst = st.burst.close_due(now - st.feed_lag_ns)[1]
            if burst is not None:
                self._on_burst(st, burst, now, out)
        for trap_id in [k for k, p in self._pending.items() if p.due_ns <= now]:
            self._confirm(self._pending.pop(trap_id), now, out)
        if self._next_rebuild_ns is None or now >= self._next_rebuild_ns:
            self._rebuild(now, out)
            self._next_rebuild_ns = now + self.params.update_interval_ms * NS_PER_MS
        if self._cooldown_reported and not self.streak.pausing(now):
            self._cooldown_reported = False
            out.event(LOSS_COOLDOWN_OVER, "", now)
        return out

    def next_wakeup_ns(self) -> int | None:
        """The first of: an open burst window's end (seen through the feed lag), a pending
        confirmation, the next tripwire rebuild, the end of a reported cool-down."""
        due: list[int] = [p.due_ns for p in self._pending.values()]
        for st in self.symbols.values():
            end = st.burst.window_end_ns()
            if end is not None:
                due.append(end + st.feed_lag_ns)
        if self._next_rebuild_ns is None:
            return 0
        due.append(self._next_rebuild_ns)
        if self._cooldown_reported:
            due.append(self.streak.until_ns)
        return min(due)

    def on_event(self, ev: market_pb2.MarketEvent) -> StrategyOutput:
        out = self.on_time()
        st = self.symbols.get(ev.symbol)
        if st is None:
            return out
        kind = ev.WhichOneof("payload")
        p = self.params
        try:
            if kind == "trade":
                self._on_trade(st, ev, out)
            elif kind == "candle":
                if (ev.venue == p.venue and ev.instrument != common_pb2.INSTRUMENT_KIND_SPOT and ev.candle.closed
                        and ev.candle.timeframe in st.candles):
                    st.candles[ev.candle.timeframe].put(candle_bar(ev.candle), from_event=True)
                    if ev.candle.timeframe == p.structure_timeframe:
                        self._rebuild(self.clock.now_ns(), out)  # a new structure bar: re-place at once
            elif kind == "open_interest":
                if ev.venue == p.venue and ev.open_interest.open_interest:
                    st.oi.record(ev.exchange_ts_ns, to_decimal(ev.open_interest.open_interest))
            elif kind == "funding":
                if ev.venue == p.venue:
                    st.funding = to_decimal(ev.funding.rate)
            elif kind == "mark":
                if ev.venue == p.venue and ev.mark.mark_price and not st.perp_traded:
                    st.perp = to_decimal(ev.mark.mark_price)
            elif kind == "top":
                t = ev.top
                perp_top = ev.venue == p.venue and ev.instrument != common_pb2.INSTRUMENT_KIND_SPOT
                if perp_top and t.bid_size and t.ask_size:
                    bid, ask = float(t.bid_size), float(t.ask_size)
                    st.book_imbalance = (bid - ask) / (bid + ask) if bid + ask > 0 else None
        except (ValueError, ArithmeticError):
            self._count("malformed_events")
        return out

    # --- market state -----------------------------------------------------------------------------
    def _burst_source(self, ev: market_pb2.MarketEvent) -> bool:
        p = self.params
        if p.burst_venue and ev.venue != p.burst_venue:
            return False
        if p.burst_instrument == "spot":
            return bool(ev.instrument == common_pb2.INSTRUMENT_KIND_SPOT)
        if p.burst_instrument == "perp":
            return bool(ev.instrument == common_pb2.INSTRUMENT_KIND_PERP)
        return True

    def _on_trade(self, st: SymbolState, ev: market_pb2.MarketEvent, out: StrategyOutput) -> None:
        p = self.params
        price, qty = to_decimal(ev.trade.price), to_decimal(ev.trade.size)
        if price <= 0 or qty <= 0:
            self._count("malformed_events")
            return
        ts = ev.exchange_ts_ns or ev.receive_ts_ns
        exp = price.as_tuple().exponent
        if isinstance(exp, int) and exp < st.exponent:
            st.exponent = exp
        taker_buy = ev.trade.taker_side == common_pb2.SIDE_BUY
        is_perp_venue = ev.venue == p.venue and ev.instrument == common_pb2.INSTRUMENT_KIND_PERP
        if is_perp_venue:
            st.perp, st.perp_traded = price, True
            st.lead_lag.record("B", ts, float(price))
            if self._build_candles(st, ev):
                self._rebuild(self.clock.now_ns(), out)
        if ev.instrument == common_pb2.INSTRUMENT_KIND_SPOT and (not p.spot_venue or ev.venue == p.spot_venue):
            st.spot = price
        if not self._burst_source(ev):
            return
        if not is_perp_venue:
            st.lead_lag.record("A", ts, float(price))
        st.price = price
        st.velocity.record(ts, float(price))
        st.cvd.record(ts, qty, taker_buy)
        # Detector: count trades near an armed trigger; a window also ends when time passes it.
        now = self.clock.now_ns()
        lag = max(0, now - ts)
        if lag >= st.feed_lag_ns or ts - st.feed_lag_at_ns > _FEED_LAG_SPAN_NS:
            st.feed_lag_ns, st.feed_lag_at_ns = lag, ts
        if now < st.blacklisted_until or self._near_trap(st, price, now) is None:
            burst = st.burst.close_due(ts)[1]
        else:
            burst = st.burst.add(ts, qty, taker_buy, price)
        if burst is not None:
            self._on_burst(st, burst, now, out)

    def _build_candles(self, st: SymbolState, ev: market_pb2.MarketEvent) -> bool:
        """1-minute candles from the perp's trades, rolled up into 5m and the structure timeframe
        (used unless the source publishes candles of that timeframe itself)."""
        if st.agg_1m is None:
            st.agg_1m = CandleAggregator("1m")
            for tf in st.candles:
                if tf != "1m" and timeframe_ns(tf) % timeframe_ns("1m") == 0:
                    st.agg_up[tf] = CandleAggregator(tf)
        rebuild = False
        for c1 in st.agg_1m.on_event(ev):
            st.candles["1m"].put(candle_bar(c1.candle), from_event=False)
            for tf, agg in st.agg_up.items():
                for c in agg.on_event(c1):
                    st.candles[tf].put(candle_bar(c.candle), from_event=False)
                    rebuild = rebuild or tf == self.params.structure_timeframe
        return rebuild

    def _armed(self, trap: Tripwire, now: int) -> bool:
        last = self._activations.get(trap.id)
        if last is not None and now - last < self.params.trap_cooldown_ms * NS_PER_MS:
            return False
        return trap.id not in self._pending

    def _near_trap(self, st: SymbolState, price: Decimal, now: int) -> Tripwire | None:
        """The armed tripwire nearest to ``price`` within the proximity band (first on a tie)."""
        best: tuple[Decimal, Tripwire] | None = None
        for trap in st.tripwires:
            if trap.trigger <= 0 or not self._armed(trap, now):
                continue
            dist = abs(price - trap.trigger) / trap.trigger
            if dist <= self.params.proximity and (best is None or dist < best[0]):
                best = (dist, trap)
        return None if best is None else best[1]

    # --- generator --------------------------------------------------------------------------------
    def _rebuild(self, now: int, out: StrategyOutput) -> None:
        p = self.params
        total = 0
        for st in self.symbols.values():
            st.tripwires = self.generate(st, now)
            total += len(st.tripwires)
        self._count("rebuilds")
        out.event(TRAP_MAP_UPDATED, "", now, symbols=sum(1 for st in self.symbols.values() if st.tripwires),
                  tripwires=total, interval_ms=p.update_interval_ms)

    def generate(self, st: SymbolState, now: int) -> list[Tripwire]:
        p = self.params
        sc = st.candles[p.structure_timeframe]
        bars = sc.last(p.structure_bars)
        traps: list[Tripwire] = []
        if len(bars) >= p.structure_bars:
            adx_res = indicators.adx(tripwires.bars_f(bars), p.adx_period)
            atr, regime = tripwires.volatility(bars)
            traps.extend(tripwires.structural_traps(st.symbol, bars, p, adx_res))
            for t in (
                tripwires.liquidation_cluster(st.symbol, bars, p.liquidation_confidence),
                tripwires.daily_level(st.symbol, sc.last(48), p.daily_level_confidence)
                if p.structure_timeframe == "1h" else None,
                tripwires.bollinger_trap(st.symbol, sc.last(STRUCTURE_KEEP), p.bollinger_confidence),
            ):
                if t is not None:
                    traps.append(t)
        else:
            adx_res, atr, regime = indicators.AdxResult(0.0, 0.0, 0.0), 0.0, ""
        # Structural-flaw detectors (need live state, not the full structure history).
        if st.price is not None or st.perp is not None:
            price = st.perp if st.perp is not None else st.price
            assert price is not None
            ts_now = st.oi.points[-1][0] if st.oi.points else now
            t = tripwires.oi_wipeout(
                st.symbol,
                price,
                st.candles["1m"].last(5),
                st.oi.at_least_old(ts_now, 300 * 10**9),
                st.oi.latest(),
                st.cvd.cvd(60),
                p,
            )
            if t is not None:
                traps.append(t)
        t = tripwires.funding_squeeze(st.symbol, st.funding, st.candles["5m"].last(20), st.cvd.cvd(300),
                               st.cvd.cvd(300, 300), p)
        if t is not None:
            traps.append(t)
        t = tripwires.basis_arb(st.symbol, st.spot, st.perp, self._volume_24h(sc), p)
        if t is not None:
            traps.append(t)
        unique: dict[str, Tripwire] = {}
        for t in tripwires.with_context(traps, atr, regime, adx_res):
            unique.setdefault(t.id, t)
        return list(unique.values())

    def _volume_24h(self, sc: Candles) -> Decimal:
        """Quote volume (Σ volume·close) of the structure candles of the last 24 h."""
        bars = sc.last(STRUCTURE_KEEP)
        if not bars:
            return Decimal(0)
        tf = timeframe_ns(self.params.structure_timeframe)
        since = bars[-1].open_ns + tf - 86_400 * 10**9
        return sum((b.volume * b.close for b in bars if b.open_ns >= since), Decimal(0))

    # --- detector ---------------------------------------------------------------------------------
    def _on_burst(self, st: SymbolState, burst: Burst, now: int, out: StrategyOutput) -> None:
        self._count("bursts")
        trap = self._near_trap(st, burst.last_price, now)
        if trap is None:
            return
        self._count("traps_sprung")
        out.event(TRAP_SPRUNG, st.symbol, now, trap=trap.id, trap_type=trap.trap_type.value,
                  direction=trap.direction.value, price=to_wire(burst.last_price), trades=burst.count,
                  micro_cvd=to_wire(burst.micro_cvd), window_start_ns=burst.start_ns)
        pending = PendingTrap(trap, burst, now, now + self.params.confirmation_ms * NS_PER_MS)
        if self.params.confirmation_ms == 0:
            self._confirm(pending, now, out)
        else:
            self._pending[trap.id] = pending

    def _confirm(self, pend: PendingTrap, now: int, out: StrategyOutput) -> None:
        p = self.params
        trap = pend.trap
        st = self.symbols.get(trap.symbol)
        if st is None or st.price is None:
            self._abort(out, trap, now, "NO_PRICE")
            return
        if now - pend.due_ns > p.max_confirmation_lag_ms * NS_PER_MS:
            self._abort(out, trap, now, "STALE_CONFIRMATION")
            return
        tol = p.confirmation_tolerance
        if trap.direction is Direction.LONG:
            holds = st.price >= trap.trigger * (1 - tol)
        else:
            holds = st.price <= trap.trigger * (1 + tol)
        if not holds:
            self._abort(out, trap, now, "WICK_REVERSION", price=to_wire(st.price))
            return
        self._count("traps_confirmed")
        out.event(TRAP_CONFIRMED, trap.symbol, now, trap=trap.id, price=to_wire(st.price))
        self._fire(st, pend, now, out)

    def _abort(self, out: StrategyOutput, trap: Tripwire, now: int, reason: str, **detail: object) -> None:
        self._count(f"aborted_{reason.lower()}")
        out.event(TRAP_ABORTED, trap.symbol, now, trap=trap.id, reason=reason, **detail)

    # --- executor ---------------------------------------------------------------------------------
    def _fire(self, st: SymbolState, pend: PendingTrap, now: int, out: StrategyOutput) -> None:
        """A confirmed trap: every veto first, then the order's price, stop and target, then its
        size; the first that refuses aborts the trap with its reason, else the signal goes out."""
        trap = pend.trap
        accel = st.velocity.acceleration()
        step = self._veto(st, pend, now, accel)
        if isinstance(step, Veto):
            return self._abort(out, trap, now, step.reason, **step.detail)
        entry = entry_plan(self.params, st, trap)
        if isinstance(entry, Veto):
            return self._abort(out, trap, now, entry.reason, **entry.detail)
        sized = position_size(self.params, self._equity(), self.budget, trap, entry)
        if isinstance(sized, Veto):
            return self._abort(out, trap, now, sized.reason, **sized.detail)
        self._seq += 1
        signal_id = f"{self.phase_id}-{st.symbol}-{now // NS_PER_MS}-{self._seq}"
        signal = entry_signal(self.params, self.phase_id, signal_id, st, pend, entry, sized, now, accel)
        self._activations[trap.id] = now
        st.last_activation_ns = now
        self._sent[signal.signal_id] = (st.symbol, trap.id)
        if len(self._sent) > 10_000:  # acks that never came back
            self._sent.pop(next(iter(self._sent)))
        self._count("signals")
        out.signals.append(signal)
        out.event(TRAP_FIRED, st.symbol, now, trap=trap.id, signal_id=signal.signal_id, size_quote=to_wire(sized.size),
                  order_type=trading_pb2.OrderType.Name(entry.plan.order_type))
        return None

    def _veto(self, st: SymbolState, pend: PendingTrap, now: int, accel: float) -> Veto | None:
        """Cool-downs, then flow (micro CVD, burst quality), trend (acceleration, ADX), and the
        pre-flight check that the price is still at the trigger."""
        p = self.params
        trap, burst = pend.trap, pend.burst
        long = trap.direction is Direction.LONG
        if self.streak.pausing(now):
            return Veto("LOSS_COOLDOWN")
        if now < st.blacklisted_until:
            return Veto("BLACKLISTED")
        if st.last_activation_ns is not None and now - st.last_activation_ns < p.symbol_cooldown_ms * NS_PER_MS:
            return Veto("SYMBOL_COOLDOWN")
        last = self._activations.get(trap.id)
        if last is not None and now - last < p.trap_cooldown_ms * NS_PER_MS:
            return Veto("TRAP_COOLDOWN")
        micro = burst.micro_cvd
        if (long and micro <= 0) or (not long and micro >= 0):
            return Veto("MICRO_CVD_MISMATCH", {"micro_cvd": to_wire(micro)})
        if burst.quality < p.min_burst_quality:
            return Veto("LOW_BURST_QUALITY", {"quality": to_wire(burst.quality.quantize(Decimal("0.0001")))})
        if accel > 0:
            return Veto("ACCELERATION", {"acceleration": f"{accel:.6g}"})
        if trap.adx > p.adx_trend_threshold and (
            (long and trap.trend == "DOWN") or (not long and trap.trend == "UP")
        ):
            return Veto("ADX_TREND", {"adx": f"{trap.adx:.2f}", "trend": trap.trend})
        assert st.price is not None
        if abs(st.price - trap.trigger) / trap.trigger > p.proximity:
            return Veto("PRICE_LEFT_TRIGGER", {"price": to_wire(st.price)})
        return None

    # --- feedback ---------------------------------------------------------------------------------
    def on_ack(self, ack: trading_pb2.SignalAck) -> StrategyOutput:
        """Rejections count as dispatch failures: ``max_dispatch_failures`` in a row blacklist the
        symbol for ``blacklist_ms`` and re-arm the trap."""
        out = StrategyOutput()
        sent = self._sent.pop(ack.signal_id, None)
        if sent is None:
            return out
        symbol, trap_id = sent
        st = self.symbols.get(symbol)
        if st is None:
            return out
        now = self.clock.now_ns()
        if ack.accepted:
            st.failures = 0
            return out
        st.failures += 1
        self._activations.pop(trap_id, None)
        out.event(TRAP_ABORTED, symbol, now, trap=trap_id, reason="REJECTED",
                  reject=trading_pb2.RejectReason.Name(ack.reason))
        if st.failures >= self.params.max_dispatch_failures:
            st.failures = 0
            st.blacklisted_until = now + self.params.blacklist_ms * NS_PER_MS
            self._count("blacklisted")
            out.event(SYMBOL_BLACKLISTED, symbol, now, until_ns=st.blacklisted_until)
        return out

    def on_trade_closed(self, symbol: str, pnl: Decimal) -> StrategyOutput:
        """A closed trade: a loss extends the losing streak; more than ``max_consecutive_losses`` in
        a row starts a cool-down of ``loss_cooldown_ms`` (no entries), reported as LOSS_COOLDOWN."""
        out = StrategyOutput()
        now = self.clock.now_ns()
        self._count("losses" if pnl < 0 else "wins")
        streak = self.streak.record(pnl, now, self.params.max_consecutive_losses,
                                    self.params.loss_cooldown_ms * NS_PER_MS)
        if streak:
            self._cooldown_reported = True
            self._count("loss_cooldowns")
            out.event(LOSS_COOLDOWN, symbol, now, losses=streak, until_ns=self.streak.until_ns)
        return out
