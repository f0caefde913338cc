"""The features domain: feature tables for the fed staging tables, the Feast registry and the online store."""

import dagster as dg

from factory_pipelines.defs.features.assets import build_feature_assets
from factory_pipelines.defs.partitions import daily_partitions
from factory_pipelines.defs.upstream import names
from factory_pipelines.settings import Settings


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """The feature assets the fed sources allow (customer features need customers, ticket features tickets)."""
    return dg.Definitions(assets=build_feature_assets(daily_partitions(settings), settings.feature_data_dir,
                                                      settings.feature_repo, set(names(upstream, "staging"))))
