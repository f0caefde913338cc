"""`check_alerts_sensor`: every failed asset check of any run becomes an alert row, a log line and (when
configured) a signed webhook POST. Open-source Dagster does not alert on failed checks (a failed check does
not fail its run; dagster#29896, #17573), so this closes the gap for contracts, audit, evals and drift alike.

How it reads Dagster, public API only: the instance's terminal run events (`fetch_run_status_changes` for
RUN_SUCCESS, RUN_FAILURE and RUN_CANCELED, after the cursor's storage id of each), then each finished run's
ASSET_CHECK_EVALUATION events (`all_logs(run_id, of_type=...)`). A run's checks are read once it has finished,
so its evaluations are final; storage ids of run events are global even on the default run-sharded SQLite
storage, where a cross-run scan of check events by storage id is refused. The cursor moves only after the
rows are committed, and the row ids are stable, so a tick that dies half-way or runs twice records nothing
twice. Webhook delivery comes after the commit and retries what earlier ticks could not deliver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from factory_pipelines.lib.alerts.store import CheckFailure
from factory_pipelines.lib.alerts.webhook import Webhook
from factory_pipelines.resources.warehouse import WarehouseResource
from factory_pipelines.settings import Settings

SENSOR = "check_alerts_sensor"
INTERVAL_S = 30
RUNS_PER_TICK = 50  # per terminal status; more wait for the next tick
TERMINAL = (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELED)
BUSY_WAIT_S = 10.0  # a run holding the warehouse: wait this long, then leave the cursor for the next tick


def webhook_of(settings: Settings) -> Webhook | None:
    """The configured webhook, or None when `FACTORY_ALERT_WEBHOOK_URL` is empty."""
    if not settings.alert_webhook_url:
        return None
    secret = settings.alert_webhook_secret.get_secret_value() if settings.alert_webhook_secret else None
    return Webhook(url=settings.alert_webhook_url, secret=secret, timeout_s=settings.alert_webhook_timeout_seconds,
                   attempts=settings.alert_webhook_attempts)


def _plain(value: Any) -> Any:
    """A metadata value as JSON-able data: numbers, text and JSON stay; anything else becomes its text."""
    inner = getattr(value, "value", value)
    if inner is None or isinstance(inner, bool | int | float | str | list | dict):
        return inner
    return str(inner)


def failed_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[CheckFailure]:
    """The failed check evaluations (passed=False) of one run, as alerts-to-be."""
    run = instance.get_run_by_id(run_id)
    run_partition = (run.tags.get("dagster/partition") if run else None) or None
    out = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.asset_check_evaluation_data if entry.dagster_event else None
        if evaluation is None or evaluation.passed:
            continue
        out.append(CheckFailure(
            check_name=evaluation.check_name, asset_key=evaluation.asset_key.to_user_string(), run_id=run_id,
            severity="warn" if evaluation.severity == dg.AssetCheckSeverity.WARN else "error",
            partition=evaluation.partition or run_partition, description=evaluation.description,
            metadata={k: _plain(v) for k, v in evaluation.metadata.items()},
            evaluated_at=datetime.fromtimestamp(entry.timestamp, UTC)))
    return out


def finished_runs(instance: dg.DagsterInstance, cursor: dict[str, int]) -> tuple[list[str], dict[str, int]]:
    """Run ids that reached a terminal status after `cursor` (oldest first), and the cursor past them."""
    runs: list[tuple[int, str]] = []
    moved = dict(cursor)
    for event_type in TERMINAL:
        result = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(event_type, after_storage_id=cursor.get(event_type.name)),
            limit=RUNS_PER_TICK, ascending=True)
        for record in result.records:
            runs.append((record.storage_id, record.run_id))
            moved[event_type.name] = max(moved.get(event_type.name, 0), record.storage_id)
    return [run_id for _, run_id in sorted(runs)], moved


@contextmanager
def _warehouse(database: str) -> Iterator[Any]:
    """A write connection, waiting at most BUSY_WAIT_S while another process holds the file."""
    import duckdb
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

    def locked(exc: BaseException) -> bool:
        return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()

    con = None
    for attempt in Retrying(retry=retry_if_exception(locked), stop=stop_after_delay(BUSY_WAIT_S), reraise=True,
                             wait=wait_random_exponential(multiplier=0.05, max=1)):
        with attempt:
            con = duckdb.connect(database, config={"threads": 1})
    assert con is not None
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def sweep(instance: dg.DagsterInstance, database: str, webhook: Webhook | None, run_ids: list[str],
          log: Any = None) -> tuple[list[CheckFailure], Any]:
    """Record the failed checks of `run_ids` (new rows logged as warnings), then deliver what waits.

    Returns (the failures newly recorded, the delivery report or None). The sensor's tick; `factory run` can
    call it with the runs it just executed to record their alerts without the daemon."""
    from factory_pipelines.lib.alerts.store import record
    from factory_pipelines.lib.alerts.webhook import deliver_pending

    failures = [f for run_id in run_ids for f in failed_evaluations(instance, run_id)]
    report = None
    with _warehouse(database) as con:
        new = set(record(con, failures, deliver=webhook is not None))
        fresh = [f for f in failures if f.alert_id in new]
        for failure in fresh:
            if log is not None:
                log.warning(alert_line(failure))
        if webhook is not None:
            report = deliver_pending(con, webhook, log=log.warning if log is not None else None)
    return fresh, report


def alert_line(failure: CheckFailure) -> str:
    """The one log line of a new alert."""
    seen = "" if failure.observed is None else f"; observed {failure.observed}"
    bound = "" if failure.bound is None else f", bound {failure.bound}"
    day = f" [{failure.partition}]" if failure.partition else ""
    why = (failure.description or "").strip().splitlines()[0][:200] if failure.description else "no description"
    return (f"ALERT {failure.severity.upper()} {failure.asset_key}:{failure.check_name}{day} failed in run "
            f"{failure.run_id[:8]}{seen}{bound}: {why} (`factory alerts ack {failure.alert_id[:12]}`)")


def check_alerts_sensor(webhook: Webhook | None) -> dg.SensorDefinition:
    @dg.sensor(name=SENSOR, minimum_interval_seconds=INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Every failed asset check of any finished run (contracts, audit, evals, drift) becomes a "
                           "row of alerts.check_failures and a warning in the tick's log, and is POSTed to the "
                           "alert webhook when one is configured (every 30 s; undelivered alerts are retried).")
    def check_alerts_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
        import duckdb

        cursor = json.loads(context.cursor) if context.cursor else {}
        run_ids, moved = finished_runs(context.instance, cursor)
        try:
            fresh, report = sweep(context.instance, warehouse.database, webhook, run_ids, context.log)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            return dg.SensorResult(skip_reason=f"warehouse busy ({str(exc)[:80]}); trying again in {INTERVAL_S} s")
        sent = f"; webhook: {len(report.delivered)} delivered, {len(report.failed)} failed" if report else ""
        summary = f"{len(run_ids)} finished run(s) read, {len(fresh)} new alert(s){sent}"
        return dg.SensorResult(skip_reason=summary, cursor=json.dumps(moved, sort_keys=True))

    return check_alerts_sensor
