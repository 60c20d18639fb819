"""The Kubernetes API as Titan uses it: the official ``kubernetes`` client, one configuration source.

Where to connect (:class:`KubeTarget`) is resolved once into a ``kubernetes.client.Configuration``
(an explicit server for local emulators, else in-cluster service account, else a kubeconfig and
context); kopf is logged in from that same configuration (:func:`connection_info`), so the
framework's watches and the operator's own calls always talk to the same server as the same user.

:class:`Kube` is the async facade the operator uses: every call runs the blocking client in a worker
thread (:meth:`Kube.run`, ``asyncio.to_thread``), so the event loop keeps serving kopf's watches
meanwhile; the CLI, which has no loop to keep free, calls the same methods directly. Bodies are plain
dicts in Kubernetes' own camelCase shape; patches are JSON merge patches.

TLS: the server's certificate is checked against the CA the kubeconfig names
(``certificate-authority``/``-data``; in a pod, the service account's CA). Where the kubeconfig
turns that off (``insecure-skip-tls-verify``), the operator says so once in its log
(:func:`accept_unverified`) and keeps urllib3 from repeating its ``InsecureRequestWarning`` on every
request to that server only (other servers still warn).

Failures become :class:`KubeError` subclasses whose message is one line saying what is wrong and
what to do (no kubeconfig, unknown context, forbidden by RBAC, CRDs not installed, unreachable).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import re
import urllib.parse
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kopf
import urllib3
import yaml
from kubernetes import client, config

MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read (seconds)
COMPONENT = "titan-brain"
T = TypeVar("T")
log = logging.getLogger("titan.operator.kube")
_UNVERIFIED_HOSTS: set[str] = set()  # servers already announced as unverified (once per process)


@dataclass(frozen=True)
class Resource:
    """A custom resource type (group/version/plural) and its kind."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def full_name(self) -> str:
        return f"{self.plural}.{self.group}"


TITANPHASES = Resource("titan.trading", "v1alpha1", "titanphases", "TitanPhase")
TITANBRAINS = Resource("titan.trading", "v1alpha1", "titanbrains", "TitanBrain")


@dataclass(frozen=True)
class ObjectRef:
    """What an Event is about."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str = ""


@dataclass(frozen=True)
class KubeTarget:
    """Where the API server is: an explicit URL (a local emulator: plain HTTP, no credentials), or a
    kubeconfig and context; with neither, the pod's service account when running in a cluster."""

    server: str = ""
    context: str = ""
    kubeconfig: str = ""

    @classmethod
    def from_env(cls) -> KubeTarget:
        env = os.environ
        return cls(server=env.get("TITAN_KUBE_SERVER", ""), context=env.get("TITAN_KUBE_CONTEXT", ""))


class KubeError(Exception):
    """A Kubernetes failure with a one-line message a person can act on."""


class KubeConfigMissing(KubeError):
    pass


class KubeContextUnknown(KubeError):
    pass


class KubeUnreachable(KubeError):
    pass


class KubeUnauthorized(KubeError):
    pass


class KubeForbidden(KubeError):
    pass


class CrdsNotInstalled(KubeError):
    pass


class KubeApiError(KubeError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def kubeconfig_paths(target: KubeTarget) -> list[Path]:
    raw = target.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def in_cluster() -> bool:
    token = Path(config.incluster_config.SERVICE_TOKEN_FILENAME)
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and token.exists()


def load_configuration(target: KubeTarget) -> client.Configuration:
    """The client configuration for ``target`` (see :class:`KubeTarget`)."""
    cfg = client.Configuration()
    if target.server:
        cfg.host = target.server.rstrip("/")
        cfg.verify_ssl = False
        return cfg
    if not target.context and not target.kubeconfig and in_cluster():
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return cfg
    paths = kubeconfig_paths(target)
    existing = [p for p in paths if p.is_file()]
    where = os.pathsep.join(str(p) for p in paths)
    if not existing:
        raise KubeConfigMissing(f"no kubeconfig: {where} does not exist; set KUBECONFIG to your cluster's "
                                "kubeconfig file (or run inside the cluster)")
    files = os.pathsep.join(str(p) for p in existing)
    contexts, current = _read_contexts(existing)
    names = list(contexts)
    if target.context and target.context not in names:
        raise KubeContextUnknown(f"kube context {target.context!r} is not in {files} (contexts: "
                                 f"{', '.join(names) or 'none'}): pass one of them with --kube-context")
    if not target.context and current not in contexts:
        raise KubeContextUnknown(f"{files} has no current context: pass one with --kube-context "
                                 f"(contexts: {', '.join(names) or 'none'})")
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=files, context=target.context or None, client_configuration=cfg, persist_config=False)
    except config.ConfigException as exc:
        raise KubeConfigMissing(f"cannot use context {target.context or current!r} of {files}: {exc}") from None
    return cfg


def accept_unverified(cfg: client.Configuration) -> None:
    """For a long-running client (the operator): when the configuration turns TLS verification off
    (the kubeconfig's ``insecure-skip-tls-verify``), say so once in the log (once per process and
    server) and filter urllib3's per-request ``InsecureRequestWarning`` for that host alone."""
    parts = urllib.parse.urlsplit(str(cfg.host))
    host = parts.hostname or ""
    if cfg.verify_ssl or parts.scheme != "https" or host in _UNVERIFIED_HOSTS:
        return
    _UNVERIFIED_HOSTS.add(host)
    warnings.filterwarnings("ignore", message=f"Unverified HTTPS request is being made to host '{re.escape(host)}'",
                            category=urllib3.exceptions.InsecureRequestWarning)
    log.warning("TLS verification of the Kubernetes API server %s is off (the kubeconfig sets "
                "insecure-skip-tls-verify): its certificate is not checked; give the cluster's CA "
                "(certificate-authority-data) instead", cfg.host)


def _read_contexts(files: list[Path]) -> tuple[dict[str, dict[str, Any]], str]:
    """The contexts (name -> context) of the kubeconfig files and the current context's name, merged
    the way kubectl merges KUBECONFIG (the first file that sets a value wins)."""
    contexts: dict[str, dict[str, Any]] = {}
    current = ""
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise KubeConfigMissing(f"the kubeconfig {path} is unreadable ({exc}); point KUBECONFIG at a valid "
                                    "kubeconfig file") from None
        if not isinstance(doc, dict):
            raise KubeConfigMissing(f"the kubeconfig {path} is not a kubeconfig; point KUBECONFIG at a valid one")
        for entry in doc.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name"):
                contexts.setdefault(str(entry["name"]), entry.get("context") or {})
        current = current or str(doc.get("current-context") or "")
    return contexts, current


def context_namespace(target: KubeTarget) -> str | None:
    """The namespace the kubeconfig context names, if any (the official client has no notion of it)."""
    if target.server or (not target.context and not target.kubeconfig and in_cluster()):
        return None
    try:
        contexts, current = _read_contexts([p for p in kubeconfig_paths(target) if p.is_file()])
    except KubeConfigMissing:
        return None
    namespace = contexts.get(target.context or current, {}).get("namespace")
    return str(namespace) if namespace else None


def connection_info(cfg: client.Configuration, default_namespace: str | None = None) -> kopf.ConnectionInfo:
    """kopf's credentials from the client configuration: both talk to one server as one user."""
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        username=cfg.username or None,
        password=cfg.password or None,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        default_namespace=default_namespace,
    )


def _server_message(exc: client.ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        return str(exc.reason or "")
    return str(body.get("message") or exc.reason or "") if isinstance(body, dict) else str(exc.reason or "")


def translate(exc: client.ApiException, host: str, what: str) -> KubeError:
    """An API failure as a one-line :class:`KubeError` (``what``: the call, e.g. 'patch titanbrains')."""
    message = _server_message(exc)
    status = int(exc.status or 0)
    if status == 401:
        return KubeUnauthorized(f"the API server at {host} rejected the credentials (401 Unauthorized): "
                                "refresh the kubeconfig's token or log in again")
    if status == 403:
        return KubeForbidden(f"forbidden by RBAC: {message}; use a context whose user may {what}, or ask a "
                             "cluster admin for a Role that grants it")
    return KubeApiError(f"{what} failed: {status} {exc.reason}: {message}", status)


def _mapping(result: object) -> dict[str, Any]:
    """A custom-object call's result (typed ``object`` by the client) as the JSON object it is."""
    if not isinstance(result, dict):
        raise KubeApiError(f"unexpected answer from the API server: {type(result).__name__}", 0)
    return result


class Kube:
    """The operator's and the CLI's calls to the API server (plain dicts, merge patches)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    @classmethod
    def connect(cls, target: KubeTarget) -> Kube:
        return cls(client.ApiClient(load_configuration(target)))

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    # -- the blocking calls (run them with `await kube.run(...)` on an event loop) --------------

    def _call(self, what: str, call: Callable[[], T], *, missing_ok: bool = False) -> T | None:
        try:
            return call()
        except client.ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise translate(exc, self.host, what) from None
        except urllib3.exceptions.HTTPError as exc:
            raise KubeUnreachable(f"cannot reach the Kubernetes API server at {self.host} ({type(exc).__name__}): "
                                  "check the context (--kube-context) and that the cluster is up") from None

    @staticmethod
    def decode(response: Any) -> dict[str, Any]:
        """The JSON object of a response read with ``_preload_content=False``."""
        data: dict[str, Any] = json.loads(response.data)
        return data

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        resp = self._call("get deployments", lambda: self.apps.read_namespaced_deployment(
            name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT), missing_ok=True)
        return None if resp is None else self.decode(resp)

    def create_deployment(self, namespace: str, body: Mapping[str, Any]) -> bool:
        """Create it; False when it exists already (409)."""
        deployment = client.V1Deployment.model_validate(dict(body))
        try:
            self._call("create deployments", lambda: self.apps.create_namespaced_deployment(
                namespace, deployment, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
        except KubeApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def patch_deployment(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any] | None:
        resp = self._call("patch deployments", lambda: self.apps.patch_namespaced_deployment(
            name, namespace, dict(patch), _content_type=MERGE_PATCH, _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT), missing_ok=True)
        return None if resp is None else self.decode(resp)

    def post_event(self, about: ObjectRef, *, event_type: str, reason: str, message: str,
                   now: datetime.datetime | None = None) -> None:
        when = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{about.name}.", "namespace": about.namespace},
            "involvedObject": {"apiVersion": about.api_version, "kind": about.kind, "name": about.name,
                               "namespace": about.namespace, **({"uid": about.uid} if about.uid else {})},
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": when,
            "lastTimestamp": when,
            "count": 1,
        }
        event = client.CoreV1Event.model_validate(body)
        self._call("create events", lambda: self.core.create_namespaced_event(
            about.namespace, event, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))

    def list_objects(self, resource: Resource, namespace: str) -> list[dict[str, Any]]:
        """All objects of a custom resource in ``namespace``; :class:`CrdsNotInstalled` when the
        server does not serve the resource at all."""
        result = self._call(f"list {resource.plural}", lambda: self.custom.list_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural, _request_timeout=REQUEST_TIMEOUT),
            missing_ok=True)
        if result is None:
            raise CrdsNotInstalled(f"the Titan CRDs are not installed in this cluster ({self.host} does not serve "
                                   f"{resource.full_name}): kubectl apply -f crds/ (or install the Helm chart)")
        items: list[dict[str, Any]] = _mapping(result).get("items") or []
        return items

    def get_object(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        result = self._call(f"get {resource.plural}", lambda: self.custom.get_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural, name, _request_timeout=REQUEST_TIMEOUT),
            missing_ok=True)
        return None if result is None else _mapping(result)

    def patch_object(self, resource: Resource, namespace: str, name: str,
                     patch: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge-patch the object (its status through the status subresource when the patch is
        ``{"status": ...}``); None when it does not exist."""
        if set(patch) == {"status"}:
            method = self.custom.patch_namespaced_custom_object_status
            what = f"patch {resource.plural}/status"
        else:
            method = self.custom.patch_namespaced_custom_object
            what = f"patch {resource.plural}"
        result = self._call(what, lambda: method(resource.group, resource.version, namespace, resource.plural, name,
                                                 dict(patch), _content_type=MERGE_PATCH,
                                                 _request_timeout=REQUEST_TIMEOUT), missing_ok=True)
        return None if result is None else _mapping(result)

    # -- off the event loop ------------------------------------------------------------------------

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one of the blocking calls above in a worker thread."""
        return await asyncio.to_thread(call, *args, **kwargs)
