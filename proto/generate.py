"""Generate the titan.v1 Python stubs from proto/titan/v1/*.proto.

    python proto/generate.py           # (re)write the stubs next to the .proto files
    python proto/generate.py --check   # exit 1 if the committed stubs differ from a fresh generation

The stubs are written beside their .proto files (package ``titan.v1`` maps to proto/titan/v1), so the
generated ``from titan.v1 import common_pb2`` imports resolve without any post-processing.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE_DIR = PROTO_ROOT / "titan" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    return sorted(PACKAGE_DIR.glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Run protoc (grpcio-tools) and return the generated files under ``out_root``."""
    from grpc_tools import protoc  # dev dependency

    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(p.relative_to(PROTO_ROOT)) for p in proto_files()),
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    out_pkg = out_root / "titan" / "v1"
    produced = sorted(p for p in out_pkg.iterdir() if p.name.endswith(GENERATED_SUFFIXES))
    # grpc_python_out also writes *_pb2_grpc.py for protos without services; keep only real ones.
    return [p for p in produced if not (p.name.endswith("_pb2_grpc.py") and _is_empty_grpc(p))]


def _is_empty_grpc(path: Path) -> bool:
    return "def add_" not in path.read_text() and "class " not in path.read_text()


def committed() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def stale_files() -> list[str]:
    """Names of stubs that are missing, extra or different from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p for p in generate(Path(tmp))}
        have = {p.name: p for p in committed()}
        problems = sorted(set(fresh) ^ set(have))
        problems += sorted(
            name for name in set(fresh) & set(have) if not filecmp.cmp(fresh[name], have[name], shallow=False)
        )
        return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only verify the committed stubs are current")
    opts = parser.parse_args(argv)
    if opts.check:
        problems = stale_files()
        if problems:
            print("stale generated stubs (run `python proto/generate.py`):", ", ".join(problems))
            return 1
        print(f"generated stubs are current ({len(committed())} files)")
        return 0
    for old in committed():
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            shutil.copy2(path, PACKAGE_DIR / path.name)
            print("wrote", (PACKAGE_DIR / path.name).relative_to(PROTO_ROOT.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
