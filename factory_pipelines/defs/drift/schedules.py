"""The drift job and one nightly schedule per agent.

`drift_job` materializes every `drift/...` asset for a day (what `factory run` and `factory drift` run after the
agents' day; `factory run` re-runs the golden suites, `drift/eval_scores/<agent>`, on its range's last day only). `drift_<agent>_nightly_schedule` runs that agent's drift assets at `drift_schedule_cron` in
`drift_schedule_timezone` (06:00 UTC by default, after the 04:00 agents' run) on the previous day's partition.
The schedules are on by default: when the daemon runs, drift is judged every night without anyone turning it on.
"""

from datetime import timedelta
from typing import Any

import dagster as dg

DRIFT_JOB = "drift_job"


def day_selection(definitions: dg.Definitions, *, scores: bool) -> list[dg.AssetKey]:
    """`drift_job`'s assets for one day, with or without the golden-suite re-runs (`drift/eval_scores/...`)."""
    from factory_pipelines.defs.upstream import asset_keys

    keys = asset_keys(definitions, "drift")
    return keys if scores else [k for k in keys if k.path[1] != "eval_scores"]


def drift_job(executor: dg.ExecutorDefinition, keys: list[dg.AssetKey]) -> Any:
    return dg.define_asset_job(DRIFT_JOB, executor_def=executor, selection=dg.AssetSelection.assets(*keys),
                               description="Judge each agent's day against its reference window (drift/<agent>), "
                                           "write the reports and record the verdicts.")


def schedule_name(agent: str) -> str:
    return f"drift_{agent}_nightly_schedule"


def nightly_schedule(agent: str, job: Any, keys: list[dg.AssetKey], cron: str, timezone: str,
                     first_day: str) -> dg.ScheduleDefinition:
    """The agent's drift assets on the day before the tick (in the schedule's time zone)."""

    @dg.schedule(name=schedule_name(agent), cron_schedule=cron, execution_timezone=timezone, job=job,
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=f"Every night ({cron}, {timezone}): drift of {agent} on the previous day.")
    def _nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        moment = context.scheduled_execution_time
        day = (moment - timedelta(days=1)).date().isoformat()
        if day < first_day:
            return dg.SkipReason(f"{day} is before the first partition {first_day}")
        return dg.RunRequest(run_key=f"drift:{agent}:{day}", partition_key=day, asset_selection=keys,
                             tags={"agent": agent})

    return _nightly
