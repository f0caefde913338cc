"""The nights' records in a real DuckDB warehouse: a re-run replaces its day, the history rebuilds the runs the
report's trend reads (same records, oldest first), and the verdict per day ranks error over warn over
insufficient over ok."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb

from factory_pipelines.lib.drift.records import DriftResult, DriftRun, Window
from factory_pipelines.lib.drift.store import history, record_night, verdicts


def run(day: date, *statuses: str) -> DriftRun:
    results = tuple(DriftResult("feature", f"col{i}", "psi", None if s == "insufficient" else 0.1 * i, 0.35, 0.5, s,
                                2000, 150, message="too few rows" if s == "insufficient" else "")
                    for i, s in enumerate(statuses))
    return DriftRun("support_triage", day, Window(day - timedelta(days=14), day - timedelta(days=1)),
                    Window(day, day), results)


def test_nights_are_kept_replaced_and_rebuilt(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    nights = [run(date(2026, 11, d), *s) for d, s in ((4, ("ok", "ok")), (5, ("ok", "insufficient")),
                                                      (6, ("warn", "error")))]
    for night in nights:
        record_night(con, night, "run-1")
    record_night(con, nights[1], "run-2")  # the day judged again: its records replaced, not added
    assert con.execute("SELECT count(*) FROM drift.results").fetchone()[0] == 6
    rebuilt = history(con, "support_triage", before=date(2026, 11, 7))
    assert [r.day for r in rebuilt] == [date(2026, 11, d) for d in (4, 5, 6)]
    assert rebuilt[2].results == nights[2].results and rebuilt[2].reference == nights[2].reference
    assert history(con, "support_triage", before=date(2026, 11, 6), nights=1)[0].day == date(2026, 11, 5)
    assert [(d.day, v, e) for _, d, v, e in verdicts(con, "support_triage")] == [
        (4, "ok", 0), (5, "insufficient", 0), (6, "error", 1)]
