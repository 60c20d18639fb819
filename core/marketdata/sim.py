"""A seeded, deterministic market simulator: the offline default source of ``titan up``.

One market regime chain drives every symbol; each symbol has a spot and a perpetual instrument.
The model (parameters in :class:`SimConfig`, statistics documented in docs/market-data.md):

* **Price** (spot/index, log): per-minute GARCH(1,1) variance whose long-run level depends on a
  three-state Markov regime (calm / normal / turbulent), spread over the minute's seconds with
  cross-symbol correlation, plus Laplace-sized jumps (Poisson per minute).
* **Stop-runs (traps):** when the price comes close to the high/low of the look-back window, it may
  sweep a little beyond the extreme within seconds on a burst of aggressive trades (and short/long
  liquidations on the perp), then fall back inside the range — a temporary excursion on top of the
  price path.
* **Basis:** the perp mark is ``index × (1 + b)`` with ``b`` an Ornstein–Uhlenbeck process (mean,
  stationary sd and half-life configurable), pushed in the direction of a jump when the jump sets off
  a liquidation cascade, then mean-reverting.
* **Funding** every 8 h at 00/08/16 UTC from the premium ``P`` = mean over the interval of the
  per-minute ``(mark − index) / index``: ``rate = clamp(P + clamp(I − P, −δ, δ), −cap, cap)``.
  A predicted (unsettled) rate is published each minute.
* **Open interest** mean-reverts slowly; a liquidation cascade removes a share of it, and the
  liquidation events of the cascade add up to exactly the removed amount.
* **Microstructure:** Poisson trades (rate rising with the move size and in turbulence and bursts),
  aggressor side following the move, trade prices at the touch; a book of ``depth_levels`` per side
  around the mid (snapshot, then deltas), top of book, mark/index, 1-minute candles from the trades.

Determinism: the price/basis/funding path uses its own random stream, separate from the
microstructure stream, so the same seed gives the same path whatever the event densities are
(tests use sparse microstructure to check the path statistics quickly).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

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

from .source import Sleep, pace

NS_PER_S = 1_000_000_000
MINUTE_NS = 60 * NS_PER_S
HOUR_NS = 3600 * NS_PER_S
SPOT = InstrumentKind.INSTRUMENT_KIND_SPOT
PERP = InstrumentKind.INSTRUMENT_KIND_PERP
BUY = Side.SIDE_BUY
SELL = Side.SIDE_SELL
DEFAULT_START_NS = 1_704_067_200 * NS_PER_S  # 2024-01-01 00:00 UTC

REGIMES = ("calm", "normal", "turbulent")


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
    # -- stop-runs at range extremes --------------------------------------------------------------
    trap_lookback_min: int = 240
    trap_trigger_vol: float = 1.0      # price within this many minute-vols of the extreme arms a run
    trap_prob_per_min: float = 0.2     # chance an armed minute starts a run
    trap_overshoot_vol: tuple[float, float] = (1.0, 3.0)  # sweep beyond the extreme, in minute-vols
    trap_rise_s: tuple[int, int] = (5, 20)
    trap_fall_s: tuple[int, int] = (30, 120)
    trap_rejection_vol: tuple[float, float] = (0.5, 2.0)  # where the run ends, inside the range
    trap_cooldown_min: int = 30
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
    spread_ticks: int = 1
    depth_levels: int = 20
    depth_step_bps: int = 1            # spacing of the levels behind the touch
    depth_every_s: int = 5
    depth_snapshot_every_s: int = 3600
    top_every_s: int = 1
    mark_every_s: int = 1
    oi_every_s: int = 60
    candles: bool = True

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


@dataclass
class _Sym:
    spec: SymbolSpec
    x: float                        # log index price without the trap overlay
    h: float                        # GARCH variance (per minute)
    eps_prev: float
    basis: float
    log_oi: float
    log_oi_target: float
    overlay: list[float] = field(default_factory=list)   # pending trap overlay, one per second
    trap_dir: int = 0
    carry: float = 0.0
    cooldown: int = 0
    closes: list[float] = field(default_factory=list)    # recent minute closes (log) for the range
    premium_sum: float = 0.0
    premium_n: int = 0


@dataclass
class _Minute:
    """The path of one symbol over one minute (per second), plus what happened in it."""

    index: np.ndarray[Any, np.dtype[np.float64]]
    mark: np.ndarray[Any, np.dtype[np.float64]]
    ret_abs: np.ndarray[Any, np.dtype[np.float64]]    # |log return| per second / second vol
    direction: np.ndarray[Any, np.dtype[np.float64]]  # sign-ish of the move per second, -1..1
    burst: np.ndarray[Any, np.dtype[np.float64]]      # trade-rate multiplier per second
    liquidations: list[tuple[int, int, float]]        # (second, side, base size)
    oi: float
    oi_changed: bool


@dataclass
class SimStats:
    """What the simulator did (for tests and the docs)."""

    minutes: int = 0
    jumps: int = 0
    cascades: int = 0
    traps: int = 0
    fundings: int = 0
    regime_minutes: list[int] = field(default_factory=lambda: [0, 0, 0])


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
        """Time-ordered events from ``start_ns`` until ``end_ns`` (or the config's, or forever)."""
        gen = _Generator(self.config, self.stats)
        stop = end_ns if end_ns is not None else self.config.end_ns
        start = self.config.start_ns
        for batch in gen.minutes():
            counts: dict[str, int] = {}
            for ev in batch:
                k = ev.WhichOneof("payload") or ""
                counts[k] = counts.get(k, 0) + 1
            for k, n in counts.items():
                MD_EVENTS.labels(self.name, self.config.venue, k).inc(n)
            for ev in batch:
                if ev.exchange_ts_ns < start:
                    continue  # the first minute is generated whole; emit from start_ns on
                if stop is not None and ev.exchange_ts_ns >= stop:
                    return
                if self.clock is not None and ev.exchange_ts_ns > self.clock.now_ns():
                    self.clock.set(ev.exchange_ts_ns)
                yield ev

    def __iter__(self) -> Iterator[MarketEvent]:
        return self.events()

    async def stream(self) -> AsyncIterator[MarketEvent]:
        kwargs: dict[str, Any] = {"sleep": self._sleep}
        if self._monotonic is not None:
            kwargs["monotonic"] = self._monotonic
        async for ev in pace(self.events(), self.speed, **kwargs):
            yield ev

    async def aclose(self) -> None:
        return None


class _Generator:
    def __init__(self, cfg: SimConfig, stats: SimStats) -> None:
        self.cfg = cfg
        self.stats = stats
        path_seq, micro_seq = np.random.SeedSequence(cfg.seed).spawn(2)
        self.path = np.random.default_rng(path_seq)
        self.micro = np.random.default_rng(micro_seq)
        self.regime = 1
        self.t_ns = cfg.start_ns - cfg.start_ns % NS_PER_S
        self.minute_ns = self.t_ns - self.t_ns % MINUTE_NS
        self.syms = [
            _Sym(
                spec=sp,
                x=math.log(sp.price),
                h=(cfg.regime_vol[1] * sp.vol_scale) ** 2,
                eps_prev=0.0,
                basis=cfg.basis_mean,
                log_oi=math.log(sp.open_interest),
                log_oi_target=math.log(sp.open_interest),
            )
            for sp in cfg.specs
        ]
        self.seq: dict[tuple[str, int], int] = {}
        self.books: dict[tuple[str, int], tuple[dict[int, int], dict[int, int]]] = {}
        self.depth_ids: dict[tuple[str, int], int] = {}
        self.phi = math.exp(-math.log(2) / cfg.basis_half_life_s)
        self.basis_noise = cfg.basis_sd * math.sqrt(1 - self.phi**2)
        self.oi_phi = math.exp(-math.log(2) / cfg.oi_half_life_min)
        self.funding_ns = cfg.funding_interval_h * HOUR_NS

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

    def _path_minute(self) -> list[_Minute]:
        cfg, rng = self.cfg, self.path
        self._step_regime()
        r = self.regime
        n_sym = len(self.syms)
        common = rng.standard_normal(60)
        idio = rng.standard_normal((n_sym, 60))
        rho = cfg.correlation
        out: list[_Minute] = []
        for i, st in enumerate(self.syms):
            sp = st.spec
            var_r = (cfg.regime_vol[r] * sp.vol_scale) ** 2
            omega = var_r * (1 - cfg.garch_alpha - cfg.garch_beta)
            st.h = omega + cfg.garch_alpha * st.eps_prev**2 + cfg.garch_beta * st.h
            sd_s = math.sqrt(st.h / 60)
            z = rho * common + math.sqrt(1 - rho * rho) * idio[i]
            steps = z * sd_s
            st.eps_prev = float(steps.sum())
            burst = np.ones(60)
            liqs: list[tuple[int, int, float]] = []
            oi_changed = False
            basis_shock = np.zeros(60)
            # jump, maybe a liquidation cascade
            jump_u, jump_sec, jump_size = rng.random(), int(rng.integers(60)), float(rng.laplace(0, cfg.jump_scale))
            if jump_u < cfg.jump_prob_per_min[r]:
                self.stats.jumps += 1
                steps[jump_sec] += jump_size
                if abs(jump_size) > cfg.cascade_threshold:
                    self.stats.cascades += 1
                    drop = min(0.3, cfg.cascade_oi_drop_per_pct * abs(jump_size) * 100)
                    oi = math.exp(st.log_oi)
                    removed = oi * drop
                    st.log_oi = math.log(oi - removed)
                    oi_changed = True
                    basis_shock[jump_sec] = cfg.cascade_basis_beta * jump_size
                    end = min(60, jump_sec + 10)
                    burst[jump_sec:end] = 12.0
                    # longs liquidated in a fall (SELL orders), shorts in a rise (BUY orders)
                    side = int(SELL if jump_size < 0 else BUY)
                    parts = rng.dirichlet(np.ones(8))
                    secs = rng.integers(jump_sec, end, size=8)
                    liqs.extend((int(s_), side, float(removed * w)) for s_, w in zip(secs, parts, strict=True))
            x = st.x + np.cumsum(steps)
            st.x = float(x[-1])
            # stop-run at a range extreme (overlay on top of the path)
            if st.cooldown > 0:
                st.cooldown -= 1
            armed_u = rng.random()
            overshoot_k = rng.uniform(*cfg.trap_overshoot_vol)
            rise = int(rng.integers(cfg.trap_rise_s[0], cfg.trap_rise_s[1] + 1))
            fall = int(rng.integers(cfg.trap_fall_s[0], cfg.trap_fall_s[1] + 1))
            reject_k = rng.uniform(*cfg.trap_rejection_vol)
            if not st.overlay and st.cooldown == 0 and len(st.closes) >= cfg.trap_lookback_min // 2:
                hi, lo = max(st.closes), min(st.closes)
                vol = math.sqrt(st.h)
                last = st.x
                direction = 0
                if 0 <= hi - last < cfg.trap_trigger_vol * vol:
                    direction = 1
                elif 0 <= last - lo < cfg.trap_trigger_vol * vol:
                    direction = -1
                if direction and armed_u < cfg.trap_prob_per_min:
                    target = (hi - last if direction > 0 else last - lo) + overshoot_k * vol
                    # sweep beyond the extreme, then a rejection that ends inside the range
                    rejection = -reject_k * vol
                    up = np.linspace(target / rise, target, rise)
                    down = np.linspace(target, rejection, fall + 1)[1:]
                    st.overlay = list(direction * np.concatenate([up, down]))
                    st.carry = direction * rejection
                    st.trap_dir = direction
                    st.cooldown = cfg.trap_cooldown_min
                    self.stats.traps += 1
                    # the sweep runs stops: shorts squeezed above the high (BUY liquidations), longs below
                    oi = math.exp(st.log_oi)
                    removed = oi * 0.002 * overshoot_k
                    st.log_oi = math.log(oi - removed)
                    oi_changed = True
                    side = int(BUY if direction > 0 else SELL)
                    liqs.extend((min(59, rise - 1), side, removed / 3) for _ in range(3))
            overlay = np.zeros(60)
            if st.overlay:
                take = st.overlay[:60]
                overlay[: len(take)] = take
                del st.overlay[:60]
                burst[: len(take)] = np.maximum(burst[: len(take)], 6.0)
                if not st.overlay:  # the run is over: the rejection becomes part of the path
                    overlay[len(take) :] = st.carry
                    st.x += st.carry
                    st.carry = 0.0
            obs = x + overlay
            # basis: exact OU per second
            b = np.empty(60)
            bt = st.basis
            noise = rng.standard_normal(60) * self.basis_noise
            mu, phi = cfg.basis_mean, self.phi
            for k in range(60):
                bt = mu + (bt - mu) * phi + noise[k] + basis_shock[k]
                b[k] = bt
            st.basis = bt
            # open interest
            st.log_oi = (
                st.log_oi_target
                + (st.log_oi - st.log_oi_target) * self.oi_phi
                + cfg.oi_vol_per_min * float(rng.standard_normal())
            )
            st.closes.append(st.x)
            if len(st.closes) > cfg.trap_lookback_min:
                del st.closes[0]
            index = np.exp(obs)
            dobs = np.diff(obs, prepend=obs[0] - steps[0])
            out.append(
                _Minute(
                    index=index,
                    mark=index * (1 + b),
                    ret_abs=np.abs(dobs) / max(sd_s, 1e-12),
                    direction=np.tanh(dobs / max(sd_s, 1e-12)),
                    burst=burst,
                    liquidations=liqs,
                    oi=math.exp(st.log_oi),
                    oi_changed=oi_changed,
                )
            )
        return out

    # --- the events of one minute --------------------------------------------------------------
    def minutes(self) -> Iterator[list[MarketEvent]]:
        while True:
            yield self._minute_events()

    def _minute_events(self) -> list[MarketEvent]:
        cfg = self.cfg
        m0 = self.minute_ns
        paths = self._path_minute()
        self.stats.minutes += 1
        keyed: list[tuple[int, int, int, MarketEvent]] = []
        activity = cfg.regime_activity[self.regime]
        for si, (st, mp) in enumerate(zip(self.syms, paths, strict=True)):
            sp = st.spec
            sym = sp.symbol
            # prices in integer units at the end of each second
            perp_u = np.rint(mp.mark * 10**sp.price_dp / sp.tick).astype(np.int64) * sp.tick
            spot_u = np.rint(mp.index * 10**sp.spot_price_dp / sp.spot_tick).astype(np.int64) * sp.spot_tick
            for inst, mids, dp, tick, rate in (
                (SPOT, spot_u, sp.spot_price_dp, sp.spot_tick, cfg.trade_rate[0]),
                (PERP, perp_u, sp.price_dp, sp.tick, cfg.trade_rate[1]),
            ):
                self._micro(keyed, si, sym, inst, m0, mids, dp, tick, rate * activity, mp, sp)
            self._perp_extras(keyed, si, st, mp, m0, perp_u, spot_u)
        keyed.sort(key=lambda k: (k[0], k[1], k[2]))
        self.minute_ns = m0 + MINUTE_NS
        out = [k[3] for k in keyed]
        seq = self.seq
        for ev in out:  # per-stream sequence numbers in emission order
            key = (ev.symbol, ev.instrument)
            n = seq.get(key, 0) + 1
            seq[key] = n
            ev.seq = n
        return out

    def _micro(
        self,
        keyed: list[tuple[int, int, int, MarketEvent]],
        si: int,
        sym: str,
        inst: InstrumentKind,
        m0: int,
        mids: np.ndarray[Any, np.dtype[np.int64]],
        dp: int,
        tick: int,
        rate: float,
        mp: _Minute,
        sp: SymbolSpec,
    ) -> None:
        cfg, rng = self.cfg, self.micro
        order = si * 2 + int(inst)
        spread = cfg.spread_ticks * tick
        lam = rate * (1.0 + 0.5 * np.minimum(mp.ret_abs, 10.0)) * mp.burst
        counts = rng.poisson(lam)
        total = int(counts.sum())
        offsets = rng.integers(0, NS_PER_S // 1_000_000, size=total) * 1_000_000
        p_buy = 0.5 + 0.4 * mp.direction
        sides = rng.random(total)
        notional = sp.trade_notional * rng.lognormal(0.0, 1.0, size=total)
        size_units_f = notional / (mids[0] / 10**dp) * 10**sp.size_dp / sp.lot
        bursty = np.repeat(mp.burst, counts) > 1.0
        size_units_f = np.where(bursty, size_units_f * 3, size_units_f)
        size_units = np.maximum(1, np.rint(size_units_f)).astype(np.int64) * sp.lot
        prev_mid_l = np.concatenate(([mids[0]], mids[:-1])).tolist()
        mids_l = mids.tolist()
        counts_l = counts.tolist()
        offsets_l = offsets.tolist()
        buys_l = (sides < np.repeat(p_buy, counts)).tolist()
        sizes_l = size_units.tolist()
        size_dp = sp.size_dp
        ev = self._ev
        o_ = h_ = l_ = c_ = 0
        vol = 0
        n_tr = 0
        k = 0
        pid = 1 if inst == PERP else 0
        for sec in range(60):
            n = counts_l[sec]
            if n == 0:
                continue
            base = m0 + sec * NS_PER_S
            p0 = prev_mid_l[sec]
            dm = mids_l[sec] - p0
            offs = sorted(offsets_l[k : k + n])
            for j in range(n):
                off = offs[j]
                mid = int(p0 + dm * (off / NS_PER_S))
                bid = mid - mid % tick
                buy = buys_l[k + j]
                price = bid + spread if buy else bid
                size = sizes_l[k + j]
                ts = base + off
                keyed.append((ts, 2, order, ev(
                    sym, inst, ts,
                    trade=Trade(price=fmt_units(price, dp), size=fmt_units(size, size_dp),
                                taker_side=BUY if buy else SELL, trade_id=f"{pid}{ts // 1_000_000}{j}"),
                )))
                if n_tr == 0:
                    o_ = h_ = l_ = c_ = price
                else:
                    if price > h_:
                        h_ = price
                    if price < l_:
                        l_ = price
                    c_ = price
                vol += size
                n_tr += 1
            k += n
        # book: top every top_every_s, depth deltas every depth_every_s, snapshots periodically
        unit = sp.trade_notional / (mids_l[0] / 10**dp) * 10**size_dp / sp.lot
        top_sizes = (
            np.maximum(1, np.rint(rng.lognormal(0.5, 0.7, size=120) * unit)).astype(np.int64) * sp.lot
        ).tolist()
        for sec in range(60):
            ts = m0 + (sec + 1) * NS_PER_S
            abs_s = ts // NS_PER_S
            mid = mids_l[sec]
            bid = mid - mid % tick
            ask = bid + spread
            if abs_s % cfg.top_every_s == 0:
                keyed.append((ts, 3, order, ev(
                    sym, inst, ts,
                    top=BookTop(bid_price=fmt_units(bid, dp), bid_size=fmt_units(top_sizes[2 * sec], size_dp),
                                ask_price=fmt_units(ask, dp), ask_size=fmt_units(top_sizes[2 * sec + 1], size_dp)),
                )))
            if cfg.depth_levels > 0 and abs_s % cfg.depth_every_s == 0:
                keyed.append((ts, 4, order, self._depth(sym, inst, ts, bid, ask, tick, dp, sp, mp.burst[sec])))
        if cfg.candles and n_tr:
            close_ns = m0 + MINUTE_NS
            keyed.append((close_ns, 0, order, self._ev(
                sym, inst, close_ns,
                candle=Candle(timeframe="1m", open_time_ns=m0, close_time_ns=close_ns,
                              open=fmt_units(o_, dp), high=fmt_units(h_, dp), low=fmt_units(l_, dp),
                              close=fmt_units(c_, dp), volume=fmt_units(vol, sp.size_dp),
                              trade_count=n_tr, closed=True),
            )))

    def _depth(
        self, sym: str, inst: InstrumentKind, ts: int, bid: int, ask: int, tick: int, dp: int,
        sp: SymbolSpec, burst: float,
    ) -> MarketEvent:
        cfg, rng = self.cfg, self.micro
        n = cfg.depth_levels
        thin = 1.0 / math.sqrt(max(burst, 1.0))
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
        perp_u: np.ndarray[Any, np.dtype[np.int64]],
        spot_u: np.ndarray[Any, np.dtype[np.int64]],
    ) -> None:
        cfg = self.cfg
        sp = st.spec
        sym = sp.symbol
        order = si * 2 + 1
        dp, sdp = sp.price_dp, sp.spot_price_dp
        for sec in range(60):
            ts = m0 + (sec + 1) * NS_PER_S
            if (ts // NS_PER_S) % cfg.mark_every_s == 0:
                keyed.append((ts, 1, order, self._ev(
                    sym, PERP, ts,
                    mark=MarkPrice(mark_price=fmt_units(int(perp_u[sec]), dp),
                                   index_price=fmt_units(int(spot_u[sec]), sdp)),
                )))
        # liquidations (cascades and stop-runs), sizes in lots, adding up to the OI removed
        for sec, side, size in mp.liquidations:
            units = max(1, round(size * 10**sp.size_dp / sp.lot)) * sp.lot
            ts = m0 + sec * NS_PER_S + 500_000_000
            keyed.append((ts, 2, order, self._ev(
                sym, PERP, ts,
                liquidation=Liquidation(side=side, price=fmt_units(int(perp_u[sec]), dp),  # type: ignore[arg-type]
                                        size=fmt_units(units, sp.size_dp)),
            )))
        end_ns = m0 + MINUTE_NS
        if mp.oi_changed or (end_ns // NS_PER_S) % cfg.oi_every_s == 0:
            oi_units = round(mp.oi * 10**sp.size_dp / sp.lot) * sp.lot
            oi_value = round(mp.oi * float(perp_u[-1]) / 10**dp, 2)
            keyed.append((end_ns, 5, order, self._ev(
                sym, PERP, end_ns,
                open_interest=OpenInterest(open_interest=fmt_units(oi_units, sp.size_dp),
                                           open_interest_value=fmt_units(round(oi_value * 100), 2)),
            )))
        # funding: premium sampled at each minute close from the published mark and index
        mark = int(perp_u[-1]) / 10**dp
        index = int(spot_u[-1]) / 10**sdp
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
        else:
            keyed.append((end_ns, 6, order, self._ev(
                sym, PERP, end_ns,
                funding=Funding(rate=fmt_rate(rate), funding_time_ns=next_f,
                                next_funding_time_ns=next_f, settled=False),
            )))

    def _funding_rate(self, premium: float) -> float:
        cfg = self.cfg
        d = cfg.funding_clamp
        rate = premium + min(max(cfg.funding_interest - premium, -d), d)
        return min(max(rate, -cfg.funding_cap), cfg.funding_cap)
