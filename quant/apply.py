"""Where a phase's params live, and how an approved proposal changes them (and a rollback restores).

* :class:`FileTarget` — the TitanPhase YAML of a ``titan up`` organism folder. Only the changed keys'
  lines in ``spec.params`` are rewritten (comments and everything else stay); the file is replaced
  atomically, and the local Brain re-reads it and publishes the params, which the phase applies
  without a restart.
* :class:`ClusterTarget` — ``TitanPhase.spec.params`` through the Kubernetes API (a JSON merge patch of
  the changed keys); the operator publishes them the same way.

Every write is preceded by a check that the params are still the ones the proposal was measured
against (or, for a rollback, the ones it applied): a newer change is never overwritten silently.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from titan.phases.ai_quant.params import AUTO_MODE_ANNOTATION


class TargetError(RuntimeError):
    """The params cannot be read or written (names the file or resource)."""


class ParamsTarget(Protocol):
    def describe(self) -> str: ...
    def read(self) -> dict[str, Any]: ...
    def auto_mode(self) -> bool: ...
    def write(self, params: Mapping[str, Any]) -> None: ...


def canonical(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


# --- the organism folder ---------------------------------------------------------------------------


def find_phase_file(organism: Path, phase_id: str) -> Path:
    """The YAML file holding the TitanPhase named ``phase_id``."""
    for path in sorted(organism.glob("*.y*ml")):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue
        if any(_is_phase(d, phase_id) for d in docs):
            return path
    raise TargetError(f"{organism}: no TitanPhase named {phase_id!r}")


def _is_phase(doc: Any, phase_id: str) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "TitanPhase" and \
        (doc.get("metadata") or {}).get("name") == phase_id


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


_KEY_LINE = re.compile(r"^(?P<indent>\s+)(?P<key>[A-Za-z0-9_]+):(?P<space>\s*)(?P<value>[^#\n]*?)(?P<tail>\s*(#.*)?)$")


def patch_params_text(text: str, changes: Mapping[str, Any]) -> str:
    """``text`` (one TitanPhase document) with the ``spec.params`` lines of ``changes`` rewritten in
    place, keeping comments; a key not yet in the block is added at its end. Raises TargetError
    when the block is not in the simple block style this edits (the caller then rewrites the file)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.match(r"^\s+params:\s*(#.*)?$", ln)), None)
    if start is None:
        raise TargetError("no block-style spec.params")
    params_indent = len(lines[start]) - len(lines[start].lstrip())
    end, key_indent = start + 1, None
    while end < len(lines):
        stripped = lines[end].strip()
        indent = len(lines[end]) - len(lines[end].lstrip())
        if stripped and not stripped.startswith("#") and indent <= params_indent:
            break
        if stripped and not stripped.startswith("#") and key_indent is None:
            key_indent = indent
        end += 1
    key_indent = key_indent if key_indent is not None else params_indent + 2
    pending = dict(changes)
    for i in range(start + 1, end):
        match = _KEY_LINE.match(lines[i].rstrip("\n"))
        if match and len(match["indent"]) == key_indent and match["key"] in pending:
            value = _scalar(pending.pop(match["key"]))
            newline = "\n" if lines[i].endswith("\n") else ""
            lines[i] = f"{match['indent']}{match['key']}: {value}{match['tail']}{newline}"
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    added = [f"{' ' * key_indent}{key}: {_scalar(value)}\n" for key, value in pending.items()]
    if added and end > 0 and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    return "".join(lines[:end] + added + lines[end:])


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class FileTarget:
    organism: Path
    phase_id: str

    @property
    def path(self) -> Path:
        return find_phase_file(self.organism, self.phase_id)

    def describe(self) -> str:
        return f"file:{self.path}"

    def document(self) -> dict[str, Any]:
        for doc in yaml.safe_load_all(self.path.read_text()):
            if _is_phase(doc, self.phase_id):
                return dict(doc)
        raise TargetError(f"{self.path}: no TitanPhase named {self.phase_id!r}")

    def read(self) -> dict[str, Any]:
        return dict((self.document().get("spec") or {}).get("params") or {})

    def phase_kind(self) -> str:
        return str((self.document().get("spec") or {}).get("phase") or self.phase_id)

    def auto_mode(self) -> bool:
        annotations = (self.document().get("metadata") or {}).get("annotations") or {}
        return str(annotations.get(AUTO_MODE_ANNOTATION, "")).lower() == "auto"

    def write(self, params: Mapping[str, Any]) -> None:
        path = self.path
        text = path.read_text()
        docs = list(yaml.safe_load_all(text))
        current = self.read()
        changes = {k: v for k, v in params.items() if current.get(k) != v}
        removed = [k for k in current if k not in params]
        new_text = None
        if len(docs) == 1 and not removed:
            try:
                candidate = patch_params_text(text, changes)
                if list(yaml.safe_load_all(candidate)) == [_with_params(docs[0], params)]:
                    new_text = candidate
            except TargetError:
                pass
        if new_text is None:  # flow style, several documents, removed keys: rewrite the documents
            new_text = yaml.safe_dump_all(
                [_with_params(d, params) if _is_phase(d, self.phase_id) else d for d in docs], sort_keys=False
            )
        _atomic_write(path, new_text)


def _with_params(doc: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    out.setdefault("spec", {})["params"] = dict(params)
    return dict(out)


# --- the cluster -----------------------------------------------------------------------------------

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TITANPHASE_PATH = "/apis/titan.trading/v1alpha1/namespaces/{namespace}/titanphases/{name}"


@dataclass(frozen=True)
class ClusterTarget:
    """A TitanPhase in a cluster, reached with the pod's service account (or an explicit server/token)."""

    namespace: str
    name: str
    server: str = ""
    token: str = ""
    ca_file: str = ""

    @classmethod
    def in_cluster(cls, namespace: str, name: str) -> ClusterTarget:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise TargetError("not in a cluster (KUBERNETES_SERVICE_HOST is unset); use --organism DIR")
        return cls(namespace, name, f"https://{host}:{port}", (SERVICE_ACCOUNT / "token").read_text().strip(),
                   str(SERVICE_ACCOUNT / "ca.crt"))

    def describe(self) -> str:
        return f"cluster:{self.namespace}/{self.name}"

    def _request(self, method: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        url = self.server + TITANPHASE_PATH.format(namespace=self.namespace, name=self.name)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/merge-patch+json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except OSError as exc:
            raise TargetError(f"{self.describe()}: {method} failed: {exc}") from exc

    def resource(self) -> dict[str, Any]:
        return self._request("GET")

    def read(self) -> dict[str, Any]:
        return dict((self.resource().get("spec") or {}).get("params") or {})

    def auto_mode(self) -> bool:
        annotations = (self.resource().get("metadata") or {}).get("annotations") or {}
        return str(annotations.get(AUTO_MODE_ANNOTATION, "")).lower() == "auto"

    def write(self, params: Mapping[str, Any]) -> None:
        patch_titanphase_params(self, params)


def patch_titanphase_params(target: ClusterTarget, params: Mapping[str, Any]) -> None:
    """Merge-patch ``spec.params`` of a TitanPhase to ``params`` (keys no longer present are set to
    null, which a merge patch deletes). RBAC: get and patch on titanphases only."""
    current = target.read()
    patch: dict[str, Any] = {k: v for k, v in params.items() if current.get(k) != v}
    patch.update({k: None for k in current if k not in params})
    if patch:
        target._request("PATCH", {"spec": {"params": patch}})
