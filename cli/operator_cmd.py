"""`titan operator`: the Brain as a kopf operator (`run`) or driven from YAML files (`local`)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import typer

from titan.core.logging import setup_logging
from titan.core.service import stacks_on_request

app = typer.Typer(help="The Brain: allocation, risk and breakers (kopf operator or local driver).",
                  no_args_is_help=True)

DEFAULT_SAMPLES = Path("crds/samples")


@app.command("run")
def run(
    namespace: list[str] = typer.Option([], "--namespace", "-n", envvar="TITAN_OPERATOR_NAMESPACE",
                                        help="namespace(s) to serve (exact names)"),
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", envvar="TITAN_OPERATOR_CLUSTERWIDE",
                                        help="serve the whole cluster"),
    standalone: bool = typer.Option(False, help="no peering (a single replica without coordination)"),
    peering: str = typer.Option("titan-brain", envvar="TITAN_OPERATOR_PEERING",
                                help="kopf peering name: one active replica at a time"),
    priority: int = typer.Option(0, help="peering priority of this replica"),
    liveness: str = typer.Option("http://0.0.0.0:8080/healthz", help="liveness endpoint ('' = none)"),
    interval: float = typer.Option(10.0, help="seconds between decisions (< the budget TTL)"),
    kube_context: str = typer.Option("", "--kube-context", envvar="TITAN_KUBE_CONTEXT",
                                     help="kubeconfig context (default: in-cluster service account, else the "
                                          "current context)"),
) -> None:
    """Run the kopf operator reconciling TitanPhase and TitanBrain (NATS from TITAN_NATS_URL)."""
    import kopf

    from titan.operator.kopf_app import OperatorConfig, build_registry

    if not namespace and not all_namespaces:
        typer.secho("give --namespace NS (one organism per operator) or --all-namespaces", err=True,
                    fg=typer.colors.RED)
        raise typer.Exit(2)
    os.environ.setdefault("TITAN_BRAIN_INTERVAL_S", str(interval))
    config = dataclasses.replace(OperatorConfig.from_env(), kube_context=kube_context)
    setup_logging("INFO")
    stacks_on_request()
    kopf.run(
        registry=build_registry(config),
        standalone=standalone,
        peering_name=None if standalone else peering,
        priority=priority,
        liveness_endpoint=liveness or None,
        clusterwide=all_namespaces,
        namespaces=namespace,
    )


@app.command("local")
def local(
    paths: list[Path] = typer.Argument(None, help="TitanBrain/TitanPhase YAML files or folders"),
    interval: float = typer.Option(5.0, help="seconds between decisions"),
    state_dir: Path = typer.Option(None, help="where brain-core.json / brain-status.json go"),
    once: bool = typer.Option(False, help="decide and publish once, then exit"),
) -> None:
    """Drive the Brain core from YAML files (default: crds/samples) on the organism's NATS."""
    from titan.cli.common import settings_or_exit
    from titan.core.bus import connect
    from titan.core.clock import WallClock
    from titan.core.service import run_service
    from titan.operator.local import LocalBrain

    settings = settings_or_exit()
    if not settings.nats_url:
        typer.secho("TITAN_NATS_URL is empty: start NATS first (`titan infra up`)", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    files = list(paths) if paths else [DEFAULT_SAMPLES]

    async def brain_session(stop: asyncio.Event | None) -> None:
        """Decide on a timer until ``stop`` is set; with ``stop`` None, decide once and print it."""
        nc = await connect(settings.nats_url, "titan-brain-local")
        brain = LocalBrain(nc, settings.catalog, files, WallClock(),
                           state_dir=state_dir or settings.data_dir / "brain", interval_s=interval)
        try:
            await brain.start()
            if stop is None:
                decision = await brain.step()
                for p in decision.phases.values():
                    typer.echo(f"{p.phase_id:12} {p.state.value:9} weight={p.weight} notional={p.notional} "
                               f"lev={p.max_leverage}")
                typer.echo(f"trading={decision.trading_mode.value} risk={decision.risk_state.value} "
                           f"equity={decision.equity}")
                return
            await brain.run(stop)
        finally:
            await brain.close()
            await nc.close()

    if once:
        setup_logging(settings.log_level)
        asyncio.run(brain_session(None))
        return
    # The shared service harness: logging, /metrics on TITAN_METRICS_PORT, /healthz, SIGTERM/SIGINT.
    run_service("brain-local", settings, brain_session)
