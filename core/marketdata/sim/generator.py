"""The simulator's events: what the price path's minutes look like on the venue's feeds."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from titan.v1.common_pb2 import InstrumentKind
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

from ..candles import timeframe_ns
from .config import (
    B8,
    BUY,
    DAY_NS,
    F64,
    HOUR_NS,
    I64,
    MINUTE_NS,
    NS_PER_S,
    PERP,
    SCRIPTED_BURST_START_MS,
    SELL,
    SPOT,
    SimConfig,
    SimStats,
    SymbolSpec,
    fmt_rate,
    fmt_units,
    random_streams,
)
from .path import MinutePath, PricePath, SymbolState


class _Feed(NamedTuple):
    """One instrument's minute, as its trades are drawn: the instrument (``key`` and ``inst``), the
    place of its events among the minute's (``order``), its mid in price units at the end of each
    second and at the end of the one before, its price grid, the trade rate per second, and the
    path's minute of its symbol."""

    key: tuple[str, int]
    inst: InstrumentKind
    order: int
    m0: int
    mids: I64
    prev_mid: I64
    dp: int
    tick: int
    rate: F64
    mp: MinutePath
    sp: SymbolSpec


class EventGenerator:
    """The market events of each minute of the price path: the history prelude's closed candles,
    open interest and funding, then live trades (a Hawkes process with bursts), books, tops,
    candles, marks, liquidations, open interest and funding, on the microstructure's own stream."""

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
        path_rng, self.micro, self.hist = random_streams(cfg.seed)
        self.prices = PricePath(cfg, stats, path_rng)
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
        self.books: dict[tuple[str, int], tuple[dict[int, int], dict[int, int]]] = {}
        self.depth_ids: dict[tuple[str, int], int] = {}
        self.trade_ids: dict[tuple[str, int], int] = {}
        self.pending: dict[tuple[str, int], tuple[I64, B8]] = {}   # follow-on trades due later (abs ns)
        self.last_mid: dict[tuple[str, int], int] = {}             # price units at the last second
        # open rolled-up candles: (symbol, instrument, tf) -> [open_ns, o, h, l, c, volume, count]
        self.rollup: dict[tuple[str, int, int], list[int]] = {}
        k = np.arange(1, 61, dtype=np.float64)
        a_phi = math.exp(-math.log(2) / cfg.activity_half_life_s)
        self.a_pow, self.a_inv_pow = a_phi**k, a_phi**-k
        self.a_noise = cfg.activity_sd * math.sqrt(1 - a_phi**2)
        self.activity = [0.0] * len(cfg.symbols)  # log activity of each symbol (micro stream)
        self.funding_ns = cfg.funding_interval_h * HOUR_NS
        if cfg.start_marks:
            self.prices.anchor(dict(cfg.start_marks), self.minute_ns, self.prelude_minutes)

    # --- event construction (fields already canonical, so no Decimal round trips) -------------
    def _ev(self, sym: str, inst: InstrumentKind, ts: int, **payload: Any) -> MarketEvent:
        return MarketEvent(
            venue=self.cfg.venue, symbol=sym, instrument=inst, exchange_ts_ns=ts, receive_ts_ns=ts, **payload
        )

    @staticmethod
    def _units(sp: SymbolSpec, mp: MinutePath) -> tuple[I64, I64]:
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
        paths = self.prices.minute(m0)
        self.stats.minutes += 1
        keyed: list[tuple[int, int, int, MarketEvent]] = []
        activity = cfg.regime_activity[self.prices.regime]
        sd = cfg.activity_sd
        for si, (st, mp) in enumerate(zip(self.prices.symbols, paths, strict=True)):
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
        paths = self.prices.minute(m0)
        self.stats.minutes += 1
        self.stats.prelude_minutes += 1
        keyed: list[tuple[int, int, int, MarketEvent]] = []
        activity = cfg.regime_activity[self.prices.regime]
        noise = self.hist.lognormal(0.0, 0.3, size=(len(self.prices.symbols), 2)).tolist()
        for si, (st, mp) in enumerate(zip(self.prices.symbols, paths, strict=True)):
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
        mp: MinutePath,
        sp: SymbolSpec,
    ) -> None:
        cfg, rng = self.cfg, self.micro
        key = (sym, int(inst))
        order = si * 2 + int(inst)
        spread = cfg.spread_ticks * tick
        prev_mid = np.concatenate(([self.last_mid.get(key, int(mids[0]))], mids[:-1]))
        self.last_mid[key] = int(mids[-1])
        if rate[0] > 0 or key in self.pending:
            self._trades(keyed, _Feed(key, inst, order, m0, mids, prev_mid, dp, tick, rate, mp, sp))
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

    def _trades(self, keyed: list[tuple[int, int, int, MarketEvent]], feed: _Feed) -> None:
        """The minute's trades of one instrument (and its candles, built from them)."""
        key, inst, order, m0, mids, prev_mid = feed.key, feed.inst, feed.order, feed.m0, feed.mids, feed.prev_mid
        dp, tick, rate, mp, sp = feed.dp, feed.tick, feed.rate, feed.mp, feed.sp
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
        self, key: tuple[str, int], m0: int, rate: F64, mp: MinutePath, inst: InstrumentKind,
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

    def _bursts(self, mp: MinutePath, inst: InstrumentKind, times: list[I64], sides: list[B8], flags: list[B8],
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
        st: SymbolState,
        mp: MinutePath,
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

    def _funding(self, keyed: list[tuple[int, int, int, MarketEvent]], order: int, st: SymbolState, end_ns: int,
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
                                mp: MinutePath, m0: int, perp_u: I64, spot_u: I64) -> None:
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
