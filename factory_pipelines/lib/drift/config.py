"""Drift configuration per agent: `drift/<agent>.yaml` at the project root.

Windows are counted in daily partitions: the current window ends on the day being judged, the reference
window is either the N days before it (so it moves with the night) or fixed dates (a frozen baseline).
Bounds are per method and can be overridden per column. The defaults are Evidently's: Wasserstein (normed)
and Jensen-Shannon drift at 0.1; KS, chi-square and the z-test at p 0.05; PSI at 0.1 (0.25 is the usual
"act now" level). A malformed file fails with a `DriftConfigError` naming the file and the field.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from factory_pipelines.lib.config_files import ConfigError, SnakeName, problems, read_mapping
from factory_pipelines.lib.drift.engine import DISTANCES, P_VALUES, higher_is_worse
from factory_pipelines.lib.drift.records import Window

Method = Literal["wasserstein", "jensenshannon", "psi", "hellinger", "kl_div", "ed", "ks", "chisquare", "z",
                 "anderson", "cramer_von_mises", "mannw", "t_test", "g_test"]


class DriftConfigError(ConfigError):
    """`drift/<agent>.yaml` is missing or invalid (file, field, reason)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(_Strict):
    """Warn and error levels of one method. For a distance error >= warn; for a p-value error <= warn."""

    warn: float = Field(ge=0)
    error: float = Field(ge=0)


DEFAULT_BOUNDS: dict[str, Bound] = {
    **{m: Bound(warn=0.1, error=0.2) for m in DISTANCES},
    **{m: Bound(warn=0.05, error=0.01) for m in P_VALUES},
    "psi": Bound(warn=0.1, error=0.25),
}


def _oriented(name: str, bound: Bound, higher: bool) -> None:
    if higher and bound.error < bound.warn:
        raise ValueError(f"{name}: error {bound.error} must be >= warn {bound.warn} (higher is worse)")
    if not higher and bound.error > bound.warn:
        raise ValueError(f"{name}: error {bound.error} must be <= warn {bound.warn} (a p-value: lower is worse)")


class WindowSpec(_Strict):
    """`days` (the N days before the next window, after `gap_days`) or fixed `start` and `end`."""

    days: int | None = Field(None, ge=1, le=366)
    gap_days: int = Field(0, ge=0, description="Reference only: days left out between it and the current window.")
    start: date | None = None
    end: date | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        fixed = self.start is not None or self.end is not None
        if (self.days is None) == (not fixed):
            raise ValueError("give either days or start and end")
        if fixed and (self.start is None or self.end is None or self.start > self.end):
            raise ValueError("start and end are both needed, start <= end")
        return self


class Windows(_Strict):
    current: WindowSpec = WindowSpec(days=1)
    reference: WindowSpec = WindowSpec(days=14)


class MinRows(_Strict):
    """Rows a side needs for a test to run at all; below, the record is `insufficient`."""

    reference: int = Field(100, ge=2)
    current: int = Field(30, ge=2)


class ColumnOverride(_Strict):
    method: Method | None = None
    bound: Bound | None = None


class FeatureSpec(_Strict):
    """Features the agent reads (its Feast service's columns) and the table they come from."""

    table: str = Field(min_length=1, description="Named in errors, e.g. features/ticket_features.")
    numeric: list[str] = []
    categorical: list[str] = []
    psi: bool = Field(True, description="Also PSI on every numeric column, beside the main test.")
    numeric_method: Method | None = Field(None, description="The test of every numeric column; default "
                                          "Evidently's choice by size (a column's override wins).")
    categorical_method: Method | None = Field(None, description="The same for every categorical column.")
    columns: dict[str, ColumnOverride] = {}

    @model_validator(mode="after")
    def _known_columns(self) -> Self:
        listed = [*self.numeric, *self.categorical]
        if len(set(listed)) != len(listed):
            raise ValueError(f"a column is listed twice: {listed}")
        unknown = sorted(set(self.columns) - set(listed))
        if unknown:
            raise ValueError(f"columns {unknown} have overrides but are neither numeric nor categorical")
        return self


class TextSpec(_Strict):
    """Ticket text: a domain classifier (TF-IDF + SGD, Evidently's) tells reference from current; ROC AUC."""

    table: str = Field(min_length=1)
    columns: list[str] = Field(min_length=1, description="Joined with a blank line into one text per row.")
    bound: Bound = Bound(warn=0.55, error=0.65)  # 0.55: Evidently's threshold above 1,000 reference rows
    min_rows: int = Field(50, ge=10, description="Per side.")
    max_rows: int = Field(20_000, ge=100, description="Per side, sampled (seeded) above: the fit stays seconds.")


class DecisionSpec(_Strict):
    """The agent's decisions: category/priority/action mix, rates of flags, cost per ticket."""

    table: str = "agents.decisions"
    categorical: list[str] = ["category", "priority", "action"]
    method: Method | None = Field(None, description="The test of each mix; default Evidently's choice by size.")
    rates: list[str] = ["escalated", "denied", "refunded"]
    cost: str | None = "cost_usd"
    rate_bound: Bound = Bound(warn=0.05, error=0.10)  # absolute change of a rate (0.05 = 5 points)
    cost_bound: Bound = Bound(warn=0.25, error=0.5)  # relative change of the mean cost per ticket
    cost_floor_usd: float = Field(0.001, ge=0, description="The change is relative to max(reference mean, this): "
                                  "a tenth of a cent more per ticket is no drift when the reference costs nothing.")


class QualitySpec(_Strict):
    """Accuracy estimated from calibrated confidences (CBPE) against the reference's realized accuracy."""

    table: str = "agents.decisions"
    field: str = Field("action", min_length=1, description="The decision field whose first-pass confidence is judged.")
    confidence: str = "confidence"
    correct: str = "correct"
    bound: Bound = Bound(warn=0.05, error=0.10)  # drop of accuracy, absolute
    min_rows: int = Field(50, ge=10)


class EvalScoresSpec(_Strict):
    """The golden suite re-run on the champion each night (`drift/eval_scores/<agent>`); `bounds` maps a gated
    metric to its own (warn, error) worsening, else lib/drift/scores.py's defaults (the suite's tolerances)."""

    bounds: dict[str, Bound] = {}

    def pairs(self) -> dict[str, tuple[float, float]]:
        return {metric: (bound.warn, bound.error) for metric, bound in self.bounds.items()}


class DriftConfig(_Strict):
    agent: SnakeName
    windows: Windows = Windows()
    min_rows: MinRows = MinRows()
    bounds: dict[Method, Bound] = {}
    features: FeatureSpec | None = None
    text: TextSpec | None = None
    decisions: DecisionSpec | None = None
    quality: QualitySpec | None = None
    eval_scores: EvalScoresSpec | None = None

    @model_validator(mode="after")
    def _checked(self) -> Self:
        for name, bound in self.bounds.items():
            _oriented(f"bounds.{name}", bound, higher_is_worse(name))
        for column, override in (self.features.columns if self.features else {}).items():
            if override.bound is not None:
                method = override.method or "wasserstein"
                _oriented(f"features.columns.{column}", override.bound, higher_is_worse(method))
        for metric, bound in (self.eval_scores.bounds if self.eval_scores else {}).items():
            _oriented(f"eval_scores.bounds.{metric}", bound, True)
        for name, bound in (("text.bound", self.text.bound if self.text else None),
                            ("decisions.rate_bound", self.decisions.rate_bound if self.decisions else None),
                            ("decisions.cost_bound", self.decisions.cost_bound if self.decisions else None),
                            ("quality.bound", self.quality.bound if self.quality else None)):
            if bound is not None:
                _oriented(name, bound, True)
        return self

    def bound(self, method: str, column: str | None = None) -> Bound:
        """The bound of a method for a column: the column's override, else the file's, else the default."""
        override = self.features.columns.get(column) if self.features and column else None
        if override is not None and override.bound is not None:
            return override.bound
        return self.bounds.get(method, DEFAULT_BOUNDS[method])  # type: ignore[call-overload]


def config_path(config_dir: Path, agent: str) -> Path:
    """`<config_dir>/<agent>.yaml` (the setting `drift_config_dir`, the shipped `drift/` by default)."""
    return Path(config_dir) / f"{agent}.yaml"


def load_config(path: Path) -> DriftConfig:
    """`drift/<agent>.yaml` as a DriftConfig; the agent named inside must match the file name."""
    path = Path(path)
    if not path.is_file():
        raise DriftConfigError(f"{path}: no drift configuration (expected <drift_config_dir>/<agent>.yaml)")
    try:
        config = DriftConfig.model_validate(read_mapping(path, "drift configuration", DriftConfigError))
    except ValidationError as exc:
        raise DriftConfigError(f"{path}: {problems(exc)}") from exc
    if config.agent != path.stem:
        raise DriftConfigError(f"{path}: agent: {config.agent!r} must match the file name {path.stem!r}")
    return config


def windows(config: DriftConfig, day: date) -> tuple[Window, Window]:
    """(reference, current) for the night judging `day`. A reference that overlaps the current window or
    comes after it is a configuration error (it would compare the window with itself)."""
    cur, ref = config.windows.current, config.windows.reference
    if cur.days is not None:
        current = Window(day - timedelta(days=cur.days - 1), day)
    else:
        current = Window(cur.start, cur.end)  # type: ignore[arg-type]
    if ref.days is not None:
        end = current.start - timedelta(days=1 + ref.gap_days)
        reference = Window(end - timedelta(days=ref.days - 1), end)
    else:
        reference = Window(ref.start, ref.end)  # type: ignore[arg-type]
    if reference.end >= current.start:
        raise DriftConfigError(f"drift/{config.agent}.yaml: windows: reference {reference} must end before "
                               f"the current window {current} starts")
    return reference, current
