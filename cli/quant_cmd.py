"""`titan quant`: the AI Quant — parameter proposals judged only by walk-forward evidence.

`run` asks Gemini (or searches with Optuna) for a phase's params, validates every candidate on K
rolling out-of-sample folds of backtests and stores it with its folds in the ledger; `compare` runs
both on the same folds and prints them side by side; `list|show|approve|reject|rollback` handle the
stored proposals (approval mode is the default; auto mode is an annotation on the TitanPhase).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from titan.cli.common import settings_or_exit
from titan.cli.control_cmd import resolve
from titan.cli.up import prepare_manifests
from titan.core.config import Settings
from titan.core.ledger import Ledger
from titan.phases.ai_quant.gemini import GeminiProposer, MissingApiKey
from titan.phases.ai_quant.params import AiQuantParams, TunableError, tunable_space
from titan.phases.ai_quant.strategy import PerformanceSummary
from titan.quant.apply import ClusterTarget, FileTarget, ParamsTarget, TargetError
from titan.quant.evaluator import BacktestSetup, backtest_evaluator
from titan.quant.proposals import (
    Outcome,
    ProposalError,
    QuantJob,
    apply_if_auto,
    approve,
    propose_with_model,
    propose_with_search,
    read_history,
    record,
    reject,
    rollback,
)
from titan.quant.walkforward import NS_PER_DAY, cached, plan_folds

app = typer.Typer(help="AI Quant: params proposals, walk-forward validated, approved by people.",
                  no_args_is_help=True)
console = Console()

PHASE = typer.Option("scavenger", "--phase", help="TitanPhase name to tune")
ORGANISM = typer.Option(None, "--organism", help="folder of TitanBrain/TitanPhase YAML (default: titan up's)")
DATA = typer.Option(["sim:1"], "--data", help="market data for the backtests (files, or sim:SEED)")
DAYS = typer.Option(7.0, "--days", help="span of the walk-forward folds in days")
START = typer.Option("", "--start", help="start of the span (ISO time; default: the simulator's start)")
CLUSTER = typer.Option("", "--cluster", help="patch the TitanPhase in this Kubernetes namespace instead of a file")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, err=True, fg="red")
    return typer.Exit(code)


def _now_ns() -> int:
    return time.time_ns()


def _quant_config(organism: Path) -> AiQuantParams:
    """The ai-quant TitanPhase's params in the organism folder, or the defaults."""
    for path in sorted(organism.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "TitanPhase" and \
                    (doc.get("spec") or {}).get("phase") == "ai-quant":
                return AiQuantParams.model_validate((doc.get("spec") or {}).get("params") or {})
    return AiQuantParams()


def _start_ns(start: str, data: list[str]) -> int:
    if start:
        return int(datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp() * 1e9)
    if all(d.startswith("sim:") for d in data):
        from titan.core.marketdata.sim import DEFAULT_START_NS

        return DEFAULT_START_NS
    raise _fail("--start is required with market files (the span the folds cover)")


def _job(settings: Settings, phase: str, organism: Path | None, data: list[str], days: float, start: str
         ) -> tuple[QuantJob, FileTarget]:
    folder = prepare_manifests(settings.data_dir, organism)
    target = FileTarget(folder, phase)
    try:
        config = _quant_config(folder)
        space = tunable_space(target.phase_kind())
        current = target.read()
    except (TargetError, TunableError, ValueError) as exc:
        raise _fail(str(exc)) from None
    t0 = _start_ns(start, data)
    folds = plan_folds(t0, t0 + int(days * NS_PER_DAY), config.folds, config.train_fraction)
    evaluator = cached(backtest_evaluator(BacktestSetup(tuple(data), phase, config.objective, folder)))
    return QuantJob(phase, space, current, config, folds, evaluator), target


def _proposer(settings: Settings, config: AiQuantParams) -> GeminiProposer:
    try:
        return GeminiProposer(settings.gemini_api_key.get_secret_value(), config, settings.gemini_base_url)
    except MissingApiKey as exc:
        raise _fail(str(exc)) from None


async def _history(settings: Settings, phase: str, config: AiQuantParams) -> tuple[PerformanceSummary, list[Any]]:
    dsn, _, _ = resolve(settings)
    if not dsn:
        return PerformanceSummary(0, 0, 0, 0), []  # type: ignore[arg-type]
    ledger = await Ledger.open(dsn)
    try:
        return await read_history(ledger, phase, _now_ns() - config.lookback_days * NS_PER_DAY, config.max_trades)
    finally:
        await ledger.close()


async def _with_ledger(settings: Settings, work: Any) -> Any:
    dsn, _, _ = resolve(settings)
    if not dsn:
        raise _fail("no ledger: set TITAN_PG_DSN or start `titan infra up` / `titan up`")
    ledger = await Ledger.open(dsn)
    try:
        return await work(ledger)
    finally:
        await ledger.close()


def _outcome_line(o: Outcome) -> str:
    changes = ", ".join(f"{c.key} {c.old}→{c.new}" for c in (o.guardrail.changes if o.guardrail else ()))
    state = "ACCEPTED" if o.accepted else f"rejected ({o.reason})"
    return f"{o.proposal_id} [{o.source}] {state}: {o.detail}" + (f"\n    {changes}" if changes else "")


@app.command("run")
def run(phase: str = PHASE, organism: Path | None = ORGANISM, data: list[str] = DATA, days: float = DAYS,
        start: str = START,
        search: str = typer.Option("gemini", "--search", help="gemini (needs a key) or optuna"),
        rounds: int = typer.Option(1, "--rounds", min=1, max=10, help="Gemini proposals in this run"),
        trials: int = typer.Option(0, "--trials", min=0, help="Optuna trials (0: the ai-quant params' value)"),
        seed: int = typer.Option(7, "--seed")) -> None:
    """Propose params for a phase, validate them walk-forward, and store every outcome in the ledger."""
    settings = settings_or_exit()
    job, target = _job(settings, phase, organism, data, days, start)
    now = _now_ns()
    if search == "gemini":
        proposer = _proposer(settings, job.config)
        summary, patterns = asyncio.run(_history(settings, phase, job.config))
        try:
            outcomes = propose_with_model(job, proposer, summary, patterns, rounds=rounds, now_ns=now)
        finally:
            proposer.close()
    elif search == "optuna":
        outcomes = [propose_with_search(job, trials=trials or job.config.optuna_trials, seed=seed, now_ns=now)]
    else:
        raise _fail("--search must be gemini or optuna")

    async def store(ledger: Ledger) -> Any:
        await record(ledger, job, outcomes, job.config.model, now)
        return await apply_if_auto(ledger, outcomes, target, _now_ns())

    applied = asyncio.run(_with_ledger(settings, store))
    for outcome in outcomes:
        typer.echo(_outcome_line(outcome))
    if applied is not None:
        typer.echo(f"auto mode: applied {applied.proposal_id} as version {applied.version} ({applied.target})")


def _fmt(value: float, pct: bool = False) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:.2%}" if pct else f"{value:.3f}"


def comparison_table(gemini: list[Outcome], optuna: Outcome, objective: str) -> tuple[Table, bool]:
    """Side by side: trials, best OOS objective, its drawdown, time, tokens; and whether Gemini wins."""
    def best(outcomes: list[Outcome]) -> float:
        values = [o.verdict.candidate_oos for o in outcomes if o.verdict is not None and o.accepted]
        return max(values, default=-math.inf)

    table = Table(title=f"Gemini vs Optuna on the same folds (out-of-sample {objective})")
    for column in ("", "trials", f"best OOS {objective}", "accepted", "max drawdown", "baseline OOS", "time",
                   "tokens"):
        table.add_column(column, justify="right")
    rows = (("gemini", gemini), ("optuna", [optuna]))
    for name, outcomes in rows:
        judged = [o for o in outcomes if o.verdict is not None]
        top = max(judged, key=lambda o: o.verdict.candidate_oos if o.verdict else -math.inf, default=None)
        tokens = sum(o.call.total_tokens for o in outcomes if o.call)
        trials = sum(o.trials for o in outcomes)
        table.add_row(
            name, str(trials), _fmt(best(outcomes)), f"{sum(o.accepted for o in outcomes)}/{len(outcomes)}",
            _fmt(top.verdict.candidate_drawdown, pct=True) if top and top.verdict else "–",
            _fmt(top.verdict.baseline_oos) if top and top.verdict else "–",
            f"{sum(o.elapsed_s for o in outcomes):.1f}s", str(tokens),
        )
    return table, best(gemini) > best([optuna])


@app.command("compare")
def compare(phase: str = PHASE, organism: Path | None = ORGANISM, data: list[str] = DATA, days: float = DAYS,
            start: str = START, rounds: int = typer.Option(3, "--rounds", min=1, max=10),
            trials: int = typer.Option(0, "--trials", min=0), seed: int = typer.Option(7, "--seed")) -> None:
    """Gemini and the Optuna baseline on the same folds, side by side (nothing is stored or applied)."""
    settings = settings_or_exit()
    job, _ = _job(settings, phase, organism, data, days, start)
    proposer = _proposer(settings, job.config)
    summary, patterns = asyncio.run(_history(settings, phase, job.config))
    now = _now_ns()
    try:
        gemini = propose_with_model(job, proposer, summary, patterns, rounds=rounds, now_ns=now)
    finally:
        proposer.close()
    optuna = propose_with_search(job, trials=trials or job.config.optuna_trials, seed=seed, now_ns=now)
    table, gemini_wins = comparison_table(gemini, optuna, job.config.objective.value)
    console.print(table)
    for outcome in [*gemini, optuna]:
        console.print(_outcome_line(outcome), markup=False)
    console.print("Gemini beats the Optuna baseline." if gemini_wins else
                  "Gemini does NOT beat the Optuna baseline: it is not worth its cost on this evidence.")


@app.command("list")
def list_(phase: str | None = typer.Option(None, "--phase"),
          status: str | None = typer.Option(None, "--status", help="accepted | rejected | applied | rolled_back")
          ) -> None:
    """Stored proposals, newest first."""
    settings = settings_or_exit()
    rows = asyncio.run(_with_ledger(settings, lambda led: led.proposal_records(phase, status=status)))
    table = Table()
    for column in ("id", "phase", "source", "status", "reason", "objective", "baseline", "candidate", "changes"):
        table.add_column(column)
    for row in rows:
        changes = ", ".join(f"{c['key']}={c['new']:g}" for c in row.changes)
        table.add_row(row.proposal_id, row.phase_id, row.source, row.status, row.reason_code, row.objective,
                      row.baseline_score, row.candidate_score, changes)
    console.print(table)


@app.command("show")
def show(proposal_id: str) -> None:
    """One proposal with its rationale and every fold's numbers (JSON)."""
    settings = settings_or_exit()
    row = asyncio.run(_with_ledger(settings, lambda led: led.proposal_record(proposal_id)))
    if row is None:
        raise _fail(f"no proposal {proposal_id!r}", 1)
    typer.echo(json.dumps({**row.__dict__, "changes": list(row.changes), "folds": list(row.folds)}, indent=2))


def _target(settings: Settings, phase_id: str, organism: Path | None, cluster: str) -> ParamsTarget:
    if cluster:
        try:
            return ClusterTarget.in_cluster(cluster, phase_id)
        except (TargetError, OSError) as exc:
            raise _fail(str(exc)) from None
    return FileTarget(prepare_manifests(settings.data_dir, organism), phase_id)


def _move(proposal_id: str, organism: Path | None, cluster: str, force: bool, action: Any) -> None:
    settings = settings_or_exit()

    async def go(ledger: Ledger) -> Any:
        row = await ledger.proposal_record(proposal_id)
        if row is None:
            raise ProposalError(f"no proposal {proposal_id!r}")
        return await action(ledger, proposal_id, _target(settings, row.phase_id, organism, cluster), _now_ns(),
                            force=force)

    try:
        version = asyncio.run(_with_ledger(settings, go))
    except (ProposalError, TargetError) as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"{proposal_id}: {version.action} → {version.phase_id} params version {version.version} "
               f"({version.target}); the phase reloads them without a restart")


FORCE = typer.Option(False, "--force", help="even if the params changed since")


@app.command("approve")
def approve_cmd(proposal_id: str, organism: Path | None = ORGANISM, cluster: str = CLUSTER,
                force: bool = FORCE) -> None:
    """Apply an accepted proposal (TitanPhase YAML of `titan up`, or --cluster NAMESPACE)."""
    _move(proposal_id, organism, cluster, force, approve)


@app.command("rollback")
def rollback_cmd(proposal_id: str, organism: Path | None = ORGANISM, cluster: str = CLUSTER,
                 force: bool = FORCE) -> None:
    """Restore the params that were there before an applied proposal."""
    _move(proposal_id, organism, cluster, force, rollback)


@app.command("reject")
def reject_cmd(proposal_id: str, why: str = typer.Option("", "--why")) -> None:
    """Decline an accepted proposal."""
    settings = settings_or_exit()
    try:
        asyncio.run(_with_ledger(settings, lambda led: reject(led, proposal_id, why, _now_ns())))
    except ProposalError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"{proposal_id}: rejected")
