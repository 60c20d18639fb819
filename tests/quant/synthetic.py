"""A deterministic market for walk-forward tests: each day has a best stop-loss, and a strategy's
daily return falls with the distance of its ``stopLossPercent`` from that day's best value (plus a
fixed, day-seeded noise). A window's score is computed from those daily returns the way a backtest
scores an equity curve (Sharpe, Sortino, Calmar, max drawdown), so it is a real function of the
params and the window — change either and the numbers change.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from titan.phases.ai_quant.params import Objective
from titan.quant.walkforward import NS_PER_DAY, Window, WindowScore

T0 = 1_704_067_200 * 1_000_000_000   # 2024-01-01T00:00:00Z


def day_noise(day: int) -> float:
    digest = hashlib.sha256(f"day-{day}".encode()).digest()
    return (int.from_bytes(digest[:4], "big") / 2**32 - 0.5) * 0.004


def daily_returns(params: Mapping[str, Any], window: Window, best_stop: Callable[[int], float]) -> list[float]:
    stop = float(params.get("stopLossPercent", 0.01))
    target = float(params.get("targetPercent", 0.03))
    first = (window.start_ns - T0) // NS_PER_DAY
    last = (window.end_ns - T0 + NS_PER_DAY - 1) // NS_PER_DAY
    out = []
    for day in range(first, last):
        edge = 0.002 - 40.0 * (stop - best_stop(day)) ** 2 - 0.02 * abs(target - 3 * stop)
        out.append(edge + day_noise(day))
    return out


def score(returns: list[float], objective: Objective) -> WindowScore:
    n = len(returns)
    mean = sum(returns) / n if n else 0.0
    var = sum((r - mean) ** 2 for r in returns) / (n - 1) if n > 1 else 0.0
    downside = [min(r, 0.0) for r in returns]
    dvar = sum(d * d for d in downside) / n if n else 0.0
    equity, peak, max_dd = 1.0, 1.0, 0.0
    for r in returns:
        equity *= 1 + r
        peak = max(peak, equity)
        max_dd = max(max_dd, 1 - equity / peak)
    total = equity - 1
    sharpe = mean / math.sqrt(var) * math.sqrt(365) if var > 0 else 0.0
    sortino = mean / math.sqrt(dvar) * math.sqrt(365) if dvar > 0 else 0.0
    calmar = total / max_dd if max_dd > 0 else 0.0
    return WindowScore.of(objective, sharpe=sharpe, sortino=sortino, calmar=calmar, max_drawdown=max_dd,
                          total_return=total, trades=n * 3, fees=Decimal(n) * Decimal("0.5"))


def regime_evaluator(best_stop: Callable[[int], float], objective: Objective = Objective.SHARPE,
                     calls: list[tuple[str, Window]] | None = None) -> Callable[[Mapping[str, Any], Window],
                                                                                   WindowScore]:
    def evaluate(params: Mapping[str, Any], window: Window) -> WindowScore:
        if calls is not None:
            calls.append((str(sorted(params.items())), window))
        return score(daily_returns(params, window, best_stop), objective)

    return evaluate


def days(n: float) -> int:
    return int(n * NS_PER_DAY)
