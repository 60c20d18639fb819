"""Process entry shared by every phase's ``__main__``: settings, key, runtime, signals, run."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from titan.core.config import Settings
from titan.core.service import stacks_on_request, stop_on_signals
from titan.core.signing import load_keys
from titan.phases.runtime.contract import Strategy
from titan.phases.runtime.runner import PhaseRuntime, RuntimeConfig

log = logging.getLogger("titan.phases")


class LaunchError(Exception):
    """A phase cannot start (missing key, bad parameters file, ...)."""


def load_key(phase_id: str, settings: Settings, key_file: Path | None = None) -> bytes:
    """The phase's HMAC key: ``key_file``, else ``<hmac_keys_dir>/<phase>.key``. No key, no start."""
    if key_file is not None:
        raw = key_file.read_bytes().strip()
        if len(raw) < 16:
            raise LaunchError(f"HMAC key {key_file} is shorter than 16 bytes")
        return raw
    if settings.hmac_keys_dir is None:
        raise LaunchError("no signing key: set TITAN_HMAC_KEYS_DIR (a directory of <phase>.key files) or --key-file")
    keys = load_keys(settings.hmac_keys_dir)
    if phase_id not in keys:
        raise LaunchError(f"no key {phase_id}.key in {settings.hmac_keys_dir}")
    return keys[phase_id]


def load_params_file(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    text = path.read_text()
    data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict):
        raise LaunchError(f"{path}: parameters must be a mapping")
    return data


def runtime_config(phase_id: str, settings: Settings, key: bytes, *, execution: str | None = None,
                   http_port: int | None = None) -> RuntimeConfig:
    return RuntimeConfig(
        phase_id=phase_id,
        key=key,
        execution_target=execution or f"{settings.execution_host}:{settings.execution_port}",
        nats_url=settings.nats_url,
        catalog=settings.catalog,
        instance=f"{phase_id}-{socket.gethostname()}-{os.getpid()}",
        http_port=settings.metrics_port if http_port is None else http_port,
    )


async def run_phase(make_strategy: Callable[[Mapping[str, Any] | None], Strategy], config: RuntimeConfig,
                    initial_params: Mapping[str, Any] | None = None) -> None:
    """Run until SIGINT/SIGTERM. Parameters in KV (when present) override ``initial_params``."""
    if not config.nats_url:
        raise LaunchError("a phase process needs NATS: set TITAN_NATS_URL")
    strategy = make_strategy(initial_params)
    runtime = PhaseRuntime(strategy, config)
    stop = stop_on_signals()
    await runtime.start()
    log.info("phase %s: streaming to %s, http on :%s", config.phase_id, config.execution_target,
             runtime.http.port if runtime.http else "-")
    try:
        await stop.wait()
    finally:
        await runtime.stop()


def phase_main(
    argv: list[str] | None,
    *,
    name: str,
    params_model: type[Any],
    make_strategy: Callable[..., Strategy],
    description: str | None,
) -> int:
    """The whole ``python -m titan.phases.<name>`` process: flags, settings, key, initial params
    (validated at start), then :func:`run_phase` until SIGTERM/SIGINT. Exit 2 with one line on
    bad configuration. ``make_strategy(params, phase_id=...)`` builds the phase's strategy."""
    import argparse
    import asyncio
    import functools
    import sys

    from titan.core.config import ConfigError, load_settings

    ap = argparse.ArgumentParser(prog=f"titan-{name}", description=description)
    ap.add_argument("--params", type=Path, help="initial parameters (JSON or YAML) until KV has some")
    ap.add_argument("--key-file", type=Path, help="the phase's HMAC key (default: TITAN_HMAC_KEYS_DIR/<id>.key)")
    ap.add_argument("--execution", help="execution host:port (default: TITAN_EXECUTION_HOST:PORT)")
    ap.add_argument("--http-port", type=int, help="/metrics and /healthz port (default: TITAN_METRICS_PORT)")
    args = ap.parse_args(argv)
    try:
        settings = load_settings()
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        stacks_on_request()
        phase_id = settings.phase_id or name  # a TitanPhase named otherwise runs under its own name
        key = load_key(phase_id, settings, args.key_file)
        params = load_params_file(args.params)
        if params is not None:
            params_model.model_validate(params)  # fail at start, not later
        config = runtime_config(phase_id, settings, key, execution=args.execution, http_port=args.http_port)
        asyncio.run(run_phase(functools.partial(make_strategy, phase_id=phase_id), config, params))
    except (ConfigError, LaunchError, ValueError, OSError) as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 2
    return 0
