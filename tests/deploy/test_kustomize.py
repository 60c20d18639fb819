"""k8s/: plain manifests rendered from the chart, plus the k3s-droplet kustomize overlay."""

from __future__ import annotations

import os
import subprocess

import kubernetes_validate
import pytest
import yaml

from tests.deploy.test_chart import CUSTOM_KINDS, qos_class
from tests.deploy.tools import (
    CHART,
    K8S,
    Manifest,
    containers,
    find,
    kinds,
    load_all,
    pod_spec,
    require,
    run,
    workloads,
)

OVERLAY = K8S / "overlays" / "k3s-droplet"


@pytest.fixture(scope="module")
def overlay() -> list[Manifest]:
    kubectl = require("kubectl")
    return load_all(run(kubectl, "kustomize", str(OVERLAY)).stdout)


def test_generated_manifests_are_up_to_date_with_the_chart() -> None:
    helm = require("helm")
    proc = subprocess.run(["bash", str(K8S / "render.sh"), "--check"], capture_output=True, text=True,
                          env={**os.environ, "HELM": helm}, timeout=120)
    assert proc.returncode == 0, f"k8s/ is stale (helm {helm}): run k8s/render.sh\n{proc.stderr}"


def test_overlay_passes_strict_kubernetes_schemas(overlay: list[Manifest]) -> None:
    version = kubernetes_validate.latest_version()
    validated = 0
    for obj in overlay:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {err.message}")
        validated += 1
    assert validated > 20


def test_overlay_places_everything_in_the_titan_namespace(overlay: list[Manifest]) -> None:
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for obj in overlay:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace") == "titan", (obj["kind"], obj["metadata"]["name"])
    for b in kinds(overlay, "RoleBinding") + kinds(overlay, "ClusterRoleBinding"):
        assert all(s["namespace"] == "titan" for s in b["subjects"])
    assert find(overlay, "Namespace", "titan")


def test_overlay_execution_is_guaranteed_on_the_static_cpu_manager_node(overlay: list[Manifest]) -> None:
    spec = pod_spec(find(overlay, "Deployment", "titan-execution"))
    assert qos_class(spec) == "Guaranteed"
    for c in containers(spec):
        assert c["resources"]["requests"] == c["resources"]["limits"]
        assert str(c["resources"]["limits"]["cpu"]).isdigit()
    assert spec["nodeSelector"] == {"titan.trading/cpu-manager": "static"}
    assert spec["tolerations"][0]["key"] == "titan.trading/dedicated"


def test_overlay_pins_images_storage_and_monitoring(overlay: list[Manifest]) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for w in workloads(overlay):
        for c in containers(pod_spec(w)):
            if c["image"].startswith("titan"):
                assert c["image"] == f"titan:{app_version}"
    for sts in kinds(overlay, "StatefulSet"):
        assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "local-path"
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        (obj,) = kinds(overlay, kind)
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert not kinds(overlay, "Secret")
    assert find(overlay, "NetworkPolicy", "titan-execution")
