"""`helm install` for real on the real kube-apiserver (../shared/k8s-apiserver, with RBAC): the CRDs
first, then the chart (Helm 4: server-side apply), `helm upgrade` with changed values, `helm
rollback`, the operator run outside the cluster as the chart's ServiceAccount reconciling the chart's
TitanBrain/TitanPhases, a 100-TitanPhase scale measurement, and `helm uninstall` leaving nothing.

Marked `cluster`; skipped when etcd or the API server binary is missing (like tests/crds/test_cluster)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml

from tests.crds.test_cluster import kubeconfig, kubectl  # noqa: F401 - kubeconfig is a fixture
from tests.deploy.tools import CHART, CRDS, load_all, require
from tests.operator.scenarios import publish_equity
from tests.util import wait_for, wait_for_sync
from titan.core.catalog import Catalog
from titan.operator.kube import TITANBRAINS, Kube, KubeTarget, load_configuration

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

NS = "titan"  # the chart's ServiceAccount token is requested for this namespace
RELEASE = "titan"
TITAN = Path(sys.executable).parent / "titan"
SCALE = 100
GRACE_S = 30  # a pod's default terminationGracePeriodSeconds


def helm(kubeconfig_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([require("helm"), f"--kubeconfig={kubeconfig_path}", *args], capture_output=True,
                          text=True, timeout=300, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def chart_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart without `kubeVersion` (this API server reports v0.0.0-master); symlinks resolved."""
    target = tmp_path_factory.mktemp("chart") / "titan"
    shutil.copytree(CHART, target, symlinks=False)
    chart = yaml.safe_load((target / "Chart.yaml").read_text())
    chart.pop("kubeVersion", None)
    (target / "Chart.yaml").write_text(yaml.safe_dump(chart))
    return target


@pytest.fixture(scope="module")
def api(kubeconfig: Path) -> Path:  # noqa: F811 - the imported fixture
    tools = CHART.parents[1] / ".tools" / "bin"
    if shutil.which("kubectl") is None and (tools / "kubectl").exists():
        os.environ["PATH"] = f"{tools}{os.pathsep}{os.environ['PATH']}"  # the project's pinned kubectl
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: run .ci/install-tools.sh")
    for crd in sorted(CRDS.glob("*.yaml")):
        kubectl(kubeconfig, "apply", "--server-side", "-f", str(crd))
    kubectl(kubeconfig, "wait", "--for=condition=established", "--timeout=60s", "crd/titanphases.titan.trading",
            "crd/titanbrains.titan.trading", "crd/kopfpeerings.kopf.dev")
    kubectl(kubeconfig, "create", "namespace", NS)
    return kubeconfig


def _get(kube: Path, *args: str) -> dict[str, Any]:
    proc = kubectl(kube, "get", *args, "-n", NS, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def _manifest_objects(kube: Path) -> list[dict[str, Any]]:
    return load_all(helm(kube, "get", "manifest", RELEASE, "-n", NS).stdout)


def test_install_accepts_every_object(api: Path, chart_copy: Path) -> None:
    out = helm(api, "install", RELEASE, str(chart_copy), "-n", NS,
               "--set", "monitoring.prometheusRule.enabled=true,monitoring.serviceMonitor.enabled=true").stdout
    assert "STATUS: deployed" in out
    # prometheus-operator's CRDs are not installed here: those kinds are left out, and NOTES says so
    assert "WARNING: monitoring.prometheusRule.enabled" in out and "WARNING: monitoring.serviceMonitor.enabled" in out
    objects = _manifest_objects(api)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "StatefulSet", "Service", "TitanBrain", "TitanPhase", "Role", "NetworkPolicy"} <= kinds
    assert not kinds & {"PrometheusRule", "ServiceMonitor", "PodMonitor"}
    for obj in objects:  # every object the chart rendered is stored by the API server
        name, kind = obj["metadata"]["name"], obj["kind"]
        got = kubectl(api, "get", kind, name, "-n", NS, "-o", "name", check=False)
        assert got.returncode == 0, f"{kind}/{name}: {got.stderr}"
    svc = _get(api, "service", f"{RELEASE}-postgres")
    assert all(p["protocol"] == "TCP" for p in svc["spec"]["ports"])


def test_upgrade_with_changed_values_then_rollback(api: Path, chart_copy: Path) -> None:
    def max_leverage() -> int:
        return int(_get(api, "titanbrain", "brain")["spec"]["riskPolicy"]["maxLeverage"])

    assert max_leverage() == 10
    helm(api, "upgrade", RELEASE, str(chart_copy), "-n", NS, "--reuse-values",
         "--set", "brain.spec.riskPolicy.maxLeverage=5,operator.resources.limits.memory=384Mi")
    assert max_leverage() == 5
    operator = _get(api, "deployment", f"{RELEASE}-operator")
    assert operator["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "384Mi"
    helm(api, "rollback", RELEASE, "1", "-n", NS)
    assert max_leverage() == 10
    history = json.loads(helm(api, "history", RELEASE, "-n", NS, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2, 3] and history[-1]["status"] == "deployed"
    assert "Rollback to 1" in history[-1]["description"]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.fixture(scope="module")
def operator_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("operator") / "operator.log"


@pytest.fixture(scope="module")
def operator_process(api: Path, nats_url: str, catalog: Catalog, operator_log: Path,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """`titan operator run` outside the cluster, logged in as the chart's operator ServiceAccount (with the
    test kubeconfig's insecure-skip-tls-verify)."""
    sa = service_account_kubeconfig_ns(api, f"{RELEASE}-operator", tmp_path_factory.mktemp("sa") / "kubeconfig")
    env = os.environ | {"KUBECONFIG": str(sa), "TITAN_NATS_URL": nats_url, "TITAN_NAMESPACE": catalog.namespace,
                        "TITAN_PHASE_SERVICE_ACCOUNT": f"{RELEASE}-phase",
                        "PYTHONFAULTHANDLER": "1"}  # a SIGABRT writes every thread's stack to the log
    proc = subprocess.Popen([str(TITAN), "operator", "run", "--namespace", NS, "--standalone", "--interval", "1",
                             "--liveness", ""], env=env, stdout=open(operator_log, "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def service_account_kubeconfig_ns(kube: Path, name: str, path: Path) -> Path:
    token = kubectl(kube, "create", "token", name, "-n", NS, "--duration=2h").stdout.strip()
    doc = yaml.safe_load(kube.read_text())
    doc["users"] = [{"name": name, "user": {"token": token}}]
    for context in doc["contexts"]:
        context["context"]["user"] = name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_operator_reconciles_the_charts_resources(api: Path, operator_process: subprocess.Popen[bytes]) -> None:
    def state(name: str) -> str:
        return str(_get(api, "titanphase", name).get("status", {}).get("state", ""))

    wait_for_sync(lambda: state("scavenger") == "Active" and state("hunter") == "Dormant", timeout=120, interval=1)
    scavenger = _get(api, "titanphase", "scavenger")["status"]
    assert scavenger["allocation"]["weight"] and scavenger["lastDecisionTime"] and scavenger["budgetVersion"]
    assert _get(api, "titanbrain", "brain")["status"]["tradingMode"] == "ACTIVE"

    def replicas(name: str) -> int | None:
        dep = _get(api, "deployment", f"titan-phase-{name}")
        return int(dep["spec"]["replicas"]) if dep else None

    wait_for_sync(lambda: replicas("scavenger") == 1 and replicas("hunter") == 0, timeout=120, interval=1)
    dep = _get(api, "deployment", "titan-phase-scavenger")
    assert dep["metadata"]["ownerReferences"][0]["kind"] == "TitanPhase"
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == f"{RELEASE}-phase"
    assert state("ai-quant") in ("Disabled", "Dormant")  # enabled: false in the chart's values
    assert operator_process.poll() is None


async def test_scale_100_phases_equity_change_reaches_every_status(
    api: Path, operator_process: subprocess.Popen[bytes], bus_js: Any, catalog: Catalog,
) -> None:
    names = [f"scale-{i:03d}" for i in range(SCALE)]
    docs = [{"apiVersion": "titan.trading/v1alpha1", "kind": "TitanPhase", "metadata": {"name": n},
             "spec": {"phase": "scavenger", "enabled": True, "venue": "paper", "symbols": ["BTCUSDT"]}}
            for n in names]
    kubectl(api, "apply", "-n", NS, "-f", "-", stdin=yaml.safe_dump_all(docs))

    def statuses() -> dict[str, dict[str, Any]]:
        items = json.loads(kubectl(api, "get", "titanphases", "-n", NS, "-o", "json").stdout)["items"]
        return {i["metadata"]["name"]: i.get("status") or {} for i in items}

    await wait_for(lambda: all(statuses().get(n, {}).get("state") for n in names), timeout=600, interval=1)
    rss_before = _rss_kib(operator_process.pid)
    started = time.monotonic()
    for n in names:  # execution's snapshot batch: each phase's own equity moves
        await publish_equity(bus_js, catalog, n, "12.34")
    await wait_for(lambda: all(statuses()[n].get("equity") == "12.34" for n in names), timeout=600, interval=0.5)
    elapsed = time.monotonic() - started
    rss = _rss_kib(operator_process.pid)
    print(json.dumps({"titan_phases": SCALE + 4, "equity_change_to_every_status_s": round(elapsed, 1),
                      "operator_rss_mib": round(rss / 1024, 1),
                      "operator_rss_before_mib": round(rss_before / 1024, 1)}))
    assert rss > 0 and operator_process.poll() is None
    kubectl(api, "delete", "titanphases", "-n", NS, *names, "--wait=true", "--timeout=300s")


def _titan_resources(kube: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        kubectl(kube, "get", "titanphases,titanbrains", "-n", NS, "-o", "json").stdout)["items"]
    return items


def test_tls_is_verified_with_the_clusters_ca(api: Path, tmp_path: Path) -> None:
    """A kubeconfig that names the cluster's CA: the operator's client checks the certificate (no
    InsecureRequestWarning; a request with verification on succeeds only if the CA signed it)."""
    ca = api.parent / "certs" / "apiserver.crt"  # kube-apiserver's self-signed chain (its CA included)
    doc = yaml.safe_load(api.read_text())
    for cluster in doc["clusters"]:
        cluster["cluster"].pop("insecure-skip-tls-verify", None)
        cluster["cluster"]["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_configuration(KubeTarget(kubeconfig=str(path)))
    assert cfg.verify_ssl and cfg.ssl_ca_cert
    kube = Kube.connect(KubeTarget(kubeconfig=str(path)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", urllib3.exceptions.InsecureRequestWarning)
            assert [o["metadata"]["name"] for o in kube.list_objects(TITANBRAINS, NS)] == ["brain"]
    finally:
        kube.close()


def test_insecure_kubeconfig_warns_once_not_per_request(operator_process: subprocess.Popen[bytes],
                                                       operator_log: Path) -> None:
    """The test kubeconfig sets insecure-skip-tls-verify: the operator says so once at start, and urllib3
    does not repeat its InsecureRequestWarning for each request. By now the operator has reconciled
    every second for minutes (the tests above: statuses, Deployments, the 100-phase scale run)."""
    assert operator_process.poll() is None
    text = operator_log.read_text()
    assert text.count("InsecureRequestWarning") <= 1, text[-3000:]
    assert text.count("TLS verification of the Kubernetes API server") == 1, text[-3000:]


def _release_deleted_claims(api: Path) -> set[str]:
    """What a cluster's pvc-protection controller does, which this API server does not run: a claim
    being deleted that no pod uses loses its ``kubernetes.io/pvc-protection`` finalizer. Returns them."""
    pods = _get(api, "pods").get("items", [])
    used = {v["persistentVolumeClaim"]["claimName"] for p in pods for v in p["spec"].get("volumes", [])
            if "persistentVolumeClaim" in v}
    released = set()
    for claim in _get(api, "persistentvolumeclaims").get("items", []):
        meta = claim["metadata"]
        if meta.get("deletionTimestamp") and meta["name"] not in used \
                and "kubernetes.io/pvc-protection" in (meta.get("finalizers") or []):
            kubectl(api, "patch", "persistentvolumeclaim", meta["name"], "-n", NS, "--type", "json",
                    "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]')
            released.add(meta["name"])
    return released


def test_uninstall_leaves_nothing_of_titan(api: Path, operator_process: subprocess.Popen[bytes]) -> None:
    """A plain `helm uninstall`, with the operator gone as it is in a cluster (helm deletes its
    Deployment and RBAC in the same pass): no finalizer holds a TitanBrain or TitanPhase."""
    assert not [o["metadata"]["name"] for o in _titan_resources(api) if o["metadata"].get("finalizers")]
    stopping = time.monotonic()
    operator_process.send_signal(signal.SIGTERM)  # as the kubelet stops a pod: a grace period, then a kill
    try:
        operator_process.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        operator_process.send_signal(signal.SIGABRT)
        operator_process.wait(30)
    print(json.dumps({"operator_stop_s": round(time.monotonic() - stopping, 1),
                      "operator_exit": operator_process.returncode}))
    started = time.monotonic()
    assert _get(api, "persistentvolumeclaim", f"{RELEASE}-execution-outbox")  # the chart's own claim ...
    uninstall = subprocess.Popen([require("helm"), f"--kubeconfig={api}", "uninstall", RELEASE, "-n", NS, "--wait",
                                  "--timeout", "180s"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    released: set[str] = set()
    try:
        wait_for_sync(lambda: released.update(_release_deleted_claims(api)) or uninstall.poll() is not None,
                      timeout=200, interval=0.5)
    finally:
        if uninstall.poll() is None:
            uninstall.kill()
        out = uninstall.communicate()[0]
    assert uninstall.returncode == 0, out
    assert released == {f"{RELEASE}-execution-outbox"}  # ... goes with the release (no resource-policy keep)
    kinds = ("deployments,statefulsets,services,configmaps,serviceaccounts,roles,rolebindings,networkpolicies,"
             "kopfpeerings,secrets,persistentvolumeclaims")

    def chart_objects_left() -> list[str]:
        left = json.loads(kubectl(api, "get", kinds, "-n", NS, "-o", "json").stdout)["items"]
        return [f"{o['kind']}/{o['metadata']['name']}" for o in left
                if o["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == RELEASE
                or o["metadata"]["name"].startswith("sh.helm.release")]

    wait_for_sync(lambda: not chart_objects_left() and not _titan_resources(api), timeout=180, interval=1)
    print(json.dumps({"uninstall_to_nothing_left_s": round(time.monotonic() - started, 1)}))
    listed = helm(api, "list", "-n", NS, "--deployed", "--failed", "--pending", "--superseded", "--uninstalling",
                  "-o", "json").stdout
    assert json.loads(listed) == []
    # Phase Deployments the operator created belong to their TitanPhase: a cluster's garbage collector
    # removes them with it (this API server runs no controllers, so they are checked, not awaited).
    left = json.loads(kubectl(api, "get", "deployments", "-n", NS, "-o", "json").stdout)["items"]
    for obj in left:
        owners = obj["metadata"].get("ownerReferences") or []
        assert owners and owners[0]["kind"] == "TitanPhase", obj["metadata"]["name"]
