"""What `titan up` checks before it starts anything: the market-data source, the TitanBrain/TitanPhase
files (file, resource and field named), the key files and the servers it is told to use. Each
problem is one :class:`StartupError` line; nothing is started when there is one."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from titan.core.config import parse_cpu_list
from titan.core.infra.procs import port_open
from titan.core.marketdata.continuation import ContinuationError, MarketMarks
from titan.core.marketdata.continuation import load as load_market_marks
from titan.operator.brain import PolicyError, parse_brain_spec, parse_phase_spec
from titan.phases import registry

MIN_KEY_BYTES = 16  # titan.core.signing.load_keys refuses shorter keys
SOURCE_KINDS = ("sim", "sim:SEED", "replay:PATH[,PATH...]", "live")


class StartupError(ValueError):
    """A configuration problem found before anything started; the message names what to fix."""


def check_source(source: str) -> None:
    """``sim``, ``sim:SEED`` (an integer), ``replay:PATH[,PATH...]`` (readable files) or ``live``."""
    kind, sep, arg = source.partition(":")
    if kind == "sim":
        if sep and not arg.lstrip("-").isdigit():
            raise StartupError(f"--source {source}: the simulator's seed must be an integer (e.g. sim:7)")
        return
    if kind == "live" and not sep:
        return
    if kind == "replay":
        if not arg:
            raise StartupError("--source replay: needs files (replay:PATH[,PATH...])")
        for part in arg.split(","):
            path = Path(part)
            if not path.is_file():
                raise StartupError(f"--source {source}: {path} does not exist or is not a file")
            try:
                with path.open("rb") as fh:
                    fh.read(1)
            except OSError as err:
                raise StartupError(f"--source {source}: cannot read {path}: {err.strerror}") from None
        return
    raise StartupError(f"--source {source}: unknown market data source (use {', '.join(SOURCE_KINDS)})")


def check_market_marks(source: str, path: Path) -> MarketMarks | None:
    """The simulator's marks saved by an earlier run on this data dir (None: none, or not the simulator)."""
    if source.partition(":")[0] != "sim":
        return None
    try:
        return load_market_marks(path)
    except ContinuationError as err:
        raise StartupError(f"{err} (delete it to start a new simulated market)") from None


def load_yaml_documents(path: Path) -> list[Any]:
    try:
        return list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise StartupError(f"{path}:{where}: not valid YAML ({problem})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise StartupError(f"{path}: cannot read ({err})") from None


def check_manifests(directory: Path) -> None:
    """Every TitanBrain/TitanPhase in ``directory`` parses and passes the Brain's own checks, and every
    enabled runnable phase's spec.params pass its params model."""
    brains = 0
    for path in sorted(directory.glob("*.y*ml")):
        for doc in load_yaml_documents(path):
            if not isinstance(doc, dict) or doc.get("kind") not in ("TitanBrain", "TitanPhase"):
                continue
            name = str((doc.get("metadata") or {}).get("name", "?"))
            spec = doc.get("spec")
            if not isinstance(spec, dict):
                raise StartupError(f"{path}: {doc['kind']} {name!r}: spec: expected a mapping")
            try:
                if doc["kind"] == "TitanBrain":
                    brains += 1
                    parse_brain_spec(spec)
                else:
                    parse_phase_spec(name, spec)
            except PolicyError as err:
                raise StartupError(f"{path}: {doc['kind']} {name!r}: spec.{err}") from None
            if doc["kind"] == "TitanPhase":
                check_params(path, name, spec)
    if brains == 0:
        raise StartupError(f"{directory}: no TitanBrain resource (pass --phases DIR with one)")
    if brains > 1:
        raise StartupError(f"{directory}: {brains} TitanBrain resources; an organism has exactly one")


def check_params(path: Path, name: str, spec: dict[str, Any]) -> None:
    kind, raw = str(spec.get("phase")), spec.get("params")
    if kind not in registry.names() or raw is None:
        return
    if not isinstance(raw, dict):
        raise StartupError(f"{path}: TitanPhase {name!r}: spec.params: expected a mapping")
    try:
        registry.get(kind).params_model.model_validate(raw)
    except ValueError as err:
        raise StartupError(f"{path}: TitanPhase {name!r}: spec.params: {err}") from None


def check_keys(keys_dir: Path) -> None:
    """Existing key files are private (0600, in a 0700 folder) and long enough."""
    if not keys_dir.exists():
        return
    mode = stat.S_IMODE(keys_dir.stat().st_mode)
    if mode & 0o077:
        raise StartupError(f"{keys_dir}: key folder is mode {oct(mode)}; it must be 0700 (chmod 700 {keys_dir})")
    for path in sorted(keys_dir.glob("*.key")):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise StartupError(f"{path}: key file is mode {oct(mode)}; it must be 0600 (chmod 600 {path})")
        if len(path.read_bytes().strip()) < MIN_KEY_BYTES:
            raise StartupError(f"{path}: key shorter than {MIN_KEY_BYTES} bytes (delete it to get a new one)")


def check_cpus(cpus: str) -> None:
    """--cpus names CPUs this machine lets us run on (execution would crash-loop on others)."""
    if not cpus:
        return
    try:
        wanted = parse_cpu_list(cpus)
    except ValueError as err:
        raise StartupError(f"--cpus {cpus}: {err} (use e.g. 1 or 0,2-3)") from None
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(wanted)
    missing = sorted(set(wanted) - allowed)
    if missing:
        raise StartupError(f"--cpus {cpus}: CPUs {missing} are not available (this machine allows {sorted(allowed)})")


def check_servers(pg_dsn: str, nats_url: str) -> None:
    """Servers named by TITAN_PG_DSN / TITAN_NATS_URL answer on their ports (embedded ones start later)."""
    for label, url, default_port in (("TITAN_PG_DSN", pg_dsn, 5432), ("TITAN_NATS_URL", nats_url, 4222)):
        if not url:
            continue
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or default_port
        if not port_open(port, host, timeout=2.0):
            raise StartupError(f"{label}: nothing answers on {host}:{port}; start it, or unset {label} to "
                               "let `titan up` run its own")
