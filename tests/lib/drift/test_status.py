"""The drift status an agent day acts on, read from a real DuckDB warehouse: the latest night within the age
bound, its verdict and drifted slices, and an error night acknowledged once every error alert of its partition is."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import duckdb
import pytest

from factory_pipelines.lib.alerts.store import CheckFailure, ack, record
from factory_pipelines.lib.drift.records import DriftResult, DriftRun, Window
from factory_pipelines.lib.drift.status import DriftStatus, drift_status
from factory_pipelines.lib.drift.store import record_night

AGENT = "support_triage"


def night(day: date, *statuses: str, agent: str = AGENT) -> DriftRun:
    results = tuple(DriftResult("feature", f"col{i}", "psi", None if s == "insufficient" else 0.1 * i, 0.15, 0.25, s,
                                2000, 400) for i, s in enumerate(statuses))
    return DriftRun(agent, day, Window(day - timedelta(days=14), day - timedelta(days=1)), Window(day, day), results)


def alert(day: date, check: str, run_id: str = "run-1", severity: str = "error") -> CheckFailure:
    return CheckFailure(check, f"drift/{AGENT}", run_id, severity, partition=day.isoformat())  # type: ignore[arg-type]


@pytest.fixture
def con(tmp_path: Any) -> Any:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def test_no_drift_table_or_no_recent_night_is_none(con: Any) -> None:
    assert drift_status(con, AGENT, date(2026, 11, 5)) == DriftStatus("none", (), None)
    assert drift_status(con, AGENT, date(2026, 11, 5)).cedar() == {"status": "none", "slices": [], "night": ""}
    record_night(con, night(date(2026, 11, 1), "error"), "run-1")
    assert drift_status(con, AGENT, date(2026, 11, 5)).status == "none", "4 days old: past the 2-day bound"
    assert drift_status(con, AGENT, date(2026, 11, 5), max_age_days=4).status == "error"
    assert drift_status(con, "other_agent", date(2026, 11, 1)).status == "none"
    assert drift_status(con, AGENT, date(2026, 10, 31)).status == "none", "a later night never judges an earlier day"


def test_the_latest_night_decides_with_its_drifted_slices(con: Any) -> None:
    record_night(con, night(date(2026, 11, 3), "ok", "warn", "error", "error"), "run-1")
    record_night(con, night(date(2026, 11, 4), "ok", "insufficient"), "run-1")
    record_night(con, night(date(2026, 11, 4), "ok", "ok", agent="knowledge_gap"), "run-1")
    drifted = drift_status(con, AGENT, date(2026, 11, 3))
    assert drifted == DriftStatus("error", ("feature.col2.psi", "feature.col3.psi"), date(2026, 11, 3))
    assert drifted.cedar() == {"status": "error", "slices": ["feature.col2.psi", "feature.col3.psi"],
                               "night": "2026-11-03"}
    assert drift_status(con, AGENT, date(2026, 11, 5)) == DriftStatus("insufficient", (), date(2026, 11, 4))
    record_night(con, night(date(2026, 11, 5), "warn"), "run-1")
    assert drift_status(con, AGENT, date(2026, 11, 5)).status == "warn"


def test_an_error_night_is_acknowledged_once_every_error_alert_of_its_partition_is(con: Any) -> None:
    day = date(2026, 11, 3)
    record_night(con, night(day, "ok", "error"), "run-1")
    assert drift_status(con, AGENT, day).status == "error", "no alert recorded yet: nobody looked"
    first, second = record(con, [alert(day, "feature_drift"), alert(day, "decision_drift")], deliver=False)
    record(con, [alert(day, "text_drift", severity="warn"), alert(day - timedelta(days=1), "feature_drift")],
           deliver=False)  # a warning and another day's alert never hold the status
    ack(con, first, by="oncall", note="seasonal campaign")
    assert drift_status(con, AGENT, day).status == "error", "one error alert still open"
    ack(con, second, by="oncall")
    acknowledged = drift_status(con, AGENT, day)
    assert acknowledged == DriftStatus("acknowledged", ("feature.col1.psi",), day)
    record_night(con, night(day + timedelta(days=1), "error"), "run-2")
    assert drift_status(con, AGENT, day + timedelta(days=1)).status == "error", "a new drifted night needs a new ack"
