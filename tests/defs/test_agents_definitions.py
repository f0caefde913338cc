"""Which agents the code location has, and why the others are left out: said by `factory agents list` and by a
`factory run --job agents_job` that finds no agent to run, instead of vanishing silently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factory_pipelines.defs.agents.definitions import graph_status, missing_feeds
from factory_pipelines.lib.agents.manifests import load_manifests
from factory_pipelines.settings import PACKAGE_DIR, get_settings
from tests.conftest import use_home

ALL_FEEDS = {"tickets", "customers", "orders", "kb_articles"}
MANIFESTS = load_manifests(PACKAGE_DIR / "defs" / "agents" / "manifests")


@pytest.mark.parametrize(("agent", "stage", "fed", "status"), [
    ("support_triage", "production", ALL_FEEDS, "in the graph and in agents_job"),
    ("knowledge_gap", "staging", ALL_FEEDS, "in the graph and in agents_job"),
    ("knowledge_gap", "draft", ALL_FEEDS, "in the graph, run by hand only (draft: not in agents_job)"),
    ("support_triage", "retired", ALL_FEEDS, "not in the graph: retired"),
    ("support_triage", "production", {"tickets", "customers"}, "not in the graph: needs feeds kb_articles, orders"),
    ("knowledge_gap", "staging", {"kb_articles"}, "not in the graph: needs feeds tickets"),
])
def test_graph_status(agent: str, stage: str, fed: set[str], status: str) -> None:
    manifest = MANIFESTS[agent].model_copy(update={"stage": stage})
    assert graph_status(manifest, fed) == status


def test_every_agent_needs_tickets_and_the_feeds_of_its_tools() -> None:
    assert missing_feeds(MANIFESTS["support_triage"], set()) == ["customers", "kb_articles", "orders", "tickets"]
    assert missing_feeds(MANIFESTS["knowledge_gap"], set()) == ["kb_articles", "tickets"]


def flat(text: str) -> str:
    """CLI output without table borders and line wraps."""
    return re.sub(r"[\s│┃╭╮╰╯─━|]+", " ", text)


def test_the_cli_says_which_agents_are_left_out_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from factory_pipelines import agents_cli, cli

    own = tmp_path / "my_sources"
    own.mkdir()
    for source in ("orders", "kb_articles"):
        (own / f"{source}.yaml").write_text(f"name: {source}\nenabled: false\n")
    use_home(monkeypatch, tmp_path / "home", user_sources_dir=str(own))
    monkeypatch.setattr(cli.console, "width", 400)
    monkeypatch.setattr(agents_cli.console, "width", 400)
    runner = CliRunner()
    try:
        listed = runner.invoke(cli.app, ["agents", "list"])
        assert listed.exit_code == 0, listed.output
        rows = {line.split()[1]: flat(line) for line in listed.output.splitlines() if line.startswith("│ ")
                and line.split()[1] in MANIFESTS}
        assert "production not in the graph: needs feeds kb_articles, orders" in rows["support_triage"]
        assert "staging not in the graph: needs feeds kb_articles" in rows["knowledge_gap"]

        run = runner.invoke(cli.app, ["run", "--job", "agents_job", "--start", "2026-11-01", "--end", "2026-11-01"])
        assert run.exit_code != 0
        said = flat(run.output)
        assert "unknown job 'agents_job' (no agent is in the graph: " in said, said
        assert "knowledge_gap not in the graph: needs feeds kb_articles; " \
               "support_triage not in the graph: needs feeds kb_articles, orders)" in said, said
    finally:
        get_settings.cache_clear()
