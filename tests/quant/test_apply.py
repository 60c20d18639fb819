"""Approve → the organism's TitanPhase YAML changes (comments kept) and a params version is stored;
rollback restores the previous params byte for byte; stale or unvalidated proposals never apply.
Real PostgreSQL (the ledger fixture)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.quant.synthetic import T0, days, regime_evaluator
from titan.core.ledger import Ledger
from titan.phases.ai_quant.params import AUTO_MODE_ANNOTATION, AiQuantParams, tunable_space
from titan.phases.ai_quant.strategy import ReasonCode, check_proposal
from titan.quant.apply import FileTarget, patch_params_text
from titan.quant.proposals import (
    Outcome,
    ProposalError,
    ProposalStatus,
    QuantJob,
    Source,
    apply_if_auto,
    approve,
    record,
    reject,
    rollback,
    validate,
)
from titan.quant.walkforward import cached, plan_folds

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"
CONFIG = AiQuantParams(folds=3, min_improved_folds=2, max_drawdown_worsening=0.5)


@pytest.fixture
def organism(tmp_path: Path) -> Path:
    target = tmp_path / "organism"
    shutil.copytree(SAMPLES, target)
    return target


def outcome_for(organism: Path, stop: float, proposal_id: str) -> tuple[QuantJob, Outcome]:
    target = FileTarget(organism, "scavenger")
    job = QuantJob("scavenger", tunable_space("scavenger"), target.read(), CONFIG,
                   plan_folds(T0, T0 + days(30), 3, 0.6), cached(regime_evaluator(lambda day: 0.013)))
    guard = check_proposal(job.space, job.current_params, {"params": {"stopLossPercent": stop}, "rationale": "r"},
                           0.5)
    verdict, reason, detail = validate(job, guard)
    return job, Outcome(proposal_id, Source.GEMINI, reason, detail, guard, verdict)


async def test_approve_patches_the_yaml_and_rollback_restores_it(ledger: Ledger, organism: Path) -> None:
    phase_file = organism / "titanphase-scavenger.yaml"
    original = phase_file.read_text()
    job, outcome = outcome_for(organism, 0.013, "p-approve")
    assert outcome.accepted, outcome.detail
    await record(ledger, job, [outcome], "gemini-test", T0)
    stored = await ledger.proposal_record("p-approve")
    assert stored is not None and stored.status == ProposalStatus.ACCEPTED
    assert len(stored.folds) == 3 and {"baseline_test", "candidate_test", "improved"} <= set(stored.folds[0])

    target = FileTarget(organism, "scavenger")
    version = await approve(ledger, "p-approve", target, T0 + 1)
    assert version.version >= 1 and version.action == "apply"
    assert target.read()["stopLossPercent"] == 0.013
    text = phase_file.read_text()
    assert "stopLossPercent: 0.013" in text
    assert "# ... within 100 ms ..." in text                         # comments and other lines kept
    assert text.replace("0.013", "0.01", 1) == original
    assert (await ledger.proposal_record("p-approve")).status == ProposalStatus.APPLIED  # type: ignore[union-attr]
    with pytest.raises(ProposalError, match="only an accepted"):
        await approve(ledger, "p-approve", target, T0 + 2)

    restored = await rollback(ledger, "p-approve", target, T0 + 3)
    assert restored.action == "rollback" and restored.version == version.version + 1
    assert phase_file.read_text() == original
    assert (await ledger.proposal_record("p-approve")).status == ProposalStatus.ROLLED_BACK  # type: ignore[union-attr]


async def test_stale_unvalidated_and_declined_proposals_never_apply(ledger: Ledger, organism: Path) -> None:
    target = FileTarget(organism, "scavenger")
    job, outcome = outcome_for(organism, 0.013, "p-stale")
    await record(ledger, job, [outcome], "gemini-test", T0)
    target.write({**target.read(), "minTradesInWindow": 40})       # someone changed the params since
    with pytest.raises(ProposalError, match="params changed"):
        await approve(ledger, "p-stale", target, T0 + 1)
    assert target.read()["stopLossPercent"] == 0.01

    job, overfit = outcome_for(organism, 0.0051, "p-bad")           # far from the market's best: not better OOS
    assert overfit.reason is ReasonCode.NOT_ENOUGH_FOLDS
    await record(ledger, job, [overfit], "gemini-test", T0)
    with pytest.raises(ProposalError, match="is rejected"):
        await approve(ledger, "p-bad", target, T0 + 1)

    job, good = outcome_for(organism, 0.013, "p-declined")
    await record(ledger, job, [good], "gemini-test", T0)
    await reject(ledger, "p-declined", "not now", T0 + 1)
    row = await ledger.proposal_record("p-declined")
    assert row is not None and row.status == "rejected" and row.reason_code == ReasonCode.OPERATOR_REJECTED
    with pytest.raises(ProposalError):
        await approve(ledger, "p-declined", target, T0 + 2)


async def test_auto_mode_is_opt_in_per_titanphase(ledger: Ledger, organism: Path) -> None:
    target = FileTarget(organism, "scavenger")
    job, outcome = outcome_for(organism, 0.013, "p-auto-off")
    await record(ledger, job, [outcome], "gemini-test", T0)
    assert await apply_if_auto(ledger, [outcome], target, T0 + 1) is None
    assert target.read()["stopLossPercent"] == 0.01

    phase_file = organism / "titanphase-scavenger.yaml"
    phase_file.write_text(phase_file.read_text().replace(
        "  name: scavenger\n", f"  name: scavenger\n  annotations:\n    {AUTO_MODE_ANNOTATION}: auto\n"))
    job, outcome = outcome_for(organism, 0.013, "p-auto-on")
    await record(ledger, job, [outcome], "gemini-test", T0)
    version = await apply_if_auto(ledger, [outcome], target, T0 + 1)
    assert version is not None and version.proposal_id == "p-auto-on"
    assert target.read()["stopLossPercent"] == 0.013


def test_patch_adds_a_missing_key_and_keeps_flow_neighbours() -> None:
    text = "kind: TitanPhase\nspec:\n  phase: scavenger\n  params:\n    a: 1   # keep\n    b: [x, y]\n  resources: {}\n"
    patched = patch_params_text(text, {"a": 2, "c": 0.5})
    assert patched == ("kind: TitanPhase\nspec:\n  phase: scavenger\n  params:\n    a: 2   # keep\n    b: [x, y]\n"
                       "    c: 0.5\n  resources: {}\n")
