"""Rendering of each phase's Deployment (a child the operator owns). Pure: dicts in, dict out.

Parameters are not part of the pod template (phases read them from the TITAN_PARAMS KV bucket and
reload in place), so changing ``spec.params`` never restarts a pod. The template changes only with
the image, the resources or an explicit ``spec.restartToken``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_IMAGE = "ghcr.io/titan-trading/titan:latest"
HMAC_DIR = "/etc/titan/hmac"
METRICS_PORT = 9100
HEALTH_PORT = 8080
RESTART_ANNOTATION = "titan.trading/restart-token"
TEMPLATE_HASH_ANNOTATION = "titan.trading/template-hash"
PHASE_LABEL = "titan.trading/phase"
INSTANCE_LABEL = "app.kubernetes.io/instance"


@dataclass(frozen=True)
class PodSettings:
    """Cluster wiring of phase pods (from the operator's environment, set by the Helm chart)."""

    service_account: str = ""          # TITAN_PHASE_SERVICE_ACCOUNT
    settings_configmap: str = ""       # TITAN_PHASE_SETTINGS_CONFIGMAP: TITAN_* settings via envFrom
    hmac_secret: str = ""              # TITAN_PHASE_HMAC_SECRET_NAME: mounted at /etc/titan/hmac
    gemini_secret: str = ""            # TITAN_PHASE_GEMINI_SECRET_NAME (ai-quant only)
    gemini_secret_item: str = "api-key"
    env: Mapping[str, str] = field(default_factory=dict)  # extra plain env (e.g. TITAN_NATS_URL)


def deployment_name(phase_id: str) -> str:
    return f"titan-phase-{phase_id}"


def render_deployment(
    phase_id: str,
    namespace: str,
    spec: Mapping[str, Any],
    replicas: int,
    *,
    default_image: str = DEFAULT_IMAGE,
    pod: PodSettings | None = None,
) -> dict[str, Any]:
    """The Deployment of one TitanPhase: one pod at most (``Recreate``: never two of a phase
    signalling at once), its template hashed into an annotation so a change of it is seen."""
    pod = pod or PodSettings()
    kind = str(spec.get("phase", ""))
    labels = {
        "app.kubernetes.io/name": "titan-phase",
        INSTANCE_LABEL: phase_id,
        "app.kubernetes.io/part-of": "titan",
        "app.kubernetes.io/managed-by": "titan-brain",
        PHASE_LABEL: kind,
    }
    template = _pod_template(labels, spec, _container(phase_id, kind, spec, default_image, pod), pod)
    template["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION] = template_hash(template)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment_name(phase_id), "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            # One writer per phase: never two pods of a phase signalling at once.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {INSTANCE_LABEL: phase_id, PHASE_LABEL: kind}},
            "template": template,
        },
    }


def _container(phase_id: str, kind: str, spec: Mapping[str, Any], default_image: str,
               pod: PodSettings) -> dict[str, Any]:
    """The phase's container: ``phase run <kind>``, its environment and mounts, probes on the
    health port, and a locked-down security context."""
    env: list[dict[str, Any]] = [
        {"name": "TITAN_PHASE_ID", "value": phase_id},
        {"name": "TITAN_PHASE_KIND", "value": kind},
        {"name": "TITAN_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        *({"name": k, "value": v} for k, v in sorted(pod.env.items())),
    ]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if pod.hmac_secret:
        env.append({"name": "TITAN_HMAC_KEYS_DIR", "value": HMAC_DIR})
        mounts.append({"name": "hmac-keys", "mountPath": HMAC_DIR, "readOnly": True})
    if kind == "ai-quant" and pod.gemini_secret:
        env.append({"name": "TITAN_GEMINI_API_KEY", "valueFrom": {"secretKeyRef": {
            "name": pod.gemini_secret, "key": pod.gemini_secret_item, "optional": True}}})
    probe = {"httpGet": {"path": "/healthz", "port": "health"}}
    container: dict[str, Any] = {
        "name": "phase",
        "image": str(spec.get("image") or default_image),
        "args": ["phase", "run", kind],
        "env": env,
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
                  {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": 60},
        "livenessProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
        "resources": dict(spec.get("resources") or {}),
        "volumeMounts": mounts,
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if pod.settings_configmap:
        container["envFrom"] = [{"configMapRef": {"name": pod.settings_configmap}}]
    return container


def _pod_template(labels: Mapping[str, str], spec: Mapping[str, Any], container: dict[str, Any],
                  pod: PodSettings) -> dict[str, Any]:
    """The pod template around ``container``: its volumes (a small /tmp, the HMAC keys' secret),
    the service account without a mounted token, and the restart token as an annotation."""
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    if pod.hmac_secret:
        volumes.append({"name": "hmac-keys", "secret": {"secretName": pod.hmac_secret, "defaultMode": 0o400}})
    pod_spec: dict[str, Any] = {"containers": [container], "volumes": volumes, "terminationGracePeriodSeconds": 30}
    if pod.service_account:
        pod_spec["serviceAccountName"] = pod.service_account
        pod_spec["automountServiceAccountToken"] = False
    return {
        "metadata": {
            "labels": dict(labels),
            "annotations": {RESTART_ANNOTATION: str(spec.get("restartToken") or "")},
        },
        "spec": pod_spec,
    }


def template_hash(template: Mapping[str, Any]) -> str:
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_template_hash(deployment: Mapping[str, Any]) -> str:
    annotations = (
        deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    )
    return str(annotations.get(TEMPLATE_HASH_ANNOTATION, ""))


def current_restart_token(deployment: Mapping[str, Any]) -> str:
    annotations = (
        deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    )
    return str(annotations.get(RESTART_ANNOTATION, ""))


def plan_update(
    existing: Mapping[str, Any], desired: Mapping[str, Any], *, holds_positions: bool
) -> tuple[dict[str, Any] | None, bool]:
    """The merge patch that brings ``existing`` to ``desired``, or None when nothing changes.

    Returns (patch, deferred): a template change (which restarts the pod) is deferred while the
    phase holds positions, unless the restart token changed (an explicit request)."""
    patch: dict[str, Any] = {}
    deferred = False
    if existing.get("spec", {}).get("replicas") != desired["spec"]["replicas"]:
        patch.setdefault("spec", {})["replicas"] = desired["spec"]["replicas"]
    if current_template_hash(existing) != current_template_hash(desired):
        requested = current_restart_token(existing) != current_restart_token(desired)
        if holds_positions and not requested:
            deferred = True
        else:
            patch.setdefault("spec", {})["template"] = desired["spec"]["template"]
    return (patch or None), deferred
