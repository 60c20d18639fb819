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
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from titan.cli.common import settings_or_exit
from titan.cli.control_cmd import KUBE_CONTEXT, NAMESPACE, resolve
from titan.cli.organism import Where
from titan.cli.quant_nightly import nightly
from titan.cli.up import prepare_manifests
from titan.core.config import Settings
from titan.core.ledger import Ledger
from titan.operator.kube import KubeError
from titan.phases.ai_quant.gemini import GeminiProposer, MissingApiKey
from titan.phases.ai_quant.params import AiQuantParams, TunableError, tunable_space
from titan.phases.ai_quant.strategy import PerformanceSummary
from titan.quant.apply import ClusterTarget, FileTarget, ParamsTarget, TargetError, export_organism
from titan.quant.evaluator import BacktestSetup, backtest_evaluator
from titan.quant.market import SimulatedSpan
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


SIM_EVERY = typer.Option(6.0, "--stop-run-every", min=0.0,
                         help="simulator: a scripted stop-run every this many hours (0: only natural ones)")
FULL_TAPE = typer.Option(False, "--full-tape", help="simulator: the default trade/quote density (much slower)")
FOLDS = typer.Option(0, "--folds", min=0, help="walk-forward folds K (0: the ai-quant params' value)")
OBJECTIVE = typer.Option("", "--objective", help="sharpe, sortino or calmar (default: the ai-quant params')")
MIN_IMPROVED = typer.Option(0, "--min-improved", min=0,
                            help="m of K out-of-sample folds that must improve (0: the params' value, at most K)")


@dataclass(frozen=True)
class WalkForwardPlan:
    """How the span is cut and simulated (command-line overrides of the ai-quant params)."""

    days: float = 7.0
    start: str = ""
    folds: int = 0
    min_improved: int = 0
    stop_run_every_h: float = 6.0
    full_tape: bool = False
    objective: str = ""

    def config(self, base: AiQuantParams) -> AiQuantParams:
        folds = self.folds or base.folds
        wanted = self.min_improved or min(base.min_improved_folds, folds)
        changes = {"folds": folds, "min_improved_folds": wanted, "objective": self.objective or base.objective}
        try:
            return AiQuantParams.model_validate({**base.model_dump(), **changes})
        except ValueError as exc:
            raise _fail(f"--folds/--min-improved/--objective: {str(exc).splitlines()[-1].strip()}") from None


def _sim_seed(data: list[str]) -> int | None:
    if len(data) != 1 or not (data[0] == "sim" or data[0].startswith("sim:")):
        return None
    try:
        return int(data[0].partition(":")[2] or 1)
    except ValueError:
        raise _fail(f"{data[0]}: the simulator's seed must be an integer") from None


@contextmanager
def _organism(settings: Settings, phase: str, organism: Path | None, where: Where
              ) -> Iterator[tuple[Path, ParamsTarget]]:
    """The organism to backtest and where the phase's params live: `titan up`'s folder, or (with a
    kube context/namespace) the cluster's TitanBrain/TitanPhases exported to a temporary folder."""
    if not where.cluster:
        folder = prepare_manifests(settings.data_dir, organism)
        yield folder, FileTarget(folder, phase)
        return
    try:
        with _target(settings, phase, None, where) as target, tempfile.TemporaryDirectory() as tmp:
            assert isinstance(target, ClusterTarget)
            yield export_organism(target.kube, target.namespace, Path(tmp)), target
    except (TargetError, KubeError) as exc:
        raise _fail(str(exc), 1) from None


def _job(phase: str, folder: Path, target: ParamsTarget, data: list[str], plan: WalkForwardPlan
         ) -> tuple[QuantJob, str]:
    try:
        config = plan.config(_quant_config(folder))
        space = tunable_space(target.phase_kind())
        current = target.read()
    except (TargetError, TunableError, ValueError) as exc:
        raise _fail(str(exc)) from None
    t0 = _start_ns(plan.start, data)
    t1 = t0 + int(plan.days * NS_PER_DAY)
    try:
        folds = plan_folds(t0, t1, config.folds, config.train_fraction)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    seed = _sim_seed(data)
    span = None
    if seed is not None:
        symbols = tuple(str(s) for s in current.get("symbols") or ("BTCUSDT",))
        span = SimulatedSpan(seed, t0, t1, symbols, plan.stop_run_every_h, quiet=not plan.full_tape)
    setup = BacktestSetup(tuple(data), phase, config.objective, folder, span=span)
    described = span.describe() if span else ", ".join(data)
    return QuantJob(phase, space, current, config, folds, cached(backtest_evaluator(setup))), described


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


app.command("nightly", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(nightly)


@app.command("run")
def run(phase: str = PHASE, organism: Path | None = ORGANISM, data: list[str] = DATA, days: float = DAYS,
        start: str = START,
        search: str = typer.Option("gemini", "--search", help="gemini (needs a key) or optuna"),
        rounds: int = typer.Option(1, "--rounds", min=1, max=10, help="Gemini proposals in this run"),
        trials: int = typer.Option(0, "--trials", min=0, help="Optuna trials (0: the ai-quant params' value)"),
        seed: int = typer.Option(7, "--seed"), folds: int = FOLDS, min_improved: int = MIN_IMPROVED,
        stop_run_every: float = SIM_EVERY, full_tape: bool = FULL_TAPE, objective: str = OBJECTIVE,
        kube_context: str = KUBE_CONTEXT, namespace: str = NAMESPACE) -> None:
    """Propose params for a phase, validate them walk-forward, and store every outcome in the ledger
    (with a kube context/namespace: the cluster's organism, and auto mode patches its TitanPhase)."""
    settings = settings_or_exit()
    plan = WalkForwardPlan(days, start, folds, min_improved, stop_run_every, full_tape, objective)
    with _organism(settings, phase, organism, Where(kube_context, namespace)) as (folder, target):
        _run(settings, phase, folder, target, data, plan, search, rounds, trials, seed)


def _run(settings: Settings, phase: str, folder: Path, target: ParamsTarget, data: list[str], plan: WalkForwardPlan,
         search: str, rounds: int, trials: int, seed: int) -> None:
    job, _ = _job(phase, folder, target, data, plan)
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

    try:
        applied = asyncio.run(_with_ledger(settings, store))
    except (ProposalError, TargetError, KubeError) as exc:
        raise _fail(str(exc), 1) from None
    for outcome in outcomes:
        typer.echo(_outcome_line(outcome))
    if applied is not None:
        typer.echo(f"auto mode: applied {applied.proposal_id} as version {applied.version} ({applied.target})")


def _fmt(value: float, pct: bool = False) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:.2%}" if pct else f"{value:.3f}"


@dataclass(frozen=True)
class Contender:
    """One side of the comparison, summarised from its outcomes."""

    name: str
    outcomes: tuple[Outcome, ...]

    @property
    def best(self) -> Outcome | None:
        """The accepted outcome with the best out-of-sample objective (None: nothing was accepted)."""
        accepted = [o for o in self.outcomes if o.accepted and o.verdict is not None]
        return max(accepted, key=lambda o: o.verdict.candidate_oos if o.verdict else -math.inf, default=None)

    @property
    def best_oos(self) -> float:
        best = self.best
        return best.verdict.candidate_oos if best and best.verdict else -math.inf

    def row(self) -> tuple[str, ...]:
        best = self.best
        return (
            self.name, str(sum(o.trials for o in self.outcomes)),
            f"{sum(o.accepted for o in self.outcomes)}/{len(self.outcomes)}",
            _fmt(self.best_oos), _fmt(best.verdict.candidate_drawdown, pct=True) if best and best.verdict else "–",
            f"{sum(o.elapsed_s for o in self.outcomes):.1f}s",
            str(sum(o.call.total_tokens for o in self.outcomes if o.call)),
        )


COMPARE_COLUMNS = ("", "trials", "accepted", "best OOS {objective}", "max drawdown", "time", "tokens")


def comparison_table(gemini: list[Outcome], optuna: Outcome, baseline: BaselineScore, objective: str
                     ) -> tuple[Table, bool]:
    """Side by side: trials, accepted proposals, best out-of-sample objective of an accepted one and
    its worst out-of-sample drawdown, time, tokens; the current params' row for reference. Gemini
    beats the baseline only with an accepted proposal whose out-of-sample objective is higher than
    every accepted Optuna proposal's (no accepted proposal counts as minus infinity)."""
    table = Table(title=f"Gemini vs Optuna on the same folds (out-of-sample {objective}, after fees and funding)")
    for column in COMPARE_COLUMNS:
        table.add_column(column.format(objective=objective), justify="right")
    model, search = Contender("gemini", tuple(gemini)), Contender("optuna", (optuna,))
    table.add_row(*model.row())
    table.add_row(*search.row())
    table.add_row("current params", "–", "–", _fmt(baseline.oos), _fmt(baseline.drawdown, pct=True),
                  f"{baseline.elapsed_s:.1f}s", "0")
    return table, model.best_oos > search.best_oos


@dataclass(frozen=True)
class BaselineScore:
    oos: float
    drawdown: float
    elapsed_s: float
    failed: str


def score_baseline(job: QuantJob) -> BaselineScore:
    """The current params on every window, first, so neither contender's time includes them."""
    started = time.monotonic()
    tests = [job.evaluator(job.current_params, fold.test) for fold in job.folds]
    for fold in job.folds:
        job.evaluator(job.current_params, fold.train)
    objectives = [t.objective for t in tests if math.isfinite(t.objective) and not t.error]
    drawdowns = [t.max_drawdown for t in tests if math.isfinite(t.max_drawdown)]
    return BaselineScore(sum(objectives) / len(objectives) if objectives else math.nan,
                         max(drawdowns) if drawdowns else math.nan, time.monotonic() - started,
                         next((t.error for t in tests if t.error), ""))


@app.command("compare")
def compare(phase: str = PHASE, organism: Path | None = ORGANISM, data: list[str] = DATA, days: float = DAYS,
            start: str = START, rounds: int = typer.Option(2, "--rounds", min=1, max=10, help="Gemini proposals"),
            trials: int = typer.Option(4, "--trials", min=1, help="Optuna trials"),
            seed: int = typer.Option(7, "--seed"),
            folds: int = typer.Option(2, "--folds", min=2, help="walk-forward folds K"),
            min_improved: int = MIN_IMPROVED, stop_run_every: float = SIM_EVERY, full_tape: bool = FULL_TAPE,
            objective: str = OBJECTIVE) -> None:
    """Gemini and the Optuna baseline on the same folds, side by side (nothing is stored or applied)."""
    settings = settings_or_exit()
    plan = WalkForwardPlan(days, start, folds, min_improved, stop_run_every, full_tape, objective)
    folder = prepare_manifests(settings.data_dir, organism)
    job, described = _job(phase, folder, FileTarget(folder, phase), data, plan)
    proposer = _proposer(settings, job.config)
    console.print(f"{phase} on {described}: {days:g} days, {len(job.folds)} folds "
                  f"(m={job.config.min_improved_folds}), {rounds} Gemini rounds, {trials} Optuna trials",
                  markup=False)
    baseline = score_baseline(job)
    if baseline.failed:
        proposer.close()
        raise _fail(f"the current params cannot be backtested: {baseline.failed}", 1)
    summary, patterns = asyncio.run(_history(settings, phase, job.config))
    now = _now_ns()
    try:
        gemini = propose_with_model(job, proposer, summary, patterns, rounds=rounds, now_ns=now)
    finally:
        proposer.close()
    optuna = propose_with_search(job, trials=trials, seed=seed, now_ns=now)
    table, gemini_wins = comparison_table(gemini, optuna, baseline, job.config.objective.value)
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


@contextmanager
def _target(settings: Settings, phase_id: str, organism: Path | None, where: Where) -> Iterator[ParamsTarget]:
    """The TitanPhase YAML of `titan up`'s organism, or with a kube context/namespace the TitanPhase
    in that cluster (the operator's client configuration, as `titan status|halt|resume`)."""
    if not where.cluster:
        yield FileTarget(prepare_manifests(settings.data_dir, organism), phase_id)
        return
    target = ClusterTarget.connect(phase_id, context=where.kube_context, namespace=where.namespace)
    try:
        yield target
    finally:
        target.close()


def _move(proposal_id: str, organism: Path | None, where: Where, force: bool, action: Any) -> None:
    settings = settings_or_exit()

    async def go(ledger: Ledger) -> Any:
        row = await ledger.proposal_record(proposal_id)
        if row is None:
            raise ProposalError(f"no proposal {proposal_id!r}")
        with _target(settings, row.phase_id, organism, where) as target:
            return await action(ledger, proposal_id, target, _now_ns(), force=force)

    try:
        version = asyncio.run(_with_ledger(settings, go))
    except (ProposalError, TargetError, KubeError) as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"{proposal_id}: {version.action} → {version.phase_id} params version {version.version} "
               f"({version.target}); the phase reloads them without a restart")


FORCE = typer.Option(False, "--force", help="even if the params changed since")


@app.command("approve")
def approve_cmd(proposal_id: str, organism: Path | None = ORGANISM, kube_context: str = KUBE_CONTEXT,
                namespace: str = NAMESPACE, force: bool = FORCE) -> None:
    """Apply an accepted proposal (the TitanPhase YAML of `titan up`, or the TitanPhase in a cluster)."""
    _move(proposal_id, organism, Where(kube_context, namespace), force, approve)


@app.command("rollback")
def rollback_cmd(proposal_id: str, organism: Path | None = ORGANISM, kube_context: str = KUBE_CONTEXT,
                 namespace: str = NAMESPACE, force: bool = FORCE) -> None:
    """Restore the params that were there before an applied proposal."""
    _move(proposal_id, organism, Where(kube_context, namespace), force, rollback)


@app.command("reject")
def reject_cmd(proposal_id: str, why: str = typer.Option("", "--why"), kube_context: str = KUBE_CONTEXT,
               namespace: str = NAMESPACE) -> None:
    """Decline an accepted proposal (only the ledger changes; with a kube context/namespace the
    proposal's TitanPhase must exist there, so a typo in the cluster is caught)."""
    settings = settings_or_exit()
    where = Where(kube_context, namespace)
    if where.cluster:
        row = asyncio.run(_with_ledger(settings, lambda led: led.proposal_record(proposal_id)))
        if row is None:
            raise _fail(f"no proposal {proposal_id!r}", 1)
        try:
            with _target(settings, row.phase_id, None, where) as target:
                target.read()
        except (TargetError, KubeError) as exc:
            raise _fail(str(exc), 1) from None
    try:
        asyncio.run(_with_ledger(settings, lambda led: reject(led, proposal_id, why, _now_ns())))
    except ProposalError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"{proposal_id}: rejected")
