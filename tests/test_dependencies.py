"""Every third-party package the code imports is declared in pyproject.toml, not only pulled in by another
package (which may drop it in any release)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from factory_pipelines.settings import REPO_ROOT

CODE = ("factory_pipelines", "feature_repo", "benchmarks")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imported(folders: tuple[str, ...]) -> dict[str, str]:
    """Top-level module imported -> first file importing it, for every module outside the standard library."""
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    local = (path.parent / f"{top}.py").exists()  # feature_repo/ imports its own files
                    if top not in sys.stdlib_module_names and top not in (*CODE, "tests") and not local:
                        found.setdefault(top, str(path.relative_to(REPO_ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    declared = {_name(r) for r in project["project"]["dependencies"]}
    dev = {_name(r) for r in project["dependency-groups"]["dev"]}
    distributions = packages_distributions()
    undeclared = []
    for folders, allowed in ((CODE, declared), (("tests",), declared | dev)):
        for module, path in sorted(_imported(folders).items()):
            names = {_name(d) for d in distributions.get(module, [module])}
            if not names & allowed:
                undeclared.append(f"{module} ({', '.join(sorted(names))}) imported by {path}")
    assert not undeclared, undeclared
