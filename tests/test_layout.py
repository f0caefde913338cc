"""The layers of the package, read from the source (AST), not from what happens to be imported at run time.

Every import counts, the ones inside functions too: `lib/` is Dagster-free and layered data -> agents ->
governance (never back); nothing reaches into Dagster's private modules (`dagster._...`); the root
`definitions.py` only composes the domains' builders; every domain folder has the same file names.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from factory_pipelines.settings import PACKAGE_DIR

PACKAGE = PACKAGE_DIR.name
DOMAIN_FILES = {"assets.py", "checks.py", "schedules.py", "sensors.py", "definitions.py", "README.md"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def imports() -> dict[str, list[tuple[int, str]]]:
    """Module -> (line, imported module) for every import in it; `from a import b` counts as `a` and `a.b`."""
    found: dict[str, list[tuple[int, str]]] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        names: list[tuple[int, str]] = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names += [(node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                names.append((node.lineno, base))
                names += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        found[name] = names
    return found


def violations(importer_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    """`module:line imports target` for every import of a `forbidden` module by a module under the prefix."""
    out = []
    for module, names in imports().items():
        if module != importer_prefix and not module.startswith(importer_prefix + "."):
            continue
        for line, target in names:
            if any(target == f or target.startswith(f + ".") for f in forbidden):
                out.append(f"{module}:{line} imports {target}")
    return sorted(set(out))


def test_nothing_imports_dagster_private_modules() -> None:
    private = [f"{module}:{line} imports {target}" for module, names in imports().items()
               for line, target in names if target.startswith("dagster._")]
    assert private == []


def test_lib_imports_neither_dagster_nor_resources_nor_definitions() -> None:
    assert violations(f"{PACKAGE}.lib", ("dagster", f"{PACKAGE}.resources", f"{PACKAGE}.defs",
                                         f"{PACKAGE}.definitions", f"{PACKAGE}.runs", f"{PACKAGE}.instance")) == []


def test_lib_data_imports_neither_agents_nor_governance_nor_evals() -> None:
    assert violations(f"{PACKAGE}.lib.data", (f"{PACKAGE}.lib.agents", f"{PACKAGE}.lib.governance",
                                              f"{PACKAGE}.lib.evals")) == []


def test_lib_agents_imports_neither_governance_nor_evals() -> None:
    assert violations(f"{PACKAGE}.lib.agents", (f"{PACKAGE}.lib.governance", f"{PACKAGE}.lib.evals")) == []


def test_lib_governance_does_not_import_evals() -> None:
    assert violations(f"{PACKAGE}.lib.governance", (f"{PACKAGE}.lib.evals",)) == []


def test_no_import_cycle_between_modules_at_import_time() -> None:
    """Module-level imports only (an import inside a function runs later and cannot deadlock the load)."""
    graph: dict[str, set[str]] = {}
    modules = set(imports())
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        name = module_name(path)
        targets: set[str] = set()
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                candidates = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
                targets |= {c for c in candidates if c in modules and c != name}
        graph[name] = targets
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_root_only_composes_the_domain_builders() -> None:
    builders = {f"{PACKAGE}.defs.{d.name}.definitions" for d in domain_dirs()}
    packages = {f"{PACKAGE}.defs.{d.name}" for d in domain_dirs()}
    modules = {*imports(), *packages}  # what is imported, not the names taken from it
    targets = {t for _, t in imports()[f"{PACKAGE}.definitions"] if t in modules}
    assert builders <= targets
    assert targets - builders - packages - {f"{PACKAGE}.defs.resources", f"{PACKAGE}.settings"} == set()


def domain_dirs() -> list[Path]:
    return sorted(p for p in (PACKAGE_DIR / "defs").iterdir() if p.is_dir() and p.name != "__pycache__")


def test_every_domain_has_the_same_shape() -> None:
    for domain in domain_dirs():
        files = {p.name for p in domain.iterdir() if p.is_file()}
        assert {"definitions.py", "README.md"} <= files, domain
        assert {f for f in files if f.endswith(".py")} <= DOMAIN_FILES, domain
