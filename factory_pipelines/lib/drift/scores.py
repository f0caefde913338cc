"""Evaluation-score drift: the champion's golden-suite scores tonight against its last accepted scores.

One record per gated metric of the suite (its thresholds, its tolerances, the budgeted cost and latency, and
the gate's own policy compliance and forbidden actions), `metric="eval_score"`, `column=<metric>`:

- a higher-is-better metric (accuracy, compliance, groundedness, ...): method `drop`, value = accepted -
  current, an absolute drop;
- cost and latency: method `rise`, value = (current - accepted) / accepted, a relative rise (from an accepted
  0, any rise is infinite);
- `forbidden_actions`, a count: method `rise`, value = current - accepted, in actions.

A negative value is an improvement. The default bounds are the suite's tolerance for the metric (warn) and
twice it (error); a metric without a tolerance is warned at a drop of 0.02 and an error at 0.04, and cost and
latency at a rise of 50% and 100% (wall-clock figures of a shared machine are noisy; a suite's tolerance on
them is in USD or seconds for the paired gate and is not used here). A worsening up to the warn bound passes,
as the promotion gate passes a regression within its tolerance; beyond it the record warns, from the error
bound it is an error; with tolerance 0 any worsening is an error. A metric missing on either side is
`insufficient`, never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from factory_pipelines.lib.drift.records import DriftResult, insufficient, judge

METRIC = "eval_score"
RELATIVE = ("cost_per_ticket_usd", "latency_p50_s", "latency_p95_s")  # judged on their relative rise
ALWAYS_GATED = ("policy_compliance", "forbidden_actions")  # the promotion gate judges them whatever the suite says
DEFAULT_DROP = (0.02, 0.04)  # a metric without a tolerance: absolute drop (warn, error)
DEFAULT_RISE = (0.5, 1.0)  # cost and latency: relative rise (warn, error)
LOWER = "lower"


@dataclass(frozen=True, slots=True)
class ScoreBound:
    """How one gated metric's worsening is judged: bounds on the drop (or rise), the metric's direction, and
    whether the rise is relative to the accepted value."""

    warn: float
    error: float
    higher_is_better: bool = True
    relative: bool = False

    @property
    def method(self) -> str:
        return "drop" if self.higher_is_better else "rise"


def gated_bounds(suite: Any, overrides: Mapping[str, tuple[float, float]] | None = None) -> dict[str, ScoreBound]:
    """The gated metrics of a suite (`lib.evals.suites.Suite`: its thresholds, tolerances, budgets, scorers)
    with their default bounds; `overrides` maps a metric to its own (warn, error)."""
    from factory_pipelines.lib.evals.promotion_gate import BUDGET_METRICS
    from factory_pipelines.lib.evals.suites import KNOWN_SCORERS

    budgeted = [metric for budget, metric in BUDGET_METRICS.items() if budget in suite.budget_limits]
    names = _unique([*suite.thresholds, *suite.tolerances, *budgeted, *ALWAYS_GATED])
    names = [n for n in names if n in suite.scorers or n in ALWAYS_GATED]
    bounds = {}
    for name in names:
        relative = name in RELATIVE
        tolerance = suite.tolerances.get(name)
        warn, error = (DEFAULT_RISE if relative else (tolerance, 2 * tolerance) if tolerance is not None
                       else DEFAULT_DROP)
        if overrides and name in overrides:
            warn, error = overrides[name]
        bounds[name] = ScoreBound(float(warn), float(error), KNOWN_SCORERS.get(name) != LOWER, relative)
    stray = sorted(set(overrides or {}) - set(bounds))
    if stray:
        raise ValueError(f"bounds given for metrics the suite does not gate: {stray} (it gates {sorted(bounds)})")
    return bounds


def score_drift(current: Mapping[str, float], accepted: Mapping[str, float], bounds: Mapping[str, ScoreBound],
                n_cases: int) -> list[DriftResult]:
    """One record per metric of `bounds`: tonight's `current` scores against the `accepted` ones, both on the
    same `n_cases` golden cases."""
    results = []
    for name, bound in bounds.items():
        missing = [side for side, scores in (("accepted", accepted), ("current", current)) if scores.get(name) is None]
        if missing:
            results.append(insufficient(METRIC, name, bound.method, bound.warn, bound.error, n_cases, n_cases,
                                        f"{name} is missing from the {' and '.join(missing)} scores: not judged"))
            continue
        before, after = float(accepted[name]), float(current[name])
        value = _worsening(before, after, bound)
        results.append(DriftResult(METRIC, name, bound.method, value, bound.warn, bound.error,
                                   "ok" if value <= bound.warn else judge(value, bound.warn, bound.error, True),
                                   n_cases, n_cases, True, _message(name, before, after, value, bound),
                                   reference_value=before, current_value=after))
    return results


def baseline(current: Mapping[str, float], bounds: Mapping[str, ScoreBound], n_cases: int) -> list[DriftResult]:
    """Tonight's scores accepted as the baseline: every metric ok at no worsening, message "baseline accepted"
    (a metric not measured tonight stays insufficient)."""
    return [r if r.status == "insufficient" else replace(r, message="baseline accepted")
            for r in score_drift(current, current, bounds, n_cases)]


def not_comparable(bounds: Mapping[str, ScoreBound], n_cases: int, message: str,
                   current: Mapping[str, float] | None = None,
                   accepted: Mapping[str, float] | None = None) -> list[DriftResult]:
    """Every metric insufficient for the same reason (the dataset changed since the accepted scores), with
    both values where known."""
    return [replace(insufficient(METRIC, name, bound.method, bound.warn, bound.error, n_cases, n_cases, message),
                    reference_value=(accepted or {}).get(name), current_value=(current or {}).get(name))
            for name, bound in bounds.items()]


def _worsening(before: float, after: float, bound: ScoreBound) -> float:
    if bound.higher_is_better:
        return round(before - after, 9)
    if not bound.relative:
        return round(after - before, 9)
    if before == 0:
        return 0.0 if after <= 0 else math.inf
    return round((after - before) / abs(before), 9)


def _message(name: str, before: float, after: float, value: float, bound: ScoreBound) -> str:
    if bound.relative:
        change = f"rose {value:.1%}" if value >= 0 else f"fell {-value:.1%}"
        limits = f"warn above {bound.warn:.0%}, error from {bound.error:.0%}"
    else:
        worse = "dropped" if bound.higher_is_better else "rose"
        better = "rose" if bound.higher_is_better else "fell"
        change = f"{worse} {value:.4g}" if value >= 0 else f"{better} {-value:.4g} (better)"
        limits = f"warn above {bound.warn:g}, error from {bound.error:g}"
    if value == 0:
        change = "unchanged"
    return f"{name} {change} ({before:.4g} accepted -> {after:.4g} tonight); {limits}"


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
