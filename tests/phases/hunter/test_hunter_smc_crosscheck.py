"""The Hunter's FVGs and swings against an independent implementation, the `smartmoneyconcepts`
package, on the real BTC perp month (2022-01, 1m) rolled up to 15m and 1h.

* FVGs: the same list exactly (candle, direction, top, bottom), and smc's "mitigated" index is
  the Hunter's first touch of the gap.
* Swings: smc's window is [i − L + 1, i + L] with equal highs allowed; the Hunter detects the same
  window with ``FractalSpec(left=L-1, right=L, strict=False)`` and reports each swing when bar i + L
  closes. smc then keeps only the most extreme of consecutive same-side swings (a step that needs
  later swings, so it is not causal) and forces a swing on the first and last candle; both steps
  are applied to the Hunter's list here, and the two endpoints left out of the comparison. Its
  rolling window also needs 2L values of the shifted series, so smc reports nothing before bar
  2L − 1 even where the window [i − L + 1, i + L] is complete; those early swings are left out too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest

from titan.phases.hunter import structure, zones
from titan.phases.hunter.bars import Bar
from titan.phases.hunter.engine import StructureEngine

from .data import MONTH, month

os.environ.setdefault("SMC_CREDIT", "0")  # before the import: it reads the variable then
import pandas as pd
from smartmoneyconcepts import smc

pytestmark = pytest.mark.skipif(not MONTH.exists(), reason=f"{MONTH} not present")


def frame(bars: Sequence[Bar]) -> object:
    return pd.DataFrame({
        "open": [float(b.open) for b in bars], "high": [float(b.high) for b in bars],
        "low": [float(b.low) for b in bars], "close": [float(b.close) for b in bars],
        "volume": [float(b.volume) for b in bars],
    })


def alternate(found: list[structure.Swing]) -> list[structure.Swing]:
    """smc's filter: of consecutive swings on one side keep the most extreme (the earlier on a tie)."""
    out: list[structure.Swing] = []
    for sw in found:
        if out and out[-1].side is sw.side:
            prev = out[-1]
            better = sw.price > prev.price if sw.side is structure.Side.HIGH else sw.price < prev.price
            if better:
                out[-1] = sw
            continue
        out.append(sw)
    return out


@pytest.mark.parametrize("timeframe", ["15m", "1h"])
def test_fair_value_gaps_equal_smartmoneyconcepts(timeframe: str) -> None:
    bars = month(timeframe)
    theirs = smc.fvg(frame(bars))
    rows = theirs.dropna(subset=["FVG"])
    expected = [(int(i), int(r.FVG), float(r.Top), float(r.Bottom)) for i, r in rows.iterrows()]
    ours = zones.gaps(bars)
    assert len(ours) > 100
    assert [
        (g.index, 1 if g.bias is structure.Bias.BULLISH else -1, float(g.top), float(g.bottom)) for g in ours
    ] == expected
    for g in ours:
        assert g.known_at_ns == bars[g.index + 1].close_ns
    # smc's "mitigated" index (0 = never) is the first candle trading into the gap.
    engine = StructureEngine(timeframe, keep=len(bars) + 1)
    for b in bars:
        engine.on_bar(b)
    touched = {ev.key: ev.index for ev in engine.zone_events if ev.kind == "touched"}
    assert [touched.get(g.key, 0) for g in ours] == [int(r.MitigatedIndex) for _, r in rows.iterrows()]


@pytest.mark.parametrize(("timeframe", "length"), [("15m", 5), ("15m", 10), ("1h", 3), ("1h", 5)])
def test_swings_equal_smartmoneyconcepts(timeframe: str, length: int) -> None:
    bars = month(timeframe)
    theirs = smc.swing_highs_lows(frame(bars), swing_length=length)
    n = len(bars)
    expected = [(int(i), int(r.HighLow), float(r.Level)) for i, r in theirs.dropna(subset=["HighLow"]).iterrows()
                if 0 < int(i) < n - 1]
    raw = structure.swings(bars, structure.FractalSpec(left=length - 1, right=length, strict=False))
    for sw in raw:  # each known when the length-th bar after it closes, never earlier
        assert sw.known_at_ns == bars[sw.index + length].close_ns
    highs = {sw.index for sw in raw if sw.side is structure.Side.HIGH}
    raw = [sw for sw in raw if sw.side is structure.Side.HIGH or sw.index not in highs]  # smc: a high wins
    # smc's rolling(2L) over the shifted series needs 2L values: nothing before bar 2L − 1.
    raw = [sw for sw in raw if sw.index >= 2 * length - 1]
    ours = [(sw.index, 1 if sw.side is structure.Side.HIGH else -1, float(sw.price)) for sw in alternate(raw)]
    assert len(ours) > 20
    assert ours == expected
