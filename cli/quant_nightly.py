"""`titan quant nightly`: `titan quant run` once a day at a UTC time, until stopped.

`titan up --quant-at HH:MM` starts it as a supervised child (the local counterpart of the chart's
CronJob). Each run is its own process at a lower CPU priority, so a failing job is reported and the
next night tries again, and the organism keeps its cores; SIGTERM stops the wait, or the running job."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

from titan.cli.common import settings_or_exit
from titan.cli.supervisor import die_with_parent
from titan.core.logging import setup_logging
from titan.core.service import stop_on_signals
from titan.quant.schedule import TimeOfDay

log = logging.getLogger("titan.quant.nightly")

NICENESS = 10          # the job yields the CPU to the organism
STOP_GRACE_S = 10.0    # a stopped job gets this long after SIGTERM, then SIGKILL


def nightly(
    ctx: typer.Context,
    at: str = typer.Option("02:00", "--at", help="UTC time of day of each run (HH:MM or HH:MM:SS)"),
    phase: str = typer.Option("scavenger", "--phase", help="TitanPhase name to tune"),
    organism: Path | None = typer.Option(None, "--organism", help="folder of TitanBrain/TitanPhase YAML"),
    search: str = typer.Option("auto", "--search", help="auto (Gemini with a key, else Optuna), gemini or optuna"),
    json_logs: bool = typer.Option(False, "--json-logs", help="structured JSON log lines"),
) -> None:
    """Run `titan quant run` every day at a UTC time; options after these go to `titan quant run`."""
    setup_logging("INFO", json_lines=json_logs)
    try:
        when = TimeOfDay.parse(at)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--at") from None
    if search not in ("auto", "gemini", "optuna"):
        raise typer.BadParameter("auto, gemini or optuna", param_hint="--search")
    if search == "auto":
        keyed = bool(settings_or_exit().gemini_api_key.get_secret_value())
        search = "gemini" if keyed else "optuna"
        if not keyed:
            log.info("no TITAN_GEMINI_API_KEY: the nightly runs use the Optuna search")
    argv = [sys.executable, "-m", "titan.cli", "quant", "run", "--phase", phase, "--search", search,
            *(["--organism", str(organism)] if organism else []), *ctx.args]
    raise typer.Exit(asyncio.run(_every_day(when, argv)))


async def _every_day(when: TimeOfDay, argv: list[str]) -> int:
    stop = stop_on_signals()
    while not stop.is_set():
        due_ns = when.next_after(time.time_ns())
        log.info("next AI Quant run at %s", datetime.fromtimestamp(due_ns / 1e9, UTC).isoformat(timespec="seconds"))
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, (due_ns - time.time_ns()) / 1e9))
        except TimeoutError:
            await _run_job(argv, stop)
    return 0


def _lower_and_tied() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The job dies with this scheduler (even on SIGKILL) and yields the CPU to the organism."""
    die_with_parent()
    os.nice(NICENESS)


async def _run_job(argv: list[str], stop: asyncio.Event) -> None:
    started = time.monotonic()
    log.info("AI Quant run: %s", " ".join(argv[3:]))
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                preexec_fn=_lower_and_tied)
    assert proc.stdout is not None
    lines: list[str] = []

    async def collect() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            lines.append(raw.decode(errors="replace").rstrip())

    reader = asyncio.create_task(collect())
    halted = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({reader, halted}, return_when=asyncio.FIRST_COMPLETED)
    if halted in done and reader not in done:
        log.info("stopping the running AI Quant job")
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=STOP_GRACE_S)
        except TimeoutError:
            proc.kill()
    halted.cancel()
    await reader
    code = await proc.wait()
    for line in lines:
        log.info("quant run | %s", line)
    level = logging.INFO if code == 0 else logging.WARNING
    log.log(level, "AI Quant run ended with exit code %d after %.0f s", code, time.monotonic() - started)
