"""The models domain: the ticket classifier, and `models_job` (prompts and classifier, launched by hand or by
`factory run`; it has no schedule)."""

from typing import Any

import dagster as dg

from factory_pipelines.defs.models.assets import build_model_assets
from factory_pipelines.defs.resources import build_executor
from factory_pipelines.defs.upstream import names
from factory_pipelines.settings import Settings

MODELS_JOB = "models_job"


def models_job(executor: dg.ExecutorDefinition) -> Any:
    return dg.define_asset_job(
        MODELS_JOB,
        executor_def=executor,
        selection=dg.AssetSelection.groups("registry", "models"),
        description="Sync prompt files to the MLflow Prompt Registry and train, register and promote the classifier.",
    )


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """`models/ticket_classifier` when tickets are fed (it trains on them); `models_job` always."""
    assets = build_model_assets(settings.labels_dir, settings.manifests_dir.parent) \
        if "tickets" in names(upstream, "staging") else []
    return dg.Definitions(assets=assets, jobs=[models_job(build_executor(settings))])
