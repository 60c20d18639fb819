"""`titan up`: the whole organism on one machine — embedded PostgreSQL and NATS (or the given ones),
the ledger writer, execution (paper), the Brain's local driver, the market-data gateway and every
enabled phase, supervised, with a live terminal view (or JSON logs with --headless)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from titan.cli.infra_watch import InfraWatch
from titan.cli.supervisor import ChildSpec, ChildState, Supervisor
from titan.cli.up_checks import (
    StartupError,
    check_cpus,
    check_keys,
    check_manifests,
    check_market_marks,
    check_servers,
    check_source,
)
from titan.cli.view import OrganismView, RunInfo
from titan.core.bus import connect, decode_event, ensure_jetstream, unpack
from titan.core.config import Settings
from titan.core.infra import InfraError, OrganismLock, OrganismRunning, infra_down, infra_up
from titan.core.infra.manager import InfraState
from titan.core.infra.procs import free_port, port_is_free
from titan.core.ledger import Ledger
from titan.core.logging import setup_logging
from titan.core.marketdata.continuation import MarketMarks
from titan.core.service import stop_on_signals
from titan.phases import registry
from titan.phases.ai_quant.params import TUNABLE_FIELDS
from titan.quant.schedule import TimeOfDay
from titan.v1 import market_pb2

log = logging.getLogger("titan.up")

QUANT_PHASE = "ai-quant"

REPO_SAMPLES = Path(__file__).resolve().parents[1] / "crds" / "samples"
# Phases this build can run as processes (`titan phase run NAME`): every registered one.
RUNNABLE_PHASES = tuple(registry.names())

# Documented local ports (docs/operations.md); a busy port falls back to a free one.
PORTS = {"execution-grpc": 50051, "execution": 9101, "brain": 9102, "gateway": 9103, "ledger": 9104}
PHASE_METRICS_BASE = 9110
# What the gateway publishes without --symbols (titan data gateway's default).
GATEWAY_SYMBOLS = ("BTCUSDT", "ETHUSDT")


@dataclass
class Organism:
    """What `titan up` runs, resolved from settings and the TitanBrain/TitanPhase files."""

    settings: Settings
    manifests_dir: Path
    keys_dir: Path
    control_key: str
    phases: list[str]
    initial_equity: Decimal
    # TitanPhase.spec.params per runnable phase: handed to the phase at launch, so it trades with
    # them from its first market event (the Brain's copy in the params bucket overrides them).
    params: dict[str, dict[str, object]] = field(default_factory=dict)
    run: RunInfo = field(default_factory=RunInfo)
    json_logs: bool = False  # every component logs JSON lines (--headless), else one human format


def prepare_manifests(data_dir: Path, phases_dir: Path | None) -> Path:
    """The TitanBrain/TitanPhase files `titan up` runs from. Without --phases, the samples are copied
    once to <data>/organism/ (so `titan halt` can flip the kill switch there, and edits persist)."""
    if phases_dir is not None:
        if not phases_dir.is_dir():
            raise typer.BadParameter(f"--phases {phases_dir}: not a directory")
        return phases_dir
    target = data_dir / "organism"
    if not target.exists():
        if not REPO_SAMPLES.is_dir():
            raise typer.BadParameter("no sample TitanBrain/TitanPhase files found; pass --phases DIR")
        shutil.copytree(REPO_SAMPLES, target)
    return target


def read_manifests(directory: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    brain: dict[str, Any] | None = None
    phases: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "TitanBrain":
                brain = doc
            elif doc.get("kind") == "TitanPhase":
                phases.append(doc)
    if brain is None:
        raise typer.BadParameter(f"{directory}: no TitanBrain resource")
    return brain, phases


def brain_file(directory: Path) -> Path:
    for path in sorted(directory.glob("*.y*ml")):
        if any(isinstance(d, dict) and d.get("kind") == "TitanBrain" for d in yaml.safe_load_all(path.read_text())):
            return path
    raise FileNotFoundError(f"{directory}: no TitanBrain resource")


def ensure_keys(keys_dir: Path, names: list[str]) -> str:
    """Per-phase HMAC keys (<phase>.key) and the control key, created once with mode 0600."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    keys_dir.chmod(0o700)
    for name in [*names, "control"]:
        path = keys_dir / f"{name}.key"
        if not path.exists():
            path.write_text(secrets.token_hex(32) + "\n")
            path.chmod(0o600)
    return (keys_dir / "control.key").read_text().strip()


def _port(preferred: int) -> int:
    return preferred if port_is_free(preferred) else free_port()


def child_specs(org: Organism, source: str, speed: float, cpus: str, logs: Path,
                stop_runs: Sequence[float] = ()) -> list[ChildSpec]:
    st = org.settings
    titan = [sys.executable, "-m", "titan.cli"]
    base = {
        "TITAN_PG_DSN": st.pg_dsn,
        "TITAN_NATS_URL": st.nats_url,
        "TITAN_DATA_DIR": str(st.data_dir),
        "TITAN_NAMESPACE": st.namespace,
        "TITAN_HMAC_KEYS_DIR": str(org.keys_dir),
        "TITAN_CONTROL_KEY": org.control_key,
        "TITAN_PAPER_CAPITAL": str(org.initial_equity),
        "TITAN_MODE": "paper",
        "TITAN_VENUE": "paper",
        "TITAN_HEALTH_PORT": "0",
        "PYTHONUNBUFFERED": "1",
        "TITAN_LOG_FORMAT": "json" if org.json_logs else "human",
    }
    grpc_port = _port(PORTS["execution-grpc"])
    base["TITAN_EXECUTION_HOST"] = "127.0.0.1"
    base["TITAN_EXECUTION_PORT"] = str(grpc_port)

    def env(metrics_port: int, **extra: str) -> dict[str, str]:
        return base | {"TITAN_METRICS_PORT": str(_port(metrics_port))} | extra

    specs = [
        ChildSpec("ledger", [*titan, "ledger", "writer", "--json-logs"], env(PORTS["ledger"]), logs / "ledger.log"),
        ChildSpec("execution", [*titan, "execution", "run"], env(PORTS["execution"], TITAN_EXECUTION_CPUS=cpus),
                  logs / "execution.log"),
        ChildSpec("brain", [*titan, "operator", "local", str(org.manifests_dir), "--interval", "2"],
                  env(PORTS["brain"]), logs / "brain.log"),
    ]
    run_dir = st.data_dir / "run"
    for i, phase in enumerate(org.phases):
        port = _port(PHASE_METRICS_BASE + i)
        argv = [*titan, "phase", "run", phase, "--key-file", str(org.keys_dir / f"{phase}.key"),
                "--execution", f"127.0.0.1:{grpc_port}", "--http-port", str(port)]
        if phase in org.params:
            run_dir.mkdir(parents=True, exist_ok=True)
            params_file = run_dir / f"params-{phase}.json"
            params_file.write_text(json.dumps(org.params[phase], indent=2, default=str) + "\n")
            argv += ["--params", str(params_file)]
        # Ready once it listens to market data and holds its stream to execution: the gateway
        # starts after every phase, because core NATS keeps no history (the simulator's prelude, a
        # replay's candles) for a subscriber that joins late.
        specs.append(ChildSpec(f"phase-{phase}", argv, env(port), logs / f"phase-{phase}.log",
                               ready=functools.partial(phase_ready, port)))
    if org.run.quant_target:  # the optional nightly AI Quant (approval mode: it records, people apply)
        at = org.run.quant_at.removesuffix(" UTC")
        specs.append(ChildSpec(QUANT_PHASE, [*titan, "quant", "nightly", "--at", at, "--phase", org.run.quant_target,
                                             "--organism", str(org.manifests_dir), "--json-logs"],
                               base, logs / "ai-quant.log"))
    # A replay ends; its gateway exiting then is not a crash to restart (that would replay it again).
    scripted = [arg for t in stop_runs for arg in ("--stop-run-at", f"{t:g}s")]
    if source.partition(":")[0] == "sim":  # a restarted run (or gateway) continues the same market
        scripted += ["--market-state", str(market_marks_path(st.data_dir))]
    specs.append(ChildSpec("gateway", [*titan, "data", "gateway", "--source", source, "--speed", str(speed),
                                       *scripted, "--json-logs"],
                           env(PORTS["gateway"]), logs / "gateway.log", restart=not source.startswith("replay:")))
    return specs


async def phase_ready(port: int) -> bool:
    """A phase's /healthz answers 200 and its stream to execution is connected."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout=1)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=2)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return head.startswith("HTTP/1.1 200") and '"stream_connected": true' in body


class InfraHandle:
    """Embedded servers `titan up` started itself (stopped again on exit); reused ones are left alone."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started: list[str] = []

    def up(self) -> InfraState:
        state = infra_up(self.settings)
        self.started = list(state.started)
        return state

    def down(self) -> None:
        if self.started:
            infra_down(self.settings, only=self.started)


async def prepare_backends(settings: Settings) -> None:
    """Streams, KV buckets and ledger migrations exist before any child starts."""
    nc = await connect(settings.nats_url, "titan-up")
    try:
        await ensure_jetstream(nc.jetstream(), settings.catalog)
    finally:
        await nc.close()
    ledger = await Ledger.open(settings.pg_dsn)
    await ledger.close()


def log_child_event(kind: str, child: ChildState) -> None:
    """The supervisor's report of a child that crashed (and is restarted) or failed for good."""
    extra = {"child": child.spec.name, "exit_code": child.last_exit, "restarts": child.restarts}
    if kind == "crashed":
        log.error("child crashed", extra=extra)
    elif kind == "failed":
        log.error("child failed: %s (exit %s after %d restarts); stopping the organism",
                  child.spec.name, child.last_exit, child.restarts, extra=extra)


async def follow_the_bus(nc: Any, settings: Settings, view: OrganismView) -> list[Any]:
    """Subscribe ``view`` to the organism's events and to the marks and trades of the market: the
    subscriptions, to unsubscribe at the end. A message the view cannot read is skipped."""

    async def on_event(msg: object) -> None:
        try:
            events = unpack(decode_event(msg.data))  # type: ignore[attr-defined]
        except Exception:
            return
        for event in events:
            with contextlib.suppress(Exception):
                view.apply(event)

    async def on_market(msg: object) -> None:
        with contextlib.suppress(Exception):
            view.apply_market(market_pb2.MarketEvent.FromString(msg.data))  # type: ignore[attr-defined]

    events = await nc.subscribe(settings.catalog.events_all, cb=on_event)
    return [events, *[await nc.subscribe(settings.catalog.md_filter(kind=kind), cb=on_market)
                      for kind in ("mark", "trade")]]


async def log_summaries(running: Callable[[], bool], stop: asyncio.Event, view: OrganismView, sup: Supervisor,
                        servers: InfraWatch) -> None:
    """Headless: one summary line every 5 s (the view, the children, the servers) while running."""
    next_log = 0.0
    while running():
        if time.monotonic() >= next_log:
            children = {c.spec.name: {"pid": c.pid, "restarts": c.restarts} for c in sup.children}
            log.info("organism", extra={"summary": json.dumps(view.summary()),
                                        "children": json.dumps(children),
                                        "servers": json.dumps(servers.summary())})
            next_log = time.monotonic() + 5
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.25)


async def show_screen(running: Callable[[], bool], stop: asyncio.Event, view: OrganismView, sup: Supervisor,
                      servers: InfraWatch, console: Console) -> None:
    """The live screen, redrawn twice a second while running, with a red line over it while a
    server is down or a child failed."""

    def screen() -> Any:
        alerts = servers.outages() + [f"{c.spec.name} FAILED (exit {c.last_exit})" for c in sup.failed()]
        if not alerts:
            return view.render(console.size.width, console.size.height)
        alert = Text(" | ".join(alerts), style="bold white on red", overflow="ellipsis", no_wrap=True)
        return Group(alert, view.render(console.size.width, console.size.height - 1))

    with Live(screen(), console=console, refresh_per_second=2, screen=False) as live:
        while running():
            live.update(screen())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)


def report_failed(sup: Supervisor) -> int:
    """1, with a line on stderr per child that failed for good, or 0 when none did."""
    failed = sup.failed()
    for c in failed:
        why = f"kept crashing ({c.restarts} restarts)" if c.spec.restart else "failed"
        typer.secho(f"titan up stopped: {c.spec.name} {why}, last exit code {c.last_exit}; see {c.spec.log_file}",
                    err=True, fg=typer.colors.RED)
    return 1 if failed else 0


async def run_organism(
    org: Organism, specs: list[ChildSpec], *, headless: bool, duration_s: float | None, console: Console,
    watched_servers: Sequence[str] = (),
) -> int:
    """Start the children in order, keep them running (restarts while the later ones start too),
    show the organism until a stop request, the duration's end or a child that failed for good,
    then stop everything: the exit code (1 when a child failed)."""
    st = org.settings
    view = OrganismView(run=org.run)
    servers = InfraWatch(st, list(watched_servers))
    sup = Supervisor(specs, on_event=log_child_event)
    run_file = run_info_path(st)
    write_run_info(run_file, org, specs)
    nc = await connect(st.nats_url, "titan-up-view")
    subscriptions = await follow_the_bus(nc, st, view)
    stop = stop_on_signals()
    servers_stop = asyncio.Event()
    servers_watcher = asyncio.create_task(servers.run(servers_stop))
    watcher = asyncio.create_task(sup.watch())  # restarts what crashes while the later children start
    deadline: float | None = None

    def running() -> bool:
        return not stop.is_set() and not sup.failed() and (deadline is None or time.monotonic() < deadline)

    try:
        await sup.start(until=stop)  # a stop request (Ctrl-C, SIGTERM) cuts the start short
        deadline = time.monotonic() + duration_s if duration_s else None
        if headless:
            await log_summaries(running, stop, view, sup, servers)
        else:
            await show_screen(running, stop, view, sup, servers, console)
    finally:
        await sup.stop()
        await watcher
        servers_stop.set()
        await servers_watcher
        for subscription in subscriptions:
            await subscription.unsubscribe()
        await nc.close()
        run_file.unlink(missing_ok=True)
    log.info("organism stopped", extra={"summary": json.dumps(view.summary())})
    return report_failed(sup)


def up_command(
    source: str = typer.Option("sim", "--source", help="market data: sim[:SEED], replay:PATH[,PATH...], live"),
    speed: float = typer.Option(1.0, "--speed", help="x real time for sim/replay"),
    phases_dir: Path | None = typer.Option(None, "--phases", help="folder of TitanBrain/TitanPhase YAML files"),
    headless: bool = typer.Option(False, "--headless", help="no live view: structured JSON logs"),
    duration: str | None = typer.Option(None, "--duration", help="stop after this long (e.g. 60s, 10m)"),
    cpus: str = typer.Option("", "--cpus", help="pin execution to these CPUs, e.g. '1'"),
    stop_run_at: list[str] = typer.Option(
        [], "--stop-run-at", metavar="DURATION",
        help="simulator: script a stop-run this long after the start (e.g. 90s; repeatable)"),
    quant_at: str | None = typer.Option(
        None, "--quant-at", metavar="HH:MM",
        help="run the AI Quant (titan quant run, approval mode) every day at this UTC time"),
) -> None:
    """Run the whole organism locally on paper: infrastructure, ledger, execution, Brain, market data
    and every enabled phase. Ctrl-C stops it cleanly; the next `titan up` resumes from the ledger."""
    from titan.cli.common import parse_duration, settings_or_exit

    setup_logging("INFO", json_lines=headless)
    settings = settings_or_exit()
    duration_s = parse_duration(duration) if duration else None
    stop_runs = [parse_duration(t) for t in stop_run_at]
    if stop_runs and not source.startswith("sim"):
        raise typer.BadParameter("--stop-run-at needs --source sim[:SEED]")
    try:
        nightly_at = TimeOfDay.parse(quant_at) if quant_at else None
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--quant-at") from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = OrganismLock.acquire(settings.data_dir)
    except OrganismRunning as err:
        typer.secho(f"titan up refused: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    try:
        start_checked(settings, source, speed, phases_dir, headless, duration_s, cpus, stop_runs, lock, nightly_at)
    finally:
        lock.release()


def checked_inputs(settings: Settings, source: str, cpus: str,
                   phases_dir: Path | None) -> tuple[Path, MarketMarks | None]:
    """Every check before anything starts (the source, the CPUs, the manifests, the keys, servers
    already running, the market marks): the manifests' file and the marks; exit code 2 with the
    reason on stderr when one fails."""
    try:
        check_source(source)
        check_cpus(cpus)
        manifests = prepare_manifests(settings.data_dir, phases_dir)
        check_manifests(manifests)
        check_keys(settings.data_dir / "keys")
        check_servers(settings.pg_dsn, settings.nats_url)
        marks = check_market_marks(source, market_marks_path(settings.data_dir))
    except StartupError as err:
        typer.secho(f"titan up: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    return manifests, marks


def phase_params(manifests: Path, phase_docs: list[dict[str, Any]],
                 runnable: list[str]) -> dict[str, dict[str, object]]:
    """Each runnable phase's ``spec.params`` (the first TitanPhase of a kind), validated against its
    params model here, so a typo fails before launch and not in the phase process after it."""
    params: dict[str, dict[str, object]] = {}
    for doc in phase_docs:
        spec = doc.get("spec")
        if not isinstance(spec, dict):
            continue
        kind, raw = str(spec.get("phase")), spec.get("params")
        if kind in runnable and isinstance(raw, dict) and kind not in params:
            try:
                registry.get(kind).params_model.model_validate(raw)
            except ValueError as err:
                raise typer.BadParameter(f"{manifests}: TitanPhase {kind!r} spec.params: {err}") from None
            params[kind] = dict(raw)
    return params


def start_checked(settings: Settings, source: str, speed: float, phases_dir: Path | None, headless: bool,
                  duration_s: float | None, cpus: str, stop_runs: list[float], lock: OrganismLock,
                  quant_at: TimeOfDay | None = None) -> None:
    """Holding the data dir's lock: check the configuration, then start the infrastructure and run."""
    if lock.stale_pid is not None:
        log.warning("took over the organism lock of pid %s, which is no longer running (%s)", lock.stale_pid,
                    lock.path)
    manifests, marks = checked_inputs(settings, source, cpus, phases_dir)
    brain, phase_docs = read_manifests(manifests)
    spec = brain.get("spec") or {}
    initial_equity = Decimal(str(spec.get("initialEquity", settings.paper_capital)))
    enabled = [
        str((d.get("spec") or {}).get("phase"))
        for d in phase_docs
        if (d.get("spec") or {}).get("enabled", True)
    ]
    runnable = [p for p in enabled if p in RUNNABLE_PHASES]
    params = phase_params(manifests, phase_docs, runnable)
    quant_target = nightly_target(runnable, quant_at)
    skipped = sorted(set(enabled) - set(runnable) - ({QUANT_PHASE} if quant_target else set()))
    if skipped:
        log.warning("phases enabled in %s but not runnable by this build: %s", manifests, ", ".join(skipped))
    warn_if_nothing_trades(source, phase_docs, runnable)
    if source.partition(":")[0] == "sim":
        say_which_market(source, marks)
    keys_dir = settings.data_dir / "keys"
    control_key = ensure_keys(keys_dir, runnable)
    infra = InfraHandle(settings)
    try:
        state = infra.up()
    except InfraError as err:
        typer.secho(f"cannot start infrastructure: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    for note in state.notes:
        log.info(note)
    settings = settings.model_copy(update={"pg_dsn": state.pg_dsn, "nats_url": state.nats_url})
    started = time.time()
    run = RunInfo(source=source, started_at=started, stop_runs_at=tuple(started + t for t in stop_runs),
                  not_runnable=tuple(skipped), enabled=tuple(runnable),
                  quant_at=str(quant_at) if quant_target else "", quant_target=quant_target)
    org = Organism(settings, manifests, keys_dir, control_key, runnable, initial_equity, params, run, headless)
    logs = settings.data_dir / "logs"
    console = Console()
    code = 1
    try:
        asyncio.run(prepare_backends(settings))
        specs = child_specs(org, source, speed, cpus, logs, stop_runs)
        log.info("starting organism", extra={"children": [s.name for s in specs], "logs": str(logs),
                                             "manifests": str(manifests)})
        code = asyncio.run(run_organism(org, specs, headless=headless, duration_s=duration_s, console=console,
                                        watched_servers=infra.started))
    finally:
        infra.down()
    raise typer.Exit(code)


def source_symbols(source: str) -> tuple[str, ...] | None:
    """The symbols a `--source` publishes, when known before it runs (a replay's are in its files)."""
    return None if source.startswith("replay:") else GATEWAY_SYMBOLS


def warn_if_nothing_trades(source: str, phase_docs: list[dict[str, Any]], runnable: list[str]) -> None:
    """A run where no enabled phase trades any symbol of the source is a misconfiguration to point out."""
    offered = source_symbols(source)
    if offered is None:
        return
    traded: set[str] = set()
    for doc in phase_docs:
        spec = doc.get("spec") or {}
        if str(spec.get("phase")) in runnable and spec.get("enabled", True):
            traded.update(str(s) for s in spec.get("symbols") or ())
    if not traded & set(offered):
        log.warning("no enabled phase trades any symbol of source %s (%s; the phases trade %s): nothing will "
                    "trade. Set spec.symbols in a TitanPhase or choose another --source.",
                    source, ", ".join(offered), ", ".join(sorted(traded)) or "nothing")


def nightly_target(runnable: Sequence[str], quant_at: TimeOfDay | None) -> str:
    """The phase the nightly AI Quant tunes: the first running phase it has a tunable space for."""
    if quant_at is None:
        return ""
    for phase in runnable:
        if phase in TUNABLE_FIELDS:
            return phase
    raise typer.BadParameter(f"no running phase the AI Quant can tune (it tunes {', '.join(sorted(TUNABLE_FIELDS))})",
                             param_hint="--quant-at")


def market_marks_path(data_dir: Path) -> Path:
    """Where the simulator's last marks are kept between runs on one data dir."""
    return data_dir / "run" / "market-marks.json"


def say_which_market(source: str, marks: MarketMarks | None) -> None:
    """Tell plainly whether the simulated market continues the last run's or starts anew."""
    if marks is None:
        log.info("the simulated market starts from its seed (%s): no earlier run in this data dir", source)
        return
    at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(marks.at_ns / 1e9))
    log.warning("the simulated market continues from the last run's marks (%s, seen %s); "
                "delete run/market-marks.json in the data dir for a new market", marks.describe(), at)


def run_info_path(settings: Settings) -> Path:
    return settings.data_dir / "run" / "organism.json"


def write_run_info(path: Path, org: Organism, specs: list[ChildSpec]) -> None:
    """Where the running organism can be reached, for `titan status|halt|resume`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    env = specs[0].env
    info = {
        "pid": os.getpid(),
        "execution": f"{env['TITAN_EXECUTION_HOST']}:{env['TITAN_EXECUTION_PORT']}",
        "manifests": str(org.manifests_dir),
        "keys": str(org.keys_dir),
        "pg_dsn": org.settings.pg_dsn,
        "nats_url": org.settings.nats_url,
        "namespace": org.settings.namespace,
        "metrics": {s.name: int(s.env["TITAN_METRICS_PORT"]) for s in specs},
        "logs": str(specs[0].log_file.parent) if specs[0].log_file else None,
    }
    path.write_text(json.dumps(info, indent=2) + "\n")

