"""The evals domain: `evals/<agent>` per manifest that names a suite and `evals_job` (on demand), and the day's
live comparison `evals/live/<agent>` of a challenger in shadow or canary, with `live_evals_job` and its
daily schedule (schedules.py)."""

import dagster as dg

from factory_pipelines.defs.evals.assets import build_eval_assets, build_live_assets
from factory_pipelines.defs.evals.schedules import evals_job, live_evals_daily_schedule, live_evals_job
from factory_pipelines.defs.partitions import daily_partitions
from factory_pipelines.defs.resources import build_executor
from factory_pipelines.defs.upstream import asset_keys, names
from factory_pipelines.settings import Settings


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """An evaluation and a live comparison per agent asset upstream whose manifest names a suite."""
    from factory_pipelines.lib.agents.manifests import load_manifests

    agents = names(upstream, "agents")
    manifests = [m for name, m in load_manifests(settings.manifests_dir).items() if name in agents]
    after = asset_keys(upstream, "registry") + asset_keys(upstream, "models")
    evaluations = build_eval_assets(settings, manifests, after)
    live = build_live_assets(settings, manifests, daily_partitions(settings))
    if not evaluations:
        return dg.Definitions()
    executor = build_executor(settings)
    live_job = live_evals_job(executor, [a.key for a in live])
    return dg.Definitions(assets=[*evaluations, *live],
                          jobs=[evals_job(executor, [a.key for a in evaluations]), live_job],
                          schedules=[live_evals_daily_schedule(live_job)])
