"""Phase 2, the Hunter: multi-timeframe market structure, entries at points of interest in the
killzones, managed exits. A pure class: market events in, Signals and events out, on an injected
clock; no I/O.

* Closed candles of ``base_timeframe`` (1m) from the traded perp's venue are rolled up with
  :class:`~titan.core.marketdata.candles.CandleAggregator` into the bias (1D), location (4h) and
  trigger (15m) timeframes, each analysed by a :class:`~titan.phases.hunter.engine.StructureEngine`.
* Trades feed the notional CVD (or, with ``cvd_source: candles``, the base candles do).
* On every base candle: manage what is held (exits), then, flat, score the hologram and look for
  an entry: grade A+ or B (≥ ``min_context_score``), no veto, an entry session, relative strength,
  an unmitigated POI within ``poi_proximity`` of price, CVD absorption (long) or distribution
  (short). Stop beyond the POI, target at the opposing liquidity or ``target_r``, size from the
  budget and ``risk_per_trade``.

No look-ahead: a decision at a candle's close uses only elements whose ``known_at_ns`` is at or
before that close (the engines only ever hold such elements, since they are fed closed candles
in time order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from titan.core.clock import NS_PER_MS, Clock
from titan.core.marketdata.candles import CandleAggregator
from titan.core.marketdata.events import candle_event
from titan.core.money import to_decimal, to_decimal_or, to_wire
from titan.phases.hunter import context
from titan.phases.hunter.bars import Bar, bar_of
from titan.phases.hunter.engine import Poi, StructureEngine
from titan.phases.hunter.flow import NotionalCVD
from titan.phases.hunter.params import HunterParams
from titan.phases.hunter.positions import Exit, Managed, ManagePolicy
from titan.phases.hunter.scoring import Direction, Hologram, Status, Thresholds, Weights, hologram
from titan.phases.hunter.sessions import SessionTracker, session_of
from titan.phases.hunter.structure import Bias, FractalSpec, Side
from titan.phases.runtime.contract import StrategyOutput
from titan.phases.runtime.cooldown import LossStreak
from titan.v1 import common_pb2, market_pb2, trading_pb2

PHASE_ID = "hunter"

HOLOGRAM_UPDATED = "HOLOGRAM_UPDATED"
SIGNAL_GENERATED = "SIGNAL_GENERATED"
EXIT_SIGNAL = "EXIT_SIGNAL"
STOP_MOVED = "STOP_MOVED"
LOSS_COOLDOWN = "LOSS_COOLDOWN"

STATE_ACTIVE = "ACTIVE"
STATE_COOLDOWN = "COOLDOWN"
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Setup:
    direction: Direction
    poi: Poi
    entry: Decimal
    stop: Decimal
    target: Decimal
    target_kind: str
    flow_strength: float


class _Symbol:
    def __init__(self, symbol: str, p: HunterParams) -> None:
        self.symbol = symbol
        spec = FractalSpec(p.fractal_bars, p.fractal_bars, strict=True)
        tfs = {p.bias_timeframe, p.location_timeframe, p.timeframe}
        self.engines = {tf: StructureEngine(tf, spec, keep=p.history_bars) for tf in tfs}
        self.aggregators = {tf: CandleAggregator(tf) for tf in tfs if tf != p.base_timeframe}
        self.sessions = SessionTracker()
        window = p.cvd_window_ms * NS_PER_MS
        self.cvd = NotionalCVD(window, p.cvd_sample_ms * NS_PER_MS, 2 * window)
        self.price: Decimal | None = None
        self.last_bar_ns = 0
        self.last_signal_ns: int | None = None
        self.managed: Managed | None = None
        self.last_status: str = ""


class HunterStrategy:
    """The Hunter's decision core. See the module docstring."""

    def __init__(self, params: HunterParams | None = None, *, clock: Clock, phase_id: str = PHASE_ID) -> None:
        self.phase_id = phase_id
        self.clock = clock
        self.params = params or HunterParams()
        self.budget: trading_pb2.Budget | None = None
        self.symbols: dict[str, _Symbol] = {}
        self._sent: dict[str, str] = {}            # entry signal id -> symbol, until its ack
        self._exits: dict[str, str] = {}           # exit signal id -> symbol, until its ack
        self._seq = 0
        self.streak = LossStreak()
        self.counters: dict[str, int] = {}
        self._reset_symbols()

    # --- configuration ----------------------------------------------------------------------------
    def _reset_symbols(self) -> None:
        """Engines for the traded symbols and the reference; kept when the structure settings stay."""
        p = self.params
        wanted = [*p.symbols, *([] if p.reference_symbol in p.symbols else [p.reference_symbol])]
        old, self.symbols = self.symbols, {}
        for sym in wanted:
            st = old.get(sym)
            if st is None or set(st.engines) != {p.bias_timeframe, p.location_timeframe, p.timeframe} or \
                    next(iter(st.engines.values())).spec.left != p.fractal_bars:
                fresh = _Symbol(sym, p)
                if st is not None:
                    fresh.managed, fresh.last_signal_ns = st.managed, st.last_signal_ns
                st = fresh
            self.symbols[sym] = st

    def set_params(self, raw: Mapping[str, Any] | HunterParams) -> None:
        """Validate and apply parameters (a pydantic ValidationError, a ValueError, when invalid; the
        previous ones then stay). A change of the structure settings restarts the engines."""
        params = raw if isinstance(raw, HunterParams) else HunterParams.model_validate(dict(raw))
        self.params = params
        self._reset_symbols()

    def set_budget(self, budget: trading_pb2.Budget | None) -> None:
        self.budget = budget if budget is None or budget.phase_id == self.phase_id else self.budget

    def market_filters(self) -> list[tuple[str, str, str]]:
        return [("*", sym, "*") for sym in self.symbols]

    # --- state ------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return STATE_COOLDOWN if self.streak.pausing(self.clock.now_ns()) else STATE_ACTIVE

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def diagnostics(self) -> dict[str, float]:
        out: dict[str, float] = {
            "symbols": float(len(self.params.symbols)),
            "positions_managed": float(sum(1 for st in self.symbols.values() if st.managed is not None)),
            "consecutive_losses": float(self.streak.losses),
            "cooldown": 1.0 if self.state == STATE_COOLDOWN else 0.0,
            "equity": float(self._equity()),
        }
        for k, v in sorted(self.counters.items()):
            out[k] = float(v)
        return out

    def engine(self, symbol: str, timeframe: str) -> StructureEngine:
        return self.symbols[symbol].engines[timeframe]

    def _equity(self) -> Decimal:
        """The allocation: the budget's notional cap over its leverage cap."""
        b = self.budget
        if b is None:
            return Decimal(0)
        notional, lev = to_decimal_or(b.max_notional, Decimal(0)), to_decimal_or(b.max_leverage, Decimal(0))
        return notional / lev if lev > 0 else Decimal(0)

    # --- driving ----------------------------------------------------------------------------------
    def on_time(self) -> StrategyOutput:
        """Nothing runs on timers: every decision is made on a closed base candle."""
        return StrategyOutput()

    def next_wakeup_ns(self) -> int | None:
        return None  # everything is driven by candles and trades: no timers

    def on_event(self, ev: market_pb2.MarketEvent) -> StrategyOutput:
        out = StrategyOutput()
        st = self.symbols.get(ev.symbol)
        p = self.params
        if st is None or ev.venue != p.venue or ev.instrument == common_pb2.INSTRUMENT_KIND_SPOT:
            return out
        kind = ev.WhichOneof("payload")
        try:
            if kind == "trade":
                price, size = to_decimal(ev.trade.price), to_decimal(ev.trade.size)
                if price <= 0 or size <= 0:
                    raise ValueError("non-positive trade")
                st.price = price
                if p.cvd_source == "trades":
                    st.cvd.add(ev.exchange_ts_ns or ev.receive_ts_ns, price, size,
                               ev.trade.taker_side == common_pb2.SIDE_BUY)
            elif kind == "candle" and ev.candle.closed and ev.candle.timeframe == p.base_timeframe:
                bar = bar_of(ev.candle)
                if bar.open_ns >= st.last_bar_ns:
                    st.last_bar_ns = bar.close_ns
                    self._on_base_candle(st, ev, bar, out)
        except (ValueError, ArithmeticError):
            self._count("malformed_events")
        return out

    def _on_base_candle(self, st: _Symbol, ev: market_pb2.MarketEvent, bar: Bar, out: StrategyOutput) -> None:
        p = self.params
        st.price = bar.close
        st.sessions.on_bar(bar)
        if p.cvd_source == "candles":
            st.cvd.add_candle(bar)
        else:
            st.cvd.on_time(bar.close_ns)
        trigger_closed = False
        for tf, engine in st.engines.items():
            if tf == p.base_timeframe:
                engine.on_bar(bar)
                trigger_closed = trigger_closed or tf == p.timeframe
                continue
            for closed in st.aggregators[tf].on_event(ev):
                engine.on_bar(bar_of(closed.candle))
                trigger_closed = trigger_closed or tf == p.timeframe
        if st.symbol not in p.symbols:
            return  # the reference symbol: structure only
        now = bar.close_ns
        self._manage(st, bar, out)
        holo = self.hologram(st.symbol)
        if trigger_closed and holo.status.value != st.last_status:
            st.last_status = holo.status.value
            out.event(HOLOGRAM_UPDATED, st.symbol, now, status=holo.status.value, score=f"{holo.score:.1f}",
                      direction=holo.direction.value if holo.direction else "", veto=holo.veto,
                      daily=holo.daily_trend.value, location=holo.location.value if holo.location else "",
                      trigger=holo.trigger_trend.value, shift=holo.shift)
        if st.managed is None:
            if self.clock.now_ns() - now > p.max_candle_age_ms * NS_PER_MS:
                self._skip("stale_candle")  # history: structure only
            else:
                self._try_entry(st, holo, now, out)

    # --- the hologram -----------------------------------------------------------------------------
    def hologram(self, symbol: str) -> Hologram:
        p = self.params
        st = self.symbols[symbol]
        loc_engine = st.engines[p.location_timeframe]
        ref = self.symbols.get(p.reference_symbol)
        rs = 0.0
        if ref is not None and symbol != p.reference_symbol:
            rs = context.relative_strength(loc_engine.bars[-2:], ref.engines[p.location_timeframe].bars[-2:])
        trigger = st.engines[p.timeframe]
        return hologram(
            st.engines[p.bias_timeframe].trend(), loc_engine.location(p.range_bars, p.location_tolerance),
            trigger.trend(), trigger.shift() is not None, context.volatility_index(loc_engine.bars[-15:]), rs,
            weights=Weights(p.weight_daily, p.weight_location, p.weight_flow, p.weight_oracle),
            thresholds=Thresholds(p.grade_a_plus, p.grade_a, p.grade_b, p.grade_c), max_volatility=p.max_volatility,
        )

    # --- entries ----------------------------------------------------------------------------------
    def _skip(self, reason: str) -> None:
        self._count(f"skip_{reason}")

    def _try_entry(self, st: _Symbol, holo: Hologram, now: int, out: StrategyOutput) -> None:
        p = self.params
        if self.streak.pausing(now):
            return self._skip("loss_cooldown")
        if st.last_signal_ns is not None and now - st.last_signal_ns < p.signal_cooldown_ms * NS_PER_MS:
            return self._skip("signal_cooldown")
        if holo.status not in (Status.A_PLUS, Status.B) or holo.direction is None:
            return self._skip("status")
        if holo.status is Status.B and holo.score < p.min_context_score:
            return self._skip("score")
        if session_of(now).value not in p.entry_sessions:
            return self._skip("session")
        long = holo.direction is Direction.LONG
        if st.symbol != p.reference_symbol and (
            (long and holo.relative_strength <= p.rs_threshold)
            or (not long and holo.relative_strength >= -p.rs_threshold)
        ):
            return self._skip("relative_strength")
        setup = self.setup(st.symbol, holo.direction, now)
        if setup is None:
            return None
        self._fire(st, holo, setup, now, out)
        return None

    def setup(self, symbol: str, direction: Direction, now: int) -> Setup | None:
        """The entry at ``now`` in ``direction``: POI, flow confirmation, stop and target (None and a
        counted reason when there is none)."""
        p = self.params
        st = self.symbols[symbol]
        price = st.price
        trigger = st.engines[p.timeframe]
        if price is None:
            self._skip("no_price")
            return None
        long = direction is Direction.LONG
        bias = Bias.BULLISH if long else Bias.BEARISH
        near = [poi for poi in trigger.pois(now) if poi.bias is bias
                and abs(price - poi.reference) <= poi.reference * p.poi_proximity]
        if not near:
            self._skip("no_poi")
            return None
        poi = min(near, key=lambda x: (abs(price - x.reference), x.known_at_ns))
        flow = st.cvd.recent(now, p.cvd_max_age_ms * NS_PER_MS)
        strength = flow.strength if flow is not None and flow.bias is bias else 0.0
        if p.require_cvd_confirmation and strength < p.min_cvd_confidence:
            self._skip("no_cvd_confirmation")
            return None
        atr = Decimal(repr(context.atr(trigger.bars[-15:])))
        buffer = atr * Decimal(repr(p.stop_buffer_atr))
        stop = poi.low - buffer if long else poi.high + buffer
        risk = price - stop if long else stop - price
        if risk < price * p.min_stop_percent:
            risk = price * p.min_stop_percent
            stop = price - risk if long else price + risk
        if risk > price * p.max_stop_percent:
            self._skip("stop_too_wide")
            return None
        target, kind = price + p.target_r * risk if long else price - p.target_r * risk, f"{p.target_r}R"
        opposing = [pl.price for pl in trigger.live_pools() if pl.known_at_ns <= now
                    and pl.side is (Side.HIGH if long else Side.LOW)
                    and ((pl.price - price) if long else (price - pl.price)) >= p.min_liquidity_r * risk]
        if opposing:
            target, kind = (min(opposing) if long else max(opposing)), "LIQUIDITY"
        return Setup(direction, poi, price, stop, target, kind, strength)

    def _size(self, entry: Decimal, stop: Decimal) -> Decimal:
        """Notional risking ``risk_per_trade`` of the allocation at the stop, within the leverage and
        the budget's caps."""
        p, b = self.params, self.budget
        equity = self._equity()
        if b is None or equity <= 0 or entry <= 0:
            return Decimal(0)
        stop_pct = abs(entry - stop) / entry
        size = equity * p.risk_per_trade / stop_pct
        caps = [equity * p.leverage, to_decimal_or(b.max_notional, Decimal(0))]
        order_cap = to_decimal_or(b.max_order_notional, Decimal(0))
        if order_cap > 0:
            caps.append(order_cap)
        return min([size, *caps]).quantize(CENT, rounding="ROUND_DOWN")

    def _confidence(self, holo: Hologram, setup: Setup, judas: bool) -> float:
        """§2.10 on the 0..1 scale: the score, +10 for A+, +5 for |RS| > 0.05, +10 for flow > 80,
        +5 for a Judas sweep in the trade's direction, capped at 100."""
        points = holo.score + (10 if holo.status is Status.A_PLUS else 0)
        points += 5 if abs(holo.relative_strength) > 0.05 else 0
        points += (10 if setup.flow_strength > 80 else 0) + (5 if judas else 0)
        return round(min(100.0, points) / 100, 4)

    def _fire(self, st: _Symbol, holo: Hologram, setup: Setup, now: int, out: StrategyOutput) -> None:
        p = self.params
        size = self._size(setup.entry, setup.stop)
        if size <= 0:
            return self._skip("zero_size")
        long = setup.direction is Direction.LONG
        judas = st.sessions.judas(setup.entry, now)
        judas_agrees = judas is not None and judas.bias is (Bias.BULLISH if long else Bias.BEARISH)
        self._seq += 1
        created = self.clock.now_ns()
        signal_id = f"{self.phase_id}-{st.symbol}-{created // NS_PER_MS}-{self._seq}"
        leg = trading_pb2.Leg(venue=p.order_venue or p.venue, symbol=st.symbol,
                              instrument=common_pb2.INSTRUMENT_KIND_PERP,
                              side=common_pb2.SIDE_BUY if long else common_pb2.SIDE_SELL, size_quote=to_wire(size),
                              order_type=trading_pb2.ORDER_TYPE_MARKET)
        meta = {
            "structure_break": "BMS_LONG" if long else "BMS_SHORT",
            "context_score": f"{holo.score:.1f}",
            "hologram_status": holo.status.value,
            "poi_type": setup.poi.kind,
            "poi_key": setup.poi.key,
            "poi_reference": to_wire(setup.poi.reference),
            "session": session_of(now).value,
            "relative_strength": f"{holo.relative_strength:.6f}",
            "volatility_index": f"{holo.volatility:.2f}",
            "cvd_confirmation": f"{setup.flow_strength:.1f}",
            "target_kind": setup.target_kind,
            "judas": judas.bias.value if judas else "",
            "entry_reference": to_wire(setup.entry),
            "decided_at_ns": str(now),
        }
        signal = trading_pb2.Signal(
            phase_id=self.phase_id, signal_id=signal_id, intent=trading_pb2.INTENT_OPEN, legs=[leg],
            stop_price=to_wire(setup.stop), target_prices=[to_wire(setup.target)],
            confidence=self._confidence(holo, setup, judas_agrees),
            leverage=to_wire(p.leverage), ttl_ms=p.ttl_ms, created_at_ns=created, max_slippage_bps=p.max_slippage_bps,
            setup=f"hunter.{setup.poi.kind.lower()}", metadata=meta,
        )
        st.last_signal_ns = now
        st.managed = Managed(st.symbol, setup.direction, setup.entry, setup.stop, setup.target,
                             abs(setup.entry - setup.stop), now, signal_id)
        self._sent[signal_id] = st.symbol
        self._count("signals")
        out.signals.append(signal)
        out.event(
            SIGNAL_GENERATED,
            st.symbol,
            now,
            signal_id=signal_id,
            direction=setup.direction.value,
            entry=to_wire(setup.entry),
            stop=to_wire(setup.stop),
            target=to_wire(setup.target),
            size_quote=to_wire(size),
            poi=setup.poi.kind,
            score=f"{holo.score:.1f}",
        )
        return None

    # --- exits ------------------------------------------------------------------------------------
    def _policy(self) -> ManagePolicy:
        p = self.params
        return ManagePolicy(p.breakeven_r, p.partial_r, p.partial_fraction, p.trail_atr,
                            p.tighten_after_hours * 3_600 * 10**9, p.tightened_trail_atr)

    def _manage(self, st: _Symbol, bar: Bar, out: StrategyOutput) -> None:
        m = st.managed
        if m is None or m.quantity == 0:
            return
        before = m.stop
        atr = context.atr(st.engines[self.params.timeframe].bars[-15:])
        for ex in m.on_bar(bar, atr, self._policy()):
            self._exit(st, m, ex, bar, out)
        if m.stop != before and not m.closing:
            out.event(STOP_MOVED, st.symbol, bar.close_ns, stop=to_wire(m.stop), previous=to_wire(before),
                      breakeven=m.breakeven)

    def _exit(self, st: _Symbol, m: Managed, ex: Exit, bar: Bar, out: StrategyOutput) -> None:
        p = self.params
        self._seq += 1
        created = self.clock.now_ns()
        signal_id = f"{self.phase_id}-{st.symbol}-{created // NS_PER_MS}-{self._seq}-{ex.kind.value.lower()}"
        full = ex.fraction >= 1
        size = (
            "" if full else to_wire((abs(m.quantity) * bar.close * ex.fraction).quantize(CENT, rounding="ROUND_DOWN"))
        )
        leg = trading_pb2.Leg(venue=p.order_venue or p.venue, symbol=st.symbol,
                              instrument=common_pb2.INSTRUMENT_KIND_PERP,
                              side=common_pb2.SIDE_SELL if m.long else common_pb2.SIDE_BUY, size_quote=size,
                              order_type=trading_pb2.ORDER_TYPE_MARKET)
        signal = trading_pb2.Signal(
            phase_id=self.phase_id, signal_id=signal_id,
            intent=trading_pb2.INTENT_CLOSE if full else trading_pb2.INTENT_REDUCE, legs=[leg],
            confidence=1.0, ttl_ms=p.ttl_ms, created_at_ns=created, max_slippage_bps=p.max_slippage_bps,
            setup=f"hunter.exit.{ex.kind.value.lower()}",
            metadata={"entry_signal_id": m.signal_id, "exit": ex.kind.value, "level": to_wire(ex.price),
                      "r_multiple": to_wire(m.r_multiple(ex.price).quantize(Decimal("0.01")))},
        )
        if full:
            m.closing = True
        self._exits[signal_id] = st.symbol
        self._count(f"exits_{ex.kind.value.lower()}")
        out.signals.append(signal)
        out.event(
            EXIT_SIGNAL, st.symbol, bar.close_ns, signal_id=signal_id, exit=ex.kind.value, level=to_wire(ex.price)
        )

    # --- feedback ---------------------------------------------------------------------------------
    def on_ack(self, ack: trading_pb2.SignalAck) -> StrategyOutput:
        """A rejected entry frees the symbol; after a rejected close the next candle tries again."""
        entry_symbol = self._sent.pop(ack.signal_id, None)
        exit_symbol = self._exits.pop(ack.signal_id, None)
        if ack.accepted:
            return StrategyOutput()
        st = self.symbols.get(entry_symbol or exit_symbol or "")
        m = st.managed if st is not None else None
        if st is None or m is None:
            return StrategyOutput()
        if entry_symbol is not None and m.signal_id == ack.signal_id and m.quantity == 0:
            st.managed = None
            self._count("entries_rejected")
        elif exit_symbol is not None:
            m.closing = False
            self._count("exits_rejected")
        return StrategyOutput()

    def on_order(self, order: trading_pb2.Order) -> StrategyOutput:
        if order.state in (trading_pb2.ORDER_STATE_CANCELED, trading_pb2.ORDER_STATE_EXPIRED,
                           trading_pb2.ORDER_STATE_REJECTED):
            st = self.symbols.get(order.symbol)
            m = st.managed if st else None
            if st is not None and m is not None and m.signal_id == order.signal_id and m.quantity == 0:
                st.managed = None  # the entry never filled
        return StrategyOutput()

    def on_fill(self, fill: trading_pb2.Fill) -> StrategyOutput:
        self._count("fills")
        return StrategyOutput()

    def on_position(self, position: trading_pb2.Position) -> StrategyOutput:
        """What is held: a managed plan learns its quantity and real entry; flat ends it."""
        st = self.symbols.get(position.symbol)
        if st is None or st.managed is None:
            return StrategyOutput()
        qty = to_decimal_or(position.quantity, Decimal(0))
        if qty == 0:
            if st.managed.quantity != 0:
                st.managed = None
            return StrategyOutput()
        st.managed.filled(qty, to_decimal_or(position.average_entry_price, Decimal(0)))
        return StrategyOutput()

    def on_trade_closed(self, symbol: str, pnl: Decimal) -> StrategyOutput:
        """More than ``max_consecutive_losses`` losses in a row pause entries for ``loss_cooldown_ms``."""
        out = StrategyOutput()
        now = self.clock.now_ns()
        st = self.symbols.get(symbol)
        if st is not None:
            st.managed = None
        self._count("losses" if pnl < 0 else "wins")
        streak = self.streak.record(pnl, now, self.params.max_consecutive_losses,
                                    self.params.loss_cooldown_ms * NS_PER_MS)
        if streak:
            self._count("loss_cooldowns")
            out.event(LOSS_COOLDOWN, symbol, now, losses=streak, until_ns=self.streak.until_ns)
        return out


def candle_of(symbol: str, venue: str, bar: Bar, timeframe: str) -> market_pb2.MarketEvent:
    """A closed perp candle event of ``bar`` (tests and replays)."""
    return candle_event(venue, symbol, common_pb2.INSTRUMENT_KIND_PERP, timeframe=timeframe,
                        open_time_ns=bar.open_ns, close_time_ns=bar.close_ns, open=to_wire(bar.open),
                        high=to_wire(bar.high), low=to_wire(bar.low), close=to_wire(bar.close),
                        volume=to_wire(bar.volume), trade_count=1, closed=True, ts_ns=bar.close_ns, seq=0)
