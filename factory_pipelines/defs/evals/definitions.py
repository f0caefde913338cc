"""The evals domain: `evals/<agent>` per manifest that names a suite, and `evals_job` (on demand; no
schedule: the drift issue's nightly evaluation runs the champion's suites)."""

from typing import Any

import dagster as dg

from factory_pipelines.defs.evals.assets import build_eval_assets
from factory_pipelines.defs.resources import build_executor
from factory_pipelines.defs.upstream import asset_keys, names
from factory_pipelines.settings import Settings

EVALS_JOB = "evals_job"


def evals_job(executor: dg.ExecutorDefinition) -> Any:
    return dg.define_asset_job(EVALS_JOB, executor_def=executor, selection=dg.AssetSelection.groups("evals"),
                               description="Evaluate each agent's challenger against its champion on the golden "
                                           "suite and judge the promotion gate.")


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """An evaluation per agent asset upstream whose manifest names a suite, after the registries."""
    from factory_pipelines.lib.agents.manifests import load_manifests

    agents = names(upstream, "agents")
    manifests = [m for name, m in load_manifests(settings.manifests_dir).items() if name in agents]
    after = asset_keys(upstream, "registry") + asset_keys(upstream, "models")
    assets = build_eval_assets(settings, manifests, after)
    return dg.Definitions(assets=assets, jobs=[evals_job(build_executor(settings))] if assets else [])
