"""The data plane's job and its daily schedule: one day of landing files through ingestion, contracts,
staging and features in one run (blocking checks hold inside a run, so the whole plane shares one job)."""

from typing import Any

import dagster as dg

DATA_PLANE_JOB = "data_plane_job"


def data_plane_job(executor: dg.ExecutorDefinition) -> Any:
    return dg.define_asset_job(
        DATA_PLANE_JOB,
        executor_def=executor,
        selection=dg.AssetSelection.groups("ingestion", "staging", "features"),
        description="Ingest one day of landing files, enforce contracts, conform, build and serve features. "
        "Blocking checks stop everything downstream of a failed contract in the same run.",
    )


def data_plane_daily_schedule(job: Any) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job, name="data_plane_daily_schedule", hour_of_day=2,
        description="Every day at 02:00 UTC, build the previous day's partition of the data plane.",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
