"""Phase Deployment rendering and update planning (pure), validated against the Kubernetes schema."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from titan.operator.deployments import PodSettings, deployment_name, plan_update, render_deployment

SPEC: dict[str, Any] = {
    "phase": "hunter",
    "symbols": ["BTCUSDT"],
    "params": {"timeframe": "15m"},
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
}
POD = PodSettings(service_account="titan-phase", settings_configmap="titan-settings", hmac_secret="titan-hmac",
                  gemini_secret="titan-gemini", env={"TITAN_NATS_URL": "nats://nats:4222"})


@pytest.mark.parametrize("kind", ["scavenger", "hunter", "sentinel", "ai-quant"])
def test_rendered_deployment_is_a_valid_kubernetes_object(kind: str) -> None:
    dep = render_deployment(kind, "titan", {**SPEC, "phase": kind}, 1, pod=POD)
    kubernetes_validate.validate(dep, "1.30", strict=True)
    assert dep["metadata"]["name"] == deployment_name(kind) == f"titan-phase-{kind}"
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["phase", "run", kind]
    env = {e["name"] for e in container["env"]}
    assert {"TITAN_PHASE_ID", "TITAN_HMAC_KEYS_DIR", "TITAN_NATS_URL"} <= env
    assert ("TITAN_GEMINI_API_KEY" in env) == (kind == "ai-quant")
    assert dep["spec"]["strategy"] == {"type": "Recreate"}


def test_params_are_not_in_the_pod_template() -> None:
    a = render_deployment("hunter", "titan", SPEC, 1, pod=POD)
    b = render_deployment("hunter", "titan", {**SPEC, "params": {"timeframe": "1h"}}, 1, pod=POD)
    assert a == b


def test_scaling_never_touches_the_template() -> None:
    existing = render_deployment("hunter", "titan", SPEC, 1, pod=POD)
    desired = render_deployment("hunter", "titan", SPEC, 0, pod=POD)
    assert plan_update(existing, desired, holds_positions=False) == ({"spec": {"replicas": 0}}, False)
    assert plan_update(existing, existing, holds_positions=True) == (None, False)


def test_a_template_change_waits_while_the_phase_holds_positions() -> None:
    existing = render_deployment("hunter", "titan", SPEC, 1, pod=POD)
    new_image = render_deployment("hunter", "titan", {**SPEC, "image": "titan:2"}, 1, pod=POD)
    patch, deferred = plan_update(existing, new_image, holds_positions=True)
    assert patch is None and deferred
    patch, deferred = plan_update(existing, new_image, holds_positions=False)
    assert patch is not None and not deferred
    assert patch["spec"]["template"]["spec"]["containers"][0]["image"] == "titan:2"
    # an explicit restart request goes through even with positions
    requested = render_deployment("hunter", "titan", {**SPEC, "image": "titan:2", "restartToken": "r1"}, 1, pod=POD)
    patch, deferred = plan_update(copy.deepcopy(existing), requested, holds_positions=True)
    assert patch is not None and not deferred
