"""The agents domain: one daily run asset per manifest whose feeds are fed, and the agents' job and schedule.

An agent is in the graph unless it is retired or needs a feed the code location is not fed (every agent
reads tickets; `order_lookup` needs orders, `kb_search` the knowledge base, `customer_features` customers).
`graph_status` says which and why, for `factory agents list` and for a `factory run --job agents_job`
that finds no agent to run.
"""

from pathlib import Path

import dagster as dg

from factory_pipelines.defs.agents.assets import build_agent_asset
from factory_pipelines.defs.agents.schedules import AGENTS_JOB, agents_daily_schedule, agents_job
from factory_pipelines.defs.partitions import daily_partitions
from factory_pipelines.defs.resources import build_executor
from factory_pipelines.defs.upstream import check_keys, names
from factory_pipelines.lib.agents.manifests import AgentManifest, load_manifests
from factory_pipelines.settings import Settings

REQUIRED_FEEDS = ("tickets",)  # every agent decides the day's tickets
TOOL_FEEDS = {"customer_features": "customers", "kb_search": "kb_articles", "order_lookup": "orders"}


def missing_feeds(manifest: AgentManifest, fed: set[str]) -> list[str]:
    """The feeds an agent needs that the code location is not fed (then it gets no asset)."""
    needed = {*REQUIRED_FEEDS, *(TOOL_FEEDS[t] for t in manifest.tools if t in TOOL_FEEDS)}
    return sorted(needed - fed)


def in_graph(manifest: AgentManifest, fed: set[str]) -> bool:
    return manifest.stage != "retired" and not missing_feeds(manifest, fed)


def graph_status(manifest: AgentManifest, fed: set[str]) -> str:
    """Where an agent stands in the code location, in words."""
    if manifest.stage == "retired":
        return "not in the graph: retired"
    missing = missing_feeds(manifest, fed)
    if missing:
        return f"not in the graph: needs feeds {', '.join(missing)}"
    if manifest.runs_on_schedule:
        return f"in the graph and in {AGENTS_JOB}"
    return f"in the graph, run by hand only ({manifest.stage}: not in {AGENTS_JOB})"


def agent_statuses(settings: Settings, defs: dg.Definitions) -> dict[str, str]:
    """`graph_status` of every declared agent, against the feeds of the built code location `defs`."""
    fed = set(names(defs, "staging"))
    return {name: graph_status(m, fed) for name, m in load_manifests(settings.manifests_dir).items()}


def why_no_agents_job(settings: Settings, defs: dg.Definitions) -> str:
    """Why the built code location `defs` has no `agents_job`, naming every declared agent and its standing."""
    fed = set(names(defs, "staging"))
    manifests = load_manifests(settings.manifests_dir)
    if not manifests:
        return f"no agent is declared in {settings.manifests_dir}"
    head = "no staging or production agent is in the graph" if any(in_graph(m, fed) for m in manifests.values()) \
        else "no agent is in the graph"
    return f"{head}: " + "; ".join(f"{name} {graph_status(m, fed)}" for name, m in manifests.items())


def suite_file(settings: Settings, manifest: AgentManifest) -> Path | None:
    """The evaluation suite an agent's manifest names (its `stages` set a canary's share), if any."""
    return settings.evals_dir / "suites" / f"{manifest.evaluation.suite}.yaml" if manifest.evaluation else None


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """`agents/<name>` per manifest in the graph, guarded by the blocking checks of its inputs; `agents_job`
    and `agents_daily_schedule` when at least one of them is staging or production."""
    fed = set(names(upstream, "staging"))
    manifests = {n: m for n, m in load_manifests(settings.manifests_dir).items() if in_graph(m, fed)}
    partitions, guards = daily_partitions(settings), check_keys(upstream)
    assets = [build_agent_asset(m, settings.manifests_dir / f"{n}.yaml", partitions, fed, guards, settings.labels_dir,
                                settings.response_cache, settings.policies_dir, suite_file(settings, m))
              for n, m in manifests.items()]
    scheduled = [dg.AssetKey(["agents", m.name]) for m in manifests.values() if m.runs_on_schedule]
    if not scheduled:
        return dg.Definitions(assets=assets)
    job = agents_job(build_executor(settings), scheduled)
    return dg.Definitions(assets=assets, jobs=[job], schedules=[agents_daily_schedule(job)])
