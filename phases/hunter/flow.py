"""Notional cumulative volume delta from the trade stream (reference §2.9): taker buys add
price × size, taker sells subtract it. The CVD over the last ``window`` is sampled every
``sample`` interval (on trade time); the last three samples show

* absorption (bullish): prices strictly falling while the CVD makes a higher low
  (cvd₂ < cvd₁ and cvd₃ > cvd₂);
* distribution (bearish): prices strictly rising while the CVD makes a lower high.

Strength 0..100 = min(100, 50·(|p₁ − p₃|/p₁ + |cvd₃ − cvd₂| / max(|cvd₂|, 1))). A candle can stand in
for its trades (``add_candle``: its volume signed by its body), for sources without trades."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from titan.phases.hunter.bars import Bar
from titan.phases.hunter.structure import Bias


@dataclass(frozen=True)
class FlowSignal:
    bias: Bias                   # BULLISH = absorption, BEARISH = distribution
    strength: float              # 0..100
    known_at_ns: int


@dataclass(frozen=True)
class _Sample:
    ts_ns: int
    price: Decimal
    cvd: Decimal


class NotionalCVD:
    def __init__(self, window_ns: int, sample_ns: int, keep_ns: int) -> None:
        self.window_ns = window_ns
        self.sample_ns = sample_ns
        self.keep_ns = max(keep_ns, window_ns)
        self._flow: deque[tuple[int, Decimal]] = deque()
        self._sum = Decimal(0)
        self._samples: deque[_Sample] = deque(maxlen=3)
        self._next_sample_ns: int | None = None
        self._price: Decimal | None = None
        self.signal: FlowSignal | None = None

    def add(self, ts_ns: int, price: Decimal, size: Decimal, taker_buy: bool) -> None:
        """A trade (in time order; an older one is counted at the newest time seen)."""
        self._sample_until(ts_ns)
        notional = price * size if taker_buy else -price * size
        self._flow.append((ts_ns, notional))
        self._sum += notional
        self._price = price

    def add_candle(self, bar: Bar) -> None:
        """A candle's volume as one trade at its close, signed by its body (a doji counts nothing)."""
        sign = 1 if bar.bullish else -1 if bar.bearish else 0
        self._sample_until(bar.close_ns - 1)
        if sign:
            self.add(bar.close_ns - 1, bar.close, bar.volume, sign > 0)
        else:
            self._price = bar.close
        self._sample_until(bar.close_ns)

    def on_time(self, now_ns: int) -> None:
        self._sample_until(now_ns)

    def cvd(self, now_ns: int) -> Decimal:
        self._expire(now_ns - self.window_ns)
        return self._sum

    def _expire(self, before_ns: int) -> None:
        while self._flow and self._flow[0][0] < before_ns:
            self._sum -= self._flow.popleft()[1]

    def _sample_until(self, now_ns: int) -> None:
        if self._next_sample_ns is None:
            self._next_sample_ns = now_ns - now_ns % self.sample_ns + self.sample_ns
            return
        while now_ns >= self._next_sample_ns:
            at = self._next_sample_ns
            if self._price is not None:
                self._samples.append(_Sample(at, self._price, self.cvd(at)))
                self.signal = self._detect(at) or self.signal
            self._next_sample_ns += self.sample_ns
            if now_ns - at > self.keep_ns:  # a long gap: jump instead of sampling every interval
                self._next_sample_ns = now_ns - now_ns % self.sample_ns + self.sample_ns

    def _detect(self, at: int) -> FlowSignal | None:
        if len(self._samples) < 3:
            return None
        s1, s2, s3 = self._samples
        move = float(abs(s1.price - s3.price) / s1.price) if s1.price else 0.0
        turn = float(abs(s3.cvd - s2.cvd) / max(abs(s2.cvd), Decimal(1)))
        strength = min(100.0, 50.0 * (move + turn))
        if s3.price < s2.price < s1.price and s2.cvd < s1.cvd and s3.cvd > s2.cvd:
            return FlowSignal(Bias.BULLISH, strength, at)
        if s3.price > s2.price > s1.price and s2.cvd > s1.cvd and s3.cvd < s2.cvd:
            return FlowSignal(Bias.BEARISH, strength, at)
        return None

    def recent(self, now_ns: int, max_age_ns: int) -> FlowSignal | None:
        """The latest absorption/distribution if it is no older than ``max_age_ns``."""
        sig = self.signal
        return sig if sig is not None and sig.known_at_ns <= now_ns and now_ns - sig.known_at_ns <= max_age_ns else None
