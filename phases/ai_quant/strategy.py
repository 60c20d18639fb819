"""The AI Quant's proposal logic, pure: what the model is told, and what of its answer may run.

* :func:`trade_outcomes` turns a phase's closing fills into trades; :func:`mine_losing_patterns` finds
  where it loses (hour of day, symbol, setup, side, loss streaks; the deterministic miner of the
  original optimiser) and :func:`build_prompt` narrates that for the model.
* :func:`check_proposal` is the guardrail every answer passes before anything is backtested: only
  whitelisted fields, numbers of the right type, inside the params model's bounds, at most a relative
  step from the current value, never a risk field, and the whole params set must still validate.

The AI never places orders: the only output of this module is a params mapping for a TitanPhase.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pydantic

from titan.phases.ai_quant.params import RISK_FIELDS, Tunable, TunableKind, TunableSpace
from titan.v1 import common_pb2


class ReasonCode(enum.StrEnum):
    """Why a proposal did not go through (stored with it; also a metric label)."""

    # the model's answer
    REFUSED = "refused"                         # finishReason SAFETY/RECITATION/..., or a blocked prompt
    EMPTY_ANSWER = "empty_answer"               # no candidates, no parts, no text
    TRUNCATED = "truncated"                     # finishReason MAX_TOKENS
    MALFORMED_JSON = "malformed_json"
    SCHEMA_MISMATCH = "schema_mismatch"         # valid JSON that is not the requested shape
    # the guardrails
    NOT_WHITELISTED = "not_whitelisted"
    RISK_FIELD = "risk_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_BOUNDS = "out_of_bounds"
    STEP_TOO_LARGE = "step_too_large"
    INVALID_PARAMS = "invalid_params"           # each field fine, the combination refused by the phase
    NO_CHANGE = "no_change"
    # the service
    RATE_LIMITED = "rate_limited"               # 429 after the bounded retries
    SERVER_ERROR = "server_error"               # 5xx after the bounded retries
    TIMEOUT = "timeout"
    NETWORK_ERROR = "network_error"
    CLIENT_ERROR = "client_error"               # other 4xx (bad key, bad model name, ...)
    # people
    OPERATOR_REJECTED = "operator_rejected"
    # the evidence
    NOT_ENOUGH_FOLDS = "not_enough_folds"       # improved on fewer than m of K out-of-sample folds
    DRAWDOWN_WORSE = "drawdown_worse"
    BACKTEST_FAILED = "backtest_failed"


# --- trades and their losing patterns -----------------------------------------------------------


@dataclass(frozen=True)
class TradeOutcome:
    """One closing fill of a phase: what it realised, net of its fee."""

    ts_ns: int
    symbol: str
    side: str          # side of the closing order ("SIDE_SELL" closes a long)
    setup: str         # the signal's setup ("" when unknown)
    pnl: Decimal       # realised, before fees
    fee: Decimal

    @property
    def net(self) -> Decimal:
        return self.pnl - self.fee

    @property
    def hour(self) -> int:
        return datetime.fromtimestamp(self.ts_ns / 1e9, tz=UTC).hour


def trade_outcomes(fills: Iterable[Any], setups: Mapping[str, str] | None = None) -> list[TradeOutcome]:
    """Closing fills (non-zero realised PnL) as trades, oldest first; ``setups`` maps a fill's
    client_order_id to its signal's setup."""
    setups = setups or {}
    out = []
    for fill in fills:
        pnl = Decimal(fill.realized_pnl or "0")
        if pnl == 0:
            continue
        out.append(TradeOutcome(
            ts_ns=int(fill.ts_ns), symbol=fill.symbol, side=common_pb2.Side.Name(fill.side),
            setup=setups.get(fill.client_order_id, ""), pnl=pnl, fee=Decimal(fill.fee or "0"),
        ))
    return sorted(out, key=lambda t: (t.ts_ns, t.symbol))


@dataclass(frozen=True)
class LossPattern:
    """A slice of trades that loses more often than the miner tolerates."""

    dimension: str     # hour | symbol | setup | side | streak
    key: str
    trades: int
    wins: int
    net_pnl: Decimal
    confidence: float

    @property
    def win_rate(self) -> float:
        return self.wins / self.trades if self.trades else 0.0

    def line(self) -> str:
        if self.dimension == "streak":
            return f"streak: {self.trades} consecutive losing trades (net {self.net_pnl:.2f})"
        return (f"{self.dimension} {self.key}: {self.trades} trades, win rate {self.win_rate:.0%}, "
                f"net {self.net_pnl:.2f}")


@dataclass(frozen=True)
class MinerRules:
    """Thresholds of the deterministic miner (the original optimiser's)."""

    min_trades: int = 3
    max_win_rate: Mapping[str, float] = field(default_factory=lambda: {
        "hour": 0.40, "symbol": 0.35, "setup": 0.40, "side": 0.40,
    })
    min_streak: int = 5
    min_confidence: float = 0.6


def _slices(trades: Sequence[TradeOutcome], dimension: str) -> dict[str, list[TradeOutcome]]:
    groups: dict[str, list[TradeOutcome]] = {}
    for t in trades:
        key = {"hour": f"{t.hour:02d}h UTC", "symbol": t.symbol, "setup": t.setup or "unknown", "side": t.side}
        groups.setdefault(key[dimension], []).append(t)
    return groups


def longest_losing_streak(trades: Sequence[TradeOutcome]) -> tuple[int, Decimal]:
    best, best_pnl, run, run_pnl = 0, Decimal(0), 0, Decimal(0)
    for t in trades:
        if t.net < 0:
            run, run_pnl = run + 1, run_pnl + t.net
            if run > best:
                best, best_pnl = run, run_pnl
        else:
            run, run_pnl = 0, Decimal(0)
    return best, best_pnl


def mine_losing_patterns(trades: Sequence[TradeOutcome], rules: MinerRules | None = None) -> list[LossPattern]:
    """Slices with a win rate under the rule's bar (at least ``min_trades`` each) and the longest
    losing streak; confidence = min(0.9, 0.5 + 0.1 × offenders of that dimension), 0.7 for a streak.
    Sorted by net PnL (worst first), then dimension and key: the same trades always give the same list."""
    rules = rules or MinerRules()
    found: list[LossPattern] = []
    for dimension, bar in rules.max_win_rate.items():
        offenders = []
        for key, group in _slices(trades, dimension).items():
            wins = sum(1 for t in group if t.net > 0)
            if len(group) >= rules.min_trades and wins / len(group) < bar:
                offenders.append((key, group, wins))
        confidence = min(0.9, 0.5 + 0.1 * len(offenders))
        for key, group, wins in offenders:
            found.append(LossPattern(dimension, key, len(group), wins, sum((t.net for t in group), Decimal(0)),
                                     confidence))
    streak, streak_pnl = longest_losing_streak(trades)
    if streak >= rules.min_streak:
        found.append(LossPattern("streak", str(streak), streak, 0, streak_pnl, 0.7))
    kept = [p for p in found if p.confidence >= rules.min_confidence]
    return sorted(kept, key=lambda p: (p.net_pnl, p.dimension, p.key))


@dataclass(frozen=True)
class PerformanceSummary:
    trades: int
    wins: int
    net_pnl: Decimal
    fees: Decimal
    rejected_signals: int = 0

    @classmethod
    def of(cls, trades: Sequence[TradeOutcome], rejected_signals: int = 0) -> PerformanceSummary:
        return cls(len(trades), sum(1 for t in trades if t.net > 0), sum((t.net for t in trades), Decimal(0)),
                   sum((t.fee for t in trades), Decimal(0)), rejected_signals)


# --- the prompt -----------------------------------------------------------------------------------


def _bound_text(t: Tunable) -> str:
    lo = "[" if t.lower_inclusive else "("
    hi = "]" if t.upper_inclusive else ")"
    return f"{lo}{t.lower:g}, {t.upper:g}{hi}"


def build_prompt(
    space: TunableSpace,
    current: Mapping[str, int | float | Decimal],
    summary: PerformanceSummary,
    patterns: Sequence[LossPattern],
    max_relative_step: float,
    earlier: Sequence[str] = (),
) -> str:
    """The request text: role, recent performance, losing patterns, the tunables with bounds and
    current values, the step limit, and (when searching) what earlier candidates scored."""
    lines = [
        f"You tune the parameters of the '{space.phase_kind}' phase of a crypto trading system.",
        "Your answer is backtested on rolling out-of-sample windows and only adopted if it beats the current",
        "parameters there after fees and funding; a change that merely fits the past is rejected.",
        "",
        f"Recent performance: {summary.trades} closed trades, {summary.wins} winners, net PnL "
        f"{summary.net_pnl:.2f}, fees {summary.fees:.2f}, {summary.rejected_signals} signals refused by the risk gate.",
        "Losing patterns (deterministic miner):",
        *([f"- {p.line()}" for p in patterns] or ["- none found"]),
        "",
        "Tunable parameters (name, bounds, current value):",
        *[f"- {t.key} {_bound_text(t)} = {current[t.key]}" + (f"  ({t.description})" if t.description else "")
          for t in space.fields],
        "",
        f"Rules: return every tunable parameter; change at most a few; each new value must stay within its bounds "
        f"and within {max_relative_step:.0%} of its current value. Risk limits are not yours to change.",
    ]
    if earlier:
        lines += ["", "Earlier candidates and their in-sample objective:", *[f"- {e}" for e in earlier]]
    return "\n".join(lines)


# --- the guardrail --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    key: str
    old: int | float | Decimal
    new: int | float | Decimal


@dataclass(frozen=True)
class GuardrailVerdict:
    reason: ReasonCode | None
    detail: str
    changes: tuple[Change, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)   # full spec.params to run (camelCase)
    rationale: str = ""

    @property
    def passed(self) -> bool:
        return self.reason is None


def _reject(reason: ReasonCode, detail: str) -> GuardrailVerdict:
    return GuardrailVerdict(reason, detail)


def _number(value: Any, tunable: Tunable) -> float | None:
    """The value as a finite number of the field's kind, or None (bools and strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return None
    if tunable.kind is TunableKind.INT and float(value) != int(value):
        return None
    return float(value)


def _step_ok(old: float, new: float, max_relative_step: float, tunable: Tunable) -> bool:
    if old == new:
        return True
    scale = abs(old) if old != 0 else (tunable.upper - tunable.lower)
    return abs(new - old) <= max_relative_step * scale + 1e-12


def _to_wire(value: int | float | Decimal) -> int | float:
    """A params value as TitanPhase YAML/JSON carries it: a plain number (a Decimal built from a
    float's shortest text reads back as the same Decimal)."""
    return float(value) if isinstance(value, Decimal) else value


def check_proposal(
    space: TunableSpace,
    current_params: Mapping[str, Any],
    answer: Any,
    max_relative_step: float,
) -> GuardrailVerdict:
    """Guardrails on a decoded answer ``{"params": {...}, "rationale": "..."}`` against the phase's
    current (camelCase) spec.params. Passing returns the full params to backtest and the changes."""
    if not isinstance(answer, dict) or not isinstance(answer.get("params"), dict):
        return _reject(ReasonCode.SCHEMA_MISMATCH, "answer is not an object with a 'params' object")
    rationale = answer.get("rationale")
    if not isinstance(rationale, str) or not rationale.strip():
        return _reject(ReasonCode.SCHEMA_MISMATCH, "answer has no rationale")
    proposed: dict[str, Any] = answer["params"]
    tunables = space.by_key()
    risk_keys = {space.params_model.model_fields[n].alias or n for n in RISK_FIELDS
                 if n in space.params_model.model_fields}
    for key in sorted(proposed):
        if key in risk_keys or key in RISK_FIELDS:
            return _reject(ReasonCode.RISK_FIELD, f"{key} belongs to the risk policy")
        if key not in tunables:
            return _reject(ReasonCode.NOT_WHITELISTED, f"{key} is not a tunable field of {space.phase_kind}")
    current = space.current(current_params)
    changes = []
    for key, tunable in tunables.items():
        if key not in proposed:
            continue
        number = _number(proposed[key], tunable)
        if number is None:
            return _reject(ReasonCode.WRONG_TYPE, f"{key}={proposed[key]!r} is not a {tunable.kind.value}")
        if not tunable.within(number):
            return _reject(ReasonCode.OUT_OF_BOUNDS, f"{key}={number:g} outside {_bound_text(tunable)}")
        old = float(current[key])
        if not _step_ok(old, number, max_relative_step, tunable):
            return _reject(ReasonCode.STEP_TOO_LARGE,
                           f"{key}: {old:g} -> {number:g} is more than {max_relative_step:.0%} of the current value")
        if number != old:
            changes.append(Change(key, current[key], tunable.coerce(number)))
    if not changes:
        return _reject(ReasonCode.NO_CHANGE, "the answer repeats the current parameters")
    merged = dict(current_params)
    merged.update({c.key: _to_wire(c.new) for c in changes})
    try:
        space.params_model.model_validate(merged)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        return _reject(ReasonCode.INVALID_PARAMS, f"{'.'.join(map(str, first['loc'])) or 'params'}: {first['msg']}")
    return GuardrailVerdict(None, "passed", tuple(changes), merged, rationale.strip())


def decode_answer(text: str) -> tuple[Any, ReasonCode | None, str]:
    """The answer's JSON (tolerating a ```json fence), or the reason it is not JSON."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`")
        body = body[4:] if body.lower().startswith("json") else body
    try:
        return json.loads(body), None, ""
    except ValueError as exc:
        return None, ReasonCode.MALFORMED_JSON, f"not JSON: {exc}"
