"""The staging domain: a conformed table for every raw table the factory knows how to conform."""

import dagster as dg

from factory_pipelines.defs.partitions import daily_partitions
from factory_pipelines.defs.staging.assets import build_staging_asset
from factory_pipelines.defs.upstream import names
from factory_pipelines.lib.data.conform import STAGING_DDL
from factory_pipelines.settings import Settings


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """`staging/<source>` for each raw table that has a conformed shape (`STAGING_DDL`)."""
    partitions = daily_partitions(settings)
    raw = set(names(upstream, "raw"))
    return dg.Definitions(assets=[build_staging_asset(name, partitions) for name in STAGING_DDL if name in raw])
