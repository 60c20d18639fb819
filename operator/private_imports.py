"""An import-linter contract type: no import of a library's private modules (such as kopf's `_cogs`).

import-linter's own ``forbidden`` contract cannot name a subpackage of an external package (its graph
keeps only the top level, ``kopf``), so this contract reads the import statements the graph recorded
for each import of the listed packages and rejects any module path with a component that starts with
an underscore (kopf's `_cogs.clients`, `_core.reactor`, or `_cogs` imported by name from kopf).
Loaded only by ``lint-imports`` (pyproject.toml ``contract_types``); needs
``include_external_packages = true``.
"""

from __future__ import annotations

import re
from typing import Any

from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck

_STATEMENT = re.compile(r"^\s*(?:from\s+(?P<source>[\w.]+)\s+import\s+(?P<names>.*)|import\s+(?P<modules>.*))$")


def _private(path: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in path.split("."))


def private_targets(line: str, package: str) -> list[str]:
    """The private modules of ``package`` that one import statement names."""
    match = _STATEMENT.match(line)
    if match is None:
        return []
    if match["source"] is not None:
        source = match["source"]
        if source != package and not source.startswith(f"{package}."):
            return []
        if _private(source):
            return [source]
        names = [n.strip().split(" ")[0] for n in match["names"].strip("() \\").split(",")]
        return [f"{source}.{n}" for n in names if n and _private(n)]
    modules = [m.strip().split(" ")[0] for m in match["modules"].split(",")]
    return [m for m in modules if (m == package or m.startswith(f"{package}.")) and _private(m)]


class NoPrivateImportsContract(Contract):
    """Options: ``external_packages``: the libraries whose private modules must not be imported."""

    type_name = "no_private_imports"
    external_packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        illegal: list[dict[str, Any]] = []
        for package in self.external_packages:  # type: ignore[attr-defined]
            if package not in graph.modules:
                continue
            for importer in sorted(graph.find_modules_that_directly_import(package)):
                for detail in graph.get_import_details(importer=importer, imported=package):
                    for target in private_targets(detail["line_contents"], package):
                        illegal.append({"importer": importer, "imported": target, "line": detail["line_number"]})
        return ContractCheck(kept=not illegal, warnings=[], metadata={"illegal_imports": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Private modules of libraries may not be imported (use their public API):", bold=False)
        output.new_line()
        for link in check.metadata["illegal_imports"]:
            output.print_error(f"- {link['importer']} -> {link['imported']} (l.{link['line']})", bold=False)
        output.new_line()
