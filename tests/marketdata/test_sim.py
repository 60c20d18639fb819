"""The simulator: determinism, internal consistency and the statistics docs/market-data.md claims."""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal

import numpy as np
import pytest

from titan.core.marketdata.book import OrderBook
from titan.core.marketdata.candles import CandleAggregator
from titan.core.marketdata.events import BUY, PERP, SELL, kind_of, ts_of
from titan.core.marketdata.sim import SimConfig, Simulator
from titan.v1.market_pb2 import MarketEvent

HOUR = 3600 * 10**9
DAY = 24 * HOUR
STATS_DAYS = 20
# sparse microstructure: the price/basis/funding path is the same as with the defaults
SPARSE = {"trade_rate": (0.0, 0.0), "depth_levels": 0, "top_every_s": 3600, "mark_every_s": 60,
          "oi_every_s": 60, "candles": False}


def run(cfg: SimConfig, span_ns: int) -> list[MarketEvent]:
    return list(Simulator(cfg).events(end_ns=cfg.start_ns + span_ns))


def test_same_seed_same_events_other_seed_differs() -> None:
    cfg = SimConfig(seed=42, symbols=("BTCUSDT", "ETHUSDT"))
    a = [ev.SerializeToString() for ev in run(cfg, HOUR // 2)]
    b = [ev.SerializeToString() for ev in run(cfg, HOUR // 2)]
    assert len(a) > 10_000 and a == b
    c = [ev.SerializeToString() for ev in run(cfg.replace(seed=43), HOUR // 2)]
    assert c != a


def test_path_does_not_depend_on_event_density() -> None:
    full = SimConfig(seed=5, symbols=("BTCUSDT",))
    sparse = full.replace(**SPARSE)
    marks_full = [ev for ev in run(full, HOUR) if kind_of(ev) == "mark" and ts_of(ev) % 60_000_000_000 == 0]
    marks_sparse = [ev for ev in run(sparse, HOUR) if kind_of(ev) == "mark"]
    assert [(ts_of(e), e.mark.mark_price, e.mark.index_price) for e in marks_full] == [
        (ts_of(e), e.mark.mark_price, e.mark.index_price) for e in marks_sparse
    ]
    assert len(marks_sparse) == 59  # minute closes 00:01 .. 00:59; the end is exclusive


def test_microstructure_is_consistent() -> None:
    cfg = SimConfig(seed=3, symbols=("BTCUSDT", "XRPUSDT"))
    events = run(cfg, 2 * HOUR)
    stamps = [ts_of(e) for e in events]
    assert stamps == sorted(stamps)
    kinds = {kind_of(e).value for e in events}
    assert kinds == {"trade", "top", "depth", "mark", "open_interest", "funding", "candle"} | (
        {"liquidation"} if "liquidation" in kinds else set()
    )
    seqs: dict[tuple[str, int], list[int]] = defaultdict(list)
    books: dict[tuple[str, int], OrderBook] = {}
    aggs: dict[tuple[str, str, int], CandleAggregator] = {}
    rebuilt: dict[tuple[str, str, int], list[MarketEvent]] = defaultdict(list)
    emitted: dict[tuple[str, int], list[MarketEvent]] = defaultdict(list)
    last_top: dict[tuple[str, int], tuple[Decimal, Decimal]] = {}
    for ev in events:
        key = (ev.symbol, int(ev.instrument))
        seqs[key].append(ev.seq)
        k = kind_of(ev)
        if k == "depth":
            book = books.setdefault(key, OrderBook())
            assert book.apply(ev.depth), "depth deltas follow each other without gaps"
            assert not book.is_crossed()
        elif k == "top":
            bid, ask = Decimal(ev.top.bid_price), Decimal(ev.top.ask_price)
            assert 0 < bid < ask
            last_top[key] = (bid, ask)
        elif k == "trade":
            for tf in ("1m", "1h"):
                rebuilt[(tf, *key)].extend(aggs.setdefault((tf, *key), CandleAggregator(tf)).on_event(ev))
            assert ev.trade.taker_side in (BUY, SELL) and Decimal(ev.trade.size) > 0
        elif k == "candle":
            emitted[key].append(ev)
    for key, seq in seqs.items():
        assert seq == list(range(1, len(seq) + 1)), key
    # the simulator's own 1m candles are exactly what the aggregator builds from its trades, and its
    # 1h candles roll them up
    for key, candles in emitted.items():
        for tf, n in (("1m", 119), ("1h", 1)):  # the last candle closes at the (exclusive) end
            got = [(c.candle.open_time_ns, c.candle.open, c.candle.high, c.candle.low, c.candle.close,
                    c.candle.volume, c.candle.trade_count) for c in candles if c.candle.timeframe == tf]
            want = [(c.candle.open_time_ns, c.candle.open, c.candle.high, c.candle.low, c.candle.close,
                     c.candle.volume, c.candle.trade_count) for c in rebuilt[(tf, *key)]]
            assert got == want and len(got) == n, (key, tf)
    assert set(books) == {("BTCUSDT", 1), ("BTCUSDT", 2), ("XRPUSDT", 1), ("XRPUSDT", 2)}


@pytest.fixture(scope="module")
def path_run() -> tuple[list[MarketEvent], Simulator]:
    cfg = SimConfig(seed=7, symbols=("BTCUSDT",), **SPARSE)  # type: ignore[arg-type]
    sim = Simulator(cfg)
    events = list(sim.events(end_ns=cfg.start_ns + STATS_DAYS * DAY))
    return events, sim


def _minute_series(events: list[MarketEvent]) -> tuple[np.ndarray, np.ndarray]:
    marks = [e for e in events if kind_of(e) == "mark"]
    index = np.array([float(e.mark.index_price) for e in marks])
    mark = np.array([float(e.mark.mark_price) for e in marks])
    return index, mark


def test_returns_are_fat_tailed_and_clustered(path_run: tuple[list[MarketEvent], Simulator]) -> None:
    events, sim = path_run
    index, _ = _minute_series(events)
    assert len(index) == STATS_DAYS * 1440 - 1
    r = np.diff(np.log(index))
    excess_kurtosis = float(((r - r.mean()) ** 4).mean() / r.var() ** 2 - 3)
    assert excess_kurtosis > 5.0  # docs: 15-96 over 20 days; a Gaussian walk gives 0
    a = np.abs(r)
    assert float(np.corrcoef(a[:-1], a[1:])[0, 1]) > 0.1  # volatility clustering (docs: 0.33-0.39)
    assert sim.stats.jumps > 0 and all(sim.stats.regime_minutes)  # every regime visited


def test_basis_half_life_matches_config(path_run: tuple[list[MarketEvent], Simulator]) -> None:
    events, sim = path_run
    index, mark = _minute_series(events)
    basis = (mark - index) / index
    phi = float(np.polyfit(basis[:-1], basis[1:], 1)[0])
    half_life_s = -math.log(2) / math.log(phi) * 60
    cfg = sim.config
    assert 0.7 * cfg.basis_half_life_s < half_life_s < 1.4 * cfg.basis_half_life_s
    assert abs(float(basis.mean()) - cfg.basis_mean) < 0.5 * cfg.basis_sd
    assert 0.7 * cfg.basis_sd < float(basis.std()) < 1.4 * cfg.basis_sd


def test_funding_every_8h_follows_the_basis(path_run: tuple[list[MarketEvent], Simulator]) -> None:
    events, sim = path_run
    cfg = sim.config
    index, mark = _minute_series(events)
    basis = (mark - index) / index
    settled = [e for e in events if kind_of(e) == "funding" and e.funding.settled]
    assert len(settled) == STATS_DAYS * 3 - 1  # the last settlement falls on the end (exclusive)
    rates, premiums = [], []
    for i, ev in enumerate(settled):
        assert ev.funding.funding_time_ns % (8 * HOUR) == 0 and ev.exchange_ts_ns == ev.funding.funding_time_ns
        assert ev.funding.next_funding_time_ns == ev.funding.funding_time_ns + 8 * HOUR
        p = float(basis[i * 480 : (i + 1) * 480].mean())  # mark/index at the interval's minute closes
        rates.append(float(ev.funding.rate))
        premiums.append(p)
        if abs(p) > cfg.funding_clamp:
            assert math.copysign(1, rates[-1]) == math.copysign(1, p), (i, p, rates[-1])
    agree = np.mean(np.sign(rates) == np.sign(premiums))
    assert agree >= 0.9
    assert float(np.corrcoef(rates, premiums)[0, 1]) > 0.95
    assert any(r < 0 for r in rates) and any(r > 0 for r in rates)


def test_open_interest_drops_in_liquidation_cascades(path_run: tuple[list[MarketEvent], Simulator]) -> None:
    events, sim = path_run
    assert sim.stats.cascades > 0
    last_oi: Decimal | None = None
    liq_in_minute: Decimal = Decimal(0)
    checked = 0
    for ev in events:
        k = kind_of(ev)
        if k == "liquidation":
            liq_in_minute += Decimal(ev.liquidation.size)
            assert ev.instrument == PERP
        elif k == "open_interest":
            oi = Decimal(ev.open_interest.open_interest)
            if last_oi is not None and liq_in_minute > last_oi * Decimal("0.01"):  # a cascade
                assert oi < last_oi
                checked += 1
            last_oi, liq_in_minute = oi, Decimal(0)
    assert checked >= 1


def _deep_false_breakouts(index_per_s: np.ndarray, lookback: int = 240) -> int:
    """Minutes whose high (low) pierces the previous ``lookback`` minute closes' high (low) by more
    than one typical minute move and whose close three minutes later is back inside the range."""
    n = len(index_per_s) // 60
    m = index_per_s[: n * 60].reshape(n, 60)
    closes, highs, lows = m[:, -1], m.max(axis=1), m.min(axis=1)
    r = np.diff(np.log(closes), prepend=np.log(closes[0]))
    count = 0
    for i in range(lookback, n - 3):
        hi, lo, v = closes[i - lookback : i].max(), closes[i - lookback : i].min(), r[i - lookback : i].std()
        count += int(highs[i] > hi * (1 + v) and closes[i + 3] < hi)
        count += int(lows[i] < lo * (1 - v) and closes[i + 3] > lo)
    return count


def test_stop_runs_make_false_breakouts(path_run: tuple[list[MarketEvent], Simulator]) -> None:
    _, sim = path_run
    assert sim.stats.traps > 10 * STATS_DAYS  # docs: 12.7-13.8 stop-runs a day per symbol
    days = 4
    per_second = SimConfig(seed=7, symbols=("BTCUSDT",), **{**SPARSE, "mark_every_s": 1})  # type: ignore[arg-type]

    def index(cfg: SimConfig) -> np.ndarray:
        return np.array([float(e.mark.index_price) for e in run(cfg, days * DAY) if kind_of(e) == "mark"])

    with_traps = _deep_false_breakouts(index(per_second))
    without = _deep_false_breakouts(index(per_second.replace(trap_prob_per_min=0.0)))
    assert with_traps > 1.1 * without
