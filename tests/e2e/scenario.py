"""A deterministic market scenario for end-to-end runs, built from the real Binance BTCUSDT trade tape.

The simulator's stop-runs come about every two hours of market time, far too rarely for a one-minute
run. The scenario instead puts a Scavenger tripwire exactly where the real tape bursts through it:

* history (before the tape, all closed): 60 hourly and 60 one-minute candles of the BTCUSDT perp on
  ``binance``, open interest every minute, settled funding every 8 h and the predicted next one. The
  hourly range tops out at 39,500 (a spike 50 h before the tape) and the price climbs back towards it
  over the last day, so the generator places one tripwire inside the tape's range: the BREAKOUT LONG
  at 39,500 (the level ``tests/phases/test_scavenger_replay.py`` showed the tape springs). The other
  calculators land far away: the volume clusters and the previous day's levels sit below 38,700;
  funding is positive; there is no perp price for the basis detector.
* the tape itself (2,001 spot trades in 46 s, read in place), the burst source of the Scavenger;
* perp book tops on ``binance`` around each trade price (0.3 wide, 2.5 BTC a side), so execution has a
  fresh price for the perp and the paper venue can fill.

Written in Titan's own event format (``EventWriter``); ``titan up --source replay:PATH`` (or the
gateway) replays it rebased to now: the history passes at once and the tape plays in real time.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

import yaml

from titan.core.marketdata.events import (
    PERP,
    SPOT,
    candle_event,
    funding_event,
    open_interest_event,
    top_event,
)
from titan.core.marketdata.files import EventWriter, FileMeta, read_trades_csv
from titan.v1.market_pb2 import MarketEvent

REPO = Path(__file__).resolve().parents[2]
TAPE = REPO.parent / "shared" / "data" / "binance-btcusdt-trades.csv"
SAMPLES = REPO / "crds" / "samples"

VENUE = "binance"
SYMBOL = "BTCUSDT"
TRIGGER = Decimal("39500")  # the hourly range high: the BREAKOUT LONG tripwire
RANGE_LOW = Decimal("38500")
S = 10**9
MINUTE = 60 * S
HOUR = 3600 * S
H0 = 1_610_064_000 * S  # 2021-01-08 00:00 UTC: the last history candle closes here; the tape follows
TICK = Decimal("0.1")
TOP_SIZE = "2.5"
# The tape is played up to the end of its burst through the trigger (00:00:22.398–22.498, closed by the
# trade at 22.499). What follows is a grind upwards whose every trade flips the
# Scavenger's acceleration veto: with it, whether the confirmation 200 ms later fires would depend on
# millisecond delivery jitter. Without it, the confirmation sees the same prices however the events
# are delivered, so a run decides exactly what a backtest of the same file decides.
TAPE_CUT_NS = H0 + 22_500_000_000  # exclusive
QUIET_S = 90

# Scavenger parameters (TitanPhase.spec.params, camelCase): bursts on the spot tape, orders on the perp
# of the same venue, everything else at its default (50 trades within 100 ms within 0.1%, ...).
SCAVENGER_PARAMS: dict[str, object] = {
    "symbols": [SYMBOL],
    "venue": VENUE,
    "orderVenue": VENUE,
    "burstVenue": VENUE,
    "burstInstrument": "spot",
}


@dataclass(frozen=True)
class Scenario:
    path: Path
    events: int
    tape_trades: int       # trades of the tape played (up to the end of its burst)
    first_trade_ns: int    # original (2021) time of the tape's first trade
    burst_offset_s: float  # seconds after the first trade at which the tape first reaches TRIGGER


def tape_events() -> list[MarketEvent]:
    return list(read_trades_csv(TAPE, FileMeta(VENUE, SYMBOL, SPOT)))


def _q(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"))


def hourly_bars() -> list[tuple[Decimal, Decimal, Decimal, Decimal, Decimal]]:
    """(open, high, low, close, volume) of the 59 hourly candles before the last hour; the last
    one is rolled up from the one-minute candles."""
    bars: list[tuple[Decimal, Decimal, Decimal, Decimal, Decimal]] = []
    # 10 bars outside the structure window, around 38,900.
    for i in range(10):
        m = Decimal(38880) + Decimal(i % 3) * 20
        bars.append((m, m + 60, m - 60, m + 10, Decimal(80)))
    # The spike to the range high, 50 bars before the tape, then the fall back.
    bars.append((Decimal(38950), TRIGGER, Decimal(38900), Decimal(39000), Decimal(120)))
    bars.append((Decimal(39000), Decimal(39040), Decimal(38780), Decimal(38800), Decimal(120)))
    # 24 bars of the previous day in a tight range at the bottom (38,500 – 38,620), heavy volume.
    for i in range(24):
        m = Decimal(38560) + Decimal((i * 7) % 5 - 2) * 10
        low = RANGE_LOW if i == 12 else m - 30
        bars.append((m, m + 40, low, m + 5, Decimal(300)))
    # 23 bars climbing back towards the high (highs stay below 39,470).
    start, end = Decimal(38600), Decimal(39390)
    for i in range(23):
        o = start + (end - start) * i / 23
        c = start + (end - start) * (i + 1) / 23
        bars.append((_q(o), _q(c + 25), _q(o - 25), _q(c), Decimal(100)))
    return bars


def minute_bars() -> list[tuple[Decimal, Decimal, Decimal, Decimal, Decimal]]:
    """60 one-minute candles of the last hour, 39,390 → 39,430."""
    out = []
    for i in range(60):
        o = Decimal(39390) + Decimal(40) * i / 60
        c = Decimal(39390) + Decimal(40) * (i + 1) / 60
        wick = Decimal(3 + i % 4)
        out.append((_q(o), _q(max(o, c) + wick), _q(min(o, c) - wick), _q(c), Decimal("1.5")))
    return out


def history() -> list[MarketEvent]:
    out: list[tuple[int, int, MarketEvent]] = []  # (ts, order, event)
    hours = hourly_bars()
    minutes = minute_bars()
    last = (minutes[0][0], max(b[1] for b in minutes), min(b[2] for b in minutes), minutes[-1][3],
            sum((b[4] for b in minutes), Decimal(0)))
    hours.append(last)
    n = len(hours)
    for i, (o, h, lo, c, v) in enumerate(hours):
        open_ns = H0 - (n - i) * HOUR
        out.append((open_ns + HOUR, 1, candle_event(VENUE, SYMBOL, PERP, timeframe="1h", open_time_ns=open_ns,
                                                     close_time_ns=open_ns + HOUR, open=o, high=h, low=lo,
                                                     close=c, volume=v)))
    for i, (o, h, lo, c, v) in enumerate(minutes):
        open_ns = H0 - (60 - i) * MINUTE
        out.append((open_ns + MINUTE, 0, candle_event(VENUE, SYMBOL, PERP, timeframe="1m", open_time_ns=open_ns,
                                                       close_time_ns=open_ns + MINUTE, open=o, high=h, low=lo,
                                                       close=c, volume=v)))
        oi = Decimal(52000) + Decimal(i * 3)
        out.append((open_ns + MINUTE, 2, open_interest_event(VENUE, SYMBOL, open_interest=oi,
                                                              ts_ns=open_ns + MINUTE)))
    for k in (16, 8, 0):  # settled funding at 16:00, 00:00 ... ; the last one settles at H0
        t = H0 - k * HOUR
        out.append((t, 3, funding_event(VENUE, SYMBOL, rate="0.0001", funding_time_ns=t,
                                        next_funding_time_ns=t + 8 * HOUR, settled=True, ts_ns=t)))
    out.append((H0, 4, funding_event(VENUE, SYMBOL, rate="0.0001", funding_time_ns=H0 + 8 * HOUR,
                                     next_funding_time_ns=H0 + 16 * HOUR, settled=False, ts_ns=H0)))
    out.sort(key=lambda x: (x[0], x[1]))
    return [ev for _, _, ev in out]


def perp_top(price: Decimal, ts_ns: int) -> MarketEvent:
    bid = price.quantize(TICK, rounding=ROUND_FLOOR) - TICK
    ask = price.quantize(TICK, rounding=ROUND_CEILING) + TICK
    return top_event(VENUE, SYMBOL, PERP, bid_price=bid, bid_size=TOP_SIZE, ask_price=ask, ask_size=TOP_SIZE,
                     ts_ns=ts_ns)


def live_part(trades: list[MarketEvent]) -> list[MarketEvent]:
    """The tape up to its burst and, after each trade that moves it, the perp's top of book; then
    the perp's last top once a second for :data:`QUIET_S` seconds (the book stays fresh)."""
    out: list[MarketEvent] = []
    last: tuple[str, str] | None = None
    cut = TAPE_CUT_NS
    top = None
    for trade in trades:
        if trade.exchange_ts_ns >= cut:
            break
        out.append(trade)
        top = perp_top(Decimal(trade.trade.price), trade.exchange_ts_ns)
        key = (top.top.bid_price, top.top.ask_price)
        if key != last:
            out.append(top)
            last = key
    assert top is not None
    for k in range(1, QUIET_S + 1):
        again = MarketEvent()
        again.CopyFrom(top)
        again.exchange_ts_ns = again.receive_ts_ns = cut + k * S
        out.append(again)
    return out


def burst_offset_s(trades: list[MarketEvent]) -> float:
    """When the tape first prints at or above the trigger (seconds after its first trade)."""
    first = trades[0].exchange_ts_ns
    hit = next(t for t in trades if Decimal(t.trade.price) >= TRIGGER)
    return (hit.exchange_ts_ns - first) / 1e9


def build_scenario(path: Path) -> Scenario:
    trades = tape_events()
    assert trades[0].exchange_ts_ns > H0, "the tape must follow the history"
    events = [*history(), *live_part(trades)]
    with EventWriter(path) as writer:
        for ev in events:
            writer.write(ev)
    played = sum(1 for ev in events if ev.HasField("trade"))
    return Scenario(path, len(events), played, trades[0].exchange_ts_ns, burst_offset_s(trades))


def write_organism(directory: Path, *, params: dict[str, object] | None = None, venue: str = VENUE,
                   symbols: tuple[str, ...] = (SYMBOL,)) -> Path:
    """A TitanBrain (the sample) and one enabled TitanPhase, the Scavenger (on the scenario's venue
    and symbol unless told otherwise)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLES / "titanbrain.yaml", directory / "titanbrain.yaml")
    phase = {
        "apiVersion": "titan.trading/v1alpha1",
        "kind": "TitanPhase",
        "metadata": {"name": "scavenger"},
        "spec": {
            "phase": "scavenger",
            "enabled": True,
            "venue": venue,
            "symbols": list(symbols),
            "maxLeverage": 20,
            "params": dict(SCAVENGER_PARAMS if params is None else params),
        },
    }
    (directory / "titanphase-scavenger.yaml").write_text(yaml.safe_dump(phase, sort_keys=False))
    return directory
