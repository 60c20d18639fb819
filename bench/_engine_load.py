"""What the bench scripts feed the engine: a book, signed signals and a budget, and an engine set up
as execution sets it; and the CPU time another process used. Not a bench script itself (the leading
underscore keeps it out of tests/test_bench_scripts.py)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from titan.core.signing import sign_signal
from titan.v1 import common_pb2, events_pb2, market_pb2, trading_pb2

PERP = common_pb2.InstrumentKind.INSTRUMENT_KIND_PERP
ENGINE_BOOK_LEVELS = 20  # per side, for the engine figure (refilled every REFILL_EVERY signals)
LEVEL_SIZE = "0.004"   # BTC per level: a 500 USDT order (0.01 BTC) takes three levels
REFILL_EVERY = 8  # signals between book refills: 4 a side take 0.04 of the 0.08 BTC shown, so none rests
PHASE = "bench-0"
PHASE_KEY = b"bench-0-key-0123456789abcdefghijklmnop"


def cpu_ticks(pid: int) -> int:
    """User + system CPU time process ``pid`` has used, in clock ticks (``/proc``; OSError when it
    cannot be read)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def ticks_us(ticks: int) -> float:
    """Clock ticks (:func:`cpu_ticks`) as microseconds."""
    return ticks / os.sysconf("SC_CLK_TCK") * 1e6


def context_switches(pid: int) -> int:
    """Context switches of every thread of process ``pid`` so far, voluntary (it waited) and not (it
    was preempted), from ``/proc`` (a thread that ended between two readings is not counted; OSError
    when the process cannot be read)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        for line in status.splitlines():
            if "ctxt_switches:" in line:  # voluntary_ and nonvoluntary_
                total += int(line.split(":", 1)[1])
    return total


def book(now: int, level_size: str = LEVEL_SIZE, levels: int = ENGINE_BOOK_LEVELS,
         snapshot: bool = True) -> list[market_pb2.MarketEvent]:
    """A depth update and a mark: ``levels`` a side of ``level_size`` BTC, 0.5 USDT apart around
    50,000; not a ``snapshot``: a delta of the touch only (the same sizes)."""
    step = 0.5
    shown = levels if snapshot else 1
    bids = [market_pb2.BookLevel(price=f"{50000 - i * step}", size=level_size) for i in range(shown)]
    asks = [market_pb2.BookLevel(price=f"{50000.5 + i * step}", size=level_size) for i in range(shown)]
    return [
        market_pb2.MarketEvent(venue="bybit", symbol="BTCUSDT", instrument=PERP, exchange_ts_ns=now,
                               depth=market_pb2.BookDepth(bids=bids, asks=asks, snapshot=snapshot)),
        market_pb2.MarketEvent(venue="bybit", symbol="BTCUSDT", instrument=PERP, exchange_ts_ns=now,
                               mark=market_pb2.MarkPrice(mark_price="50000.25")),
    ]


def make_signals(phase: str, key: bytes, n: int, prefix: str) -> list[trading_pb2.Signal]:
    """``n`` signed 500 USDT market orders, buying and selling in turn."""
    created = time.time_ns()
    out = []
    for i in range(n):
        side = common_pb2.Side.SIDE_BUY if i % 2 == 0 else common_pb2.Side.SIDE_SELL
        sig = trading_pb2.Signal(
            phase_id=phase, signal_id=f"{prefix}-{i}", intent=trading_pb2.Intent.INTENT_OPEN,
            legs=[trading_pb2.Leg(venue="bybit", symbol="BTCUSDT", instrument=PERP, side=side, size_quote="500",
                                  order_type=trading_pb2.OrderType.ORDER_TYPE_MARKET)],
            confidence=0.6, leverage="2", created_at_ns=created, setup="bench",
        )
        sign_signal(sig, key)
        out.append(sig)
    return out


def budget(phase: str) -> trading_pb2.Budget:
    """A budget no bench load reaches."""
    now = time.time_ns()
    return trading_pb2.Budget(
        phase_id=phase, state=common_pb2.PhaseState.PHASE_STATE_ACTIVE, weight="0.5", max_notional="1000000000000",
        max_order_notional="100000", max_leverage="10", max_orders_per_minute=4_000_000_000,
        max_open_orders_per_symbol=100000, max_daily_loss="1000000000", symbols=["BTCUSDT"], issued_at_ns=now,
        expires_at_ns=now + 3600 * 10**9, version=now,
    )


def paper_engine() -> Any:
    """An engine on the wall clock, trading on, ``PHASE`` budgeted and keyed."""
    from titan.core.clock import WallClock
    from titan.execution.engine import Engine, EngineConfig
    from titan.execution.gate import GateConfig

    engine = Engine(WallClock(), {PHASE: PHASE_KEY}, EngineConfig(gate=GateConfig(replay_window_ns=600 * 10**9)))
    engine.set_trading_state(trading_pb2.TradingState(mode=common_pb2.TradingMode.TRADING_MODE_ACTIVE, version=1))
    engine.update_budget(budget(PHASE))
    return engine


def published_frames(signals: int, frame: int) -> list[list[events_pb2.Event]]:
    """The events execution publishes for ``signals`` signals sent in frames of ``frame``, one list per
    input as the service journals and publishes them: a book update (and what it changes), then a
    frame's orders, fills, position and decisions. Every order fills (the book shown before each
    frame holds more than the frame takes)."""
    from titan.execution.envelopes import to_event

    engine = paper_engine()
    levels = frame * 3 // 2 + 3  # a side takes frame / 2 orders of three levels, two of them partly
    out: list[list[events_pb2.Event]] = []
    prefix = f"ledger{uuid.uuid4().hex[:6]}"
    for first in range(0, signals, frame):
        market = [u for event in book(time.time_ns(), levels=levels) for u in engine.on_market(event)]
        if market:
            out.append([to_event(u) for u in market])
        batch = make_signals(PHASE, PHASE_KEY, min(frame, signals - first), f"{prefix}-{first}")
        decisions = [engine.decide(sig) for sig in batch]
        rejected = [d.ack.detail for d in decisions if not d.ack.accepted]
        if rejected:
            raise RuntimeError(f"ledger bench: signal rejected: {rejected[0]}")
        out.append([to_event(u) for u in engine.execute_frame(decisions)])
    if any(engine.working.values()):
        raise RuntimeError("ledger bench: orders rest; the book is too thin for the load")
    return out
