"""`factory agents list|show|validate`: the agents declared by manifest, as the code location sees them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factory_pipelines.settings import get_settings

agents = typer.Typer(help="Agents declared by manifest: list, show, validate.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 120)


def register(app: typer.Typer) -> None:
    app.add_typer(agents, name="agents")


@agents.command("list")
def agents_list() -> None:
    """Every declared agent: version, stage, whether the code location has it (and why not), kill switch,
    model, prompt, tools."""
    from factory_pipelines.defs.agents.definitions import agent_statuses
    from factory_pipelines.lib.agents.manifests import load_manifests
    from factory_pipelines.runs import load_definitions

    settings = get_settings()
    try:
        statuses = agent_statuses(settings, load_definitions())
        unknown = unknown_why = ""
    except Exception as exc:  # still list the manifests, and say below why their standing is unknown
        statuses, unknown = {}, "unknown (see below)"
        unknown_why = f"[yellow]The code location does not load, so whether it has each agent is unknown:[/yellow] {escape(str(exc))}"
    table = Table(title=f"Agents ({settings.manifests_dir})")
    for column in ("agent", "version", "stage", "graph", "kill switch", "model", "prompt", "tools"):
        table.add_column(column, overflow="fold")
    for name, m in load_manifests(settings.manifests_dir).items():
        table.add_row(m.name, m.version, m.stage, statuses.get(name, unknown), "ON" if m.kill_switch else "off",
                      f"{m.model.provider}:{m.model.name}", m.prompt, ", ".join(m.tools))
    console.print(table)
    if unknown:
        console.print(unknown_why, highlight=False)


@agents.command("show")
def agents_show(name: Annotated[str, typer.Argument(help="Agent name.")]) -> None:
    """One agent's manifest, validated, as JSON."""
    from factory_pipelines.lib.agents.manifests import load_manifests

    manifests = load_manifests(get_settings().manifests_dir)
    if name not in manifests:
        raise typer.BadParameter(f"no agent {name!r}; declared: {', '.join(sorted(manifests))}", param_hint="NAME")
    console.print_json(manifests[name].model_dump_json())


@agents.command("validate")
def agents_validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Manifest files (default: every declared one).")] = None,
) -> None:
    """Validate manifests against the schema, the tool catalog and their policy set; exit 1 naming file, field
    and reason."""
    from factory_pipelines.lib.agents.manifests import ManifestError, load_manifest
    from factory_pipelines.lib.governance.policy import PolicyEngine, PolicyError

    files = paths or sorted(Path(get_settings().manifests_dir).glob("*.yaml"))
    errors = 0
    for path in files:
        try:
            manifest = load_manifest(path)
            engine = PolicyEngine.load(get_settings().policies_dir, manifest.policy_set)
            console.print(f"[green]ok[/green] {path} ({manifest.name} {manifest.version}, {manifest.stage}; policy set "
                          f"{engine.name}@{engine.hash})")
        except (ManifestError, PolicyError) as exc:
            errors += 1
            console.print(f"[red]invalid[/red] {escape(str(exc))}")
    if errors:
        raise typer.Exit(1)
