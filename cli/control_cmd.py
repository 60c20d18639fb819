"""`titan status`, `titan halt`, `titan resume`: look at and steer a running organism.

The kill switch is the TitanBrain's `spec.tradingState`. Each command is written once against
:class:`titan.cli.organism.OrganismControl`: locally (the default) that is the TitanBrain file
`titan up` runs from, plus a direct signed SetTradingState to execution on `halt`; with
`--kube-context` and/or `--namespace` (or TITAN_KUBE_CONTEXT / TITAN_KUBE_NAMESPACE) it is the
TitanBrain and TitanPhase resources in that cluster, and `halt` returns once every TitanPhase's status
shows the halt. Failures print one line saying what is wrong and what to do, and exit 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from titan.cli.organism import ACTIVE, HALTED, ControlError, Note, OrganismControl, Where, open_organism
from titan.cli.organism_local import resolve
from titan.operator.kube import KubeError

__all__ = ["halt", "resolve", "resume", "status"]

KUBE_CONTEXT = typer.Option("", "--kube-context", envvar="TITAN_KUBE_CONTEXT",
                            help="kubeconfig context of the cluster the organism runs in (default: local)")
NAMESPACE = typer.Option("", "--namespace", "-n", envvar="TITAN_KUBE_NAMESPACE",
                         help="Kubernetes namespace of the organism (default: the context's; implies a cluster)")


@contextmanager
def organism_at(where: Where) -> Iterator[OrganismControl]:
    """The organism, with every expected failure turned into one red line and exit code 1."""
    organism: OrganismControl | None = None
    try:
        organism = open_organism(where)
        yield organism
    except (ControlError, KubeError) as err:
        typer.secho(str(err), err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    finally:
        if organism is not None:
            organism.close()


def _note(note: Note) -> None:
    if note.warning:
        typer.secho(note.text, err=True, fg=typer.colors.YELLOW)
    else:
        typer.echo(note.text)


def _switch(where: Where, mode: str, reason: str, timeout_s: float) -> None:
    with organism_at(where) as organism:
        switched = organism.switch(mode, reason)
        typer.echo(f"{switched.target}: tradingState {switched.old} -> {mode}")
        if not switched.live:
            typer.echo("no running organism found: the change applies at the next `titan up`")
        elif mode == HALTED:
            for note in organism.confirm_halt(reason, timeout_s):
                _note(note)
        else:
            typer.echo("the Brain publishes the new trading state at its next decision (seconds)")


def halt(
    reason: str = typer.Option("manual halt", "--reason", help="recorded with the state change"),
    timeout: float = typer.Option(60.0, "--timeout", help="seconds to wait for every phase to show the halt"),
    kube_context: str = KUBE_CONTEXT,
    namespace: str = NAMESPACE,
) -> None:
    """Flip the kill switch: no new entries anywhere (open orders are canceled)."""
    _switch(Where(kube_context, namespace), HALTED, reason, timeout)


def resume(kube_context: str = KUBE_CONTEXT, namespace: str = NAMESPACE) -> None:
    """Release the kill switch (tradingState Active). A tripped HARD breaker still needs its reset."""
    _switch(Where(kube_context, namespace), ACTIVE, "manual resume", 0)


def status(
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    kube_context: str = KUBE_CONTEXT,
    namespace: str = NAMESPACE,
) -> None:
    """The organism's state: locally from the ledger and NATS KV; in a cluster from the TitanBrain and
    TitanPhase statuses."""
    with organism_at(Where(kube_context, namespace)) as organism:
        data = organism.status()
    if data.get("note"):
        typer.secho(data["note"], err=True, fg=typer.colors.YELLOW)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    _render(data)


def _render(data: dict[str, Any]) -> None:
    console = Console()
    eq = data.get("equity")
    running = data.get("running")
    console.print(f"[bold]equity[/] {Decimal(eq):,.2f}" if eq else "[bold]equity[/] -",
                  f"  trading [bold]{data.get('trading_state') or '-'}[/]",
                  f"  fills {data.get('fills', '-')}", f"  running {'yes' if running else 'no'}")
    if "cluster" in data:
        where = data["cluster"]
        console.print(f"TitanBrain {where['namespace']}/{where['brain']} ({where['context']}): kill switch "
                      f"[bold]{data['kill_switch']}[/], risk {data.get('risk_state') or '-'}, breaker "
                      f"{data.get('breaker') or '-'}, drawdown {data.get('drawdown') or '-'}, last decision "
                      f"{data.get('last_decision') or '-'}")
    table = Table("phase", "state", "weight", "notional", "lev", "budget expires (s)", title="Allocation")
    budgets = data.get("budgets", {})
    for phase, a in sorted(data.get("allocations", {}).items()):
        table.add_row(phase, a["state"], a["weight"], a["notional"], a["leverage"],
                      str(budgets.get(phase, {}).get("expires_in_s", "-")))
    console.print(table)
    if data.get("positions"):
        pos = Table("phase", "symbol", "qty", "entry", "uPnL", title="Positions")
        for p in data["positions"]:
            pos.add_row(p["phase"], p["symbol"], p["qty"], p["entry"], p["upnl"])
        console.print(pos)
