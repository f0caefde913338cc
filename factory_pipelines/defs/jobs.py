"""Jobs and schedules: the daily data plane, the models (prompts and classifier), and the daily agents.

The agent job runs the agents whose stage allows a schedule (staging, production); draft agents can be
materialized by hand in the UI but never run on a schedule; retired ones have no asset at all.
"""

from typing import Any

import dagster as dg

DATA_PLANE_JOB = "data_plane_job"
MODELS_JOB = "models_job"
AGENTS_JOB = "agents_job"
REVIEW_JOB = "review_actions_job"

EXECUTORS = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}


def build_jobs(executor: str, scheduled_agents: list[str],
               governance: bool = False) -> tuple[list[Any], list[dg.ScheduleDefinition]]:
    data_plane = dg.define_asset_job(
        DATA_PLANE_JOB,
        executor_def=EXECUTORS[executor],
        selection=dg.AssetSelection.groups("ingestion", "staging", "features"),
        description="Ingest one day of landing files, enforce contracts, conform, build and serve features. "
        "Blocking checks stop everything downstream of a failed contract in the same run.",
    )
    models = dg.define_asset_job(
        MODELS_JOB,
        executor_def=EXECUTORS[executor],
        selection=dg.AssetSelection.groups("registry", "models"),
        description="Sync prompt files to the MLflow Prompt Registry and train, register and promote the classifier.",
    )
    jobs: list[Any] = [data_plane, models]
    if governance:
        jobs.append(dg.define_asset_job(
            REVIEW_JOB,
            executor_def=dg.in_process_executor,
            selection=dg.AssetSelection.groups("governance"),
            description="Sweep the human review queue: expire overdue escalations, execute approved ones exactly once.",
        ))
    schedules = [
        dg.build_schedule_from_partitioned_job(
            data_plane, name="data_plane_daily_schedule", hour_of_day=2,
            description="Every day at 02:00 UTC, build the previous day's partition of the data plane.",
            default_status=dg.DefaultScheduleStatus.STOPPED,
        ),
    ]
    if not scheduled_agents:
        return jobs, schedules
    agents = dg.define_asset_job(
        AGENTS_JOB,
        executor_def=EXECUTORS[executor],
        selection=dg.AssetSelection.assets(*[dg.AssetKey(["agents", name]) for name in scheduled_agents]),
        description="Run the staging and production agents over one day of tickets (draft agents run by hand only).",
    )
    schedules.append(dg.build_schedule_from_partitioned_job(
        agents, name="agents_daily_schedule", hour_of_day=4,
        description="Every day at 04:00 UTC, run the scheduled agents over the previous day's tickets.",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    ))
    return [*jobs, agents], schedules
