"""titan.operator.kube: where the official client connects, how kopf is logged in from the same
configuration, and how API failures become one-line messages; calls against kmock's emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import kmock
import pytest
import yaml
from kubernetes import client

from tests.operator.kube_helpers import NS, PHASES_URL, Emulator, declare_resources, sample
from titan.operator.deployments import render_deployment
from titan.operator.kube import (
    TITANPHASES,
    Kube,
    KubeConfigMissing,
    KubeContextUnknown,
    KubeForbidden,
    KubeTarget,
    KubeUnauthorized,
    ObjectRef,
    connection_info,
    context_namespace,
    load_configuration,
    translate,
)


def kubeconfig(path: Path, *, current: str | None = "prod") -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "s3cret"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "c", "user": "u", "namespace": "titan"}},
                     {"name": "lab", "context": {"cluster": "c", "user": "u"}}],
    }
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


def test_an_explicit_server_is_plain_and_unauthenticated() -> None:
    cfg = load_configuration(KubeTarget(server="http://127.0.0.1:8001/"))
    assert cfg.host == "http://127.0.0.1:8001" and cfg.verify_ssl is False
    info = connection_info(cfg, default_namespace="default")
    assert info.server == "http://127.0.0.1:8001" and info.insecure is True and info.token is None


def test_kopf_logs_in_with_the_kubeconfig_user_of_the_client(tmp_path: Path) -> None:
    target = KubeTarget(context="prod", kubeconfig=str(kubeconfig(tmp_path / "config")))
    info = connection_info(load_configuration(target))
    assert (info.server, info.scheme, info.token, info.insecure) == ("https://10.0.0.1:6443", "Bearer", "s3cret", True)
    assert context_namespace(target) == "titan"
    assert context_namespace(KubeTarget(context="lab", kubeconfig=target.kubeconfig)) is None


def test_kubeconfig_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config")))
    assert load_configuration(KubeTarget()).host == "https://10.0.0.1:6443"
    assert context_namespace(KubeTarget()) == "titan"


def test_configuration_failures_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigMissing, match=r"^no kubeconfig: .*nope does not exist; set KUBECONFIG"):
        load_configuration(KubeTarget(kubeconfig=str(tmp_path / "nope")))
    bare = kubeconfig(tmp_path / "bare", current=None)
    with pytest.raises(KubeContextUnknown, match=r"has no current context: pass one with --kube-context "
                                                 r"\(contexts: prod, lab\)"):
        load_configuration(KubeTarget(kubeconfig=str(bare)))
    with pytest.raises(KubeContextUnknown, match=r"kube context 'qa' is not in .* \(contexts: prod, lab\)"):
        load_configuration(KubeTarget(context="qa", kubeconfig=str(bare)))
    garbage = tmp_path / "garbage"
    garbage.write_text("just: [a, list]\n")
    with pytest.raises((KubeConfigMissing, KubeContextUnknown)):
        load_configuration(KubeTarget(kubeconfig=str(garbage)))


def test_api_failures_become_one_line() -> None:
    forbidden = client.ApiException(status=403, reason="Forbidden")
    forbidden.body = ('{"kind":"Status","message":"titanbrains.titan.trading \\"titan\\" is forbidden: User \\"bob\\" '
                      'cannot patch resource \\"titanbrains\\"","reason":"Forbidden","code":403}')
    err = translate(forbidden, "https://k", "patch titanbrains")
    assert isinstance(err, KubeForbidden)
    assert str(err) == ('forbidden by RBAC: titanbrains.titan.trading "titan" is forbidden: User "bob" cannot patch '
                        'resource "titanbrains"; use a context whose user may patch titanbrains, or ask a cluster '
                        'admin for a Role that grants it')
    unauthorized = translate(client.ApiException(status=401, reason="Unauthorized"), "https://k", "list x")
    assert isinstance(unauthorized, KubeUnauthorized) and "refresh the kubeconfig's token" in str(unauthorized)
    assert "\n" not in str(err) + str(unauthorized)


@pytest.fixture
async def kube() -> AsyncIterator[tuple[kmock.KubernetesEmulator, Kube]]:
    async with Emulator() as emu, kmock.Server(emu):
        declare_resources(emu)
        api = Kube.connect(KubeTarget(server=str(emu.url)))
        try:
            yield emu, api
        finally:
            api.close()


async def test_deployments_statuses_and_events_through_the_client(
    kube: tuple[kmock.KubernetesEmulator, Kube],
) -> None:
    emu, api = kube
    assert await api.run(api.get_deployment, NS, "titan-phase-hunter") is None
    desired = render_deployment("hunter", NS, {"phase": "hunter"}, 1)
    assert await api.run(api.create_deployment, NS, desired) is True
    got = await api.run(api.get_deployment, NS, "titan-phase-hunter")
    assert got is not None and got["spec"]["template"] == desired["spec"]["template"]
    patched = await api.run(api.patch_deployment, NS, "titan-phase-hunter", {"spec": {"replicas": 0}})
    assert patched is not None and patched["spec"]["replicas"] == 0

    resp = await emu.post(PHASES_URL, json=sample("titanphase-hunter.yaml"))
    assert resp.status in (200, 201)
    status = await api.run(api.patch_object, TITANPHASES, NS, "hunter", {"status": {"state": "Active", "reason": "x"}})
    assert status is not None and status["status"] == {"state": "Active", "reason": "x"}
    cleared = await api.run(api.patch_object, TITANPHASES, NS, "hunter", {"status": {"reason": None}})
    assert cleared is not None and cleared["status"] == {"state": "Active"}  # merge patch: null removes
    assert await api.run(api.patch_object, TITANPHASES, NS, "nobody", {"status": {"state": "Active"}}) is None
    assert [p["metadata"]["name"] for p in await api.run(api.list_objects, TITANPHASES, NS)] == ["hunter"]

    about = ObjectRef("titan.trading/v1alpha1", "TitanPhase", "hunter", NS, "uid-hunter")
    await api.run(api.post_event, about, event_type="Warning", reason="RestartDeferred", message="m" * 2000)
    resp = await emu.get(f"/api/v1/namespaces/{NS}/events")
    (event,) = (await resp.json())["items"]
    assert event["involvedObject"] == {"apiVersion": "titan.trading/v1alpha1", "kind": "TitanPhase", "name": "hunter",
                                       "namespace": NS, "uid": "uid-hunter"}
    assert (event["type"], event["reason"], len(event["message"])) == ("Warning", "RestartDeferred", 1024)
    assert event["source"] == {"component": "titan-brain"} and event["count"] == 1
