"""The AI Quant's CronJob in the chart (helm/titan/templates/quant.yaml): off by default; when on,
strict Kubernetes schemas pass, the values schema refuses bad values, the ServiceAccount's Role grants
exactly get/list/patch on titanphases and get/list on titanbrains, the Gemini key is a Secret
reference, and a Gemini search without the Secret is refused at render time."""

from __future__ import annotations

import tempfile
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.tools import NAMESPACE, RELEASE, find, helm_template_cmd, kinds, pod_spec, render, run

ON = ("--set", "quant.enabled=true,secrets.gemini.name=titan-gemini")
NAME = f"{RELEASE}-quant"


def _render_with_values(values: dict[str, Any]) -> Any:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values, f)
        f.flush()
        return run(*helm_template_cmd("-f", f.name), check=False)


def test_off_by_default() -> None:
    objs = render()
    assert not kinds(objs, "CronJob")
    assert all(o["metadata"]["name"] != NAME for o in objs)


def test_rendered_objects_pass_strict_kubernetes_schemas() -> None:
    objs = [o for o in render(*ON) if o["metadata"]["name"].startswith(NAME)]
    assert {o["kind"] for o in objs} == {"ServiceAccount", "Role", "RoleBinding", "CronJob", "NetworkPolicy"}
    version = kubernetes_validate.latest_version()
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {err.message}")


def test_role_is_least_privilege() -> None:
    objs = render(*ON)
    role = find(objs, "Role", NAME)
    assert role["metadata"]["namespace"] == NAMESPACE
    grants = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
              for v in rule["verbs"]}
    assert grants == {("titan.trading", "titanphases", v) for v in ("get", "list", "patch")} | \
        {("titan.trading", "titanbrains", v) for v in ("get", "list")}
    binding = find(objs, "RoleBinding", NAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]
    assert not [b for b in kinds(objs, "ClusterRoleBinding") if any(s["name"] == NAME for s in b["subjects"])]


def test_cronjob_runs_titan_quant_run_with_the_key_from_the_secret() -> None:
    cron = find(render(*ON, "--set-string", "quant.extraArgs={--data,sim:3,--days,7}"), "CronJob", NAME)
    assert cron["spec"]["schedule"] == "17 3 * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    spec = pod_spec(cron)
    assert spec["serviceAccountName"] == NAME and spec["automountServiceAccountToken"] is True
    [container] = spec["containers"]
    assert container["args"] == ["quant", "run", "--phase", "scavenger", "--search", "gemini", "--namespace",
                                 NAMESPACE, "--data", "sim:3", "--days", "7"]
    env = {e["name"]: e for e in container["env"]}
    assert env["TITAN_GEMINI_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "titan-gemini",
                                                                         "key": "gemini-api-key"}
    assert "TITAN_PG_DSN" in env and container["securityContext"]["readOnlyRootFilesystem"] is True


def test_optuna_needs_no_key_and_gemini_without_its_secret_is_refused() -> None:
    cron = find(render("--set", "quant.enabled=true,quant.search=optuna"), "CronJob", NAME)
    names = {e["name"] for e in pod_spec(cron)["containers"][0]["env"]}
    assert "TITAN_GEMINI_API_KEY" not in names
    refused = _render_with_values({"quant": {"enabled": True}})
    assert refused.returncode != 0 and "secrets.gemini.name" in refused.stderr


@pytest.mark.parametrize("values", [
    {"quant": {"enabled": True, "search": "llm"}},
    {"quant": {"enabled": True, "schedule": "nightly"}},
    {"quant": {"enabled": True, "apiKey": "AIzaEXAMPLE"}},
    {"quant": {"enabled": True, "phase": "Not A Name"}},
])
def test_values_schema_refuses_bad_values(values: dict[str, Any]) -> None:
    proc = _render_with_values(values)
    assert proc.returncode != 0 and "schema" in proc.stderr, proc.stderr
