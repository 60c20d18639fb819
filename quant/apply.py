"""Where a phase's params live, and how an approved proposal changes them (and a rollback restores).

* :class:`FileTarget` — the TitanPhase YAML of a ``titan up`` organism folder. Only the changed keys'
  lines in ``spec.params`` are rewritten (comments and everything else stay); the file is replaced
  atomically, and the local Brain re-reads it and publishes the params, which the phase applies
  without a restart.
* :class:`ClusterTarget` — ``TitanPhase.spec.params`` through the Kubernetes API with the operator's
  client configuration (a JSON merge patch of the changed keys); the operator publishes them the
  same way.

Every write is preceded by a check that the params are still the ones the proposal was measured
against (or, for a rollback, the ones it applied): a newer change is never overwritten silently.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import urllib3
import yaml

from titan.operator.kube import TITANBRAINS, TITANPHASES, Kube, KubeTarget, context_namespace, in_cluster
from titan.phases.ai_quant.params import AUTO_MODE_ANNOTATION


class TargetError(RuntimeError):
    """The params cannot be read or written (names the file or resource)."""


class ParamsTarget(Protocol):
    def describe(self) -> str: ...
    def phase_kind(self) -> str: ...
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


@dataclass
class ClusterTarget:
    """A TitanPhase in a cluster, through the operator's client configuration
    (:mod:`titan.operator.kube`: an explicit server, the pod's service account in a cluster, or a
    kubeconfig and context). Failures are :class:`~titan.operator.kube.KubeError` one-liners (no
    kubeconfig, unknown context, forbidden by RBAC, CRDs not installed, unreachable) or
    :class:`TargetError` when the TitanPhase is not there. RBAC: get and patch on titanphases."""

    kube: Kube
    namespace: str
    name: str
    where: str = ""

    @classmethod
    def connect(cls, name: str, *, context: str = "", namespace: str = "", server: str = "") -> ClusterTarget:
        target = KubeTarget(server=server, context=context)
        kube = Kube.connect(target)
        if not kube.api.configuration.verify_ssl and not server:  # the kubeconfig asks for it: no warning each call
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        return cls(kube, namespace or context_namespace(target) or "default", name,
                   context or ("in-cluster" if not server and in_cluster() else server or "current context"))

    def close(self) -> None:
        self.kube.close()

    def describe(self) -> str:
        return f"cluster:{self.namespace}/{self.name}" + (f" ({self.where})" if self.where else "")

    def resource(self) -> dict[str, Any]:
        found = self.kube.get_object(TITANPHASES, self.namespace, self.name)
        if found is None:
            raise TargetError(f"no TitanPhase {self.namespace}/{self.name} ({self.where or self.kube.host}): "
                              "name its namespace with --namespace")
        return found

    def read(self) -> dict[str, Any]:
        return dict((self.resource().get("spec") or {}).get("params") or {})

    def phase_kind(self) -> str:
        return str((self.resource().get("spec") or {}).get("phase") or self.name)

    def auto_mode(self) -> bool:
        annotations = (self.resource().get("metadata") or {}).get("annotations") or {}
        return str(annotations.get(AUTO_MODE_ANNOTATION, "")).lower() == "auto"

    def write(self, params: Mapping[str, Any]) -> None:
        """Merge-patch ``spec.params`` to ``params`` (keys no longer present are set to null, which a
        merge patch deletes); the operator publishes them and the phase reloads without a restart."""
        current = self.read()
        patch: dict[str, Any] = {k: v for k, v in params.items() if current.get(k) != v}
        patch.update({k: None for k in current if k not in params})
        if patch and self.kube.patch_object(TITANPHASES, self.namespace, self.name,
                                            {"spec": {"params": patch}}) is None:
            raise TargetError(f"TitanPhase {self.namespace}/{self.name} vanished while it was patched")


def export_organism(kube: Kube, namespace: str, folder: Path) -> Path:
    """The namespace's TitanBrain and TitanPhases as YAML files in ``folder`` (name, annotations and
    spec only), so a backtest runs the organism the cluster runs. RBAC: list on both."""
    folder.mkdir(parents=True, exist_ok=True)
    for resource in (TITANBRAINS, TITANPHASES):
        for item in kube.list_objects(resource, namespace):
            meta = item.get("metadata") or {}
            doc = {"apiVersion": resource.api_version, "kind": resource.kind,
                   "metadata": {"name": meta.get("name"), "annotations": meta.get("annotations") or {}},
                   "spec": item.get("spec") or {}}
            path = folder / f"{resource.kind.lower()}-{meta.get('name')}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))

    return folder
