"""The promotion gate: may the challenger replace the champion? Judged on the same cases of the same dataset
version, from both sides' case scores and suite metrics.

It passes only when all of these hold:
- every gated metric of the challenger meets the suite's threshold (`thresholds`);
- for every metric with a tolerance, the paired comparison (`paired.compare`) passes: the pessimistic end of
  the interval of challenger - champion is within the tolerance, not just its mean;
- policy compliance is 100% and no forbidden action executed;
- cost and latency per ticket stay within the suite's budgets.
Each failure is a sentence naming the metric, the value and the bound (or the interval), which is what
`factory eval` prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from factory_pipelines.lib.evals.paired import PairedComparison, compare
from factory_pipelines.lib.evals.scorers import BINARY, LOWER_IS_BETTER

BUDGET_METRICS = {"max_cost_per_ticket_usd": "cost_per_ticket_usd", "max_latency_p95_s": "latency_p95_s"}
# Suite metrics whose tolerance is judged on a per-case scorer (a percentile or mean of it).
PAIRED_ON = {"cost_per_ticket_usd": "cost_usd"}  # a mean of per-case values (a percentile is not: point values)


@dataclass(frozen=True)
class SideScores:
    """One side of the comparison: per-case scores as (cases, trials) arrays (NaN where a scorer does not apply)
    by scorer name, and the suite metrics."""

    label: str
    scores: Mapping[str, np.ndarray]
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class GateResult:
    passed: bool
    failures: list[str]
    comparisons: dict[str, PairedComparison] = field(default_factory=dict)
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric -> value, bound, met

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the verdict, its reasons, each threshold and each paired comparison."""
        return {"passed": self.passed, "failures": self.failures, "thresholds": self.thresholds,
                "comparisons": {name: {**{k: getattr(c, k) for k in (
                    "kind", "cases", "trials", "champion_mean", "challenger_mean", "difference", "low", "high",
                    "confidence", "method", "tolerance", "p_value")}, "passes": c.passes(),
                    "fixed": list(c.fixed), "broken": list(c.broken)} for name, c in self.comparisons.items()}}


def judge(champion: SideScores, challenger: SideScores, case_ids: Sequence[str], *, thresholds: Mapping[str, float],
          tolerances: Mapping[str, float], budgets: Mapping[str, float], seed: int = 0) -> GateResult:
    """The gate's verdict for `challenger` against `champion` (scores of the same cases, in `case_ids` order)."""
    failures: list[str] = []
    met = {}
    for metric, bound in thresholds.items():
        value = challenger.metrics.get(metric)
        ok = value is not None and (value <= bound if metric in LOWER_IS_BETTER else value >= bound)
        met[metric] = {"value": value, "bound": bound, "met": ok}
        if not ok:
            side = "at most" if metric in LOWER_IS_BETTER else "at least"
            failures.append(f"{metric} is {_num(value)}, the suite requires {side} {bound:g}")
    comparisons = {}
    for metric, tolerance in tolerances.items():
        paired_on = PAIRED_ON.get(metric, metric)
        if paired_on not in champion.scores or paired_on not in challenger.scores:
            failures += _point_regression(metric, champion.metrics, challenger.metrics, tolerance)
            continue
        result = _compare(paired_on, champion.scores[paired_on], challenger.scores[paired_on], case_ids, tolerance, seed)
        if result is None:
            failures.append(f"{metric}: scored on fewer than 2 of the same cases on both sides, so its tolerance "
                            "cannot be judged")
            continue
        comparisons[metric] = result
        if not result.passes():
            failures.append(f"{metric} regressed: {result.describe()}")
    compliance = challenger.metrics.get("policy_compliance")
    said = {metric for metric, bound in met.items() if not bound["met"]}  # a failed threshold already says it
    if compliance is not None and compliance < 1.0 and "policy_compliance" not in said:
        failures.append(f"policy_compliance is {compliance:.2%}, the gate requires 100%")
    forbidden = challenger.metrics.get("forbidden_actions")
    if forbidden and "forbidden_actions" not in said:
        failures.append(f"{forbidden:g} forbidden action(s) executed, the gate allows none")
    for budget, metric in BUDGET_METRICS.items():
        if budget in budgets and (value := challenger.metrics.get(metric)) is not None and value > budgets[budget]:
            failures.append(f"{metric} is {value:.4g}, over the suite's budget {budgets[budget]:g} ({budget})")
    return GateResult(not failures, failures, comparisons, met)


def _compare(metric: str, champion: np.ndarray, challenger: np.ndarray, case_ids: Sequence[str], tolerance: float,
             seed: int) -> PairedComparison | None:
    """The paired comparison over the cases both sides scored (a scorer that does not apply is NaN)."""
    both = ~np.isnan(champion).any(axis=1) & ~np.isnan(challenger).any(axis=1)
    if both.sum() < 2:
        return None
    ids = [c for c, keep in zip(case_ids, both, strict=True) if keep]
    return compare(metric, champion[both], challenger[both], ids, tolerance,
                   kind="binary" if metric in BINARY else "continuous",
                   higher_is_better=metric not in LOWER_IS_BETTER, seed=seed)


def _point_regression(metric: str, champion: Mapping[str, float], challenger: Mapping[str, float],
                      tolerance: float) -> list[str]:
    """A tolerance on a statistic of the whole suite (macro-F1): no per-case scores to resample, so the two
    values are compared as they are, and the report says so."""
    before, after = champion.get(metric), challenger.get(metric)
    if before is None or after is None:
        return [f"{metric}: not measured on both sides, so its tolerance cannot be judged"]
    worse = before - after if metric not in LOWER_IS_BETTER else after - before
    if worse > tolerance:
        return [f"{metric} regressed: champion {before:.4g}, challenger {after:.4g} (a suite-level statistic, "
                f"compared without an interval), more than the tolerance {tolerance:g}"]
    return []


def _num(value: float | None) -> str:
    return "missing" if value is None else f"{value:.4g}"
