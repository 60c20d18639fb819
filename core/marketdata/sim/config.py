"""The simulator's parameters: the symbols it runs (:class:`SymbolSpec`), the model's settings
(:class:`SimConfig`), the random streams a seed gives, and what it reports having done
(:class:`SimStats`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from titan.v1.common_pb2 import InstrumentKind, Side

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




def random_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """The three independent streams of a seed: the price path's, the microstructure's and the
    history prelude's candle volumes'. The path's own stream keeps it the same whatever the event
    densities are."""
    path_seq, micro_seq, hist_seq = np.random.SeedSequence(seed).spawn(3)
    return np.random.default_rng(path_seq), np.random.default_rng(micro_seq), np.random.default_rng(hist_seq)
