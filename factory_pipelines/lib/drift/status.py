"""The drift status an agent day acts on: the verdict of the agent's latest night, as the Cedar gate sees it.

An agent day D runs before drift judges D, so it asks for the latest night up to D-1 (a re-run of D never reads
D's own night, and decides as the first run did). A night older than `max_age_days` says nothing about today
(drift stopped running), so it counts as no night. An error night whose every error alert on `drift/<agent>` was
acknowledged is `acknowledged`: the on-call read the report and accepted the shift, so side effects act again
without waiting for the data to move back. The night's evaluation scores (the golden suite on the champion) are
not the day's inputs or decisions: they are left out of the status.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from factory_pipelines.lib.alerts.store import list_alerts
from factory_pipelines.lib.drift.scores import METRIC as SCORE_METRIC
from factory_pipelines.lib.drift.store import night
from factory_pipelines.lib.sql import table_exists


@dataclass(frozen=True, slots=True)
class DriftStatus:
    """`status`: none (no recent night), ok, insufficient, warn, error or acknowledged; `slices`: the drifted
    `metric.column.method` keys of that night; `night`: the day it judged."""

    status: str = "none"
    slices: tuple[str, ...] = ()
    night: date | None = None

    def cedar(self) -> dict[str, Any]:
        return {"status": self.status, "slices": list(self.slices),
                "night": self.night.isoformat() if self.night else ""}


def drift_status(con: Any, agent: str, day: date, max_age_days: int = 2) -> DriftStatus:
    """The status of the agent's latest night in [day - max_age_days, day]; `none` without one."""
    if not table_exists(con, "drift", "results"):
        return DriftStatus()
    (latest,) = con.execute("SELECT max(day) FROM drift.results WHERE agent = ? AND day BETWEEN ? AND ? "
                            "AND metric <> ?", [agent, day - timedelta(days=max_age_days), day, SCORE_METRIC]).fetchone()
    if latest is None:
        return DriftStatus()
    whole = night(con, agent, latest)
    run = replace(whole, results=tuple(r for r in whole.results if r.metric != SCORE_METRIC))
    verdict = "acknowledged" if run.verdict == "error" and _acknowledged(con, agent, latest) else run.verdict
    return DriftStatus(verdict, tuple(run.drifted_slices()), latest)


def _acknowledged(con: Any, agent: str, latest: date) -> bool:
    alerts = [a for a in list_alerts(con, open_only=False, asset=f"drift/{agent}", severity="error")
              if a["partition"] == latest.isoformat()]
    return bool(alerts) and all(a["acked_at"] is not None for a in alerts)
