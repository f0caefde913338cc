"""The registry domain: the prompt files synced to the MLflow Prompt Registry."""

import dagster as dg

from factory_pipelines.defs.registry.assets import build_registry_assets
from factory_pipelines.settings import Settings


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """`registry/prompt_versions` (not partitioned; run by `models_job`, defined with the models domain)."""
    return dg.Definitions(assets=build_registry_assets())
