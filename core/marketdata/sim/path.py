"""The simulator's price path, minute by minute, on its own random stream: a three-state regime
chain, per-symbol GARCH(1,1) steps correlated across symbols, Laplace jumps and the liquidation
cascades of large ones, the perp's basis (Ornstein-Uhlenbeck), stop-runs at range extremes (natural,
or scripted and steered to), and open interest. What it gives per symbol and minute
(:class:`MinutePath`) is what the event generator turns into trades, books, marks and funding."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .config import (
    BUY,
    F64,
    MINUTE_NS,
    NS_PER_S,
    SCRIPTED_MIN_RISE_S,
    SELL,
    STEER_CEILING_VOL,
    SimConfig,
    SimStats,
    SymbolSpec,
    random_streams,
)


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
class SymbolState:
    """Where one symbol's path stands between minutes: its log price and GARCH state, basis, open
    interest, range extremes, a stop-run under way or steered to, and the funding premium so far."""

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
class MinutePath:
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



class PricePath:
    """Every symbol's path, one minute at a time (:meth:`minute`), from ``rng`` (the seed's path
    stream): its draws come in a fixed order, so a seed gives one path."""

    def __init__(self, cfg: SimConfig, stats: SimStats, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.stats = stats
        self.rng = rng
        self.regime = 1
        # scripted runs as (minute start, second of the break); the approach needs 5 s of its minute
        self.scripted: list[tuple[int, int]] = []
        for t in sorted({cfg.start_ns + round(t * NS_PER_S) for t in cfg.scripted_runs_s}):
            m = t - t % MINUTE_NS
            if not self.scripted or self.scripted[-1][0] != m:
                self.scripted.append((m, max(SCRIPTED_MIN_RISE_S, (t - m) // NS_PER_S)))
        longest = max(cfg.trap_lookback_min, default=1)
        self.symbols = [
            SymbolState(
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
        phi = math.exp(-math.log(2) / cfg.basis_half_life_s)
        k = np.arange(1, 61, dtype=np.float64)
        self.phi_pow = phi**k          # exact OU over a minute in closed form
        self.phi_inv_pow = phi**-k
        self.basis_noise = cfg.basis_sd * math.sqrt(1 - phi**2)
        self.oi_phi = math.exp(-math.log(2) / cfg.oi_half_life_min)

    def anchor(self, marks: dict[str, float], first_minute_ns: int, minutes: int) -> None:
        """Shift each named symbol's log price so that its perp mark at the first live minute (after
        ``minutes`` of prelude from ``first_minute_ns``) is ``marks[symbol]``. Every rule of the path
        is invariant under a shift in log price (returns, range extremes, the steering aim), so the
        shifted path is the same market at another level: a probe walks the prelude once unshifted to
        learn where it ends."""
        unknown = sorted(set(marks) - {st.spec.symbol for st in self.symbols})
        if unknown:
            raise ValueError(f"start_marks names symbols the simulator does not run: {', '.join(unknown)}")
        if any(not math.isfinite(m) or m <= 0 for m in marks.values()):
            raise ValueError("start_marks must be positive prices")
        probe = PricePath(self.cfg, SimStats(), random_streams(self.cfg.seed)[0])
        ends = {st.spec.symbol: math.exp(st.x) * (1 + st.basis) for st in probe.symbols}
        for i in range(minutes):
            for st, minute in zip(probe.symbols, probe.minute(first_minute_ns + i * MINUTE_NS), strict=True):
                ends[st.spec.symbol] = float(minute.mark[-1])
        for st in self.symbols:
            if st.spec.symbol in marks:
                st.x += math.log(marks[st.spec.symbol] / ends[st.spec.symbol])

    def _step_regime(self) -> None:
        cfg = self.cfg
        if self.rng.random() < 1.0 / cfg.regime_duration_min[self.regime]:
            others = [r for r in range(3) if r != self.regime]
            # calm and turbulent both tend to go back to normal
            weights = np.array([0.8 if r == 1 else 0.2 for r in others])
            self.regime = int(others[int(self.rng.choice(2, p=weights / weights.sum()))])
        self.stats.regime_minutes[self.regime] += 1

    def _trap_level(self, st: SymbolState, y: F64, vol: float) -> tuple[float, int]:
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

    def _scripted_target(self, st: SymbolState) -> tuple[float, int]:
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

    def _start_run(self, st: SymbolState, m0: int, y: F64, level: float, d: int, vol: float, rise: int,
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

    def minute(self, m0: int) -> list[MinutePath]:
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
        common = self.rng.standard_normal(60)
        own = self.rng.standard_normal((len(self.symbols), 60))
        rho = self.cfg.correlation
        return [
            self._symbol_minute(st, m0, rho * common + math.sqrt(1 - rho * rho) * own[i], script)
            for i, st in enumerate(self.symbols)
        ]

    def _symbol_minute(self, st: SymbolState, m0: int, shocks: F64, script: _Script) -> MinutePath:
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
        noise = self.rng.standard_normal(60) * self.basis_noise
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
            + cfg.oi_vol_per_min * float(self.rng.standard_normal())
        )
        index = np.exp(obs)
        dobs = np.diff(obs, prepend=obs[0] - steps[0])
        return MinutePath(
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

    def _jump(self, st: SymbolState, m0: int, steps: F64, noise: F64, happened: _Happened) -> None:
        """Maybe a jump in ``steps`` this minute; a large one sets off a liquidation cascade: open
        interest removed, the basis pushed, a burst of trades and the liquidations."""
        cfg, rng = self.cfg, self.rng
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

    def _steer(self, st: SymbolState, steps: F64, vol: float, ahead: int) -> None:
        """Before a scripted run: drift ``steps`` to just inside the extreme it will break, closing the
        gap by the run's minute (``ahead`` minutes away)."""
        if not st.steer:
            st.steer_level, st.steer = self._scripted_target(st)
        if st.steer:
            aim = st.steer_level - st.steer * self.cfg.scripted_margin_vol * vol
            steps += (aim - st.x - math.log1p(st.basis)) / ahead / 60

    def _stop_run(self, st: SymbolState, m0: int, y: F64, vol: float, scripted_rise: int, happened: _Happened) -> None:
        """A stop-run at a range extreme of the perp (log path ``y``) starting this minute, if one is
        due: the scripted one at second ``scripted_rise``, else maybe a natural one. The run's draws
        are made every minute, run or not, so the path's stream does not depend on runs."""
        cfg, rng = self.cfg, self.rng
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

    def _overlay(self, st: SymbolState, stress: F64) -> F64:
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

