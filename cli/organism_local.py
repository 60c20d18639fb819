"""The local organism of `titan up` behind :class:`titan.cli.organism.OrganismControl`.

The kill switch is the TitanBrain file `titan up` runs from (the local Brain re-reads it and
publishes the new trading state to NATS KV); a halt also tells execution directly with a signed
SetTradingState, so new entries stop at once. Status comes from the ledger and NATS KV.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc

from titan.cli.common import settings_or_exit
from titan.cli.organism import ControlError, Note, Switched
from titan.core.bus import StateStore, connect
from titan.core.config import Settings
from titan.core.infra import InfraError, embedded_ledger_exists, infra_while_needed
from titan.core.infra.manager import InfraState
from titan.core.infra.procs import pid_alive
from titan.core.ledger import Ledger
from titan.core.signing import sign_control
from titan.v1 import common_pb2, execution_pb2, execution_pb2_grpc, trading_pb2

MODES = {"Active": common_pb2.TRADING_MODE_ACTIVE, "Reducing": common_pb2.TRADING_MODE_REDUCING,
         "Halted": common_pb2.TRADING_MODE_HALTED}
NO_TABLES = "the ledger has no Titan tables yet: no organism has run against it (run `titan up` first)"
_TRADING_STATE_LINE = re.compile(r"^(\s*tradingState:\s*)(\w+)(.*)$", re.MULTILINE)


def run_info(settings: Settings) -> dict[str, Any] | None:
    path = settings.data_dir / "run" / "organism.json"
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info


def resolve(settings: Settings) -> tuple[str, str, dict[str, Any] | None]:
    """PostgreSQL DSN and NATS URL of the organism: settings, else a running `titan up`, else the
    embedded infrastructure's last state."""
    info = run_info(settings)
    infra = InfraState.load(settings)
    dsn = settings.pg_dsn or (info or {}).get("pg_dsn") or infra.pg_dsn
    url = settings.nats_url or (info or {}).get("nats_url") or infra.nats_url
    return dsn, url, info


def live_run_info(settings: Settings) -> dict[str, Any] | None:
    """The running `titan up`'s run info; None when none runs (also when a killed one left its file)."""
    info = run_info(settings)
    if info is None or not pid_alive(int(info.get("pid") or 0)):
        return None
    return info


@dataclass(frozen=True)
class Backends:
    """Where the organism's ledger and NATS are, and whether a running `titan up` serves them."""

    pg_dsn: str
    nats_url: str
    running: bool
    started: tuple[str, ...] = ()


@contextmanager
def organism_backends(settings: Settings) -> Iterator[Backends]:
    """The organism's PostgreSQL and NATS for reading: a running `titan up`'s, the given ones, or the
    embedded servers under the data dir, started for the duration and stopped again afterwards."""
    info = live_run_info(settings)
    if info is not None:
        yield Backends(settings.pg_dsn or info["pg_dsn"], settings.nats_url or info["nats_url"], True)
        return
    if not settings.pg_dsn and not embedded_ledger_exists(settings):
        raise ControlError(f"no organism has run with data dir {settings.data_dir} yet: run `titan up` first "
                           "(or set TITAN_DATA_DIR / TITAN_PG_DSN to where one ran)")
    try:
        with infra_while_needed(settings) as state:
            yield Backends(state.pg_dsn, state.nats_url, False, tuple(state.started))
    except InfraError as err:
        raise ControlError(f"cannot start the embedded infrastructure to read the ledger: {err}") from None


def started_note(backends: Backends) -> Note | None:
    if not backends.started:
        return None
    names = " and ".join({"postgres": "PostgreSQL", "nats": "NATS"}[n] for n in backends.started)
    return Note(f"no organism running: started the embedded {names} to read the ledger (stopped again after)")


def set_brain_file_state(path: Path, mode: str) -> str:
    """Rewrite `spec.tradingState` in a TitanBrain file in place (comments kept); returns the old value."""
    text = path.read_text()
    match = _TRADING_STATE_LINE.search(text)
    if match is None:
        text = re.sub(r"^spec:\s*$", f"spec:\n  tradingState: {mode}", text, count=1, flags=re.MULTILINE)
        old = "Active"
    else:
        old = match.group(2)
        text = _TRADING_STATE_LINE.sub(lambda m: f"{m.group(1)}{mode}{m.group(3)}", text, count=1)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return old


async def tell_execution(address: str, control_key: bytes, mode: str, reason: str) -> trading_pb2.TradingState:
    request = execution_pb2.SetTradingStateRequest(
        state=trading_pb2.TradingState(
            mode=MODES[mode], reason=reason, set_by="cli", ts_ns=time.time_ns(), version=time.time_ns() // 1_000_000
        )
    )
    request.auth.issuer = "cli"
    request.auth.issued_at_ns = time.time_ns()
    request.auth.nonce = secrets.token_hex(8)
    sign_control(request, control_key)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = execution_pb2_grpc.ExecutionStub(channel)  # type: ignore[no-untyped-call]
        result: trading_pb2.TradingState = await stub.SetTradingState(request, timeout=5)
        return result


async def _gather(dsn: str, url: str, namespace_settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if dsn:
        ledger = await Ledger.open(dsn, migrate=False)
        try:
            eq = await ledger.latest_equity("total")
            out["equity"] = eq.equity if eq else None
            out["positions"] = [
                {"phase": p.phase_id, "symbol": p.symbol, "qty": p.quantity, "entry": p.average_entry_price,
                 "upnl": p.unrealized_pnl}
                for p in await ledger.positions()
            ]
            out["fills"] = await ledger.fill_count()
            out["allocations"] = {
                k: {"state": common_pb2.PhaseState.Name(a.state).removeprefix("PHASE_STATE_").capitalize(),
                    "weight": a.weight, "notional": a.notional, "leverage": a.max_leverage}
                for k, a in (await ledger.latest_allocations()).items()
            }
            decisions = await ledger.decisions(limit=200)
            out["recent_signals"] = {"total": len(decisions), "accepted": sum(1 for d in decisions if d.ack.accepted)}
        finally:
            await ledger.close()
    if url:
        nc = await connect(url, "titan-status", initial_retries=1)
        try:
            store = StateStore(nc.jetstream(), namespace_settings.catalog)
            ts = await store.get_trading_state()
            out["trading_state"] = common_pb2.TradingMode.Name(ts.mode).removeprefix("TRADING_MODE_") if ts else None
            out["budgets"] = {
                k: {"state": common_pb2.PhaseState.Name(b.state).removeprefix("PHASE_STATE_").capitalize(),
                    "weight": b.weight, "max_notional": b.max_notional,
                    "expires_in_s": round((b.expires_at_ns - time.time_ns()) / 1e9, 1)}
                for k, b in (await store.budgets()).items()
            }
        finally:
            await nc.close()
    return out


class LocalOrganism:
    """The organism `titan up` runs (found through TITAN_DATA_DIR)."""

    def __init__(self) -> None:
        self.settings = settings_or_exit()
        self.info = run_info(self.settings)

    def switch(self, mode: str, reason: str) -> Switched:
        from titan.cli.up import brain_file

        manifests = Path(self.info["manifests"]) if self.info else self.settings.data_dir / "organism"
        try:
            path = brain_file(manifests)
        except FileNotFoundError:
            raise ControlError(f"no TitanBrain file under {manifests}: is this the data dir `titan up` used?") from None
        old = set_brain_file_state(path, mode)
        return Switched(target=f"TitanBrain {path}", old=old, live=self.info is not None)

    def confirm_halt(self, reason: str, timeout_s: float) -> list[Note]:
        """Tell execution directly: new entries stop now, not at the Brain's next decision."""
        if self.info is None:
            return []
        key = (Path(self.info["keys"]) / "control.key").read_bytes().strip()
        try:
            state = asyncio.run(tell_execution(self.info["execution"], key, "Halted", reason))
        except grpc.RpcError as err:
            return [Note(f"execution not told directly ({err.code().name}); the Brain will publish it", warning=True)]
        return [Note(f"execution: trading state {common_pb2.TradingMode.Name(state.mode)}")]

    def status(self) -> dict[str, Any]:
        with organism_backends(self.settings) as backends:
            try:
                data = asyncio.run(_gather(backends.pg_dsn, backends.nats_url, self.settings))
            except asyncpg.UndefinedTableError:
                raise ControlError(NO_TABLES) from None
            except (OSError, ConnectionError, asyncpg.PostgresError) as err:
                raise ControlError(f"cannot reach the organism's infrastructure: {err}") from None
        data["running"] = backends.running
        note = started_note(backends)
        if note is not None:
            data["note"] = note.text
        return data

    def close(self) -> None:
        pass
