"""The evals domain's jobs and the daily schedule of the live comparisons.

`evals_job` runs every `evals/<agent>` (on demand; the drift issue's nightly evaluation runs the champion's
suites). `live_evals_job` runs the day's `evals/live/<agent>` after the agents' day (`agents_daily_schedule`
runs at 04:00 UTC): with no challenger in shadow or canary each is a quick "nothing staged".
"""

from typing import Any

import dagster as dg

EVALS_JOB, LIVE_EVALS_JOB = "evals_job", "live_evals_job"


def evals_job(executor: dg.ExecutorDefinition, evaluations: list[dg.AssetKey]) -> Any:
    return dg.define_asset_job(EVALS_JOB, executor_def=executor, selection=dg.AssetSelection.assets(*evaluations),
                               description="Evaluate each agent's challenger against its champion on the golden "
                                           "suite and judge the promotion gate.")


def live_evals_job(executor: dg.ExecutorDefinition, comparisons: list[dg.AssetKey]) -> Any:
    return dg.define_asset_job(LIVE_EVALS_JOB, executor_def=executor, selection=dg.AssetSelection.assets(*comparisons),
                               description="Compare each staged challenger (shadow or canary) with the champion on "
                                           "the day's tickets and judge the live gate.")


def live_evals_daily_schedule(job: Any) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job, name="live_evals_daily_schedule", hour_of_day=5,
        description="Every day at 05:00 UTC, after the agents' day, the live comparison of staged challengers.",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
