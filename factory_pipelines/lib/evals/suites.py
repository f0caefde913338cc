"""Evaluation suites: how an agent is scored on a golden dataset.

A suite (`evals/suites/<suite>.yaml`) names the agent, the dataset, the scorers with their thresholds and
tolerated regressions, trials, budgets, the knowledge base the cases are decided with, the live stages after the
offline gate and the routing thresholds a sweep tries. Errors name the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factory_pipelines.lib.config_files import (
    ConfigError,
    SnakeName,
    known_names,
    read_mapping,
    validate_named,
)
from factory_pipelines.lib.evals.datasets import CASE_MODELS, Dataset, load_dataset
from factory_pipelines.lib.evals.rollout import Stages

HIGHER, LOWER = "higher", "lower"
KNOWN_SCORERS: dict[str, str] = {  # scorer (metric) name -> which direction is better
    "category_accuracy": HIGHER, "priority_accuracy": HIGHER, "action_accuracy": HIGHER,
    "category_macro_f1": HIGHER, "priority_macro_f1": HIGHER, "action_macro_f1": HIGHER,
    "policy_compliance": HIGHER, "forbidden_actions": LOWER, "groundedness": HIGHER, "schema_validity": HIGHER,
    "answered_accuracy": HIGHER, "gap_precision": HIGHER, "gap_recall": HIGHER,
    "latency_p50_s": LOWER, "latency_p95_s": LOWER, "cost_per_ticket_usd": LOWER,
}
AGENT_SCORERS: dict[str, tuple[str, ...]] = {  # what each shipped agent's cases can be scored on
    "support_triage": ("category_accuracy", "priority_accuracy", "action_accuracy", "category_macro_f1",
                       "priority_macro_f1", "action_macro_f1", "policy_compliance", "forbidden_actions",
                       "groundedness", "schema_validity", "latency_p50_s", "latency_p95_s", "cost_per_ticket_usd"),
    "knowledge_gap": ("answered_accuracy", "gap_precision", "gap_recall", "policy_compliance", "latency_p95_s",
                      "cost_per_ticket_usd"),
}


class SuiteError(ConfigError):
    """An evaluation suite is missing or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Strict):
    """A bound a suite metric must meet: `at_least` for a higher-is-better scorer, `at_most` for a lower one."""

    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Threshold:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError("give exactly one of at_least (higher is better) or at_most (lower is better)")
        return self

    @property
    def bound(self) -> float:
        return self.at_least if self.at_least is not None else float(self.at_most)  # type: ignore[arg-type]

    @property
    def higher_is_better(self) -> bool:
        return self.at_least is not None

    def met(self, value: float | None) -> bool:
        if value is None:
            return False
        return value >= self.bound if self.higher_is_better else value <= self.bound


class SuiteBudgets(_Strict):
    max_cost_per_ticket_usd: float = Field(ge=0, description="Mean cost per ticket the challenger may spend.")
    max_latency_p95_s: float = Field(gt=0, description="95th percentile of the per-ticket latency, seconds.")


ThresholdValue = Annotated[float, Field(ge=0, le=1.01)]
DEFAULT_SWEEP = {"model_below_confidence": (0.0, 0.3, 0.45, 0.6, 0.8, 1.01),
                 "escalate_below_confidence": (0.0, 0.2, 0.5, 0.8, 1.01)}


class SweepGrid(_Strict):
    """The routing thresholds `factory eval --sweep` tries (each in [0, 1.01]: 0 never asks the next tier,
    above 1 always does); every combination is one point of the frontier."""

    model_below_confidence: list[ThresholdValue] = Field(
        default_factory=lambda: list(DEFAULT_SWEEP["model_below_confidence"]), min_length=1)
    escalate_below_confidence: list[ThresholdValue] = Field(
        default_factory=lambda: list(DEFAULT_SWEEP["escalate_below_confidence"]), min_length=1)


class Suite(_Strict):
    """`evals/suites/<name>.yaml`. Paths (`dataset`, `kb`) are relative to the evals folder (the suites' parent)."""

    name: SnakeName
    agent: SnakeName
    description: str = ""
    dataset: str = Field(description="The golden JSONL file, e.g. datasets/support_triage_golden.jsonl.")
    kb: str = Field(description="The knowledge-base articles the cases are decided with (a YAML file).")
    scorers: list[str] = Field(min_length=1)
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    tolerances: dict[str, float] = Field(default_factory=dict,
                                         description="Scorer -> allowed regression of the challenger (paired).")
    trials: int = Field(1, ge=1, description="Runs per case (more for a non-deterministic configuration).")
    budgets: SuiteBudgets
    stages: Stages | None = Field(None, description="Live days in shadow, then canary, after the offline gate; "
                                  "none: a passed gate promotes to champion at once.")
    sweep: SweepGrid = Field(default_factory=SweepGrid, description="The routing thresholds --sweep evaluates.")
    root: Path = Field(Path("."), exclude=True, description="The evals folder; set by load_suite.")

    @field_validator("scorers")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return known_names(value, KNOWN_SCORERS, "scorer")

    @field_validator("tolerances")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        negative = sorted(k for k, v in value.items() if v < 0)
        if negative:
            raise ValueError(f"tolerances must be >= 0 (an allowed regression): {negative}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        for field, names in (("thresholds", self.thresholds), ("tolerances", self.tolerances)):
            stray = sorted(set(names) - set(self.scorers))
            if stray:
                raise ValueError(f"{field} name scorers the suite does not run: {stray}")
        for scorer, threshold in self.thresholds.items():
            if threshold.higher_is_better != (KNOWN_SCORERS[scorer] == HIGHER):
                word = "at_least" if KNOWN_SCORERS[scorer] == HIGHER else "at_most"
                raise ValueError(f"thresholds.{scorer}: {KNOWN_SCORERS[scorer]} is better, so its bound is {word}")
        return self

    @property
    def dataset_path(self) -> Path:
        return self.root / self.dataset

    @property
    def kb_path(self) -> Path:
        return self.root / self.kb

    @property
    def bounds(self) -> dict[str, float]:
        """Scorer -> bound, as the promotion gate takes them (direction from the scorer's name)."""
        return {name: t.bound for name, t in self.thresholds.items()}

    @property
    def budget_limits(self) -> dict[str, float]:
        return self.budgets.model_dump()

    def load_dataset(self) -> Dataset:
        return load_dataset(self.dataset_path, self.agent if self.agent in CASE_MODELS else None)


def load_suite(path: Path) -> Suite:
    """A suite file, validated; its dataset and knowledge base must exist."""
    path = Path(path)
    data = read_mapping(path, "evaluation suite", SuiteError)
    suite = validate_named(path, {**data, "root": path.parent.parent}, Suite, "suite", SuiteError)
    known = AGENT_SCORERS.get(suite.agent)
    if known is not None and (stray := [s for s in suite.scorers if s not in known]):
        raise SuiteError(f"{path}: scorers: {stray} do not apply to agent {suite.agent}; it has {list(known)}")
    for field, target in (("dataset", suite.dataset_path), ("kb", suite.kb_path)):
        if not target.is_file():
            raise SuiteError(f"{path}: {field}: {getattr(suite, field)!r} does not exist (looked for {target})")
    return suite
