"""The retention domain: `retention/purge` (payloads past `retention_days` deleted or masked), its job and a
nightly schedule. It reads every domain's tables but depends on none of their assets: a purge is about time."""

import dagster as dg

from factory_pipelines.defs.retention.assets import PURGE, purge_asset
from factory_pipelines.defs.retention.schedules import retention_daily_schedule, retention_job
from factory_pipelines.settings import Settings


def build(settings: Settings, upstream: dg.Definitions) -> dg.Definitions:
    job = retention_job(PURGE)
    return dg.Definitions(assets=[purge_asset(settings)], jobs=[job], schedules=[retention_daily_schedule(job)])
