"""The data-plane job and its daily schedule: landing files to online features, one day per run."""

from typing import Any

import dagster as dg

DATA_PLANE_JOB = "data_plane_job"


EXECUTORS = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}


def build_jobs(executor: str) -> tuple[Any, dg.ScheduleDefinition]:
    job = dg.define_asset_job(
        DATA_PLANE_JOB,
        executor_def=EXECUTORS[executor],
        selection=dg.AssetSelection.groups("ingestion", "staging", "features"),
        description="Ingest one day of landing files, enforce contracts, conform, build and serve features. "
        "Blocking checks stop everything downstream of a failed contract in the same run.",
    )
    schedule = dg.build_schedule_from_partitioned_job(
        job,
        name="data_plane_daily_schedule",
        description="Every day at 02:00 UTC, build the previous day's partition of the data plane.",
        hour_of_day=2,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    return job, schedule
