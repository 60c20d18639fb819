"""No look-ahead, on real candles: the BTC perp month fed to a StructureEngine one closed candle at a
time. Everything reported at a candle became known at that candle's close, nothing reported ever
changes or disappears later, and what has been reported up to any time equals what a batch
analysis of the whole month (which sees the future) says was known by then."""

from __future__ import annotations

from collections import Counter

import pytest

from titan.phases.hunter.engine import StructureEngine, analyse

from .data import MONTH, month

pytestmark = pytest.mark.skipif(not MONTH.exists(), reason=f"{MONTH} not present")


@pytest.mark.parametrize(("timeframe", "every"), [("15m", 48), ("1h", 12), ("4h", 1)])
def test_incremental_equals_batch_known_by_then(timeframe: str, every: int) -> None:
    bars = month(timeframe)
    batch = analyse(bars)
    engine = StructureEngine(timeframe, keep=len(bars) + 1)
    reported: list[object] = []
    checked = 0
    for k, bar in enumerate(bars):
        new = engine.on_bar(bar)
        assert all(el.known_at_ns == bar.close_ns for el in new)  # known now: not earlier, not later
        reported += new
        assert engine.reported == reported  # nothing already reported changed or went away
        if k % every == 0 or k == len(bars) - 1:
            known = [el for el in batch if el.known_at_ns <= bar.close_ns]
            assert Counter(map(repr, engine.reported)) == Counter(map(repr, known))
            checked += 1
    kinds = Counter(type(el).__name__ for el in reported)
    assert checked > 50
    assert {"Swing", "StructureBreak", "FairValueGap", "OrderBlock", "Pool", "Sweep", "ZoneEvent"} <= set(kinds)
