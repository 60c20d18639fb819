"""A seeded, deterministic market simulator: the offline default source of ``titan up``.

One market regime chain drives every symbol; each symbol has a spot and a perpetual instrument.
The model (parameters in :class:`SimConfig`, statistics documented in docs/market-data.md):

* **Price** (spot/index, log): per-minute GARCH(1,1) variance whose long-run level depends on a
  three-state Markov regime (calm / normal / turbulent), spread over the minute's seconds with
  cross-symbol correlation, plus Laplace-sized jumps (Poisson per minute).
* **Stop-runs (traps):** when the perp comes close to the highest high / lowest low it printed over a
  look-back window, it may run to that level, break it by a little on a dense burst of aggressive
  trades (stops and short/long liquidations), then fall back inside the range — a temporary
  excursion on top of the price path.
* **Basis:** the perp mark is ``index × (1 + b)`` with ``b`` an Ornstein–Uhlenbeck process (mean,
  stationary sd and half-life configurable), pushed in the direction of a jump when the jump sets off
  a liquidation cascade, then mean-reverting.
* **Funding** every 8 h at 00/08/16 UTC from the premium ``P`` = mean over the interval of the
  per-minute ``(mark − index) / index``: ``rate = clamp(P + clamp(I − P, −δ, δ), −cap, cap)``.
  A predicted (unsettled) rate is published each minute.
* **Open interest** mean-reverts slowly; a liquidation cascade removes a share of it, and the
  liquidation events of the cascade add up to exactly the removed amount.
* **Microstructure:** trades arrive as a self-exciting (Hawkes) process: immigrant trades at a
  rate rising with the move size and in turbulence, each trade begetting follow-on trades after
  log-uniform delays; stop-runs and liquidation cascades add dense bursts (hundreds of trades within
  a few hundred milliseconds, aggressor mostly in the run's direction). Trade prices at the touch; a
  book of ``depth_levels`` per side around the mid (snapshot, then deltas), top of book, mark/index,
  candles (1-minute from the trades, longer ones rolled up from them).
* **Scripted stop-runs** (``scripted_runs_s``, for demos and end-to-end runs): at chosen offsets
  after ``start_ns`` every symbol's perp breaks the 50-hour extreme nearer to it — a shallow break on
  a short, dense burst; for ``scripted_steer_min`` minutes before, the path is led to just inside
  that extreme without crossing it and natural runs are held back. Nothing before the steering
  window changes.
* **History prelude** (``history_hours``): before the first event at ``start_ns`` the simulator
  generates the preceding hours of the same path and emits them flat out as closed candles plus
  open interest and funding, so consumers that need history (structure candles) can start at once.

Determinism: the price/basis/funding path uses its own random stream, separate from the
microstructure stream, so the same seed gives the same path whatever the event densities are
(tests use sparse microstructure to check the path statistics quickly). The prelude's candle
volumes draw from a third stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from titan.core.clock import ManualClock
from titan.core.metrics import MD_EVENTS
from titan.v1.common_pb2 import InstrumentKind, Side
from titan.v1.market_pb2 import (
    BookDepth,
    BookLevel,
    BookTop,
    Candle,
    Funding,
    Liquidation,
    MarketEvent,
    MarkPrice,
    OpenInterest,
    Trade,
)

from .candles import timeframe_ns
from .source import Sleep, pace

NS_PER_S = 1_000_000_000
MINUTE_NS = 60 * NS_PER_S
HOUR_NS = 3600 * NS_PER_S
DAY_NS = 24 * HOUR_NS
SPOT = InstrumentKind.INSTRUMENT_KIND_SPOT
PERP = InstrumentKind.INSTRUMENT_KIND_PERP
BUY = Side.SIDE_BUY
SELL = Side.SIDE_SELL
DEFAULT_START_NS = 1_704_067_200 * NS_PER_S  # 2024-01-01 00:00 UTC

REGIMES = ("calm", "normal", "turbulent")
SCRIPTED_MIN_RISE_S = 5  # a scripted run breaks its level at least this many seconds into its minute
SCRIPTED_BURST_START_MS = 300  # ...its burst starts within this many ms of that second
STEER_CEILING_VOL = 0.25  # while steered, the path stays this many minute-vols inside the extreme

F64 = np.ndarray[Any, np.dtype[np.float64]]
I64 = np.ndarray[Any, np.dtype[np.int64]]
B8 = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True)
class SymbolSpec:
    """Static properties of one simulated symbol (prices as decimal places + integer ticks)."""

    symbol: str
    price: float                  # starting index price
    price_dp: int                 # decimal places of the perp tick
    tick: int                     # perp tick in units of 10^-price_dp
    spot_price_dp: int
    spot_tick: int
    size_dp: int                  # decimal places of the lot
    lot: int                      # lot in units of 10^-size_dp
    vol_scale: float = 1.0        # multiplies every regime volatility
    open_interest: float = 0.0    # starting open interest, base units
    trade_notional: float = 2_000.0  # median trade notional, quote units


KNOWN_SYMBOLS: dict[str, SymbolSpec] = {
    "BTCUSDT": SymbolSpec("BTCUSDT", 60_000.0, 1, 1, 2, 1, 3, 1, 1.0, 50_000.0, 5_000.0),
    "ETHUSDT": SymbolSpec("ETHUSDT", 3_000.0, 2, 1, 2, 1, 2, 1, 1.25, 800_000.0, 3_000.0),
    "SOLUSDT": SymbolSpec("SOLUSDT", 150.0, 3, 10, 2, 1, 1, 1, 1.6, 6_000_000.0, 1_500.0),
    "XRPUSDT": SymbolSpec("XRPUSDT", 0.6, 4, 1, 4, 1, 0, 1, 1.5, 300_000_000.0, 1_000.0),
}


def default_spec(symbol: str) -> SymbolSpec:
    return KNOWN_SYMBOLS.get(symbol) or SymbolSpec(symbol, 100.0, 2, 1, 2, 1, 2, 1, 1.5, 1_000_000.0, 1_000.0)


@dataclass(frozen=True)
class SimConfig:
    """Simulator parameters. Volatilities are per minute (log-return standard deviation)."""

    seed: int = 1
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    start_ns: int = DEFAULT_START_NS
    end_ns: int | None = None          # None: run forever
    venue: str = "sim"
    # -- history prelude: the hours before start_ns, emitted first (closed candles, OI, funding) ----
    history_hours: int = 0
    # -- regimes: per-minute volatility, mean duration (minutes), activity multiplier ----------------
    regime_vol: tuple[float, float, float] = (0.0004, 0.0008, 0.0022)
    regime_duration_min: tuple[float, float, float] = (720.0, 480.0, 90.0)
    regime_activity: tuple[float, float, float] = (0.6, 1.0, 2.5)
    # -- GARCH(1,1) on minute returns -------------------------------------------------------------
    garch_alpha: float = 0.08
    garch_beta: float = 0.90
    correlation: float = 0.7           # of diffusive returns across symbols
    # -- jumps ------------------------------------------------------------------------------------
    jump_prob_per_min: tuple[float, float, float] = (0.0005, 0.0015, 0.006)
    jump_scale: float = 0.004          # Laplace scale of jump log-size
    cascade_threshold: float = 0.006   # |jump| above this sets off a liquidation cascade
    cascade_oi_drop_per_pct: float = 0.04  # OI share removed per 1% move (capped at 30%)
    cascade_basis_beta: float = 0.08   # basis shock = beta × jump
    cascade_activity: float = 6.0      # trade-rate multiplier for 10 s after the jump
    cascade_burst_scale: float = 2.0   # a cascade's trade burst is this many times a stop-run's
    # -- stop-runs at range extremes --------------------------------------------------------------
    trap_lookback_min: tuple[int, ...] = (3000, 240)  # perp high/low windows, longest tried first
    trap_trigger_vol: float = 2.0      # price within this many minute-vols of the extreme arms a run
    trap_prob_per_min: float = 0.2     # chance an armed minute starts a run
    trap_overshoot_vol: tuple[float, float] = (1.0, 3.0)  # break beyond the extreme, in minute-vols
    trap_rise_s: tuple[int, int] = (5, 20)   # the run up to the level; the break is the next second
    trap_fall_s: tuple[int, int] = (30, 120)
    trap_rejection_vol: tuple[float, float] = (0.5, 2.0)  # where the run ends, inside the range
    trap_cooldown_min: int = 30
    trap_activity: float = 3.0         # trade-rate multiplier while a run lasts
    # -- scripted stop-runs (scenarios for demos and end-to-end runs) -------------------------------
    scripted_runs_s: tuple[float, ...] = ()  # seconds after start_ns: every perp breaks its range extreme then
    scripted_steer_min: int = 240      # minutes before a scripted run in which the path is led to the extreme
    scripted_margin_vol: float = 1.0   # steering aims this many minute-vols inside the extreme
    scripted_overshoot_bps: tuple[float, float] = (2.0, 6.0)  # a shallow break, whatever the volatility
    scripted_burst_ms: int = 180       # the burst of a scripted run lasts at most this long
    # -- trade bursts (stop-runs; cascades × cascade_burst_scale) ---------------------------------------
    burst_rate_per_s: tuple[float, float] = (800.0, 2500.0)  # perp trades per second inside a burst
    burst_ms: tuple[int, int] = (150, 400)                   # burst duration
    burst_spot_share: float = 0.6      # spot burst size relative to the perp's
    burst_aggressor: float = 0.9       # share of burst trades whose taker side is the run's direction
    # -- basis (perp premium over index) ------------------------------------------------------------
    basis_mean: float = 0.0002
    basis_sd: float = 0.0008           # stationary standard deviation
    basis_half_life_s: float = 7200.0
    # -- funding ------------------------------------------------------------------------------------
    funding_interval_h: int = 8
    funding_interest: float = 0.0001
    funding_clamp: float = 0.00005
    funding_cap: float = 0.0075
    # -- open interest ------------------------------------------------------------------------------
    oi_vol_per_min: float = 0.001
    oi_half_life_min: float = 1440.0
    # -- microstructure (does not change the path) ------------------------------------------------
    trade_rate: tuple[float, float] = (0.8, 1.5)   # trades per second: (spot, perp) at activity 1
    activity_sd: float = 0.6           # log trade-activity of a symbol: OU per second, stationary sd
    activity_half_life_s: float = 60.0
    hawkes_branching: float = 0.6      # mean follow-on trades per trade (< 1)
    hawkes_delay_s: tuple[float, float] = (0.001, 30.0)  # log-uniform delay of a follow-on trade
    hawkes_side_persistence: float = 0.7  # chance a follow-on trade has its parent's taker side
    spread_ticks: int = 1
    depth_levels: int = 20
    depth_step_bps: int = 1            # spacing of the levels behind the touch
    depth_every_s: int = 5
    depth_snapshot_every_s: int = 3600
    top_every_s: int = 1
    mark_every_s: int = 1
    oi_every_s: int = 60
    candles: bool = True               # live candles (the prelude always has them)
    candle_timeframes: tuple[str, ...] = ("1m", "1h")  # 1m from trades, longer ones rolled up
    # -- continuation: (symbol, perp mark) when the live events begin; the history prelude is the
    #    same path shifted (in log price) to end there, so a restarted market picks up where it was --
    start_marks: tuple[tuple[str, float], ...] = ()

    def replace(self, **changes: Any) -> SimConfig:
        return dataclasses.replace(self, **changes)

    def with_symbols(self, symbols: Sequence[str]) -> SimConfig:
        return dataclasses.replace(self, symbols=tuple(symbols))

    @property
    def specs(self) -> tuple[SymbolSpec, ...]:
        return tuple(default_spec(s) for s in self.symbols)


@lru_cache(maxsize=1 << 16)
def fmt_units(n: int, dp: int) -> str:
    """Integer units of 10^-dp -> canonical decimal string (no exponent, no trailing zeros)."""
    if dp == 0:
        return str(n)
    sign = "-" if n < 0 else ""
    q, r = divmod(abs(n), 10**dp)
    if r == 0:
        return f"{sign}{q}"
    return f"{sign}{q}.{str(r).rjust(dp, '0').rstrip('0')}"


def fmt_rate(x: float) -> str:
    """A funding rate to 8 decimals, canonical."""
    return fmt_units(round(x * 10**8), 8)


class _Ring:
    """The last ``size`` values pushed, with the max/min over the most recent ``w`` of them."""

    def __init__(self, size: int) -> None:
        self.buf = np.zeros(max(1, size))
        self.n = 0

    def push(self, v: float) -> None:
        self.buf[self.n % len(self.buf)] = v
        self.n += 1

    def _last(self, w: int) -> F64:
        size = len(self.buf)
        w = min(w, self.n, size)
        end = self.n % size
        if w <= end:
            return self.buf[end - w : end]
        return np.concatenate((self.buf[: end], self.buf[size - (w - end) :]))

    def max_last(self, w: int) -> float:
        return float(self._last(w).max())

    def min_last(self, w: int) -> float:
        return float(self._last(w).min())


@dataclass
class _Sym:
    spec: SymbolSpec
    x: float                        # log index price without the trap overlay
    h: float                        # GARCH variance (per minute)
    eps_prev: float
    basis: float
    log_oi: float
    log_oi_target: float
    highs: _Ring                    # highest perp log price of each past minute
    lows: _Ring
    overlay: list[float] = field(default_factory=list)   # pending trap overlay, one per second
    steer: int = 0                  # scripted run ahead: +1 to the range high, -1 to the low, 0 none
    steer_level: float = 0.0        # the extreme it will break (perp log price)
    carry: float = 0.0
    cooldown: int = 0
    premium_sum: float = 0.0
    premium_n: int = 0


@dataclass
class _Minute:
    """The path of one symbol over one minute (per second), plus what happened in it."""

    index: F64
    mark: F64
    ret_abs: F64    # |log return| per second / second vol
    direction: F64  # sign-ish of the move per second, -1..1
    stress: F64     # trade-rate multiplier per second (runs, cascades)
    bursts: list[tuple[int, int, float, int]]   # (second, direction, size scale, longest ms or 0): dense bursts
    liquidations: list[tuple[int, int, float]]  # (second, side, base size)
    oi: float
    oi_changed: bool


@dataclass
class _Happened:
    """What a symbol's minute brings besides its path: the trade-rate multiplier per second, dense
    bursts, liquidations, and whether open interest jumped."""

    stress: F64
    bursts: list[tuple[int, int, float, int]] = field(default_factory=list)
    liquidations: list[tuple[int, int, float]] = field(default_factory=list)
    oi_changed: bool = False


class _RunDraws(NamedTuple):
    """A stop-run's draws, made every minute: the overshoot (minute-vols), the seconds of the fall
    back, and the rejection (minute-vols inside the range)."""

    overshoot_k: float
    fall: int
    reject_k: float


@dataclass(frozen=True)
class _Script:
    """Where the path stands to the next scripted run: its minute ``ahead`` of this one (-1: none),
    the second of its break when that minute is this one (else 0), and whether it steers now."""

    ahead: int
    rise: int
    steering: bool


@dataclass
class SimStats:
    """What the simulator did (for tests and the docs)."""

    minutes: int = 0
    prelude_minutes: int = 0
    jumps: int = 0
    cascades: int = 0
    traps: int = 0
    scripted_runs: int = 0
    fundings: int = 0
    regime_minutes: list[int] = field(default_factory=lambda: [0, 0, 0])
    # (start of the second of the break, symbol, direction, the swept level as a perp price)
    trap_log: list[tuple[int, str, int, float]] = field(default_factory=list)
    # (start of the second of the jump, symbol, direction)
    cascade_log: list[tuple[int, str, int]] = field(default_factory=list)


class Simulator:
    """Produces time-ordered MarketEvents for every symbol in the config (spot + perp each)."""

    name = "sim"

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        speed: float | None = None,
        clock: ManualClock | None = None,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.speed = speed
        self.clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self.stats = SimStats()

    # --- Source protocol ---------------------------------------------------------------------
    def events(self, end_ns: int | None = None) -> Iterator[MarketEvent]:
        """Time-ordered events: the history prelude (if ``history_hours``), then everything from
        ``start_ns`` until ``end_ns`` (or the config's, or forever)."""
        gen = _Generator(self.config, self.stats)
        stop = end_ns if end_ns is not None else self.config.end_ns
        start = self.config.start_ns
        seq: dict[tuple[str, int], int] = {}
        for batch, prelude in gen.batches():
            counts: dict[str, int] = {}
            for ev in batch:
                k = ev.WhichOneof("payload") or ""
                counts[k] = counts.get(k, 0) + 1
            for k, n in counts.items():
                MD_EVENTS.labels(self.name, self.config.venue, k).inc(n)
            for ev in batch:
                if not prelude and ev.exchange_ts_ns < start:
                    continue  # the first minute is generated whole; emit from start_ns on
                if stop is not None and ev.exchange_ts_ns >= stop:
                    return
                key = (ev.symbol, ev.instrument)  # per-stream sequence numbers in emission order
                n = seq.get(key, 0) + 1
                seq[key] = n
                ev.seq = n
                if self.clock is not None and ev.exchange_ts_ns > self.clock.now_ns():
                    self.clock.set(ev.exchange_ts_ns)
                yield ev

    def __iter__(self) -> Iterator[MarketEvent]:
        return self.events()

    async def stream(self) -> AsyncIterator[MarketEvent]:
        """``events()`` paced at ``speed``; the history prelude (older than ``start_ns``) is not
        paced, real time runs from ``start_ns``."""
        kwargs: dict[str, Any] = {"sleep": self._sleep}
        if self._monotonic is not None:
            kwargs["monotonic"] = self._monotonic
        if self.config.history_hours > 0:
            kwargs["start_ns"] = self.config.start_ns
        async for ev in pace(self.events(), self.speed, **kwargs):
            yield ev

    async def aclose(self) -> None:
        return None


class _Generator:
    def __init__(self, cfg: SimConfig, stats: SimStats) -> None:
        if cfg.history_hours < 0:
            raise ValueError("history_hours must be >= 0")
        if not 0 <= cfg.hawkes_branching < 1:
            raise ValueError("hawkes_branching must be in [0, 1)")
        if any(t < 0 for t in cfg.scripted_runs_s):
            raise ValueError("scripted_runs_s must be >= 0 (seconds after start_ns)")
        if cfg.scripted_runs_s and cfg.scripted_steer_min < 1:
            raise ValueError("scripted_steer_min must be >= 1")
        self.cfg = cfg
        self.stats = stats
        # scripted runs as (minute start, second of the break); the approach needs 5 s of its minute
        self.scripted: list[tuple[int, int]] = []
        for t in sorted({cfg.start_ns + round(t * NS_PER_S) for t in cfg.scripted_runs_s}):
            m = t - t % MINUTE_NS
            if not self.scripted or self.scripted[-1][0] != m:
                self.scripted.append((m, max(SCRIPTED_MIN_RISE_S, (t - m) // NS_PER_S)))
        path_seq, micro_seq, hist_seq = np.random.SeedSequence(cfg.seed).spawn(3)
        self.path = np.random.default_rng(path_seq)
        self.micro = np.random.default_rng(micro_seq)
        self.hist = np.random.default_rng(hist_seq)
        self.regime = 1
        self.tfs = sorted({timeframe_ns(tf) for tf in cfg.candle_timeframes} - {MINUTE_NS})
        if any(tf % MINUTE_NS for tf in self.tfs):
            raise ValueError("candle timeframes must be whole minutes")
        first_live = cfg.start_ns - cfg.start_ns % MINUTE_NS
        if cfg.history_hours > 0:
            align = min(max([HOUR_NS, *self.tfs]), DAY_NS)
            t = first_live - cfg.history_hours * HOUR_NS
            self.minute_ns = t - t % align
        else:
            self.minute_ns = first_live
        self.prelude_minutes = (first_live - self.minute_ns) // MINUTE_NS
        longest = max(cfg.trap_lookback_min, default=1)
        self.syms = [
            _Sym(
                spec=sp,
                x=math.log(sp.price),
                h=(cfg.regime_vol[1] * sp.vol_scale) ** 2,
                eps_prev=0.0,
                basis=cfg.basis_mean,
                log_oi=math.log(sp.open_interest),
                log_oi_target=math.log(sp.open_interest),
                highs=_Ring(longest),
                lows=_Ring(longest),
            )
            for sp in cfg.specs
        ]
        self.books: dict[tuple[str, int], tuple[dict[int, int], dict[int, int]]] = {}
        self.depth_ids: dict[tuple[str, int], int] = {}
        self.trade_ids: dict[tuple[str, int], int] = {}
        self.pending: dict[tuple[str, int], tuple[I64, B8]] = {}   # follow-on trades due later (abs ns)
        self.last_mid: dict[tuple[str, int], int] = {}             # price units at the last second
        # open rolled-up candles: (symbol, instrument, tf) -> [open_ns, o, h, l, c, volume, count]
        self.rollup: dict[tuple[str, int, int], list[int]] = {}
        phi = math.exp(-math.log(2) / cfg.basis_half_life_s)
        k = np.arange(1, 61, dtype=np.float64)
        self.phi_pow = phi**k          # exact OU over a minute in closed form
        self.phi_inv_pow = phi**-k
        self.basis_noise = cfg.basis_sd * math.sqrt(1 - phi**2)
        self.oi_phi = math.exp(-math.log(2) / cfg.oi_half_life_min)
        a_phi = math.exp(-math.log(2) / cfg.activity_half_life_s)
        self.a_pow, self.a_inv_pow = a_phi**k, a_phi**-k
        self.a_noise = cfg.activity_sd * math.sqrt(1 - a_phi**2)
        self.activity = [0.0] * len(cfg.symbols)  # log activity of each symbol (micro stream)
        self.funding_ns = cfg.funding_interval_h * HOUR_NS
        if cfg.start_marks:
            self._anchor(dict(cfg.start_marks))

    def _anchor(self, marks: dict[str, float]) -> None:
        """Shift each named symbol's log price so that its perp mark at the first live minute is
        ``marks[symbol]``. Every rule of the path is invariant under a shift in log price (returns,
        range extremes, the steering aim), so the shifted path is the same market at another level:
        a probe walks the prelude once unshifted to learn where it ends."""
        unknown = sorted(set(marks) - {st.spec.symbol for st in self.syms})
        if unknown:
            raise ValueError(f"start_marks names symbols the simulator does not run: {', '.join(unknown)}")
        if any(not math.isfinite(m) or m <= 0 for m in marks.values()):
            raise ValueError("start_marks must be positive prices")
        probe = _Generator(dataclasses.replace(self.cfg, start_marks=()), SimStats())
        ends = {st.spec.symbol: math.exp(st.x) * (1 + st.basis) for st in probe.syms}
        for _ in range(probe.prelude_minutes):
            for st, minute in zip(probe.syms, probe._path_minute(probe.minute_ns), strict=True):
                ends[st.spec.symbol] = float(minute.mark[-1])
            probe.minute_ns += MINUTE_NS
        for st in self.syms:
            if st.spec.symbol in marks:
                st.x += math.log(marks[st.spec.symbol] / ends[st.spec.symbol])

    # --- event construction (fields already canonical, so no Decimal round trips) -------------
    def _ev(self, sym: str, inst: InstrumentKind, ts: int, **payload: Any) -> MarketEvent:
        return MarketEvent(
            venue=self.cfg.venue, symbol=sym, instrument=inst, exchange_ts_ns=ts, receive_ts_ns=ts, **payload
        )

    # --- the path ------------------------------------------------------------------------------
    def _step_regime(self) -> None:
        cfg = self.cfg
        if self.path.random() < 1.0 / cfg.regime_duration_min[self.regime]:
            others = [r for r in range(3) if r != self.regime]
            # calm and turbulent both tend to go back to normal
            weights = np.array([0.8 if r == 1 else 0.2 for r in others])
            self.regime = int(others[int(self.path.choice(2, p=weights / weights.sum()))])
        self.stats.regime_minutes[self.regime] += 1

    def _trap_level(self, st: _Sym, y: F64, vol: float) -> tuple[float, int]:
        """The extreme a run would sweep (perp log price) and its direction, or (0, 0)."""
        cfg = self.cfg
        last, reach = float(y[-1]), cfg.trap_trigger_vol * vol
        for w in sorted(cfg.trap_lookback_min, reverse=True):
            hi, lo = st.highs.max_last(w), st.lows.min_last(w)
            if 0 < hi - last < reach and float(y.max()) < hi:
                return hi, 1
            if 0 < last - lo < reach and float(y.min()) > lo:
                return lo, -1
        return 0.0, 0

    def _scripted_target(self, st: _Sym) -> tuple[float, int]:
        """The extreme a scripted run will break: the high (+1) or low (-1) over the longest look-back,
        whichever is nearer the price. Preferred: one that is also the extreme of that window shortened
        by the steering time, so it is still inside the window when the run comes (and the extreme of
        any consumer's range over the same hours). (0, 0) without history."""
        if st.highs.n == 0:
            return 0.0, 0
        w = max(self.cfg.trap_lookback_min, default=1)
        inner = max(1, w - self.cfg.scripted_steer_min)
        last = st.x + math.log1p(st.basis)
        hi, lo = st.highs.max_last(w), st.lows.min_last(w)
        options = [(hi - last, hi, 1), (last - lo, lo, -1)]
        lasting = [o for o in options if (st.highs.max_last(inner) if o[2] > 0 else st.lows.min_last(inner)) == o[1]]
        _, level, d = min(lasting or options)
        return level, d

    def _start_run(self, st: _Sym, m0: int, y: F64, level: float, d: int, vol: float, rise: int,
                   draws: _RunDraws, happened: _Happened, scripted: bool = False) -> None:
        """A stop-run: up to ``level`` by second ``rise`` - 1 (never beyond it), the break at second
        ``rise``, then a rejection that ends inside the range and stays in the path. A scripted run
        breaks by ``scripted_overshoot_bps`` (the natural draw mapped onto that range) on a short burst."""
        cfg = self.cfg
        overshoot_k = draws.overshoot_k
        if scripted:
            (k_lo, k_hi), (b_lo, b_hi) = cfg.trap_overshoot_vol, cfg.scripted_overshoot_bps
            u = (overshoot_k - k_lo) / (k_hi - k_lo) if k_hi > k_lo else 0.5
            overshoot_k = (b_lo + u * (b_hi - b_lo)) / 1e4 / vol
        ramp = (level - y[rise - 1]) * np.arange(1, rise + 1) / rise
        gap = level - y[:rise]
        approach = np.minimum(ramp, gap) if d > 0 else np.maximum(ramp, gap)
        sweep = level + d * overshoot_k * vol - float(y[rise])
        st.carry = -d * draws.reject_k * vol
        down = np.linspace(sweep, st.carry, draws.fall + 1)[1:]
        st.overlay = [*approach.tolist(), sweep, *down.tolist()]
        st.cooldown = cfg.trap_cooldown_min
        self.stats.traps += 1
        self.stats.trap_log.append((m0 + rise * NS_PER_S, st.spec.symbol, d, math.exp(level)))
        happened.bursts.append((rise, d, 1.0, cfg.scripted_burst_ms if scripted else 0))
        # the break runs stops: shorts squeezed above the high (BUY liquidations), longs below
        oi = math.exp(st.log_oi)
        removed = oi * 0.002 * overshoot_k
        st.log_oi = math.log(oi - removed)
        side = int(BUY if d > 0 else SELL)
        happened.liquidations.extend((rise, side, removed / 3) for _ in range(3))
        happened.oi_changed = True

    def _path_minute(self, m0: int) -> list[_Minute]:
        """Every symbol's path over the minute starting at ``m0``: the regime steps, then each symbol
        moves on shocks correlated across symbols. The path's random draws come in a fixed order
        (the regime, the shared and own shocks, then each symbol's in turn), so a seed gives one path."""
        self._step_regime()
        # scripted runs: the next one steers the path for scripted_steer_min minutes, then breaks
        while self.scripted and self.scripted[0][0] < m0:
            self.scripted.pop(0)
        ahead = (self.scripted[0][0] - m0) // MINUTE_NS if self.scripted else -1  # minutes before its own
        script = _Script(
            ahead=ahead,
            rise=self.scripted[0][1] if ahead == 0 else 0,
            steering=0 < ahead <= self.cfg.scripted_steer_min,
        )
        common = self.path.standard_normal(60)
        own = self.path.standard_normal((len(self.syms), 60))
        rho = self.cfg.correlation
        return [
            self._symbol_minute(st, m0, rho * common + math.sqrt(1 - rho * rho) * own[i], script)
            for i, st in enumerate(self.syms)
        ]

    def _symbol_minute(self, st: _Sym, m0: int, shocks: F64, script: _Script) -> _Minute:
        """One symbol's minute from its unit ``shocks`` per second: GARCH steps, a jump, the steering
        before a scripted run, the basis, a stop-run and its overlay, and open interest."""
        cfg = self.cfg
        var_r = (cfg.regime_vol[self.regime] * st.spec.vol_scale) ** 2
        omega = var_r * (1 - cfg.garch_alpha - cfg.garch_beta)
        st.h = omega + cfg.garch_alpha * st.eps_prev**2 + cfg.garch_beta * st.h
        sd_s = math.sqrt(st.h / 60)
        steps = shocks * sd_s
        st.eps_prev = float(steps.sum())
        happened = _Happened(stress=np.ones(60))
        noise = self.path.standard_normal(60) * self.basis_noise
        self._jump(st, m0, steps, noise, happened)
        vol = math.sqrt(st.h)
        if script.steering:
            self._steer(st, steps, vol, script.ahead)
        x = st.x + np.cumsum(steps)
        st.x = float(x[-1])
        # basis: exact OU per second, b_k - mu = phi^(k+1) (b_-1 - mu + sum_j phi^-(j+1) e_j)
        mu = cfg.basis_mean
        b = mu + self.phi_pow * (st.basis - mu + np.cumsum(noise * self.phi_inv_pow))
        st.basis = float(b[-1])
        log_b = np.log1p(b)
        if script.steering and st.steer:  # ...and never through it before the run: it stays the extreme
            edge = st.steer_level - st.steer * STEER_CEILING_VOL * vol - log_b
            x = np.minimum(x, edge) if st.steer > 0 else np.maximum(x, edge)
            st.x = float(x[-1])
        self._stop_run(st, m0, x + log_b, vol, script.rise, happened)
        obs = x + self._overlay(st, happened.stress)
        perp_log = obs + log_b
        st.highs.push(float(perp_log.max()))
        st.lows.push(float(perp_log.min()))
        st.log_oi = (
            st.log_oi_target
            + (st.log_oi - st.log_oi_target) * self.oi_phi
            + cfg.oi_vol_per_min * float(self.path.standard_normal())
        )
        index = np.exp(obs)
        dobs = np.diff(obs, prepend=obs[0] - steps[0])
        return _Minute(
            index=index,
            mark=index * (1 + b),
            ret_abs=np.abs(dobs) / max(sd_s, 1e-12),
            direction=np.tanh(dobs / max(sd_s, 1e-12)),
            stress=happened.stress,
            bursts=happened.bursts,
            liquidations=happened.liquidations,
            oi=math.exp(st.log_oi),
            oi_changed=happened.oi_changed,
        )

    def _jump(self, st: _Sym, m0: int, steps: F64, noise: F64, happened: _Happened) -> None:
        """Maybe a jump in ``steps`` this minute; a large one sets off a liquidation cascade: open
        interest removed, the basis pushed, a burst of trades and the liquidations."""
        cfg, rng = self.cfg, self.path
        jump_u, jump_sec, jump_size = rng.random(), int(rng.integers(60)), float(rng.laplace(0, cfg.jump_scale))
        if jump_u >= cfg.jump_prob_per_min[self.regime]:
            return
        self.stats.jumps += 1
        steps[jump_sec] += jump_size
        if abs(jump_size) <= cfg.cascade_threshold:
            return
        self.stats.cascades += 1
        self.stats.cascade_log.append((m0 + jump_sec * NS_PER_S, st.spec.symbol, 1 if jump_size > 0 else -1))
        drop = min(0.3, cfg.cascade_oi_drop_per_pct * abs(jump_size) * 100)
        oi = math.exp(st.log_oi)
        removed = oi * drop
        st.log_oi = math.log(oi - removed)
        happened.oi_changed = True
        noise[jump_sec] += cfg.cascade_basis_beta * jump_size
        end = min(60, jump_sec + 10)
        happened.stress[jump_sec:end] = cfg.cascade_activity
        happened.bursts.append((jump_sec, 1 if jump_size > 0 else -1, cfg.cascade_burst_scale, 0))
        # longs liquidated in a fall (SELL orders), shorts in a rise (BUY orders)
        side = int(SELL if jump_size < 0 else BUY)
        parts = rng.dirichlet(np.ones(8))
        secs = rng.integers(jump_sec, end, size=8)
        happened.liquidations.extend((int(sec), side, float(removed * w)) for sec, w in zip(secs, parts, strict=True))

    def _steer(self, st: _Sym, steps: F64, vol: float, ahead: int) -> None:
        """Before a scripted run: drift ``steps`` to just inside the extreme it will break, closing the
        gap by the run's minute (``ahead`` minutes away)."""
        if not st.steer:
            st.steer_level, st.steer = self._scripted_target(st)
        if st.steer:
            aim = st.steer_level - st.steer * self.cfg.scripted_margin_vol * vol
            steps += (aim - st.x - math.log1p(st.basis)) / ahead / 60

    def _stop_run(self, st: _Sym, m0: int, y: F64, vol: float, scripted_rise: int, happened: _Happened) -> None:
        """A stop-run at a range extreme of the perp (log path ``y``) starting this minute, if one is
        due: the scripted one at second ``scripted_rise``, else maybe a natural one. The run's draws
        are made every minute, run or not, so the path's stream does not depend on runs."""
        cfg, rng = self.cfg, self.path
        if st.cooldown > 0:
            st.cooldown -= 1
        armed_u = rng.random()
        overshoot_k = rng.uniform(*cfg.trap_overshoot_vol)
        rise = int(rng.integers(cfg.trap_rise_s[0], cfg.trap_rise_s[1] + 1))
        fall = int(rng.integers(cfg.trap_fall_s[0], cfg.trap_fall_s[1] + 1))
        reject_k = rng.uniform(*cfg.trap_rejection_vol)
        draws = _RunDraws(overshoot_k, fall, reject_k)
        if scripted_rise:
            level, d = (st.steer_level, st.steer) if st.steer else self._scripted_target(st)
            st.steer = 0
            if d and not st.overlay:  # (a natural run still under way takes its place)
                self._start_run(st, m0, y, level, d, vol, scripted_rise, draws, happened, scripted=True)
                self.stats.scripted_runs += 1
        elif (not st.overlay and not st.steer and st.cooldown == 0 and cfg.trap_prob_per_min > 0
                and st.highs.n >= max(1, min(cfg.trap_lookback_min, default=0) // 2)):
            level, d = self._trap_level(st, y, vol)
            if d and armed_u < cfg.trap_prob_per_min:
                self._start_run(st, m0, y, level, d, vol, rise, draws, happened)

    def _overlay(self, st: _Sym, stress: F64) -> F64:
        """This minute's share of a run's overlay (log price per second; zeros without a run), with
        the trade rate raised while it lasts; once the run is over, its rejection joins the path."""
        overlay = np.zeros(60)
        if st.overlay:
            take = st.overlay[:60]
            overlay[: len(take)] = take
            del st.overlay[:60]
            stress[: len(take)] = np.maximum(stress[: len(take)], self.cfg.trap_activity)
            if not st.overlay:  # the run is over: the rejection becomes part of the path
                overlay[len(take) :] = st.carry
                st.x += st.carry
                st.carry = 0.0
        return overlay

    @staticmethod
    def _units(sp: SymbolSpec, mp: _Minute) -> tuple[I64, I64]:
        """Perp and spot prices in integer units at the end of each second."""
        perp_u = np.rint(mp.mark * 10**sp.price_dp / sp.tick).astype(np.int64) * sp.tick
        spot_u = np.rint(mp.index * 10**sp.spot_price_dp / sp.spot_tick).astype(np.int64) * sp.spot_tick
        return perp_u, spot_u

    # --- the events of one minute --------------------------------------------------------------
    def batches(self) -> Iterator[tuple[list[MarketEvent], bool]]:
        """The prelude minutes (flag True), then the live minutes forever."""
        for i in range(self.prelude_minutes):
            yield self._prelude_minute(last=i == self.prelude_minutes - 1), True
        while True:
            yield self._minute_events(), False

    def _minute_events(self) -> list[MarketEvent]:
        cfg = self.cfg
        m0 = self.minute_ns
        paths = self._path_minute(m0)
        self.stats.minutes += 1
        keyed: list[tuple[int, int, int, MarketEvent]] = []
        activity = cfg.regime_activity[self.regime]
        sd = cfg.activity_sd
        for si, (st, mp) in enumerate(zip(self.syms, paths, strict=True)):
            sp = st.spec
            perp_u, spot_u = self._units(sp, mp)
            # the symbol's trading activity, shared by spot and perp: log-OU per second, mean 1
            shocks = self.micro.standard_normal(60) * self.a_noise
            a = self.a_pow * (self.activity[si] + np.cumsum(shocks * self.a_inv_pow))
            self.activity[si] = float(a[-1])
            act = np.exp(a - sd * sd / 2) * activity
            for inst, mids, dp, tick, rate in (
                (SPOT, spot_u, sp.spot_price_dp, sp.spot_tick, cfg.trade_rate[0]),
                (PERP, perp_u, sp.price_dp, sp.tick, cfg.trade_rate[1]),
            ):
                self._micro(keyed, si, sym=sp.symbol, inst=inst, m0=m0, mids=mids, dp=dp, tick=tick,
                            rate=rate * act, mp=mp, sp=sp)
            self._perp_extras(keyed, si, st, mp, m0, perp_u, spot_u, live=True)
        keyed.sort(key=lambda k: (k[0], k[1], k[2]))
        self.minute_ns = m0 + MINUTE_NS
        return [k[3] for k in keyed]

    def _prelude_minute(self, last: bool) -> list[MarketEvent]:
        """A past minute: the path only, published as closed candles (volumes from the expected
        trade counts), open interest and settled funding; the last one adds mark and predicted funding."""
        cfg = self.cfg
        m0 = self.minute_ns
        paths = self._path_minute(m0)
        self.stats.minutes += 1
        self.stats.prelude_minutes += 1
        keyed: list[tuple[int, int, int, MarketEvent]] = []
        activity = cfg.regime_activity[self.regime]
        noise = self.hist.lognormal(0.0, 0.3, size=(len(self.syms), 2)).tolist()
        for si, (st, mp) in enumerate(zip(self.syms, paths, strict=True)):
            sp = st.spec
            perp_u, spot_u = self._units(sp, mp)
            for inst, mids, dp, tick, rate in (
                (SPOT, spot_u, sp.spot_price_dp, sp.spot_tick, cfg.trade_rate[0]),
                (PERP, perp_u, sp.price_dp, sp.tick, cfg.trade_rate[1]),
            ):
                key = (sp.symbol, int(inst))
                spread = cfg.spread_ticks * tick
                prev = self.last_mid.get(key, int(mids[0]))
                self.last_mid[key] = int(mids[-1])
                bids = mids - mids % tick
                lam = max(rate, 0.1) * activity * (1.0 + 0.5 * np.minimum(mp.ret_abs, 10.0)) * mp.stress
                n_tr = max(1, round(float(lam.sum()) * noise[si][int(inst) - 1]))
                mean_lots = sp.trade_notional * math.exp(0.5) / (int(mids[-1]) / 10**dp) * 10**sp.size_dp / sp.lot
                vol = max(1, round(n_tr * mean_lots)) * sp.lot
                o = prev - prev % tick
                self._candles(keyed, si * 2 + int(inst), sp.symbol, inst, m0, dp, sp.size_dp,
                              (o, max(int(bids.max()), o) + spread, min(int(bids.min()), o), int(bids[-1]), vol, n_tr))
            self._perp_extras(keyed, si, st, mp, m0, perp_u, spot_u, live=False, last=last)
        keyed.sort(key=lambda k: (k[0], k[1], k[2]))
        self.minute_ns = m0 + MINUTE_NS
        return [k[3] for k in keyed]

    def _candles(
        self,
        keyed: list[tuple[int, int, int, MarketEvent]],
        order: int,
        sym: str,
        inst: InstrumentKind,
        m0: int,
        dp: int,
        size_dp: int,
        ohlcvn: tuple[int, int, int, int, int, int] | None,
    ) -> None:
        """The minute's 1m candle (if it had trades) and the rolled-up candles that close with it."""
        close_ns = m0 + MINUTE_NS

        def candle(tf: str, open_ns: int, o: int, h: int, lo: int, c: int, v: int, n: int) -> None:
            keyed.append((close_ns, 0, order, self._ev(
                sym, inst, close_ns,
                candle=Candle(timeframe=tf, open_time_ns=open_ns, close_time_ns=close_ns,
                              open=fmt_units(o, dp), high=fmt_units(h, dp), low=fmt_units(lo, dp),
                              close=fmt_units(c, dp), volume=fmt_units(v, size_dp), trade_count=n, closed=True),
            )))

        if ohlcvn is not None:
            o, h, lo, c, v, n = ohlcvn
            candle("1m", m0, o, h, lo, c, v, n)
            for tf in self.tfs:
                key = (sym, int(inst), tf)
                b = self.rollup.get(key)
                if b is None or b[0] != m0 - m0 % tf:
                    self.rollup[key] = [m0 - m0 % tf, o, h, lo, c, v, n]
                else:
                    b[2] = max(b[2], h)
                    b[3] = min(b[3], lo)
                    b[4] = c
                    b[5] += v
                    b[6] += n
        for tf in self.tfs:
            if close_ns % tf == 0:
                b = self.rollup.pop((sym, int(inst), tf), None)
                if b is not None and b[0] == close_ns - tf:
                    candle(_tf_name(tf), b[0], b[1], b[2], b[3], b[4], b[5], b[6])

    def _micro(
        self,
        keyed: list[tuple[int, int, int, MarketEvent]],
        si: int,
        *,
        sym: str,
        inst: InstrumentKind,
        m0: int,
        mids: I64,
        dp: int,
        tick: int,
        rate: F64,
        mp: _Minute,
        sp: SymbolSpec,
    ) -> None:
        cfg, rng = self.cfg, self.micro
        key = (sym, int(inst))
        order = si * 2 + int(inst)
        spread = cfg.spread_ticks * tick
        prev_mid = np.concatenate(([self.last_mid.get(key, int(mids[0]))], mids[:-1]))
        self.last_mid[key] = int(mids[-1])
        if rate[0] > 0 or key in self.pending:
            self._trades(keyed, order, key, inst, m0, prev_mid, mids, dp, tick, rate, mp, sp)
        elif cfg.candles:
            self._candles(keyed, order, sym, inst, m0, dp, sp.size_dp, None)
        # book: top every top_every_s, depth deltas every depth_every_s, snapshots periodically
        ev = self._ev
        size_dp = sp.size_dp
        mids_l = mids.tolist()
        unit = sp.trade_notional / (mids_l[0] / 10**dp) * 10**size_dp / sp.lot
        top_sizes = (
            np.maximum(1, np.rint(rng.lognormal(0.5, 0.7, size=120) * unit)).astype(np.int64) * sp.lot
        ).tolist()
        for s in range(60):
            ts = m0 + (s + 1) * NS_PER_S
            abs_s = ts // NS_PER_S
            m = mids_l[s]
            bid_s = m - m % tick
            ask_s = bid_s + spread
            if abs_s % cfg.top_every_s == 0:
                keyed.append((ts, 3, order, ev(
                    sym, inst, ts,
                    top=BookTop(bid_price=fmt_units(bid_s, dp), bid_size=fmt_units(top_sizes[2 * s], size_dp),
                                ask_price=fmt_units(ask_s, dp), ask_size=fmt_units(top_sizes[2 * s + 1], size_dp)),
                )))
            if cfg.depth_levels > 0 and abs_s % cfg.depth_every_s == 0:
                keyed.append((ts, 4, order, self._depth(sym, inst, ts, bid_s, ask_s, tick, dp, sp, mp.stress[s])))

    def _trades(
        self,
        keyed: list[tuple[int, int, int, MarketEvent]],
        order: int,
        key: tuple[str, int],
        inst: InstrumentKind,
        m0: int,
        prev_mid: I64,
        mids: I64,
        dp: int,
        tick: int,
        rate: F64,
        mp: _Minute,
        sp: SymbolSpec,
    ) -> None:
        """The minute's trades of one instrument (and its candles, built from them)."""
        cfg, rng = self.cfg, self.micro
        sym = key[0]
        spread = cfg.spread_ticks * tick
        t, buy, in_burst, b_start, b_len = self._arrivals(key, m0, rate, mp, inst)
        n = len(t)
        # prices: at the touch; the mid moves linearly through each second, except in a burst second,
        # where the whole move of the second happens inside the burst (slowly first, then faster)
        sec = t // NS_PER_S
        off = t - sec * NS_PER_S
        p0 = prev_mid[sec].astype(np.float64)
        dm = mids[sec] - p0
        bs, bl = b_start[sec], b_len[sec]
        for s, d, _, longest_ms in mp.bursts:
            if longest_ms:  # after a scripted run's burst the tape holds at the swept price, one-sided
                buy[(sec == s) & (off >= b_start[s] + b_len[s])] = d > 0
        u = np.clip((off - bs) / np.maximum(bl, 1), 0.0, 1.0)
        frac = np.where(bs >= 0, u * u, off / NS_PER_S)
        mid = np.floor(p0 + dm * frac).astype(np.int64)
        bid = mid - mid % tick
        price = bid + spread * buy
        notional = sp.trade_notional * rng.lognormal(0.0, 1.0, size=n)
        size_units_f = notional / (int(mids[0]) / 10**dp) * 10**sp.size_dp / sp.lot
        big = in_burst | (mp.stress[sec] > 1.0)
        size_units = np.maximum(1, np.rint(np.where(big, size_units_f * 3, size_units_f))).astype(np.int64) * sp.lot
        tid0 = self.trade_ids.get(key, 0)
        self.trade_ids[key] = tid0 + n
        ev = self._ev
        size_dp = sp.size_dp
        for j, (ts, p, q, b) in enumerate(zip((t + m0).tolist(), price.tolist(), size_units.tolist(), buy.tolist(),
                                              strict=True)):
            keyed.append((ts, 2, order, ev(
                sym, inst, ts,
                trade=Trade(price=fmt_units(p, dp), size=fmt_units(q, size_dp),
                            taker_side=BUY if b else SELL, trade_id=str(tid0 + j + 1)),
            )))
        if cfg.candles:
            ohlcvn = None
            if n:
                ohlcvn = (int(price[0]), int(price.max()), int(price.min()), int(price[-1]), int(size_units.sum()), n)
            self._candles(keyed, order, sym, inst, m0, dp, size_dp, ohlcvn)

    def _arrivals(
        self, key: tuple[str, int], m0: int, rate: F64, mp: _Minute, inst: InstrumentKind,
    ) -> tuple[I64, B8, B8, I64, I64]:
        """Trade times (ns into the minute, sorted), taker sides (True = buy), burst membership and the
        burst window (start, length; -1 = none) of each second.

        A Hawkes process in its cluster form: immigrant trades arrive as a Poisson process whose rate
        (``rate`` per second: base rate × regime × the symbol's activity) rises with the move and in
        runs and cascades (and the bursts add theirs); every trade begets Poisson(eta)
        follow-on trades after log-uniform delays (a ~1/t kernel from milliseconds to seconds), which
        beget their own. Follow-on trades that fall into a later minute are kept for it."""
        cfg, rng = self.cfg, self.micro
        eta = cfg.hawkes_branching
        lam = rate * (1.0 + 0.5 * np.minimum(mp.ret_abs, 10.0)) * mp.stress
        p_buy = 0.5 + 0.4 * mp.direction
        counts = rng.poisson(lam * (1.0 - eta))
        n0 = int(counts.sum())
        sec0 = np.repeat(np.arange(60, dtype=np.int64), counts)
        times = [sec0 * NS_PER_S + rng.integers(0, 1_000_000, size=n0) * 1000]
        sides = [rng.random(n0) < p_buy[sec0]]
        flags = [np.zeros(n0, dtype=bool)]
        b_start = np.full(60, -1, dtype=np.int64)
        b_len = np.zeros(60, dtype=np.int64)
        if rate[0] > 0:
            self._bursts(mp, inst, times, sides, flags, b_start, b_len)
        carried_t: list[I64] = []
        carried_b: list[B8] = []
        pend = self.pending.get(key)
        if pend is not None:
            rel = pend[0] - m0
            inside = rel < MINUTE_NS
            times.append(rel[inside])
            sides.append(pend[1][inside])
            flags.append(np.zeros(int(inside.sum()), dtype=bool))
            carried_t.append(pend[0][~inside])
            carried_b.append(pend[1][~inside])
        if eta > 0:
            self._offspring(m0, p_buy, times, sides, flags, carried_t, carried_b)
        if carried_t:
            self.pending[key] = (np.concatenate(carried_t), np.concatenate(carried_b))
        else:
            self.pending.pop(key, None)
        t = np.concatenate(times)
        o = np.argsort(t, kind="stable")
        return t[o], np.concatenate(sides)[o], np.concatenate(flags)[o], b_start, b_len

    def _bursts(self, mp: _Minute, inst: InstrumentKind, times: list[I64], sides: list[B8], flags: list[B8],
                b_start: I64, b_len: I64) -> None:
        """The dense bursts of the minute's runs and cascades (a spot instrument takes its share):
        their trades appended to ``times``/``sides``/``flags``, the first burst window of each second
        into ``b_start``/``b_len``."""
        cfg, rng = self.cfg, self.micro
        share = 1.0 if inst == PERP else cfg.burst_spot_share
        for second, direction, scale, longest_ms in mp.bursts:
            dur = int(rng.integers(cfg.burst_ms[0], cfg.burst_ms[1] + 1))
            dur = (min(dur, longest_ms) if longest_ms else dur) * 1_000_000
            n = max(1, round(float(rng.uniform(*cfg.burst_rate_per_s)) * dur / NS_PER_S * scale * share))
            latest_start = (NS_PER_S - dur) // 1000
            if longest_ms:  # a scripted run's burst comes early in its second
                latest_start = min(latest_start, SCRIPTED_BURST_START_MS * 1000)
            start = int(rng.integers(0, latest_start + 1)) * 1000
            if b_start[second] < 0:
                b_start[second], b_len[second] = start, dur
            offs = np.sort(rng.integers(0, dur // 1000, size=n)) * 1000
            times.append(second * NS_PER_S + start + offs)
            agg = rng.random(n) < cfg.burst_aggressor
            sides.append(agg if direction > 0 else ~agg)
            flags.append(np.ones(n, dtype=bool))

    def _offspring(self, m0: int, p_buy: F64, times: list[I64], sides: list[B8], flags: list[B8],
                   carried_t: list[I64], carried_b: list[B8]) -> None:
        """The follow-on trades of every trade in ``times`` so far, generation after generation:
        those inside the minute appended (times relative to ``m0``), those beyond it to ``carried_*``
        (absolute times)."""
        cfg, rng = self.cfg, self.micro
        eta = cfg.hawkes_branching
        cur_t, cur_b = np.concatenate(times), np.concatenate(sides)
        lo, hi = math.log(cfg.hawkes_delay_s[0] * NS_PER_S), math.log(cfg.hawkes_delay_s[1] * NS_PER_S)
        while cur_t.size:
            k = rng.poisson(eta, size=cur_t.size)
            m = int(k.sum())
            if m == 0:
                break
            parent = np.repeat(np.arange(cur_t.size), k)
            delay = np.maximum(1, np.rint(np.exp(rng.uniform(lo, hi, size=m)) / 1000)).astype(np.int64) * 1000
            ct = cur_t[parent] + delay
            keep = rng.random(m) < cfg.hawkes_side_persistence
            fresh = rng.random(m) < p_buy[np.minimum(ct // NS_PER_S, 59)]
            cb = np.where(keep, cur_b[parent], fresh)
            inside = ct < MINUTE_NS
            carried_t.append(ct[~inside] + m0)
            carried_b.append(cb[~inside])
            cur_t, cur_b = ct[inside], cb[inside]
            times.append(cur_t)
            sides.append(cur_b)
            flags.append(np.zeros(cur_t.size, dtype=bool))

    def _depth(
        self, sym: str, inst: InstrumentKind, ts: int, bid: int, ask: int, tick: int, dp: int,
        sp: SymbolSpec, stress: float,
    ) -> MarketEvent:
        cfg, rng = self.cfg, self.micro
        n = cfg.depth_levels
        thin = 1.0 / math.sqrt(max(stress, 1.0))
        key = (sym, int(inst))
        old = self.books.get(key)
        unit = sp.trade_notional / (bid / 10**dp) * 10**sp.size_dp / sp.lot  # lots per median trade
        fresh = np.maximum(1, np.rint(
            rng.lognormal(0.0, 0.5, size=2 * n) * (2.0 + 0.5 * np.tile(np.arange(n), 2)) * unit * thin
        )).astype(np.int64) * sp.lot
        keep = rng.random(2 * n) < 0.8  # most resting levels survive an update unchanged
        ob, oa = old if old is not None else ({}, {})
        # level 0 is the touch; deeper levels sit on a fixed price grid, so they persist as the
        # price moves and a delta carries only what changed
        step = max(tick, (bid * cfg.depth_step_bps // 10_000) // tick * tick)
        below = (bid - 1) // step * step
        above = -((-(ask + 1)) // step) * step
        bid_prices = [bid] + [below - i * step for i in range(n - 1)]
        ask_prices = [ask] + [above + i * step for i in range(n - 1)]
        fresh_l = fresh.tolist()
        keep_l = keep.tolist()
        new_b: dict[int, int] = {}
        new_a: dict[int, int] = {}
        for i in range(n):
            p = bid_prices[i]
            new_b[p] = ob[p] if i > 0 and p in ob and keep_l[i] else fresh_l[i]
            p = ask_prices[i]
            new_a[p] = oa[p] if i > 0 and p in oa and keep_l[n + i] else fresh_l[n + i]
        self.books[key] = (new_b, new_a)
        snapshot = old is None or (ts // NS_PER_S) % cfg.depth_snapshot_every_s == 0
        if snapshot:
            bids = [(p, q) for p, q in sorted(new_b.items(), reverse=True)]
            asks = [(p, q) for p, q in sorted(new_a.items())]
        else:
            assert old is not None
            ob, oa = old
            bids = [(p, new_b.get(p, 0)) for p in sorted(set(ob) | set(new_b), reverse=True)
                    if new_b.get(p, 0) != ob.get(p, 0)]
            asks = [(p, new_a.get(p, 0)) for p in sorted(set(oa) | set(new_a))
                    if new_a.get(p, 0) != oa.get(p, 0)]
        depth = BookDepth(
            snapshot=snapshot,
            bids=[BookLevel(price=fmt_units(p, dp), size=fmt_units(q, sp.size_dp)) for p, q in bids],
            asks=[BookLevel(price=fmt_units(p, dp), size=fmt_units(q, sp.size_dp)) for p, q in asks],
        )
        ev = self._ev(sym, inst, ts, depth=depth)
        # depth update ids count the depth messages of the stream; a delta follows id - 1
        uid = self.depth_ids.get(key, 0) + 1
        self.depth_ids[key] = uid
        ev.depth.update_id = uid
        ev.depth.prev_update_id = 0 if snapshot else uid - 1
        return ev

    def _perp_extras(
        self,
        keyed: list[tuple[int, int, int, MarketEvent]],
        si: int,
        st: _Sym,
        mp: _Minute,
        m0: int,
        perp_u: I64,
        spot_u: I64,
        *,
        live: bool,
        last: bool = False,
    ) -> None:
        """Mark/index, liquidations (live only), open interest and funding of one minute. The prelude
        (``live`` False) has no per-second marks or liquidations; its ``last`` minute closes with a
        mark and the predicted funding."""
        cfg = self.cfg
        sp = st.spec
        sym = sp.symbol
        order = si * 2 + 1
        dp, sdp = sp.price_dp, sp.spot_price_dp
        end_ns = m0 + MINUTE_NS
        if live:
            self._marks_and_liquidations(keyed, order, sp, mp, m0, perp_u, spot_u)
        elif last:
            keyed.append((end_ns, 1, order, self._ev(
                sym, PERP, end_ns,
                mark=MarkPrice(mark_price=fmt_units(int(perp_u[-1]), dp), index_price=fmt_units(int(spot_u[-1]), sdp)),
            )))
        if mp.oi_changed or (end_ns // NS_PER_S) % cfg.oi_every_s == 0 or last:
            oi_units = round(mp.oi * 10**sp.size_dp / sp.lot) * sp.lot
            oi_value = round(mp.oi * float(perp_u[-1]) / 10**dp, 2)
            keyed.append((end_ns, 5, order, self._ev(
                sym, PERP, end_ns,
                open_interest=OpenInterest(open_interest=fmt_units(oi_units, sp.size_dp),
                                           open_interest_value=fmt_units(round(oi_value * 100), 2)),
            )))
        self._funding(keyed, order, st, end_ns, int(perp_u[-1]) / 10**dp, int(spot_u[-1]) / 10**sdp,
                      publish=live or last)

    def _funding(self, keyed: list[tuple[int, int, int, MarketEvent]], order: int, st: _Sym, end_ns: int,
                 mark: float, index: float, *, publish: bool) -> None:
        """The premium sampled at the minute's close from the published ``mark`` and ``index``; at a
        funding time the settled rate (the premium's mean over the interval then starts again), else
        the predicted rate when ``publish``."""
        sym = st.spec.symbol
        st.premium_sum += (mark - index) / index
        st.premium_n += 1
        premium = st.premium_sum / st.premium_n
        rate = self._funding_rate(premium)
        next_f = end_ns - end_ns % self.funding_ns + self.funding_ns
        if end_ns % self.funding_ns == 0:
            keyed.append((end_ns, 6, order, self._ev(
                sym, PERP, end_ns,
                funding=Funding(rate=fmt_rate(rate), funding_time_ns=end_ns,
                                next_funding_time_ns=end_ns + self.funding_ns, settled=True),
            )))
            st.premium_sum = 0.0
            st.premium_n = 0
            self.stats.fundings += 1
        elif publish:
            keyed.append((end_ns, 6, order, self._ev(
                sym, PERP, end_ns,
                funding=Funding(rate=fmt_rate(rate), funding_time_ns=next_f,
                                next_funding_time_ns=next_f, settled=False),
            )))

    def _marks_and_liquidations(self, keyed: list[tuple[int, int, int, MarketEvent]], order: int, sp: SymbolSpec,
                                mp: _Minute, m0: int, perp_u: I64, spot_u: I64) -> None:
        """A live minute's marks (every ``mark_every_s``) and its liquidations (cascades and
        stop-runs), sizes in lots, adding up to the open interest removed."""
        dp, sdp = sp.price_dp, sp.spot_price_dp
        for sec in range(60):
            ts = m0 + (sec + 1) * NS_PER_S
            if (ts // NS_PER_S) % self.cfg.mark_every_s == 0:
                keyed.append((ts, 1, order, self._ev(
                    sp.symbol, PERP, ts,
                    mark=MarkPrice(mark_price=fmt_units(int(perp_u[sec]), dp),
                                   index_price=fmt_units(int(spot_u[sec]), sdp)),
                )))
        for sec, side, size in mp.liquidations:
            units = max(1, round(size * 10**sp.size_dp / sp.lot)) * sp.lot
            ts = m0 + sec * NS_PER_S + 500_000_000
            keyed.append((ts, 2, order, self._ev(
                sp.symbol, PERP, ts,
                liquidation=Liquidation(side=side, price=fmt_units(int(perp_u[sec]), dp),  # type: ignore[arg-type]
                                        size=fmt_units(units, sp.size_dp)),
            )))

    def _funding_rate(self, premium: float) -> float:
        cfg = self.cfg
        d = cfg.funding_clamp
        rate = premium + min(max(cfg.funding_interest - premium, -d), d)
        return min(max(rate, -cfg.funding_cap), cfg.funding_cap)


def _tf_name(tf_ns: int) -> str:
    for unit, n in (("d", DAY_NS), ("h", HOUR_NS), ("m", MINUTE_NS)):
        if tf_ns % n == 0:
            return f"{tf_ns // n}{unit}"
    return f"{tf_ns // NS_PER_S}s"
