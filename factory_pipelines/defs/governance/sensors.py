"""The review sweep's job and sensor: `review_actions_job` runs one sweep of the queue; `review_actions_sensor`
starts it when approved or overdue items wait (`factory review execute` runs the same job at once)."""

from typing import Any

import dagster as dg

from factory_pipelines.resources.warehouse import WarehouseResource

REVIEW_JOB = "review_actions_job"


def review_actions_job() -> Any:
    """Always in one process: a sweep is short and must not race another for the warehouse."""
    return dg.define_asset_job(
        REVIEW_JOB,
        executor_def=dg.in_process_executor,
        selection=dg.AssetSelection.groups("governance"),
        description="Sweep the human review queue: expire overdue escalations, execute approved ones exactly once.",
    )


def review_actions_sensor(job: Any) -> dg.SensorDefinition:
    @dg.sensor(name="review_actions_sensor", job=job, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Starts a sweep of the review queue when approved items wait to run or pending ones are "
                           "past their deadline (checks every 30 s; skips while a run holds the warehouse).")
    def review_actions_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> Any:
        import duckdb

        busy = context.instance.get_runs(filters=dg.RunsFilter(job_name=REVIEW_JOB, statuses=[
            dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]), limit=1)
        if busy:
            return dg.SkipReason("a sweep of the review queue is already running")
        try:  # one try, no waiting: a run holding the warehouse just means "look again in 30 s"
            with duckdb.connect(warehouse.database, read_only=True) as con:
                waiting = con.execute(
                    "SELECT count(*) FILTER (WHERE status = 'approved'), "
                    "count(*) FILTER (WHERE status = 'pending' AND expires_at <= now()) FROM governance.review_queue"
                ).fetchone()
        except duckdb.CatalogException:
            return dg.SkipReason("no review queue yet")
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            return dg.SkipReason(f"warehouse busy ({str(exc)[:80]}); trying again in 30 s")
        approved, overdue = waiting
        if not approved and not overdue:
            return dg.SkipReason("nothing approved or overdue")
        return dg.RunRequest(tags={"approved": str(approved), "overdue": str(overdue)})

    return review_actions_sensor
