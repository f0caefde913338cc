"""The agents' job and its daily schedule: the staging and production agents over one day of tickets.

Draft agents are in the graph (materialize them by hand in the UI) but never in the job; retired ones and
agents whose feeds are not fed have no asset at all (`factory agents list` says why).
"""

from typing import Any

import dagster as dg

AGENTS_JOB = "agents_job"


def agents_job(executor: dg.ExecutorDefinition, agent_runs: list[dg.AssetKey]) -> Any:
    return dg.define_asset_job(
        AGENTS_JOB,
        executor_def=executor,
        selection=dg.AssetSelection.assets(*agent_runs),
        description="Run the staging and production agents over one day of tickets (draft agents run by hand only).",
    )


def agents_daily_schedule(job: Any) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job, name="agents_daily_schedule", hour_of_day=4,
        description="Every day at 04:00 UTC, run the scheduled agents over the previous day's tickets.",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
