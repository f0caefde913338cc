"""The nights' drift records in the warehouse (`drift.results`): what the checks judged, kept so the report
draws each metric's trend and `factory drift` prints the verdict per day without recomputing anything."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from factory_pipelines.lib.drift.records import SEVERITY, DriftResult, DriftRun, Window
from factory_pipelines.lib.drift.scores import METRIC as SCORE_METRIC
from factory_pipelines.lib.sql import table_exists

DDL = """
CREATE TABLE IF NOT EXISTS drift.results (
    agent VARCHAR, day DATE, metric VARCHAR, column_name VARCHAR, method VARCHAR, value DOUBLE, warn DOUBLE,
    error DOUBLE, status VARCHAR, n_reference INTEGER, n_current INTEGER, higher_is_worse BOOLEAN, message VARCHAR,
    reference_value DOUBLE, current_value DOUBLE, reference_start DATE, reference_end DATE, current_start DATE,
    current_end DATE, run_id VARCHAR, recorded_at TIMESTAMPTZ)
"""
COLUMNS = ("metric", "column_name", "method", "value", "warn", "error", "status", "n_reference", "n_current",
           "higher_is_worse", "message", "reference_value", "current_value")


def ensure_tables(con: Any) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS drift")
    con.execute(DDL)


def record_night(con: Any, run: DriftRun, run_id: str) -> None:
    """Replace the agent's records of that day with this night's (a re-run judges the day again); the night's
    evaluation scores are `drift/eval_scores/<agent>`'s to replace (`record_scores`)."""
    _replace(con, run, run_id, f"metric <> '{SCORE_METRIC}'")


def record_scores(con: Any, agent: str, day: date, results: Sequence[DriftResult], run_id: str) -> None:
    """Replace the agent's evaluation-score records of that day (`metric = eval_score`)."""
    _replace(con, DriftRun(agent, day, Window(day, day), Window(day, day), tuple(results)), run_id,
             f"metric = '{SCORE_METRIC}'")


def scores_of(con: Any, agent: str, day: date) -> tuple[DriftResult, ...]:
    """The evaluation-score records of the agent's night (none when the suite did not run that night; a read, so
    a read-only connection will do)."""
    if not table_exists(con, "drift", "results"):
        return ()
    return tuple(r for r in night(con, agent, day).results if r.metric == SCORE_METRIC)


def _replace(con: Any, run: DriftRun, run_id: str, owned: str) -> None:
    ensure_tables(con)
    now = datetime.now(UTC)
    rows = [[run.agent, run.day, r.metric, r.column, r.method, r.value, r.warn, r.error, r.status, r.n_reference,
             r.n_current, r.higher_is_worse, r.message, r.reference_value, r.current_value, run.reference.start,
             run.reference.end, run.current.start, run.current.end, run_id, now] for r in run.results]
    con.execute("BEGIN")
    try:
        con.execute(f"DELETE FROM drift.results WHERE agent = ? AND day = ? AND {owned}", [run.agent, run.day])
        if rows:
            con.executemany(f"INSERT INTO drift.results VALUES ({', '.join('?' * 21)})", rows)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def history(con: Any, agent: str, before: date, nights: int = 30) -> list[DriftRun]:
    """The agent's last `nights` nights before `before`, rebuilt from their records (no plot data)."""
    ensure_tables(con)
    days = [d for (d,) in con.execute(
        "SELECT DISTINCT day FROM drift.results WHERE agent = ? AND day < ? ORDER BY day DESC LIMIT ?",
        [agent, before, nights]).fetchall()]
    return [night(con, agent, d) for d in sorted(days)]


def night(con: Any, agent: str, day: date) -> DriftRun:
    rows = con.execute(f"SELECT {', '.join(COLUMNS)}, reference_start, reference_end, current_start, current_end "
                       "FROM drift.results WHERE agent = ? AND day = ? ORDER BY metric, column_name, method",
                       [agent, day]).fetchall()
    results = tuple(DriftResult(*row[:13]) for row in rows)
    windows = [row for row in rows if row[0] != SCORE_METRIC]  # the scores' own rows carry no data window
    first = (windows or rows or [[None] * 17])[0]
    return DriftRun(agent, day, Window(first[13], first[14]), Window(first[15], first[16]), results)


def verdicts(con: Any, agent: str | None = None) -> list[tuple[str, date, str, int]]:
    """(agent, day, verdict, error records) per night recorded, oldest first (none before the first night: a
    read, so a read-only connection will do)."""
    if not table_exists(con, "drift", "results"):
        return []
    where, params = ("WHERE agent = ?", [agent]) if agent else ("", [])
    ranks = " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in SEVERITY.items())
    by_rank = {rank: status for status, rank in SEVERITY.items()}
    return [(a, d, by_rank[rank], int(e)) for a, d, rank, e in con.execute(
        f"SELECT agent, day, max(CASE status {ranks} END), count(*) FILTER (status = 'error') "
        f"FROM drift.results {where} GROUP BY agent, day ORDER BY agent, day", params).fetchall()]
