"""The docs stay true: every path drawn in README's layout and every doc it links exist."""

from __future__ import annotations

import re

from factory_pipelines.settings import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def layout_paths() -> list[str]:
    block = README.split("## How it is laid out", 1)[1].split("```", 2)[1]
    paths, parent = [], ""
    for line in block.splitlines():
        if not line.strip():
            continue
        entry = line.split()[0]
        names = [entry.rstrip(",")] + [w.rstrip(",") for w in line.split()[1:2] if w.endswith(".py")]
        top = not line.startswith(" ")
        for name in names:
            for expanded in _braces(name):
                paths.append(expanded if top else parent + expanded)
        if top:
            parent = entry
    return paths


def _braces(name: str) -> list[str]:
    match = re.search(r"\{([^}]*)\}", name)
    if not match:
        return [name]
    return [name[: match.start()] + part + name[match.end():] for part in match.group(1).split(",")]


def test_layout_in_readme_matches_the_tree() -> None:
    paths = layout_paths()
    assert len(paths) > 10
    missing = [p for p in paths if not (REPO_ROOT / p).exists()]
    assert not missing, missing


def test_linked_docs_exist() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert links
    assert [link for link in links if "://" not in link and not (REPO_ROOT / link).exists()] == []


def test_files_named_in_policy_comments_exist() -> None:
    """A comment in a Cedar file that names a file (`gate.yaml`, `factory.cedarschema`) names one that exists."""
    policies = REPO_ROOT / "factory_pipelines" / "policies"
    named = {
        (path.relative_to(policies), name)
        for path in policies.rglob("*.cedar")
        for line in path.read_text().splitlines() if line.lstrip().startswith("//")
        for name in re.findall(r"[\w./-]+\.(?:yaml|cedar|cedarschema|py)\b", line)
    }
    missing = [(str(f), n) for f, n in sorted(named)
               if not any((base / n).exists() for base in (policies, REPO_ROOT, REPO_ROOT / "factory_pipelines"))]
    assert not missing, missing
