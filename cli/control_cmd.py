"""`titan status`, `titan halt`, `titan resume`: look at and steer a running organism.

The kill switch is the TitanBrain's `spec.tradingState`. Locally that is the TitanBrain file `titan up`
runs from (the local Brain re-reads it and publishes the new trading state to NATS KV); `halt` also
tells execution directly with a signed SetTradingState, so new entries stop at once. In a cluster,
patch the resource: `kubectl patch tb titan --type merge -p '{"spec":{"tradingState":"Halted"}}'`.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import typer
from rich.console import Console
from rich.table import Table

from titan.cli.common import settings_or_exit
from titan.core.bus import StateStore, connect
from titan.core.config import Settings
from titan.core.infra.manager import InfraState
from titan.core.ledger import Ledger
from titan.core.signing import sign_control
from titan.v1 import common_pb2, execution_pb2, execution_pb2_grpc, trading_pb2

MODES = {"Active": common_pb2.TRADING_MODE_ACTIVE, "Reducing": common_pb2.TRADING_MODE_REDUCING,
         "Halted": common_pb2.TRADING_MODE_HALTED}
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


def _switch(mode: str, reason: str) -> None:
    from titan.cli.up import brain_file

    settings = settings_or_exit()
    info = run_info(settings)
    manifests = Path(info["manifests"]) if info else settings.data_dir / "organism"
    try:
        path = brain_file(manifests)
    except FileNotFoundError:
        typer.secho(f"no TitanBrain file under {manifests}: is this the data dir `titan up` used?", err=True,
                    fg=typer.colors.RED)
        raise typer.Exit(1) from None
    old = set_brain_file_state(path, mode)
    typer.echo(f"TitanBrain {path}: tradingState {old} -> {mode}")
    if info is None:
        typer.echo("no running organism found: the change applies at the next `titan up`")
        return
    if mode == "Halted":
        key = (Path(info["keys"]) / "control.key").read_bytes().strip()
        try:
            state = asyncio.run(tell_execution(info["execution"], key, mode, reason))
        except grpc.RpcError as err:
            typer.secho(f"execution not told directly ({err.code().name}); the Brain will publish it", err=True,
                        fg=typer.colors.YELLOW)
        else:
            typer.echo(f"execution: trading state {common_pb2.TradingMode.Name(state.mode)}")
    else:
        typer.echo("the Brain publishes the new trading state at its next decision (seconds)")


def halt(reason: str = typer.Option("manual halt", "--reason", help="recorded with the state change")) -> None:
    """Flip the kill switch: no new entries anywhere (open orders are canceled)."""
    _switch("Halted", reason)


def resume() -> None:
    """Release the kill switch (tradingState Active). A tripped HARD breaker still needs its reset."""
    _switch("Active", "manual resume")


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


def status(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """The organism's state from the ledger (equity, positions, allocations) and NATS KV (trading
    state, budgets)."""
    settings = settings_or_exit()
    dsn, url, info = resolve(settings)
    if not dsn and not url:
        typer.secho("nothing to read: no TITAN_PG_DSN/TITAN_NATS_URL and no `titan up`/`titan infra up` state",
                    err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    try:
        data = asyncio.run(_gather(dsn, url, settings))
    except (OSError, ConnectionError) as err:
        typer.secho(f"cannot reach the organism's infrastructure: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    data["running"] = info is not None
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    console = Console()
    eq = data.get("equity")
    console.print(f"[bold]equity[/] {Decimal(eq):,.2f}" if eq else "[bold]equity[/] -",
                  f"  trading [bold]{data.get('trading_state') or '-'}[/]",
                  f"  fills {data.get('fills', '-')}", f"  running {'yes' if info else 'no'}")
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
