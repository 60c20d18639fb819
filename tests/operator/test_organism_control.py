"""`titan status|halt|resume` aimed at a cluster: each failure a person can meet (no kubeconfig, an
unknown context, an unreachable server, CRDs not installed, no TitanBrain) ends in one line saying
what to do and exit code 1, never a traceback. The cluster is kmock's emulator (real HTTP), reached
through a kubeconfig like any other cluster; RBAC and the happy path run against the real API
server in tests/crds/test_cluster.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import kmock
import pytest
import typer
import yaml
from click.testing import Result
from typer.testing import CliRunner

from tests.operator.kube_helpers import BRAINS_URL, NS, PHASES_URL, Emulator, declare_resources, free_port, sample
from titan.cli import control_cmd

pytestmark = pytest.mark.timeout(120)


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("status")(control_cmd.status)
    app.command("halt")(control_cmd.halt)
    app.command("resume")(control_cmd.resume)
    return app


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli(), list(args), env=env)


def write_kubeconfig(path: Path, server: str, context: str = "kmock") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u", "namespace": NS}}],
    }))
    return path


def one_line_failure(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize("command", [["status"], ["halt"], ["resume"]])
def test_no_kubeconfig(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    line = one_line_failure(run(*command, "--kube-context", "prod", env={"KUBECONFIG": str(missing)}))
    assert line.startswith(f"no kubeconfig: {missing} does not exist") and "set KUBECONFIG" in line


def test_an_unknown_context_names_the_known_ones(tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    line = one_line_failure(run("status", "--kube-context", "prod", env={"KUBECONFIG": str(config)}))
    assert line == (f"kube context 'prod' is not in {config} (contexts: kmock): pass one of them with "
                    "--kube-context")


def test_the_context_comes_from_the_environment_too(tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    line = one_line_failure(run("halt", env={"KUBECONFIG": str(config), "TITAN_KUBE_CONTEXT": "staging"}))
    assert line.startswith("kube context 'staging' is not in")


def test_an_unreachable_server(tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{free_port()}"
    config = write_kubeconfig(tmp_path / "kubeconfig", server)
    line = one_line_failure(run("status", "--kube-context", "kmock", env={"KUBECONFIG": str(config)}))
    assert line.startswith(f"cannot reach the Kubernetes API server at {server}")
    assert "--kube-context" in line


@pytest.fixture
async def bare_cluster(tmp_path: Path) -> AsyncIterator[tuple[kmock.KubernetesEmulator, Path]]:
    """An emulated cluster that serves Deployments and Events but not Titan's CRDs."""
    async with Emulator() as emu, kmock.Server(emu):
        emu.resources["apps/v1/deployments"] = kmock.ResourceInfo(kind="Deployment", namespaced=True, verbs={"get"})
        yield emu, write_kubeconfig(tmp_path / "kubeconfig", str(emu.url).rstrip("/"))


async def test_crds_not_installed(bare_cluster: tuple[kmock.KubernetesEmulator, Path]) -> None:
    _, config = bare_cluster
    for command in ("status", "halt", "resume"):
        result = await asyncio.to_thread(run, command, "--kube-context", "kmock", env={"KUBECONFIG": str(config)})
        line = one_line_failure(result)
        assert line.startswith("the Titan CRDs are not installed in this cluster")
        assert "titanbrains.titan.trading" in line and "kubectl apply -f crds/" in line


@pytest.fixture
async def titan_cluster(tmp_path: Path) -> AsyncIterator[tuple[kmock.KubernetesEmulator, Path]]:
    async with Emulator() as emu, kmock.Server(emu):
        declare_resources(emu)
        yield emu, write_kubeconfig(tmp_path / "kubeconfig", str(emu.url).rstrip("/"))


async def test_no_titanbrain_in_the_namespace(titan_cluster: tuple[kmock.KubernetesEmulator, Path]) -> None:
    _, config = titan_cluster
    result = await asyncio.to_thread(run, "halt", "-n", "elsewhere", env={"KUBECONFIG": str(config)})
    line = one_line_failure(result)
    assert line == ("no TitanBrain in namespace elsewhere (current context): is Titan installed there? "
                    "Name its namespace with --namespace")


async def test_halt_times_out_with_the_phases_that_did_not_halt(
    titan_cluster: tuple[kmock.KubernetesEmulator, Path],
) -> None:
    """No operator runs here: the switch is set, nothing confirms it, and halt says so."""
    emu, config = titan_cluster
    for name, url in (("titanbrain.yaml", BRAINS_URL), ("titanphase-hunter.yaml", PHASES_URL)):
        resp = await emu.post(url, json=sample(name))
        assert resp.status in (200, 201), await resp.text()
    result = await asyncio.to_thread(run, "halt", "-n", NS, "--timeout", "1", "--reason", "test",
                                     env={"KUBECONFIG": str(config)})
    assert result.exit_code == 1, result.output
    first, second = result.output.strip().splitlines()
    assert first == f"TitanBrain {NS}/titan (current context): tradingState Active -> Halted"
    assert second == ("the kill switch is set, but after 1s not everything shows the halt: TitanBrain titan "
                      f"(no status), hunter (no status); is the Brain operator running? (kubectl -n {NS} get pods)")
    resp = await emu.get(f"{BRAINS_URL}/titan")
    brain = await resp.json()
    assert brain["spec"]["tradingState"] == "Halted"
    assert brain["metadata"]["annotations"]["titan.trading/trading-state-reason"] == "test"
