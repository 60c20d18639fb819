"""Closed trades and performance figures of a backtest, from its ledger.

Definitions (docs/backtest.md):

* A **trade** is one position of a phase in one instrument from flat back to flat (a flip closes one
  trade and opens the next). Its PnL is the realized PnL of its fills minus their fees plus the
  funding the position received while open (perpetuals only).
* A **hedged trade** is one trade: the spot and the perp position of one symbol that the same
  signal opened (the legs of a hedged unit, e.g. the Sentinel's carry), once both are flat again.
  Its PnL is both legs' together — basis PnL plus funding minus both legs' fees; instrument
  ``spot+perp``, side, quantity and prices those of the spot leg.
* **Returns** are sampled from the total equity curve at the end of each period: a day when the run
  spans at least 7 days, else an hour. Sharpe and Sortino are annualised with the number of such
  periods in 365 days (crypto trades every day); the risk-free rate is 0.
* **CAGR** compounds the total return over the run's span; **Calmar** is CAGR / max drawdown.
* **Max drawdown** is the largest fall from a running peak of equity, as a positive fraction.
* **Exposure** is the fraction of the run's time with any open position.
* A phase's figures use its own PnL on top of the organism's initial equity (the phase's equity
  snapshots), so phases' returns add up to the total's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from titan.backtest.record import EquityPoint
from titan.core.money import to_decimal
from titan.v1 import common_pb2, trading_pb2

NS_PER_HOUR = 3_600 * 10**9
NS_PER_DAY = 24 * NS_PER_HOUR
NS_PER_YEAR = 365 * NS_PER_DAY
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Trade:
    phase_id: str
    venue: str
    symbol: str
    instrument: str
    side: str                 # "long" | "short"
    opened_ns: int
    closed_ns: int
    quantity: Decimal         # the largest absolute size held
    entry_price: Decimal      # volume-weighted over the fills that opened/increased it
    exit_price: Decimal       # volume-weighted over the fills that reduced/closed it
    pnl: Decimal              # realized - fees + funding
    fees: Decimal
    funding: Decimal

    def row(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}


HEDGED = "spot+perp"  # the instrument of a hedged trade
_PERP = common_pb2.INSTRUMENT_KIND_PERP


class _Open:
    __slots__ = ("buy_notional", "buy_qty", "fees", "funding", "long", "opened_by", "opened_ns", "peak", "qty",
                 "realized", "sell_notional", "sell_qty")

    def __init__(self, opened_ns: int, opened_by: str) -> None:
        self.opened_ns = opened_ns
        self.opened_by = opened_by  # the signal whose order opened it (client order ids: <signal>-<leg>)
        self.long: bool | None = None
        self.qty = self.peak = self.realized = self.fees = self.funding = _ZERO
        self.buy_qty = self.buy_notional = self.sell_qty = self.sell_notional = _ZERO


def closed_trades(fills: Iterable[trading_pb2.Fill],
                  funding: Iterable[trading_pb2.FundingPayment] = ()) -> list[Trade]:
    """Round trips from the fills (in ledger order), with the funding paid in between; the two legs
    of a hedged unit are one trade."""
    return hedged_trades(_round_trips(fills, funding))


def _signal_of(client_order_id: str) -> str:
    return client_order_id.rpartition("-")[0] or client_order_id


def hedged_trades(trips: list[tuple[Trade, str]]) -> list[Trade]:
    """Each round trip once, except that a spot and a perp trade of one phase and symbol on opposite
    sides that the same signal opened become one hedged trade, in the place of the leg closed last."""
    by_opener: dict[tuple[str, str, str], list[int]] = {}
    for i, (trade, opened_by) in enumerate(trips):
        by_opener.setdefault((trade.phase_id, trade.symbol, opened_by), []).append(i)
    replaced: dict[int, Trade | None] = {}  # index -> the hedged trade in its place, or None (merged away)
    for indices in by_opener.values():
        if len(indices) != 2:
            continue
        first, last = (trips[i][0] for i in indices)
        spot, perp = (first, last) if first.instrument == "spot" else (last, first)
        if (spot.instrument, perp.instrument) == ("spot", "perp") and spot.side != perp.side:
            replaced[indices[0]] = None
            replaced[indices[1]] = _combine(spot, perp)
    out: list[Trade] = []
    for i, (trade, _) in enumerate(trips):
        kept = replaced.get(i, trade)
        if kept is not None:
            out.append(kept)
    return out


def _combine(spot: Trade, perp: Trade) -> Trade:
    venue = spot.venue if spot.venue == perp.venue else f"{spot.venue}+{perp.venue}"
    return Trade(
        phase_id=spot.phase_id, venue=venue, symbol=spot.symbol, instrument=HEDGED, side=spot.side,
        opened_ns=min(spot.opened_ns, perp.opened_ns), closed_ns=max(spot.closed_ns, perp.closed_ns),
        quantity=spot.quantity, entry_price=spot.entry_price, exit_price=spot.exit_price,
        pnl=spot.pnl + perp.pnl, fees=spot.fees + perp.fees, funding=spot.funding + perp.funding,
    )


def _round_trips(fills: Iterable[trading_pb2.Fill],
                 funding: Iterable[trading_pb2.FundingPayment]) -> list[tuple[Trade, str]]:
    """Each instrument's round trips, with the signal that opened each."""
    payments: dict[tuple[str, str, str], list[trading_pb2.FundingPayment]] = {}
    for p in funding:
        payments.setdefault((p.phase_id, p.venue, p.symbol), []).append(p)
    opened: dict[tuple[str, str, str, int], _Open] = {}
    trades: list[tuple[Trade, str]] = []
    for f in fills:
        key = (f.phase_id, f.venue, f.symbol, int(f.instrument))
        qty, price = to_decimal(f.quantity), to_decimal(f.price)
        signed = qty if f.side == common_pb2.SIDE_BUY else -qty
        trade = opened.get(key)
        if trade is None:
            trade = opened[key] = _Open(f.ts_ns, _signal_of(f.client_order_id))
        before = trade.qty
        if before != 0 and (before > 0) != (signed > 0) and abs(signed) > abs(before):
            # a flip: the part that closes ends this trade, the rest opens the next one
            closing = abs(before)
            fee = to_decimal(f.fee) * closing / qty
            _add(trade, f.side == common_pb2.SIDE_BUY, closing, price, fee, to_decimal(f.realized_pnl))
            trade.qty = _ZERO
            trades.append((_close(key, trade, f.ts_ns, payments), trade.opened_by))
            trade = opened[key] = _Open(f.ts_ns, _signal_of(f.client_order_id))
            qty_left = qty - closing
            _add(trade, f.side == common_pb2.SIDE_BUY, qty_left, price, to_decimal(f.fee) - fee, _ZERO)
            trade.qty = signed + before
            trade.peak = abs(trade.qty)
            continue
        _add(trade, f.side == common_pb2.SIDE_BUY, qty, price, to_decimal(f.fee), to_decimal(f.realized_pnl))
        trade.qty = before + signed
        trade.peak = max(trade.peak, abs(trade.qty))
        if trade.qty == 0:
            trades.append((_close(key, trade, f.ts_ns, payments), trade.opened_by))
            del opened[key]
    return trades


def _add(trade: _Open, buy: bool, qty: Decimal, price: Decimal, fee: Decimal, realized: Decimal) -> None:
    if trade.long is None:
        trade.long = buy  # the side of the fill that opened it
    if buy:
        trade.buy_qty += qty
        trade.buy_notional += qty * price
    else:
        trade.sell_qty += qty
        trade.sell_notional += qty * price
    trade.fees += fee
    trade.realized += realized


def _close(key: tuple[str, str, str, int], trade: _Open, closed_ns: int,
           payments: dict[tuple[str, str, str], list[trading_pb2.FundingPayment]]) -> Trade:
    phase, venue, symbol, instrument = key
    long = bool(trade.long)
    paid = payments.get((phase, venue, symbol), ()) if instrument == _PERP else ()  # spot pays no funding
    funding = sum((to_decimal(p.amount) for p in paid if trade.opened_ns <= p.funding_time_ns < closed_ns), _ZERO)
    entry_qty, entry_notional = (trade.buy_qty, trade.buy_notional) if long else (trade.sell_qty, trade.sell_notional)
    exit_qty, exit_notional = (trade.sell_qty, trade.sell_notional) if long else (trade.buy_qty, trade.buy_notional)
    return Trade(
        phase_id=phase, venue=venue, symbol=symbol,
        instrument=common_pb2.InstrumentKind.Name(instrument).removeprefix("INSTRUMENT_KIND_").lower(),
        side="long" if long else "short", opened_ns=trade.opened_ns, closed_ns=closed_ns, quantity=trade.peak,
        entry_price=entry_notional / entry_qty if entry_qty else _ZERO,
        exit_price=exit_notional / exit_qty if exit_qty else _ZERO,
        pnl=trade.realized - trade.fees + funding, fees=trade.fees, funding=funding,
    )


@dataclass(frozen=True)
class Metrics:
    start_equity: Decimal
    final_equity: Decimal
    total_return: float
    cagr: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    win_rate: float
    profit_factor: float
    exposure: float
    trades: int
    fees: Decimal
    funding: Decimal
    pnl: Decimal

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            if isinstance(v, Decimal):
                out[k] = str(v)
            elif isinstance(v, float):
                out[k] = None if math.isnan(v) else (v if math.isfinite(v) else ("inf" if v > 0 else "-inf"))
            else:
                out[k] = v
        return out


def compute_metrics(curve: Sequence[EquityPoint], trades: Sequence[Trade], start_equity: Decimal,
                    funding: Decimal = _ZERO, *, base: Decimal | None = None) -> Metrics:
    """Figures for one equity curve (``base`` is added to each point: a phase's curve is its PnL)."""
    offset = base if base is not None else _ZERO
    values = [(p.ts_ns, float(p.equity + offset)) for p in curve]
    final = curve[-1].equity + offset if curve else start_equity
    start = float(start_equity)
    total_return = float(final) / start - 1 if start > 0 else math.nan
    span = values[-1][0] - values[0][0] if len(values) > 1 else 0
    cagr = _cagr(total_return, span)
    mdd = _max_drawdown([v for _, v in values])
    period = NS_PER_DAY if span >= 7 * NS_PER_DAY else NS_PER_HOUR
    returns = _period_returns(values, period)
    per_year = NS_PER_YEAR / period
    wins = [t.pnl for t in trades if t.pnl > 0]
    losses = [t.pnl for t in trades if t.pnl <= 0]
    gross_loss = -sum(losses, _ZERO)
    return Metrics(
        start_equity=start_equity,
        final_equity=final,
        total_return=total_return,
        cagr=cagr,
        sharpe=_sharpe(returns, per_year),
        sortino=_sortino(returns, per_year),
        calmar=cagr / mdd if mdd > 0 else math.nan,
        max_drawdown=mdd,
        win_rate=len(wins) / len(trades) if trades else math.nan,
        profit_factor=float(sum(wins, _ZERO) / gross_loss) if gross_loss > 0 else (math.inf if wins else math.nan),
        exposure=_exposure(curve),
        trades=len(trades),
        fees=sum((t.fees for t in trades), _ZERO),
        funding=funding,
        pnl=final - start_equity,
    )


def _cagr(total_return: float, span_ns: int) -> float:
    if span_ns <= 0 or math.isnan(total_return) or total_return <= -1:
        return math.nan if span_ns <= 0 else -1.0
    years = span_ns / NS_PER_YEAR
    try:
        return float((1 + total_return) ** (1 / years) - 1)
    except OverflowError:
        return math.inf


def _max_drawdown(values: Sequence[float]) -> float:
    peak = -math.inf
    worst = 0.0
    for v in values:
        peak = max(peak, v)
        if peak > 0:
            worst = max(worst, (peak - v) / peak)
    return worst


def _period_returns(values: Sequence[tuple[int, float]], period: int) -> list[float]:
    """Simple returns between the last equity of consecutive periods (empty periods carry over)."""
    if len(values) < 2:
        return []
    closes: list[float] = []
    bucket = values[0][0] // period
    last = values[0][1]
    for ts, v in values:
        b = ts // period
        while bucket < b:
            closes.append(last)
            bucket += 1
        last = v
    closes.append(last)
    return [b / a - 1 for a, b in itertools.pairwise(closes) if a > 0]


def _sharpe(returns: Sequence[float], per_year: float) -> float:
    if len(returns) < 2:
        return math.nan
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return mean / math.sqrt(var) * math.sqrt(per_year) if var > 0 else math.nan


def _sortino(returns: Sequence[float], per_year: float) -> float:
    if len(returns) < 2:
        return math.nan
    mean = sum(returns) / len(returns)
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    if downside == 0:
        return math.inf if mean > 0 else math.nan
    return mean / downside * math.sqrt(per_year)


def _exposure(curve: Sequence[EquityPoint]) -> float:
    if len(curve) < 2:
        return 0.0
    held = 0
    for a, b in itertools.pairwise(curve):
        if a.exposure != 0:
            held += b.ts_ns - a.ts_ns
    span = curve[-1].ts_ns - curve[0].ts_ns
    return held / span if span > 0 else 0.0


__all__ = ["HEDGED", "Metrics", "Trade", "closed_trades", "compute_metrics", "hedged_trades"]
