"""Evaluation-score drift judged on plain numbers: drops of accuracy-like metrics against the suite's tolerances,
relative rises of cost and latency, a missing metric never a pass, and the shipped suite's gated metrics."""

from __future__ import annotations

import math

import pytest

from factory_pipelines.lib.drift.scores import ScoreBound, baseline, gated_bounds, not_comparable, score_drift
from factory_pipelines.lib.evals.suites import load_suite
from factory_pipelines.settings import REPO_ROOT

ACCURACY = ScoreBound(0.02, 0.04)
COMPLIANCE = ScoreBound(0.0, 0.0)
COST = ScoreBound(0.5, 1.0, higher_is_better=False, relative=True)
FORBIDDEN = ScoreBound(0.0, 0.0, higher_is_better=False)


def by_column(results):
    return {r.column: r for r in results}


@pytest.mark.parametrize(("accepted", "current", "status"), [
    (0.90, 0.95, "ok"),  # better
    (0.90, 0.90, "ok"),
    (0.90, 0.88, "ok"),  # within the tolerance, as the gate passes it
    (0.90, 0.87, "warn"),
    (0.90, 0.86, "error"),  # twice the tolerance
    (0.90, 0.50, "error"),
])
def test_a_drop_is_judged_against_the_tolerance_and_twice_it(accepted: float, current: float, status: str) -> None:
    (result,) = score_drift({"action_accuracy": current}, {"action_accuracy": accepted},
                            {"action_accuracy": ACCURACY}, 306)
    assert (result.metric, result.column, result.method, result.status) == ("eval_score", "action_accuracy", "drop",
                                                                           status)
    assert result.value == pytest.approx(accepted - current)
    assert (result.reference_value, result.current_value, result.n_reference, result.n_current) == (
        accepted, current, 306, 306)
    assert (result.warn, result.error, result.higher_is_worse) == (0.02, 0.04, True)


def test_with_tolerance_zero_any_drop_is_an_error() -> None:
    results = by_column(score_drift({"policy_compliance": 0.99, "forbidden_actions": 1.0, "schema_validity": 1.0},
                                    {"policy_compliance": 1.0, "forbidden_actions": 0.0, "schema_validity": 1.0},
                                    {"policy_compliance": COMPLIANCE, "forbidden_actions": FORBIDDEN,
                                     "schema_validity": COMPLIANCE}, 10))
    assert results["policy_compliance"].status == "error" and results["policy_compliance"].value == pytest.approx(0.01)
    assert (results["forbidden_actions"].method, results["forbidden_actions"].value,
            results["forbidden_actions"].status) == ("rise", 1.0, "error")
    assert results["schema_validity"].status == "ok" and "unchanged" in results["schema_validity"].message


@pytest.mark.parametrize(("accepted", "current", "value", "status"), [
    (0.010, 0.008, -0.2, "ok"),
    (0.010, 0.014, 0.4, "ok"),
    (0.010, 0.016, 0.6, "warn"),
    (0.010, 0.020, 1.0, "error"),
    (0.0, 0.0, 0.0, "ok"),
    (0.0, 0.001, math.inf, "error"),
])
def test_cost_is_judged_on_its_relative_rise(accepted: float, current: float, value: float, status: str) -> None:
    (result,) = score_drift({"cost_per_ticket_usd": current}, {"cost_per_ticket_usd": accepted},
                            {"cost_per_ticket_usd": COST}, 5)
    assert (result.method, result.status) == ("rise", status)
    assert result.value == pytest.approx(value)
    if 0 < value < math.inf:
        assert f"rose {value:.1%}" in result.message and "warn above 50%, error from 100%" in result.message


def test_a_metric_missing_on_either_side_is_insufficient_and_named() -> None:
    results = by_column(score_drift({"action_accuracy": 0.9}, {"category_accuracy": 0.9},
                                    {"action_accuracy": ACCURACY, "category_accuracy": ACCURACY,
                                     "groundedness": ACCURACY}, 5))
    assert all(r.status == "insufficient" and r.value is None for r in results.values())
    assert results["action_accuracy"].message == "action_accuracy is missing from the accepted scores: not judged"
    assert results["category_accuracy"].message == "category_accuracy is missing from the current scores: not judged"
    assert "missing from the accepted and current scores" in results["groundedness"].message


def test_a_baseline_is_ok_and_says_so_and_a_changed_dataset_is_not_compared() -> None:
    bounds = {"action_accuracy": ACCURACY, "groundedness": ACCURACY}
    accepted = by_column(baseline({"action_accuracy": 0.8}, bounds, 5))
    assert (accepted["action_accuracy"].status, accepted["action_accuracy"].message) == ("ok", "baseline accepted")
    assert accepted["groundedness"].status == "insufficient"
    changed = not_comparable(bounds, 5, "the dataset changed", {"action_accuracy": 0.8}, {"action_accuracy": 0.9})
    assert [(r.status, r.message, r.reference_value, r.current_value) for r in changed] == [
        ("insufficient", "the dataset changed", 0.9, 0.8), ("insufficient", "the dataset changed", None, None)]


def test_the_shipped_support_suite_gates_its_thresholds_tolerances_budgets_and_policy() -> None:
    suite = load_suite(REPO_ROOT / "evals" / "suites" / "support_triage_golden.yaml")
    bounds = gated_bounds(suite)
    assert set(bounds) == {"action_accuracy", "category_accuracy", "priority_accuracy", "groundedness",
                           "schema_validity", "policy_compliance", "forbidden_actions", "cost_per_ticket_usd",
                           "latency_p95_s"}
    assert bounds["action_accuracy"] == ScoreBound(0.02, 0.04)
    assert bounds["policy_compliance"] == ScoreBound(0.0, 0.0)
    assert bounds["forbidden_actions"] == ScoreBound(0.0, 0.0, higher_is_better=False)
    assert bounds["latency_p95_s"] == ScoreBound(0.5, 1.0, higher_is_better=False, relative=True)
    assert gated_bounds(suite, {"latency_p95_s": (1.0, 3.0)})["latency_p95_s"].error == 3.0
    with pytest.raises(ValueError, match="does not gate: \\['action_macro_f1'\\]"):
        gated_bounds(suite, {"action_macro_f1": (0.1, 0.2)})
    knowledge = gated_bounds(load_suite(REPO_ROOT / "evals" / "suites" / "knowledge_gap_golden.yaml"))
    assert knowledge["gap_precision"] == ScoreBound(0.02, 0.04)  # a threshold without a tolerance: the default
