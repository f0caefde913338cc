"""The retention job and its nightly schedule (stopped by default, like the factory's other schedules)."""

from typing import Any

import dagster as dg

RETENTION_JOB = "retention_job"


def retention_job(purge: dg.AssetKey) -> Any:
    return dg.define_asset_job(RETENTION_JOB, selection=dg.AssetSelection.assets(purge),
                               description="Purge payloads older than retention_days (one audit event).")


def retention_daily_schedule(job: Any) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="retention_daily_schedule", job=job, cron_schedule="0 3 * * *", execution_timezone="UTC",
        description="Every day at 03:00 UTC, purge payloads older than retention_days.",
        default_status=dg.DefaultScheduleStatus.STOPPED)
