"""`check_alerts_sensor` on a real temporary Dagster instance: every failed check evaluation of a finished run
becomes one alert row, passed ones none, a second tick nothing, and the cursor moves past what it read; a dead
webhook keeps the rows; the sensor is part of the composed code location."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from factory_pipelines.defs.alerts.sensors import SENSOR, check_alerts_sensor, sweep, webhook_of
from factory_pipelines.lib.alerts.store import list_alerts
from factory_pipelines.lib.alerts.webhook import Webhook
from factory_pipelines.resources.warehouse import WarehouseResource
from factory_pipelines.settings import Settings
from tests.lib.alerts.receiver import free_port, receiver

KEY = dg.AssetKey(["drift", "support_triage"])
DAYS = dg.StaticPartitionsDefinition(["2026-11-05", "2026-11-06"])
CHECKS = [dg.AssetCheckSpec("psi_within_bound", asset=KEY, partitions_def=DAYS),
          dg.AssetCheckSpec("rows_present", asset=KEY, partitions_def=DAYS),
          dg.AssetCheckSpec("share_within_bound", asset=KEY, partitions_def=DAYS)]


@dg.asset(key=KEY, partitions_def=DAYS, check_specs=CHECKS)
def drifting(context) -> dg.MaterializeResult:  # no annotation: Dagster reads it, and it is a string here
    drifted = context.partition_key == "2026-11-06"
    return dg.MaterializeResult(check_results=[
        dg.AssetCheckResult(check_name="psi_within_bound", passed=not drifted, severity=dg.AssetCheckSeverity.ERROR,
                            description="PSI 0.31 above the error bound 0.25" if drifted else "PSI 0.02",
                            metadata={"observed": 0.31 if drifted else 0.02, "bound": 0.25,
                                      "summary": dg.MetadataValue.md("| a | b |")}),
        dg.AssetCheckResult(check_name="rows_present", passed=True, metadata={"rows": 150}),
        dg.AssetCheckResult(check_name="share_within_bound", passed=not drifted, severity=dg.AssetCheckSeverity.WARN,
                            metadata={"observed_value": 0.4, "expected": dg.MetadataValue.json({"max": 0.3})}),
    ])


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def tick(instance: dg.DagsterInstance, database: Path, cursor: str | None, webhook: Webhook | None = None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                      resources={"warehouse": WarehouseResource(database=str(database))})
    result = check_alerts_sensor(webhook)(context)
    return result, context.cursor if result.cursor is None else result.cursor


def alerts(database: Path) -> list[dict]:
    with duckdb.connect(str(database)) as con:
        return list_alerts(con, open_only=False)


def test_one_row_per_failed_evaluation_none_for_passed_none_twice_and_the_cursor_moves(
        instance, tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    for day in DAYS.get_partition_keys():
        assert dg.materialize([drifting], instance=instance, partition_key=day).success  # failed checks: run succeeds
    result, cursor = tick(instance, database, None)
    rows = alerts(database)
    assert sorted((r["check_name"], r["partition"], r["severity"]) for r in rows) == [
        ("psi_within_bound", "2026-11-06", "error"), ("share_within_bound", "2026-11-06", "warn")]
    psi = next(r for r in rows if r["check_name"] == "psi_within_bound")
    assert (psi["asset_key"], psi["agent"], psi["observed"], psi["bound"]) == (
        "drift/support_triage", "support_triage", 0.31, 0.25)
    assert psi["description"].startswith("PSI 0.31") and psi["delivery_status"] == "none"
    share = next(r for r in rows if r["check_name"] == "share_within_bound")
    assert (share["observed"], share["bound"]) == (0.4, {"max": 0.3})
    assert "2 new alert(s)" in result.skip_reason.skip_message and json.loads(cursor)["RUN_SUCCESS"] > 0

    again, same = tick(instance, database, cursor)
    assert "0 finished run(s) read, 0 new alert(s)" in again.skip_reason.skip_message and json.loads(same) == json.loads(cursor)
    _, from_scratch = tick(instance, database, None)  # re-reading everything still records nothing twice
    assert len(alerts(database)) == 2 and json.loads(from_scratch) == json.loads(cursor)

    assert dg.materialize([drifting], instance=instance, partition_key="2026-11-06").success
    later, moved = tick(instance, database, cursor)
    assert "1 finished run(s) read, 2 new alert(s)" in later.skip_reason.skip_message
    assert json.loads(moved)["RUN_SUCCESS"] > json.loads(cursor)["RUN_SUCCESS"]
    assert len(alerts(database)) == 4 and len({r["run_id"] for r in alerts(database)}) == 2


def test_checks_of_a_failed_run_alert_too(instance, tmp_path: Path) -> None:
    @dg.asset(check_specs=[dg.AssetCheckSpec("fine", asset="fragile")])
    def fragile() -> Iterator[dg.AssetCheckResult]:
        yield dg.Output(None)
        yield dg.AssetCheckResult(check_name="fine", passed=False, metadata={"observed": 3, "threshold": 1})
        raise RuntimeError("the step dies after its check")

    assert not dg.materialize([fragile], instance=instance, raise_on_error=False).success
    _, cursor = tick(instance, tmp_path / "w.duckdb", None)
    (row,) = alerts(tmp_path / "w.duckdb")
    assert (row["check_name"], row["asset_key"], row["partition"], row["bound"]) == ("fine", "fragile", None, 1)
    assert json.loads(cursor)["RUN_FAILURE"] > 0


def test_a_dead_webhook_keeps_the_rows_and_a_later_tick_delivers_them(instance, tmp_path: Path) -> None:
    database, port = tmp_path / "warehouse.duckdb", free_port()
    webhook = Webhook(url=f"http://127.0.0.1:{port}/alerts", secret="s3cr3t-for-tests", attempts=2, backoff_s=0.01)
    assert dg.materialize([drifting], instance=instance, partition_key="2026-11-06").success
    result, cursor = tick(instance, database, None, webhook)
    assert "webhook: 0 delivered, 1 failed" in result.skip_reason.skip_message
    assert sorted(r["delivery_status"] for r in alerts(database)) == ["failed", "pending"]
    with receiver("s3cr3t-for-tests", port=port) as server:
        result, _ = tick(instance, database, cursor, webhook)
    assert "0 new alert(s); webhook: 2 delivered, 0 failed" in result.skip_reason.skip_message
    assert {a["check_name"] for a in server.accepted} == {"psi_within_bound", "share_within_bound"}
    assert {r["delivery_status"] for r in alerts(database)} == {"delivered"}


def test_sweep_records_given_runs_without_the_daemon(instance, tmp_path: Path) -> None:
    run = dg.materialize([drifting], instance=instance, partition_key="2026-11-06")
    fresh, report = sweep(instance, str(tmp_path / "w.duckdb"), None, [run.run_id])
    assert len(fresh) == 2 and report is None
    assert sweep(instance, str(tmp_path / "w.duckdb"), None, [run.run_id])[0] == []


def test_the_composed_code_location_runs_the_sensor_with_the_configured_webhook(settings: Settings,
                                                                                monkeypatch) -> None:
    from factory_pipelines.definitions import build_definitions
    from factory_pipelines.settings import get_settings
    from tests.conftest import use_home

    sensor = build_definitions(settings).resolve_sensor_def(SENSOR)
    assert sensor.minimum_interval_seconds == 30 and sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.required_resource_keys == {"warehouse"} and webhook_of(settings) is None
    configured = use_home(monkeypatch, Path(settings.home), alert_webhook_url="https://hooks.example.com/a/b",
                          alert_webhook_secret="top-secret", alert_webhook_attempts="4")
    webhook = webhook_of(configured)
    assert webhook is not None and (webhook.secret, webhook.attempts) == ("top-secret", 4)
    assert "top-secret" not in repr(configured) and "top-secret" not in repr(webhook)
    get_settings.cache_clear()
