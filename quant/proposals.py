"""One AI Quant run, and what happens to its proposals afterwards.

``propose_with_model`` asks the model (one or more rounds, each told how the earlier candidates
scored in-sample), runs every answer through the guardrails and, if it passes, through walk-forward
validation. ``propose_with_search`` does the same for the Optuna baseline. Each outcome becomes a
:class:`ProposalRow` in the ledger with every fold's numbers — rejected ones included, with their
reason code. ``approve``/``reject``/``rollback`` move a stored proposal on; only an accepted one
(validated on out-of-sample folds) can ever be applied.
"""

from __future__ import annotations

import enum
import json
import math
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from titan.core.ledger import Ledger, ParamsVersion, ProposalRow
from titan.phases.ai_quant.gemini import GeminiProposer, ModelCall
from titan.phases.ai_quant.params import AiQuantParams, TunableSpace, response_model
from titan.phases.ai_quant.strategy import (
    GuardrailVerdict,
    LossPattern,
    PerformanceSummary,
    ReasonCode,
    build_prompt,
    check_proposal,
    mine_losing_patterns,
    trade_outcomes,
)
from titan.quant.apply import ParamsTarget, canonical
from titan.quant.evaluator import EvaluationError
from titan.quant.search import in_sample_score, optuna_search
from titan.quant.walkforward import AcceptanceRule, Evaluator, Fold, Verdict, walk_forward


class ProposalStatus(enum.StrEnum):
    REJECTED = "rejected"          # by a guardrail, the service, the evidence, or a person
    ACCEPTED = "accepted"          # passed walk-forward validation; waits for approval (or auto mode)
    APPLIED = "applied"
    ROLLED_BACK = "rolled_back"


class Source(enum.StrEnum):
    GEMINI = "gemini"
    OPTUNA = "optuna"


@dataclass(frozen=True)
class QuantJob:
    """What one run tunes and how it judges."""

    phase_id: str
    space: TunableSpace
    current_params: Mapping[str, Any]
    config: AiQuantParams
    folds: tuple[Fold, ...]
    evaluator: Evaluator

    @property
    def rule(self) -> AcceptanceRule:
        return AcceptanceRule(self.config.objective, self.config.min_improved_folds,
                              self.config.max_drawdown_worsening)


@dataclass(frozen=True)
class Outcome:
    """A candidate and everything known about it."""

    proposal_id: str
    source: Source
    reason: ReasonCode | None
    detail: str
    guardrail: GuardrailVerdict | None = None
    verdict: Verdict | None = None
    call: ModelCall | None = None
    trials: int = 1
    elapsed_s: float = 0.0

    @property
    def accepted(self) -> bool:
        return self.reason is None

    @property
    def status(self) -> ProposalStatus:
        return ProposalStatus.ACCEPTED if self.accepted else ProposalStatus.REJECTED

    def row(self, job: QuantJob, model: str, now_ns: int) -> ProposalRow:
        guard, verdict, call = self.guardrail, self.verdict, self.call
        return ProposalRow(
            proposal_id=self.proposal_id, phase_id=job.phase_id, source=self.source.value, status=self.status.value,
            reason_code=self.reason.value if self.reason else "", reason=self.detail,
            params_json=canonical(guard.params) if guard and guard.passed else "",
            base_params_json=canonical(job.current_params),
            rationale=guard.rationale if guard else "", objective=job.config.objective.value,
            baseline_score=_text(verdict.baseline_oos) if verdict else "",
            candidate_score=_text(verdict.candidate_oos) if verdict else "",
            changes=[{"key": c.key, "old": float(c.old), "new": float(c.new)} for c in guard.changes] if guard else [],
            folds=[f.as_json() for f in verdict.folds] if verdict else [],
            model=model if self.source is Source.GEMINI else "optuna-tpe",
            prompt_tokens=call.prompt_tokens if call else 0,
            output_tokens=call.output_tokens if call else 0,
            parsed_none=call.parsed_none if call else False,
            elapsed_s=self.elapsed_s, created_ts_ns=now_ns, ts_ns=now_ns,
        )


def _text(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else ""


def new_proposal_id(phase_id: str, now_ns: int) -> str:
    return f"{phase_id}-{now_ns // 1_000_000_000}-{secrets.token_hex(3)}"


def validate(job: QuantJob, guard: GuardrailVerdict) -> tuple[Verdict | None, ReasonCode | None, str]:
    """Walk-forward validation of a guardrail-passed candidate."""
    try:
        verdict = walk_forward(job.current_params, guard.params, job.folds, job.evaluator, job.rule)
    except EvaluationError as exc:
        return None, ReasonCode.BACKTEST_FAILED, str(exc)
    return verdict, verdict.reason, verdict.detail


def judge_answer(job: QuantJob, call: ModelCall) -> tuple[GuardrailVerdict | None, Verdict | None, ReasonCode | None,
                                                          str]:
    """A model call through the guardrails, then (if it passed) through walk-forward validation."""
    if call.reason is not None:
        return None, None, call.reason, call.detail
    guard = check_proposal(job.space, job.current_params, call.answer, job.config.max_relative_step)
    if not guard.passed:
        detail = guard.detail + (" (the SDK's parsed answer was None)" if call.parsed_none else "")
        return guard, None, guard.reason, detail
    if call.parsed_none:  # our checks passed but the schema did not: refuse rather than guess
        return guard, None, ReasonCode.SCHEMA_MISMATCH, "the SDK could not validate the answer against the schema"
    verdict, reason, detail = validate(job, guard)
    return guard, verdict, reason, detail


def propose_with_model(
    job: QuantJob,
    proposer: GeminiProposer,
    summary: PerformanceSummary,
    patterns: Sequence[LossPattern],
    *,
    rounds: int = 1,
    now_ns: int,
) -> list[Outcome]:
    """``rounds`` model proposals, each prompt listing the earlier candidates' in-sample scores."""
    schema = response_model(job.space)
    current = job.space.current(job.current_params)
    earlier: list[str] = []
    outcomes = []
    for _ in range(rounds):
        started = time.monotonic()
        prompt = build_prompt(job.space, current, summary, patterns, job.config.max_relative_step, earlier)
        call = proposer.ask(prompt, schema)
        guard, verdict, reason, detail = judge_answer(job, call)
        outcomes.append(Outcome(new_proposal_id(job.phase_id, now_ns), Source.GEMINI, reason, detail, guard,
                                verdict, call, elapsed_s=time.monotonic() - started))
        if guard is not None and guard.passed:
            score = in_sample_score(job.evaluator, guard.params, job.folds)
            changes = ", ".join(f"{c.key}={c.new}" for c in guard.changes)
            earlier.append(f"{changes}: in-sample {job.config.objective.value} {score:.4g}")
    return outcomes


def propose_with_search(job: QuantJob, *, trials: int, seed: int, now_ns: int) -> Outcome:
    """The Optuna baseline's best candidate, validated like a model's."""
    result = optuna_search(job.space, job.current_params, job.folds, job.evaluator, job.rule, trials=trials,
                           seed=seed, max_relative_step=job.config.max_relative_step)
    guard, verdict = result.guardrail, result.verdict
    reason = guard.reason if verdict is None else verdict.reason
    detail = guard.detail if verdict is None else verdict.detail
    guard = GuardrailVerdict(guard.reason, guard.detail, guard.changes, guard.params,
                             f"best of {trials} TPE trials (seed {seed}) by in-sample {job.config.objective.value}")
    return Outcome(new_proposal_id(job.phase_id, now_ns), Source.OPTUNA, reason, detail, guard, verdict,
                   trials=trials, elapsed_s=result.elapsed_s)


# --- after the run: approve, reject, roll back --------------------------------------------------------


class ProposalError(RuntimeError):
    """A proposal that cannot move as asked (names it and why)."""


async def _stored(ledger: Ledger, proposal_id: str) -> ProposalRow:
    row = await ledger.proposal_record(proposal_id)
    if row is None:
        raise ProposalError(f"no proposal {proposal_id!r}")
    return row


async def approve(ledger: Ledger, proposal_id: str, target: ParamsTarget, now_ns: int,
                  *, force: bool = False) -> ParamsVersion:
    """Apply an accepted proposal to ``target``: params must still be the ones it was measured on."""
    row = await _stored(ledger, proposal_id)
    if row.status != ProposalStatus.ACCEPTED:
        raise ProposalError(f"{proposal_id} is {row.status}; only an accepted proposal (validated out of "
                            "sample) can be applied")
    current = target.read()
    if canonical(current) != row.base_params_json and not force:
        raise ProposalError(f"{target.describe()}: params changed since {proposal_id} was measured; run again "
                            "(or --force)")
    proposed = json.loads(row.params_json)
    target.write(proposed)
    version = await ledger.add_params_version(row.phase_id, row.params_json, canonical(current), proposal_id,
                                              "apply", target.describe(), now_ns)
    await ledger.set_proposal_status(proposal_id, ProposalStatus.APPLIED, "", f"applied as version "
                                     f"{version.version} to {target.describe()}", now_ns)
    return version


async def reject(ledger: Ledger, proposal_id: str, why: str, now_ns: int) -> None:
    row = await _stored(ledger, proposal_id)
    if row.status != ProposalStatus.ACCEPTED:
        raise ProposalError(f"{proposal_id} is {row.status}; only an accepted proposal waits for a decision")
    await ledger.set_proposal_status(proposal_id, ProposalStatus.REJECTED, ReasonCode.OPERATOR_REJECTED,
                                     why or "rejected by an operator", now_ns)


async def rollback(ledger: Ledger, proposal_id: str, target: ParamsTarget, now_ns: int,
                   *, force: bool = False) -> ParamsVersion:
    """Restore the params that were there before ``proposal_id`` was applied."""
    row = await _stored(ledger, proposal_id)
    if row.status != ProposalStatus.APPLIED:
        raise ProposalError(f"{proposal_id} is {row.status}; only an applied proposal can be rolled back")
    applied = [v for v in await ledger.params_versions(row.phase_id, proposal_id=proposal_id) if v.action == "apply"]
    if not applied:
        raise ProposalError(f"{proposal_id}: no applied version recorded")
    version = applied[-1]
    current = target.read()
    if canonical(current) != version.params_json and not force:
        raise ProposalError(f"{target.describe()}: params changed after {proposal_id} was applied; roll back the "
                            "newer change first (or --force)")
    target.write(json.loads(version.previous_params_json))
    restored = await ledger.add_params_version(row.phase_id, version.previous_params_json, canonical(current),
                                               proposal_id, "rollback", target.describe(), now_ns)
    await ledger.set_proposal_status(proposal_id, ProposalStatus.ROLLED_BACK, "",
                                     f"rolled back to the params before version {version.version}", now_ns)
    return restored


async def read_history(ledger: Ledger, phase_id: str, since_ns: int, limit: int
                       ) -> tuple[PerformanceSummary, list[LossPattern]]:
    """The phase's recent closing fills (with their signals' setups) summarised, and its losing patterns."""
    fills = await ledger.fills(phase_id, since_ns, limit=limit)
    orders = await ledger.orders(phase_id, since_ns=since_ns, limit=100_000)
    decisions = await ledger.decisions(phase_id, limit=limit)
    setup_of_signal = {d.signal.signal_id: d.signal.setup for d in decisions if d.signal.signal_id}
    setups = {o.client_order_id: setup_of_signal.get(o.signal_id, "") for o in orders}
    trades = trade_outcomes(fills, setups)
    refused = sum(1 for d in decisions if not d.ack.accepted)
    return PerformanceSummary.of(trades, refused), mine_losing_patterns(trades)


async def record(ledger: Ledger, job: QuantJob, outcomes: Sequence[Outcome], model: str, now_ns: int) -> None:
    for outcome in outcomes:
        await ledger.save_proposal(outcome.row(job, model, now_ns))


async def apply_if_auto(ledger: Ledger, outcomes: Sequence[Outcome], target: ParamsTarget, now_ns: int
                        ) -> ParamsVersion | None:
    """Auto mode (opt-in per TitanPhase by annotation): apply the accepted outcome with the best
    out-of-sample objective. Nothing else is ever applied without a person."""
    accepted = [o for o in outcomes if o.accepted and o.verdict is not None]
    if not accepted or not target.auto_mode():
        return None
    best = max(accepted, key=lambda o: o.verdict.candidate_oos if o.verdict else -math.inf)
    return await approve(ledger, best.proposal_id, target, now_ns)
