"""The docs stay true: every path drawn in README's layout and in architecture's code layout exists, every
module of a drawn library folder is named beside it, and every doc README links exists."""

from __future__ import annotations

import re

import pytest

from factory_pipelines.settings import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
ARCHITECTURE = (REPO_ROOT / "docs" / "architecture.md").read_text()
TREES = {"README.md": (README, "## How it is laid out"), "docs/architecture.md": (ARCHITECTURE, "## Code layout")}


def tree(doc: str, heading: str) -> list[tuple[str, str]]:
    """(path, description) of each entry of the first fenced block after `heading`; an indented entry is
    relative to the top-level entry above it, and `a.py, b.py` names two paths."""
    block = doc.split(heading, 1)[1].split("```", 2)[1]
    entries, parent = [], ""
    for line in block.splitlines():
        if not line.strip():
            continue
        words = line.split()
        top = not line.startswith(" ")
        names = [words[0].rstrip(",")] + [w.rstrip(",") for w in words[1:2] if words[0].endswith(",")]
        described = " ".join(words[len(names):])
        for name in names:
            for expanded in _braces(name):
                entries.append((expanded if top else parent + expanded, described))
        if top:
            parent = words[0]
    return entries


def _braces(name: str) -> list[str]:
    match = re.search(r"\{([^}]*)\}", name)
    if not match:
        return [name]
    return [name[: match.start()] + part + name[match.end():] for part in match.group(1).split(",")]


@pytest.mark.parametrize("doc", TREES)
def test_every_drawn_path_exists(doc: str) -> None:
    entries = tree(*TREES[doc])
    assert len(entries) > 10
    missing = [path for path, _ in entries if not (REPO_ROOT / path).exists()]
    assert not missing, f"{doc} draws paths that do not exist: {missing}"


def test_code_layout_names_every_module_of_the_library_folders() -> None:
    """A module added to lib/, demo/ or resources/ must be described in architecture's code layout."""
    unnamed = []
    for path, described in tree(*TREES["docs/architecture.md"]):
        folder = REPO_ROOT / path
        if not (path.endswith("/") and folder.is_dir() and re.search(r"/(lib|demo|resources)/", "/" + path)):
            continue
        words = set(re.findall(r"[a-z_]+", described))
        unnamed += [f"{path}{m.name}" for m in sorted(folder.glob("*.py"))
                    if m.stem != "__init__" and m.stem not in words]
    assert not unnamed, f"docs/architecture.md does not describe: {unnamed}"


def test_linked_docs_exist() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert links
    assert [link for link in links if "://" not in link and not (REPO_ROOT / link).exists()] == []
