"""Against a real kube-apiserver + etcd on loopback (../shared/k8s-apiserver): the CRDs register,
the samples apply, schema violations are rejected by the server, `kubectl get tp` shows the printer
columns, and the Brain operator reconciles real objects (status, Deployments, Events, kill switch)
while it runs as the chart's operator ServiceAccount (its rendered Role/ClusterRole, a TokenRequest
token), not as an admin.

Marked `cluster`; skipped when etcd or the API server binary is missing — except under CI=true, where
a missing part is a broken setup and fails the test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from click.testing import Result
from kopf.testing import KopfRunner
from typer.testing import CliRunner

from tests.operator.scenarios import events, publish_equity, replicas, restart_waits_for_a_flat_book
from tests.util import wait_for
from titan.cli import control_cmd
from titan.core.bus import StateStore
from titan.core.catalog import Catalog
from titan.operator.deployments import PodSettings
from titan.operator.kopf_app import OperatorConfig, build_registry
from titan.operator.kube import Kube, KubeTarget
from titan.v1 import common_pb2

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
START = ROOT.parent / "shared" / "k8s-apiserver" / "start"
NS = "titan-cluster"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def _free_base_port() -> int:
    """A port P with P, P+7 and P+8 free (API server, etcd client, etcd peer)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + 8 > 65535:
            continue
        ok = True
        for port in (base + 7, base + 8):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
        if ok:
            return base
    raise RuntimeError("no free port triple")


def _stop(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def missing(message: str) -> None:
    """Skip locally; under CI (CI=true) a missing part of the cluster setup fails."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI=true: cluster tests must run)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def kubeconfig() -> Iterator[Path]:
    if not os.access(ETCD, os.X_OK):
        missing("etcd is not installed (apt-get install -y etcd-server): no real API server")
    if not START.exists() or not (START.parent / "kube-apiserver").exists():
        missing(f"no kube-apiserver at {START.parent}")
    if shutil.which("kubectl") is None:
        missing("kubectl is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="titan-kas-"))
    try:
        proc = subprocess.run([str(START), str(workdir), str(_free_base_port())], capture_output=True, text=True,
                              timeout=180, check=False)
        if proc.returncode != 0:
            pytest.fail(f"API server did not start: {proc.stderr[-2000:]}")
        path = Path(proc.stdout.strip().splitlines()[-1])
        yield path
    finally:
        _stop(workdir / "kas.pid")
        _stop(workdir / "etcd.pid")
        shutil.rmtree(workdir, ignore_errors=True)


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def cluster(kubeconfig: Path) -> Path:
    for name in ("titanphase.yaml", "titanbrain.yaml", "kopf-peering.yaml"):
        kubectl(kubeconfig, "apply", "-f", str(ROOT / "crds" / name))
    kubectl(kubeconfig, "wait", "--for=condition=established", "--timeout=60s",
            "crd/titanphases.titan.trading", "crd/titanbrains.titan.trading")
    kubectl(kubeconfig, "create", "namespace", NS)
    return kubeconfig


def _sample(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "crds" / "samples" / name).read_text())
    return doc


def test_samples_apply_and_kubectl_shows_the_columns(cluster: Path) -> None:
    kubectl(cluster, "apply", "-n", NS, "-f", str(ROOT / "crds" / "samples"))
    out = kubectl(cluster, "get", "tp", "-n", NS).stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "STATE", "WEIGHT", "NOTIONAL", "LEVERAGE", "PNL-TODAY", "AGE"]
    assert {line.split()[0] for line in out.splitlines()[1:]} == {"scavenger", "hunter", "sentinel", "ai-quant"}
    out = kubectl(cluster, "get", "tb", "-n", NS).stdout
    assert out.splitlines()[0].split()[:3] == ["NAME", "SWITCH", "MODE"] and "titan" in out
    # server-side defaulting from the schema
    hunter = json.loads(kubectl(cluster, "get", "tp", "hunter", "-n", NS, "-o", "json").stdout)
    assert hunter["spec"]["replicas"] == 1 and hunter["spec"]["enabled"] is True


@pytest.mark.parametrize(
    ("sample", "path", "value", "message"),
    [
        ("titanphase-hunter.yaml", ("spec", "maxLeverage"), 500, "spec.maxLeverage"),
        ("titanphase-hunter.yaml", ("spec", "phase"), "gambler", "spec.phase"),
        ("titanbrain.yaml", ("spec", "tradingState"), "Off", "spec.tradingState"),
        ("titanbrain.yaml", ("spec", "riskPolicy", "maxDailyDrawdown"), 2, "spec.riskPolicy.maxDailyDrawdown"),
    ],
)
def test_the_server_rejects_out_of_bounds_values(cluster: Path, sample: str, path: tuple[str, ...], value: Any,
                                                  message: str) -> None:
    doc = _sample(sample)
    doc["metadata"]["name"] = "bad-one"
    cur = doc
    for key in path[:-1]:
        cur = cur[key]
    cur[path[-1]] = value
    proc = kubectl(cluster, "apply", "-n", NS, "-f", "-", stdin=yaml.safe_dump(doc), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr and "is invalid" in proc.stderr


def kubeconfig_with_token(kubeconfig: Path, token: str, user: str, path: Path) -> Path:
    """A copy of ``kubeconfig`` that authenticates with ``token`` instead of the admin's."""
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["users"] = [{"name": user, "user": {"token": token}}]
    for context in doc["contexts"]:
        context["context"]["user"] = user
    path.write_text(yaml.safe_dump(doc))
    return path


def service_account_kubeconfig(kubeconfig: Path, name: str, path: Path) -> Path:
    """Log in as ServiceAccount ``name`` of NS: a token from the TokenRequest API."""
    token = kubectl(kubeconfig, "create", "token", name, "-n", NS, "--duration=2h").stdout.strip()
    return kubeconfig_with_token(kubeconfig, token, f"system:serviceaccount:{NS}:{name}", path)


@pytest.fixture(scope="module")
def operator_kubeconfig(cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart's operator ServiceAccount and RBAC (rendered by `helm template`), applied for real;
    a kubeconfig that logs in as that ServiceAccount."""
    if shutil.which("helm") is None:
        missing("helm is not installed")
    rendered = subprocess.run(
        ["helm", "template", "titan", str(ROOT / "helm" / "titan"), "--namespace", NS,
         "--show-only", "templates/rbac.yaml", "--show-only", "templates/serviceaccounts.yaml"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "ServiceAccount"} <= kinds, kinds
    kubectl(cluster, "apply", "-n", NS, "-f", "-", stdin=yaml.safe_dump_all(docs))
    path = service_account_kubeconfig(cluster, "titan-operator", tmp_path_factory.mktemp("sa") / "kubeconfig")
    # not an admin: the Role grants nothing on Secrets
    denied = kubectl(path, "get", "secrets", "-n", NS, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr, denied.stderr
    return path


@pytest.fixture(scope="module")
async def operator(cluster: Path, operator_kubeconfig: Path, nats_url: str,
                   catalog: Catalog) -> AsyncIterator[KopfRunner]:
    kubectl(cluster, "apply", "-n", NS, "-f", str(ROOT / "crds" / "samples"))
    os.environ["KUBECONFIG"] = str(operator_kubeconfig)  # kopf and the operator's client both log in from it
    pod = PodSettings(service_account="titan-phase", settings_configmap="titan-settings",
                      hmac_secret="titan-hmac-keys", gemini_secret="titan-gemini")
    config = OperatorConfig(nats_url=nats_url, catalog_namespace=catalog.namespace, interval_s=1.0, pod=pod)
    runner = KopfRunner(["run", "--standalone", "--namespace", NS], registry=build_registry(config), timeout=60)
    runner.__enter__()
    try:
        yield runner
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
        os.environ.pop("KUBECONFIG", None)
    assert runner.exception is None, runner.exception


OPERATOR_SA = f"system:serviceaccount:{NS}:titan-operator"
OTHER_NS = "titan-elsewhere"
# Everything the operator does (kopf's watches, finalizers and peering, status, the phases'
# Deployments, Events) and the cluster-scoped CRD read kopf needs at start.
OPERATOR_NEEDS = [
    *[(verb, res, NS) for res in ("titanphases.titan.trading", "titanbrains.titan.trading")
      for verb in ("get", "list", "watch", "patch")],
    *[(verb, res, NS) for res in ("titanphases.titan.trading/status", "titanbrains.titan.trading/status")
      for verb in ("get", "patch")],
    *[(verb, "deployments.apps", NS) for verb in ("get", "list", "watch", "create", "patch", "delete")],
    ("create", "events", NS),
    *[(verb, "kopfpeerings.kopf.dev", NS) for verb in ("get", "list", "watch", "patch")],
    *[(verb, "customresourcedefinitions.apiextensions.k8s.io", "") for verb in ("get", "list", "watch")],
]
OPERATOR_MUST_NOT = [
    ("get", "secrets", NS), ("list", "secrets", NS), ("watch", "secrets", NS), ("create", "secrets", NS),
    ("get", "secrets", OTHER_NS), ("list", "configmaps", NS), ("create", "pods/exec", NS), ("create", "pods", NS),
    ("create", "serviceaccounts/token", NS), ("create", "titanphases.titan.trading", NS),
    ("delete", "titanphases.titan.trading", NS), ("delete", "titanbrains.titan.trading", NS),
    ("list", "titanphases.titan.trading", OTHER_NS), ("patch", "titanbrains.titan.trading", OTHER_NS),
    ("create", "deployments.apps", OTHER_NS), ("delete", "deployments.apps", OTHER_NS),
    ("create", "roles.rbac.authorization.k8s.io", NS), ("create", "rolebindings.rbac.authorization.k8s.io", NS),
    ("patch", "roles.rbac.authorization.k8s.io", NS), ("create", "clusterroles.rbac.authorization.k8s.io", ""),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
    ("escalate", "roles.rbac.authorization.k8s.io", NS), ("bind", "clusterroles.rbac.authorization.k8s.io", ""),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io", ""), ("list", "namespaces", ""),
    ("list", "nodes", ""), ("delete", "namespaces", ""),
]


def can_i(kubeconfig: Path, verb: str, resource: str, namespace: str) -> bool:
    where = ["-n", namespace] if namespace else []
    proc = kubectl(kubeconfig, "auth", "can-i", verb, resource, *where, f"--as={OPERATOR_SA}", check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), (verb, resource, namespace, proc.stdout, proc.stderr)
    return answer == "yes"


def test_the_operator_service_account_has_exactly_what_it_needs(cluster: Path, operator_kubeconfig: Path) -> None:
    """As the chart renders the operator's RBAC, asked of the real API server (SubjectAccessReview)."""
    kubectl(cluster, "create", "namespace", OTHER_NS, check=False)
    denied = [(v, r, n) for v, r, n in OPERATOR_NEEDS if not can_i(cluster, v, r, n)]
    allowed = [(v, r, n) for v, r, n in OPERATOR_MUST_NOT if can_i(cluster, v, r, n)]
    print(f"\nRBAC: {len(OPERATOR_NEEDS)} needed permissions granted, {len(OPERATOR_MUST_NOT)} others refused")
    assert not denied, f"the operator lacks: {denied}"
    assert not allowed, f"the operator may also: {allowed}"


def _get_json(kubeconfig: Path, *args: str) -> dict[str, Any]:
    proc = kubectl(kubeconfig, "get", *args, "-n", NS, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


async def test_the_operator_reconciles_real_objects(operator: KopfRunner, cluster: Path, bus_js: Any,
                                                    catalog: Catalog) -> None:
    def phase_state(name: str) -> str:
        return str(_get_json(cluster, "tp", name).get("status", {}).get("state", ""))

    await wait_for(lambda: phase_state("scavenger") == "Active" and phase_state("hunter") == "Dormant", timeout=90)
    out = kubectl(cluster, "get", "tp", "-n", NS).stdout
    row = next(line.split() for line in out.splitlines() if line.startswith("scavenger"))
    assert row[1:6] == ["scavenger", "Active", "1", "1000", "10"]

    def replicas(name: str) -> int | None:
        dep = _get_json(cluster, "deployment", f"titan-phase-{name}")
        return None if not dep else int(dep["spec"]["replicas"])

    await wait_for(lambda: replicas("hunter") == 0 and replicas("scavenger") == 1, timeout=60)
    dep = _get_json(cluster, "deployment", "titan-phase-scavenger")
    assert dep["metadata"]["ownerReferences"][0]["kind"] == "TitanPhase"
    pod_spec = dep["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == "titan-phase"
    assert {v["name"] for v in pod_spec["volumes"]} == {"tmp", "hmac-keys"}
    assert pod_spec["containers"][0]["args"] == ["phase", "run", "scavenger"]
    ai = _get_json(cluster, "deployment", "titan-phase-ai-quant")["spec"]["template"]["spec"]["containers"][0]
    assert any(e["name"] == "TITAN_GEMINI_API_KEY" for e in ai["env"])
    events = _get_json(cluster, "events")
    assert any(e.get("reason") == "StateChanged" for e in events.get("items", []))

    # kill switch through the real API
    kubectl(cluster, "patch", "tb", "titan", "-n", NS, "--type=merge", "-p", '{"spec":{"tradingState":"Halted"}}')
    store = StateStore(bus_js, catalog)

    async def halted() -> bool:
        ts = await store.get_trading_state()
        return ts is not None and ts.mode == common_pb2.TRADING_MODE_HALTED

    await wait_for(halted, timeout=60)
    await wait_for(lambda: all(phase_state(n) == "Halted" for n in ("scavenger", "hunter", "sentinel", "ai-quant")),
                   timeout=60)
    brain = _get_json(cluster, "tb", "titan")
    assert brain["status"]["tradingMode"] == "HALTED" and brain["status"]["observedGeneration"] >= 2


@pytest.fixture(scope="module")
def admin(cluster: Path) -> Iterator[Kube]:
    kube = Kube.connect(KubeTarget(kubeconfig=str(cluster)))
    yield kube
    kube.close()


async def test_scale_restart_deferral_and_events_under_the_operators_rbac(
    operator: KopfRunner, cluster: Path, admin: Kube, bus_js: Any, catalog: Catalog,
) -> None:
    kubectl(cluster, "patch", "tb", "titan", "-n", NS, "--type=merge", "-p", '{"spec":{"tradingState":"Active"}}')
    await publish_equity(bus_js, catalog, "total", "10000")  # the Hunter becomes Active: 0 -> 1 replica

    async def hunter_up() -> bool:
        return await replicas(admin, NS, "hunter") == 1

    await wait_for(hunter_up, timeout=90)
    await restart_waits_for_a_flat_book(admin, NS, bus_js, catalog)
    created = await events(admin, NS, "DeploymentCreated")
    assert {e["involvedObject"]["name"] for e in created} >= {"scavenger", "hunter", "sentinel", "ai-quant"}
    assert all(e["source"]["component"] == "titan-brain" for e in created)


def titan(*args: str, kubeconfig: Path) -> Result:
    app = typer.Typer()
    for name in ("status", "halt", "resume"):
        app.command(name)(getattr(control_cmd, name))
    return CliRunner().invoke(app, list(args), env={"KUBECONFIG": str(kubeconfig), "TITAN_KUBE_CONTEXT": None})


async def test_titan_halt_status_resume_with_a_kube_context(operator: KopfRunner, cluster: Path) -> None:
    phases = ("ai-quant", "hunter", "scavenger", "sentinel")
    kubectl(cluster, "patch", "tb", "titan", "-n", NS, "--type=merge", "-p", '{"spec":{"tradingState":"Active"}}')
    result = await asyncio.to_thread(titan, "halt", "--kube-context", "local", "--namespace", NS, "--timeout", "90",
                                     "--reason", "cluster test", kubeconfig=cluster)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"TitanBrain {NS}/titan (local): tradingState Active -> Halted",
        f"halted: the Brain and all 4 TitanPhases ({', '.join(phases)}) show Halted",
    ]
    assert {_get_json(cluster, "tp", name)["status"]["state"] for name in phases} == {"Halted"}
    brain = _get_json(cluster, "tb", "titan")
    assert brain["metadata"]["annotations"]["titan.trading/trading-state-reason"] == "cluster test"

    result = await asyncio.to_thread(titan, "status", "--kube-context", "local", "-n", NS, "--json", kubeconfig=cluster)
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["kill_switch"] == "Halted" and status["trading_state"] == "HALTED" and status["running"] is True
    assert status["cluster"] == {"namespace": NS, "context": "local", "brain": "titan"}
    assert {name: a["state"] for name, a in status["allocations"].items()} == dict.fromkeys(phases, "Halted")
    table = await asyncio.to_thread(titan, "status", "--kube-context", "local", "-n", NS, kubeconfig=cluster)
    assert table.exit_code == 0 and "kill switch Halted" in table.output, table.output

    result = await asyncio.to_thread(titan, "resume", "--kube-context", "local", "-n", NS, kubeconfig=cluster)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"TitanBrain {NS}/titan (local): tradingState Halted -> Active"
    await wait_for(lambda: _get_json(cluster, "tb", "titan")["status"]["tradingMode"] == "ACTIVE", timeout=60)


def test_a_user_without_rbac_rights_is_told_so(cluster: Path, tmp_path: Path) -> None:
    kubectl(cluster, "create", "serviceaccount", "nobody", "-n", NS)
    nobody = service_account_kubeconfig(cluster, "nobody", tmp_path / "kubeconfig")
    for command in ("status", "halt", "resume"):
        result = titan(command, "--kube-context", "local", "-n", NS, kubeconfig=nobody)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert lines[0].startswith(f'forbidden by RBAC: titanbrains.titan.trading is forbidden: User '
                                   f'"system:serviceaccount:{NS}:nobody" cannot list resource "titanbrains"')
        assert "use a context whose user may list titanbrains" in lines[0]
    # the real entry point: one line on stderr, nothing else (no traceback, no TLS warning)
    env = {**os.environ, "KUBECONFIG": str(nobody)}
    env.pop("TITAN_KUBE_CONTEXT", None)
    proc = subprocess.run([sys.executable, "-m", "titan.cli", "halt", "--kube-context", "local", "-n", NS],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 1 and proc.stdout == "", (proc.stdout, proc.stderr)
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("forbidden by RBAC: "), proc.stderr


async def test_the_documented_minimal_rights_are_enough(operator: KopfRunner, cluster: Path, tmp_path: Path) -> None:
    """docs/operations.md: list+patch on titanbrains and list on titanphases steer the organism."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "titan-controller", "namespace": NS},
            "rules": [{"apiGroups": ["titan.trading"], "resources": ["titanbrains"], "verbs": ["list", "patch"]},
                      {"apiGroups": ["titan.trading"], "resources": ["titanphases"], "verbs": ["list"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "titan-controller", "namespace": NS},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "titan-controller"},
               "subjects": [{"kind": "ServiceAccount", "name": "controller", "namespace": NS}]}
    kubectl(cluster, "create", "serviceaccount", "controller", "-n", NS)
    kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump_all([role, binding]))
    person = service_account_kubeconfig(cluster, "controller", tmp_path / "kubeconfig")
    denied = kubectl(person, "get", "deployments", "-n", NS, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr
    for command in (["halt", "--timeout", "90"], ["status"], ["resume"]):
        result = await asyncio.to_thread(titan, *command, "--kube-context", "local", "-n", NS, kubeconfig=person)
        assert result.exit_code == 0, result.output
