"""What a drift evaluation returns: one typed record per metric and slice, and the verdict of a night.

A record always says how it was judged (method, bounds, both sample sizes), so a check's metadata, the
report and an alert can echo observed and expected values without recomputing anything. `insufficient` is
a status of its own: a test that could not run on too few rows says so and never counts as a pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

Status = Literal["ok", "warn", "error", "insufficient"]
# Worst first: the verdict of a night is the worst status of its records. `insufficient` ranks above `ok`
# (a night that could not be judged is not a clean night) and below `warn` (no evidence of drift).
SEVERITY: dict[str, int] = {"ok": 0, "insufficient": 1, "warn": 2, "error": 3}


class DriftWindowError(ValueError):
    """A reference or current window has no rows (missing table, no partitions, or empty): the message names
    the window, its dates and the table, because comparing against nothing would pass silently."""


@dataclass(frozen=True, slots=True)
class Distribution:
    """Reference vs current shares per bin or category, for the report's plot (shares sum to 1 per side)."""

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One metric on one column or slice. `value` is None only when `status` is insufficient. For a distance
    (`higher_is_worse`) the status is warn at value >= warn and error at value >= error; for a p-value it is
    warn at value <= warn and error at value <= error."""

    metric: str  # feature | text | decision | rate | cost_per_ticket | estimated_accuracy
    column: str
    method: str
    value: float | None
    warn: float
    error: float
    status: Status
    n_reference: int
    n_current: int
    higher_is_worse: bool = True
    message: str = ""
    reference_value: float | None = None  # rates, costs, accuracy: the reference window's own figure
    current_value: float | None = None
    distribution: Distribution | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """Stable name across nights (MLflow metric name, trend key): `metric.column.method`."""
        return f"{self.metric}.{self.column}.{self.method}"

    def as_metadata(self) -> dict[str, Any]:
        """The record as plain values (a check's metadata, an alert row), without the plot data."""
        return {"metric": self.metric, "column": self.column, "method": self.method, "value": self.value,
                "warn": self.warn, "error": self.error, "status": self.status, "n_reference": self.n_reference,
                "n_current": self.n_current, "higher_is_worse": self.higher_is_worse, "message": self.message,
                "reference_value": self.reference_value, "current_value": self.current_value}


def judge(value: float, warn: float, error: float, higher_is_worse: bool) -> Status:
    """The status of an observed value against its bounds (error checked first)."""
    if higher_is_worse:
        return "error" if value >= error else "warn" if value >= warn else "ok"
    return "error" if value <= error else "warn" if value <= warn else "ok"


def insufficient(metric: str, column: str, method: str, warn: float, error: float, n_reference: int,
                 n_current: int, message: str, higher_is_worse: bool = True) -> DriftResult:
    return DriftResult(metric, column, method, None, warn, error, "insufficient", n_reference, n_current,
                       higher_is_worse, message)


def worst(statuses: Iterable[str]) -> Status:
    """The worst status; `ok` for none."""
    return max(statuses, key=SEVERITY.__getitem__, default="ok")  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Window:
    """Inclusive daily partitions [start, end]."""

    start: date
    end: date

    def __str__(self) -> str:
        return self.start.isoformat() if self.start == self.end else f"{self.start}..{self.end}"

    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True, slots=True)
class DriftRun:
    """One agent's night: its windows, every record, and the verdict (the worst status)."""

    agent: str
    day: date
    reference: Window
    current: Window
    results: tuple[DriftResult, ...]

    @property
    def verdict(self) -> Status:
        return worst(r.status for r in self.results)

    def by_status(self, *statuses: str) -> list[DriftResult]:
        return [r for r in self.results if r.status in statuses]

    def mlflow_metrics(self) -> dict[str, float]:
        """Judged values by key (MLflow's allowed characters only) plus `verdict` as its severity 0-3, so the
        trends plot in the MLflow UI too."""
        import re

        values = {re.sub(r"[^A-Za-z0-9_\-. /]", "_", r.key): r.value for r in self.results if r.value is not None}
        return {**values, "verdict": float(SEVERITY[self.verdict])}

    def drifted_slices(self) -> list[str]:
        """Keys of the error-level records (what Cedar's `data.drift` and an alert name)."""
        return [r.key for r in self.results if r.status == "error"]


def combine(agent: str, day: date, reference: Window, current: Window,
            parts: Sequence[Sequence[DriftResult]]) -> DriftRun:
    return DriftRun(agent, day, reference, current, tuple(r for part in parts for r in part))
