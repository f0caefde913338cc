"""The ingestion domain: one raw asset per declared source, and the data plane's job and schedule."""

import dagster as dg

from factory_pipelines.defs.ingestion.assets import build_raw_asset
from factory_pipelines.defs.ingestion.schedules import data_plane_daily_schedule, data_plane_job
from factory_pipelines.defs.partitions import daily_partitions
from factory_pipelines.defs.resources import build_executor
from factory_pipelines.lib.data.sources import load_sources
from factory_pipelines.settings import Settings


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    """`raw/<source>` for every enabled source declaration (shipped ones, overridden by the user's folder)."""
    partitions = daily_partitions(settings)
    sources = load_sources(settings.source_dirs, settings.suite_dirs)
    job = data_plane_job(build_executor(settings))
    return dg.Definitions(
        assets=[build_raw_asset(spec, partitions, str(settings.landing_dir)) for spec in sources.values()],
        jobs=[job],
        schedules=[data_plane_daily_schedule(job)],
    )
