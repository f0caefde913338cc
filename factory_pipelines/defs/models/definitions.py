"""The models domain: the ticket classifier, and `models_job` (prompts and classifier, launched by hand or by
`factory run`; it has no schedule)."""

from typing import Any

import dagster as dg

from factory_pipelines.defs.models.assets import SHIPPED_DIR, build_model_assets
from factory_pipelines.defs.resources import build_executor
from factory_pipelines.defs.upstream import names
from factory_pipelines.settings import Settings

MODELS_JOB = "models_job"


def models_job(executor: dg.ExecutorDefinition) -> Any:
    return dg.define_asset_job(
        MODELS_JOB,
        executor_def=executor,
        selection=dg.AssetSelection.groups("registry", "models"),
        description="Sync prompt files to the MLflow Prompt Registry and train and register the classifiers (a new "
        "version is challenger: only the promotion gate makes it champion).",
    )


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """`models/<name>` per classifier file (shipped, or yours in FACTORY_USER_MODELS_DIR replacing it by name)
    when tickets are fed (they train on them); `models_job` always."""
    from factory_pipelines.defs.features.assets import FEATURE_VIEWS
    from factory_pipelines.lib.agents.models.classifier_spec import spec_files

    staged = set(names(upstream, "staging"))
    views = [FEATURE_VIEWS[table] for table in names(upstream, "features") if table in FEATURE_VIEWS]
    paths = spec_files([SHIPPED_DIR, settings.user_models_dir]) if "tickets" in staged else []
    assets = build_model_assets(paths, settings.labels_dir, settings.manifests_dir.parent, staged, views)
    return dg.Definitions(assets=assets, jobs=[models_job(build_executor(settings))])
