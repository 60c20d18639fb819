"""The Helm chart, checked with the real `helm` binary and the rendered manifests."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.netpol import Endpoint, can_connect
from tests.deploy.tools import (
    CHART,
    CRDS,
    K3S_VALUES,
    NAMESPACE,
    RELEASE,
    RULES,
    Manifest,
    containers,
    find,
    helm_template_cmd,
    kinds,
    pod_spec,
    render,
    require,
    run,
    walk_strings,
    workloads,
)

K8S_VERSION = kubernetes_validate.latest_version()
FULL = f"{RELEASE}"  # release "titan" + chart "titan" -> resource prefix "titan"
MONITORING_ON = ("--set", "monitoring.serviceMonitor.enabled=true,monitoring.podMonitor.enabled=true,"
                 "monitoring.prometheusRule.enabled=true",
                 *(f"--api-versions=monitoring.coreos.com/v1/{kind}"
                   for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule")))
EXTERNAL_INFRA = ("--set", "nats.externalUrl=nats://nats.infra:4222,postgresql.external=true,"
                  "postgresql.bundled.enabled=false")
LIVE = ("--set", "trading.mode=live,trading.venue=bybit,trading.liveConfirm=true,trading.testnet=false,"
        "secrets.venue.name=titan-venue,secrets.gemini.name=titan-gemini")
VARIANTS: dict[str, tuple[str, ...]] = {
    "default": (),
    "k3s": ("-f", str(K3S_VALUES)),
    "monitoring": MONITORING_ON,
    "clusterwide": ("--set", "operator.clusterwide=true"),
    "external-infra": EXTERNAL_INFRA,
    "live": LIVE,
}
# Kinds that have no schema in kubernetes-validate: validated elsewhere (Titan CRs against crds/)
# or belonging to prometheus-operator / kopf.
CUSTOM_KINDS = {"TitanBrain", "TitanPhase", "KopfPeering", "ServiceMonitor", "PodMonitor", "PrometheusRule"}


@pytest.fixture(params=list(VARIANTS), ids=list(VARIANTS))
def variant(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(*VARIANTS[request.param])


# --- helm lint / template / schema validation --------------------------------------------------

@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
@pytest.mark.parametrize("values", ["default", "k3s"])
def test_helm_lint(strict: bool, values: str) -> None:
    helm = require("helm")
    args = [helm, "lint", str(CHART)]
    if strict:
        args.append("--strict")
    if values == "k3s":
        args += ["-f", str(K3S_VALUES)]
    proc = run(*args)
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout
    assert "[ERROR]" not in proc.stdout and "[WARNING]" not in proc.stdout


def test_rendered_manifests_pass_strict_kubernetes_schemas(variant: list[Manifest]) -> None:
    seen_custom = set()
    for obj in variant:
        if obj["kind"] in CUSTOM_KINDS:
            seen_custom.add(obj["kind"])
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {err.message}")
    assert {"TitanBrain", "TitanPhase"} <= seen_custom


def _crd_schema(path: Path) -> tuple[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    crd = next(d for d in docs if d.get("kind") == "CustomResourceDefinition")
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return crd["spec"]["names"]["kind"], version["schema"]["openAPIV3Schema"]


def test_titan_resources_validate_against_the_crds() -> None:
    crd_files = [CRDS / "titanphase.yaml", CRDS / "titanbrain.yaml"]
    missing = [str(p) for p in crd_files if not p.exists()]
    if missing:
        pytest.skip(f"CRDs not present yet: {missing}")
    schemas = dict(_crd_schema(p) for p in crd_files)
    for values in (VARIANTS["default"], VARIANTS["k3s"]):
        objs = render(*values)
        checked = 0
        for obj in objs:
            if obj["kind"] in schemas:
                assert obj["apiVersion"] == "titan.trading/v1alpha1"
                errors = sorted(jsonschema.Draft7Validator(schemas[obj["kind"]]).iter_errors(obj), key=str)
                assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {[e.message for e in errors]}"
                checked += 1
        assert checked == 5  # one TitanBrain + four TitanPhases


def test_values_schema_rejects_bad_values() -> None:
    bad = {
        "execution.cpus=1.5": "execution.cpus: 1.5\n",
        "execution.cpus=0": "execution.cpus: 0\n",
        "unknown key": "executoin: {cpus: 2}\n",
        "bad mode": "trading: {mode: yolo, venue: paper}\n",
        "inline secret value": "secrets: {venue: {name: v, apiKey: AKIAEXAMPLE}}\n",
        "bad phase kind": "titanPhases: [{name: x, spec: {phase: gambler}}]\n",
        "bad outbox size": "execution: {cpus: 2, memory: 1Gi, outbox: {persistence: true, size: lots}}\n",
    }
    for label, text in bad.items():
        nested: dict[str, Any] = {}
        for key, value in yaml.safe_load(text).items():
            cur = nested
            parts = key.split(".")
            for part in parts[:-1]:
                cur = cur.setdefault(part, {})
            cur[parts[-1]] = value
        proc = _render_with_values(nested)
        assert proc.returncode != 0, f"{label}: accepted"
        assert "schema" in proc.stderr, f"{label}: {proc.stderr}"


def _render_with_values(values: dict[str, Any]) -> Any:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values, f)
        f.flush()
        return run(*helm_template_cmd("-f", f.name), check=False)


def test_live_mode_needs_explicit_opt_in_and_venue_secret() -> None:
    no_confirm = _render_with_values({"trading": {"mode": "live", "venue": "bybit"},
                                      "secrets": {"venue": {"name": "titan-venue"}}})
    assert no_confirm.returncode != 0 and "liveConfirm" in no_confirm.stderr
    no_secret = _render_with_values({"trading": {"mode": "live", "venue": "bybit", "liveConfirm": True}})
    assert no_secret.returncode != 0 and "secrets.venue.name" in no_secret.stderr
    paper_venue = _render_with_values({"trading": {"mode": "live", "venue": "paper", "liveConfirm": True},
                                       "secrets": {"venue": {"name": "titan-venue"}}})
    assert paper_venue.returncode != 0 and "bybit or binance" in paper_venue.stderr


# --- execution: Guaranteed QoS with whole CPUs -------------------------------------------------

def _quantity(q: Any) -> Fraction:
    """CPU/memory quantity -> exact number (cores or bytes)."""
    s = str(q)
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", s)
    assert m, f"unparseable quantity {q!r}"
    factors: dict[str | None, Fraction | int] = {
        None: 1, "m": Fraction(1, 1000), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    }
    return Fraction(m.group(1)) * factors[m.group(2)]


def qos_class(spec: dict[str, Any]) -> str:
    """The pod's QoS class by the kubelet's rules (cpu and memory)."""
    all_c = containers(spec)
    guaranteed = True
    any_set = False
    for c in all_c:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        any_set = any_set or bool(req) or bool(lim)
        for r in ("cpu", "memory"):
            if r not in lim or _quantity(req.get(r, lim[r])) != _quantity(lim[r]):
                guaranteed = False
    if guaranteed and all_c:
        return "Guaranteed"
    return "Burstable" if any_set else "BestEffort"


@pytest.mark.parametrize("extra", [(), ("-f", str(K3S_VALUES)), ("--set", "execution.cpus=4,execution.memory=2Gi")],
                         ids=["default", "k3s", "4-cpus"])
def test_execution_is_guaranteed_with_integer_cpus(extra: tuple[str, ...]) -> None:
    objs = render(*extra)
    execution = find(objs, "Deployment", f"{FULL}-execution")
    spec = pod_spec(execution)
    assert qos_class(spec) == "Guaranteed"
    for c in containers(spec):
        res = c["resources"]
        assert res["requests"] == res["limits"], c["name"]
        cpu = _quantity(res["limits"]["cpu"])
        assert cpu.denominator == 1 and cpu >= 1, f"{c['name']}: cpu {res['limits']['cpu']} is not whole"
    assert execution["spec"]["replicas"] == 1
    assert execution["spec"]["strategy"]["type"] == "Recreate"


def _outbox_mount(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """TITAN_OUTBOX_DIR of the execution container and the volume mounted over it."""
    (c,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    (mount,) = [m for m in c["volumeMounts"] if env["TITAN_OUTBOX_DIR"].startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    return env["TITAN_OUTBOX_FSYNC"], volume


def test_execution_outbox_is_on_its_own_claim_and_one_execution_at_a_time() -> None:
    objs = render("--set", "execution.outbox.size=5Gi,execution.outbox.storageClassName=fast-ssd")
    execution = find(objs, "Deployment", f"{FULL}-execution")
    fsync, volume = _outbox_mount(pod_spec(execution))
    assert fsync == "false" and volume["persistentVolumeClaim"] == {"claimName": f"{FULL}-execution-outbox"}
    claim = find(objs, "PersistentVolumeClaim", f"{FULL}-execution-outbox")
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast-ssd",
                             "resources": {"requests": {"storage": "5Gi"}}}
    # deleted with the release: no helm.sh/resource-policy keep (docs/deploy-k3s.md)
    assert "helm.sh/resource-policy" not in (claim["metadata"].get("annotations") or {})
    assert claim["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert execution["spec"]["replicas"] == 1 and execution["spec"]["strategy"] == {"type": "Recreate"}
    default = find(render(), "PersistentVolumeClaim", f"{FULL}-execution-outbox")
    assert "storageClassName" not in default["spec"] and default["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_execution_outbox_without_persistence_is_an_emptydir_on_disk() -> None:
    objs = render("--set", "execution.outbox.persistence=false,execution.outbox.fsync=true")
    assert not kinds(objs, "PersistentVolumeClaim")
    fsync, volume = _outbox_mount(pod_spec(find(objs, "Deployment", f"{FULL}-execution")))
    assert fsync == "true" and volume["emptyDir"] == {"sizeLimit": "1Gi"}  # the node's disk, not memory


def test_execution_cpus_follow_values_and_k3s_pins_it_to_the_static_cpu_manager_node() -> None:
    objs = render("--set", "execution.cpus=3")
    (c,) = pod_spec(find(objs, "Deployment", f"{FULL}-execution"))["containers"]
    assert c["resources"]["limits"]["cpu"] == "3"
    k3s_spec = pod_spec(find(render("-f", str(K3S_VALUES)), "Deployment", f"{FULL}-execution"))
    assert k3s_spec["nodeSelector"] == {"titan.trading/cpu-manager": "static"}
    assert {"key": "titan.trading/dedicated", "operator": "Equal", "value": "execution",
            "effect": "NoSchedule"} in k3s_spec["tolerations"]


def test_other_workloads_are_not_guaranteed_so_they_never_take_exclusive_cores() -> None:
    for w in workloads(render("-f", str(K3S_VALUES))):
        if w["metadata"]["name"] != f"{FULL}-execution":
            assert qos_class(pod_spec(w)) == "Burstable", w["metadata"]["name"]


# --- RBAC: exactly what the operator uses ------------------------------------------------------

def _grants(objs: list[Manifest], sa: str) -> set[tuple[str, str, str, str]]:
    """(scope, apiGroup, resource, verb) granted to ServiceAccount `sa` through the rendered bindings."""
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objs if o["kind"] in ("Role", "ClusterRole")}
    out = set()
    for b in objs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa and s["namespace"] == NAMESPACE
                   for s in b["subjects"]):
            continue
        role = roles[(b["roleRef"]["kind"], b["roleRef"]["name"])]
        scope = "namespace" if b["kind"] == "RoleBinding" else "cluster"
        for rule in role["rules"]:
            assert "resourceNames" not in rule and "nonResourceURLs" not in rule
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    for v in rule["verbs"]:
                        out.add((scope, g, r, v))
    return out


def _expected(scope: str, peering: str) -> set[tuple[str, str, str, str]]:
    rules = [
        ("titan.trading", ["titanphases", "titanbrains"], ["get", "list", "watch", "patch"]),
        ("titan.trading", ["titanphases/status", "titanbrains/status"], ["get", "patch"]),
        ("apps", ["deployments"], ["get", "list", "watch", "create", "patch", "delete"]),
        ("", ["events"], ["create"]),
        ("kopf.dev", [peering], ["get", "list", "watch", "patch"]),
    ]
    out = {(scope, g, r, v) for g, rs, vs in rules for r in rs for v in vs}
    out |= {("cluster", "apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")}
    return out


def test_operator_rbac_is_exactly_what_it_uses_namespaced() -> None:
    objs = render()
    assert _grants(objs, f"{FULL}-operator") == _expected("namespace", "kopfpeerings")
    role = find(objs, "Role", f"{FULL}-operator")
    assert role["metadata"]["namespace"] == NAMESPACE


def test_operator_rbac_clusterwide_adds_only_namespaces_and_cluster_peering() -> None:
    objs = render("--set", "operator.clusterwide=true")
    expected = _expected("cluster", "clusterkopfpeerings")
    expected |= {("cluster", "", "namespaces", v) for v in ("list", "watch")}
    assert _grants(objs, f"{FULL}-operator") == expected
    assert not kinds(objs, "Role")


def test_no_wildcards_no_secret_access_and_no_other_service_account_is_bound(variant: list[Manifest]) -> None:
    for role in kinds(variant, "Role") + kinds(variant, "ClusterRole"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{role['metadata']['name']}: wildcard {field}"
            assert "secrets" not in rule["resources"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    bound = {s["name"] for b in kinds(variant, "RoleBinding") + kinds(variant, "ClusterRoleBinding")
             for s in b["subjects"]}
    assert bound == {f"{FULL}-operator"}


def test_only_the_operator_mounts_an_api_token(variant: list[Manifest]) -> None:
    for sa in kinds(variant, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is (sa["metadata"]["name"] == f"{FULL}-operator")
    for w in workloads(variant):
        spec = pod_spec(w)
        is_operator = w["metadata"]["name"] == f"{FULL}-operator"
        assert spec.get("automountServiceAccountToken") is is_operator, w["metadata"]["name"]
        if is_operator:
            assert spec["serviceAccountName"] == f"{FULL}-operator"


# --- Secrets are referenced, never inlined ---------------------------------------------------

SENSITIVE_ENV = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|DSN|PASS)$")


def test_no_secret_objects_and_sensitive_env_only_from_secret_refs(variant: list[Manifest]) -> None:
    assert not kinds(variant, "Secret")
    refs = set()
    for w in workloads(variant):
        for c in containers(pod_spec(w)):
            for e in c.get("env", []):
                if not SENSITIVE_ENV.search(e["name"]):
                    continue
                if "value" in e:
                    # the only literal allowed: the bundled DSN, whose password is a $(VAR) reference
                    assert e["name"] == "TITAN_PG_DSN", f"{c['name']}: {e['name']} has a literal value"
                    assert re.fullmatch(r"postgresql://\w+:\$\(TITAN_PG_PASSWORD\)@[\w.-]+:5432/\w+", e["value"])
                else:
                    ref = e["valueFrom"]["secretKeyRef"]
                    refs.add((ref["name"], ref["key"]))
            for ef in c.get("envFrom", []):
                assert "secretRef" not in ef or ef["secretRef"]["name"]
    for cm in kinds(variant, "ConfigMap"):
        for k in cm.get("data", {}):
            assert not SENSITIVE_ENV.search(k), f"ConfigMap {cm['metadata']['name']} carries {k}"
    assert refs, "no secretKeyRef found"


def test_secret_names_appear_but_no_value_passed_through_values() -> None:
    """Every secret-ish value the user can set is a *name*: render with distinctive names and check
    they are used only as Secret references (secretKeyRef/secret volumes)."""
    names = {"hmacKeys": "s-hmac", "control": "s-control", "venue": "s-venue", "gemini": "s-gemini",
             "postgres": "s-postgres"}
    sets = ",".join(f"secrets.{k}.name={v}" for k, v in names.items())
    objs = render("--set", sets, *LIVE[:0], "--set",
                  "trading.mode=live,trading.venue=binance,trading.liveConfirm=true")
    where: dict[str, set[str]] = {v: set() for v in names.values()}

    def visit(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                visit(v, f"{path}.{k}")
        elif isinstance(node, list):
            for v in node:
                visit(v, f"{path}[]")
        elif isinstance(node, str) and node in where:
            where[node].add(re.sub(r"^\.[^.]+", "", path))

    for o in objs:
        visit(o, f".{o['kind']}")
    allowed = {".spec.template.spec.containers[].env[].valueFrom.secretKeyRef.name",
               ".spec.template.spec.volumes[].secret.secretName",
               ".spec.template.spec.containers[].env[].value"}  # operator: Secret *names* for phase pods
    for name, paths in where.items():
        assert paths, f"{name} is never referenced"
        assert paths <= allowed, f"{name} used at {paths - allowed}"
    op = find(objs, "Deployment", f"{FULL}-operator")
    literal = {e["name"]: e.get("value") for c in pod_spec(op)["containers"] for e in c["env"]}
    assert literal["TITAN_PHASE_HMAC_SECRET_NAME"] == "s-hmac"
    assert literal["TITAN_PHASE_GEMINI_SECRET_NAME"] == "s-gemini"


def test_execution_gets_hmac_keys_as_a_read_only_secret_volume() -> None:
    spec = pod_spec(find(render(), "Deployment", f"{FULL}-execution"))
    (vol,) = [v for v in spec["volumes"] if "secret" in v]
    assert vol["secret"]["secretName"] == "titan-hmac-keys"
    (c,) = spec["containers"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == vol["name"]]
    assert mount["readOnly"] is True
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["TITAN_HMAC_KEYS_DIR"] == mount["mountPath"]


# --- NetworkPolicies -------------------------------------------------------------------------

def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "titan", "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/component": component, "app.kubernetes.io/part-of": "titan"}


def _phase_pod_labels() -> dict[str, str]:
    """The labels the operator puts on phase pods (its own renderer, so the contract is checked)."""
    from titan.operator.deployments import render_deployment

    dep = render_deployment("hunter", NAMESPACE, {"phase": "hunter"}, 1)
    return dict(dep["spec"]["template"]["metadata"]["labels"])


PROM = Endpoint(labels={"app.kubernetes.io/name": "prometheus"}, namespace="monitoring")
API_NODE = Endpoint(is_pod=False, ip="203.0.113.10")      # k3s server node: API on 6443
API_SERVICE = Endpoint(is_pod=False, ip="10.43.0.1")      # the `kubernetes` Service
VENUE = Endpoint(is_pod=False, ip="198.51.100.20")        # an exchange, port 443


@pytest.mark.parametrize("values", ["default", "k3s"])
def test_only_phase_pods_reach_executions_grpc_port(values: str) -> None:
    objs = render(*VARIANTS[values])
    pols = kinds(objs, "NetworkPolicy")
    names = {p["metadata"]["name"] for p in pols}
    assert f"{FULL}-execution" in names
    grpc = 50051
    execution = Endpoint(labels=_labels("execution"))
    phase = Endpoint(labels=_phase_pod_labels())
    assert can_connect(pols, phase, execution, grpc)
    for other in ("operator", "gateway", "ledger", "nats", "postgres"):
        assert not can_connect(pols, Endpoint(labels=_labels(other)), execution, grpc), other
    assert not can_connect(pols, Endpoint(labels={"app": "something-else"}), execution, grpc)
    assert not can_connect(pols, Endpoint(labels=_phase_pod_labels(), namespace="other"), execution, grpc)
    assert not can_connect(pols, PROM, execution, grpc)
    # metrics: only Prometheus
    assert can_connect(pols, PROM, execution, 9100)
    assert not can_connect(pols, phase, execution, 9100)


@pytest.mark.parametrize("values", ["default", "k3s"])
def test_only_the_operator_reaches_the_api_server(values: str) -> None:
    pols = kinds(render(*VARIANTS[values]), "NetworkPolicy")
    operator = Endpoint(labels=_labels("operator"))
    assert can_connect(pols, operator, API_NODE, 6443)
    assert can_connect(pols, operator, API_SERVICE, 443)
    # (pod, has public :443 egress for a venue or Gemini)
    others = [(Endpoint(labels=_labels(c)), c in ("execution", "gateway"))
              for c in ("execution", "gateway", "ledger", "nats", "postgres")]
    others.append((Endpoint(labels=_phase_pod_labels()), False))
    others.append((Endpoint(labels={**_phase_pod_labels(), "titan.trading/phase": "ai-quant"}), True))
    for pod, public_443 in others:
        assert not can_connect(pols, pod, API_NODE, 6443), pod.labels
        assert not can_connect(pols, pod, API_SERVICE, 443), pod.labels
        # k3s serves the API on 6443 only; public :443 is the venue/Gemini egress
        assert can_connect(pols, pod, API_NODE, 443) is public_443, pod.labels


def test_egress_is_what_each_component_needs() -> None:
    pols = kinds(render(), "NetworkPolicy")
    phase = Endpoint(labels=_phase_pod_labels())
    ai_quant = Endpoint(labels={**_phase_pod_labels(), "titan.trading/phase": "ai-quant"})
    nats = Endpoint(labels=_labels("nats"))
    pg = Endpoint(labels=_labels("postgres"))
    dns = Endpoint(labels={"k8s-app": "kube-dns"}, namespace="kube-system")
    pods = {c: Endpoint(labels=_labels(c)) for c in ("operator", "execution", "gateway", "ledger")}
    for src in [*pods.values(), phase]:
        assert can_connect(pols, src, nats, 4222)
        assert can_connect(pols, src, dns, 53, "UDP")
    assert can_connect(pols, pods["ledger"], pg, 5432)
    assert not can_connect(pols, phase, pg, 5432)
    assert not can_connect(pols, pods["gateway"], pg, 5432)
    assert can_connect(pols, pods["execution"], VENUE, 443)
    assert can_connect(pols, pods["gateway"], VENUE, 443)
    assert not can_connect(pols, phase, VENUE, 443)
    assert can_connect(pols, ai_quant, VENUE, 443)
    assert not can_connect(pols, pods["ledger"], VENUE, 443)
    assert not can_connect(pols, Endpoint(labels={"app": "intruder"}), nats, 4222)


def test_every_titan_pod_is_isolated_both_ways(variant: list[Manifest]) -> None:
    pols = kinds(variant, "NetworkPolicy")
    from tests.deploy.netpol import selector_matches

    pod_labels = [pod_spec_labels for pod_spec_labels in (
        w["spec"]["template"]["metadata"]["labels"] for w in workloads(variant))]
    pod_labels.append(_phase_pod_labels())
    for labels in pod_labels:
        for direction in ("Ingress", "Egress"):
            assert any(selector_matches(p["spec"]["podSelector"], labels) and direction in p["spec"]["policyTypes"]
                       for p in pols), (labels, direction)


# --- monitoring objects ----------------------------------------------------------------------

def test_dashboards_are_configmaps_labelled_for_the_grafana_sidecar() -> None:
    objs = render("-f", str(K3S_VALUES))
    dashboards = [c for c in kinds(objs, "ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = {k: v for c in dashboards for k, v in c["data"].items()}
    on_disk = {p.name: p.read_text() for p in (CHART / "dashboards").glob("*.json")}
    assert set(files) == set(on_disk) and len(files) == 4
    for name, text in files.items():
        assert yaml.safe_load(text) == yaml.safe_load(on_disk[name])
    assert all(c["metadata"]["namespace"] == "monitoring" for c in dashboards)


def test_prometheus_rule_carries_the_tested_rule_file() -> None:
    rule = find(render(*MONITORING_ON), "PrometheusRule", FULL)
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_monitors_scrape_the_metrics_port_and_label_components() -> None:
    objs = render(*MONITORING_ON)
    sm = find(objs, "ServiceMonitor", FULL)
    pm = find(objs, "PodMonitor", FULL)
    services = kinds(objs, "Service")
    from tests.deploy.netpol import selector_matches

    scraped_services = {s["metadata"]["name"] for s in services if selector_matches(sm["spec"]["selector"],
                                                                                   s["metadata"]["labels"])}
    # NATS is not scraped: its exporter sidecar is off by default (the ledger writer exports titan_nats_*)
    assert scraped_services == {f"{FULL}-execution", f"{FULL}-postgres"}
    for s in services:
        if s["metadata"]["name"] in scraped_services:
            assert any(p["name"] == "metrics" for p in s["spec"]["ports"])
    scraped_pods = {w["metadata"]["name"] for w in workloads(objs)
                    if selector_matches(pm["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])}
    assert scraped_pods == {f"{FULL}-operator", f"{FULL}-gateway", f"{FULL}-ledger"}
    assert selector_matches(pm["spec"]["selector"], _phase_pod_labels())
    for ep in sm["spec"]["endpoints"] + pm["spec"]["podMetricsEndpoints"]:
        assert ep["port"] == "metrics"
        assert any(r.get("targetLabel") == "component" for r in ep["relabelings"])


def test_every_titan_container_is_non_root_and_exposes_metrics(variant: list[Manifest]) -> None:
    for w in workloads(variant):
        spec = pod_spec(w)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in containers(spec):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
            assert ":" in c["image"] and not c["image"].endswith(":latest")
        component = w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        if component in ("operator", "execution", "gateway", "ledger"):
            (c,) = spec["containers"]
            assert c["args"][: len(c["args"])] and c["image"].startswith("titan:")
            assert any(p["name"] == "metrics" and p["containerPort"] == 9100 for p in c["ports"])
            assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_component_commands() -> None:
    objs = render()
    expected = {"operator": ["operator", "run"], "execution": ["execution", "run"],
                "gateway": ["data", "gateway"], "ledger": ["ledger", "writer"]}
    for component, args in expected.items():
        (c,) = pod_spec(find(objs, "Deployment", f"{FULL}-{component}"))["containers"]
        assert c["args"] == args


def test_rendered_output_contains_no_template_leftovers(variant: list[Manifest]) -> None:
    for obj in variant:
        for s in walk_strings(obj):
            if obj["kind"] in ("ConfigMap", "PrometheusRule"):
                continue  # dashboards' legends and alert annotations use {{ }} on purpose
            assert "{{" not in s and "<no value>" not in s, (obj["kind"], obj["metadata"]["name"], s)


def test_external_nats_and_postgres_replace_the_bundled_ones() -> None:
    objs = render(*EXTERNAL_INFRA)
    assert not kinds(objs, "StatefulSet")
    settings = find(objs, "ConfigMap", f"{FULL}-settings")
    assert settings["data"]["TITAN_NATS_URL"] == "nats://nats.infra:4222"
    for name in ("operator", "execution", "ledger"):
        (c,) = pod_spec(find(objs, "Deployment", f"{FULL}-{name}"))["containers"]
        (dsn,) = [e for e in c["env"] if e["name"] == "TITAN_PG_DSN"]
        assert dsn["valueFrom"]["secretKeyRef"] == {"name": "titan-postgres", "key": "dsn"}
    bundled = render()
    assert {s["metadata"]["name"] for s in kinds(bundled, "StatefulSet")} == {f"{FULL}-nats", f"{FULL}-postgres"}
    assert find(bundled, "ConfigMap", f"{FULL}-settings")["data"]["TITAN_NATS_URL"] == f"nats://{FULL}-nats:4222"


# --- server-side apply ----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_port_names_its_protocol_for_server_side_apply(name: str) -> None:
    """Helm 4 installs with server-side apply: Service ports and container ports are associative
    lists keyed by (port, protocol), and an element without `protocol` is rejected."""
    for obj in render(*VARIANTS[name]):
        if obj["kind"] == "Service":
            assert all(p.get("protocol") for p in obj["spec"]["ports"]), obj["metadata"]["name"]
    for w in workloads(render(*VARIANTS[name])):
        spec = pod_spec(w)
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for port in c.get("ports", []):
                assert port.get("protocol"), (w["metadata"]["name"], c["name"], port)


def test_prometheus_operator_kinds_render_only_where_the_api_serves_them() -> None:
    enabled = ("--set", "monitoring.serviceMonitor.enabled=true,monitoring.podMonitor.enabled=true,"
               "monitoring.prometheusRule.enabled=true")
    objs = render(*enabled)
    assert not {o["kind"] for o in objs} & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    served = {o["kind"] for o in render(*MONITORING_ON)}
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= served
    only_rule = render(*enabled, "--api-versions=monitoring.coreos.com/v1/PrometheusRule")
    assert {o["kind"] for o in only_rule} & {"ServiceMonitor", "PodMonitor", "PrometheusRule"} == {"PrometheusRule"}
