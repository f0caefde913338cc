"""The promotion gate on case scores whose verdict is known: a clearly better challenger passes; one that
regresses beyond the tolerance, misses a threshold, breaks a policy or its budget is refused, each failure
named."""

from __future__ import annotations

import numpy as np

from factory_pipelines.lib.evals.promotion_gate import SideScores, judge

CASES = [f"case-{i:03d}" for i in range(200)]
THRESHOLDS = {"action_accuracy": 0.8, "forbidden_actions": 0}
TOLERANCES = {"action_accuracy": 0.02, "latency_s": 0.5}
BUDGETS = {"max_cost_per_ticket_usd": 0.01, "max_latency_p95_s": 5.0}


def side(label: str, passes: int, *, forbidden: float = 0, compliance: float = 1.0, cost: float = 0.0,
         latency: float = 1.0) -> SideScores:
    action = np.zeros((200, 1))
    action[:passes] = 1
    latencies = np.full((200, 1), latency)
    groundedness = np.full((200, 1), np.nan)  # applies to no case
    return SideScores(label, {"action_accuracy": action, "latency_s": latencies, "groundedness": groundedness},
                      {"action_accuracy": passes / 200, "forbidden_actions": forbidden, "policy_compliance": compliance,
                       "cost_per_ticket_usd": cost, "latency_p95_s": latency})


def test_a_clearly_better_challenger_passes() -> None:
    result = judge(side("champion", 170), side("challenger", 190), CASES, thresholds=THRESHOLDS,
                   tolerances=TOLERANCES, budgets=BUDGETS)
    assert result.passed and result.failures == []
    action = result.comparisons["action_accuracy"]
    assert action.low > 0 and len(action.fixed) == 20 and action.broken == ()
    assert result.summary()["comparisons"]["action_accuracy"]["passes"] is True


def test_a_regressing_challenger_is_refused_with_its_interval() -> None:
    result = judge(side("champion", 190), side("challenger", 170), CASES, thresholds=THRESHOLDS,
                   tolerances=TOLERANCES, budgets=BUDGETS)
    assert not result.passed
    (failure,) = result.failures
    assert failure.startswith("action_accuracy regressed: action_accuracy: champion 0.95, challenger 0.85")
    assert "fails at tolerance 0.02" in failure


def test_thresholds_policy_and_budgets_each_fail_the_gate() -> None:
    result = judge(side("champion", 150), side("challenger", 150, forbidden=1, compliance=0.99, cost=0.02,
                                                latency=6.0), CASES,
                   thresholds=THRESHOLDS, tolerances={"action_accuracy": 0.02}, budgets=BUDGETS)
    assert not result.passed
    said = " | ".join(result.failures)
    assert "action_accuracy is 0.75, the suite requires at least 0.8" in said
    assert "forbidden_actions is 1, the suite requires at most 0" in said
    assert "policy_compliance is 99.00%, the gate requires 100%" in said
    assert "forbidden action(s) executed" not in said  # said once, by the threshold
    assert "cost_per_ticket_usd is 0.02, over the suite's budget 0.01" in said
    assert "latency_p95_s is 6, over the suite's budget 5" in said
    assert "regressed" not in said  # the same accuracy on the same cases is within the tolerance


def test_suite_level_tolerances_use_the_cases_behind_them_or_the_point_values() -> None:
    champion, challenger = side("champion", 190, latency=1.0), side("challenger", 190, latency=3.0)
    champion.metrics.update(action_macro_f1=0.90)  # type: ignore[attr-defined]
    challenger.metrics.update(action_macro_f1=0.80)  # type: ignore[attr-defined]
    result = judge(champion, challenger, CASES, thresholds={}, budgets={},
                   tolerances={"latency_p95_s": 0.5, "action_macro_f1": 0.05})
    said = " | ".join(result.failures)
    assert "latency_p95_s regressed: champion 1, challenger 3 (a suite-level statistic" in said  # a percentile
    assert "action_macro_f1 regressed: champion 0.9, challenger 0.8 (a suite-level statistic" in said


def test_a_lenient_threshold_does_not_switch_off_full_policy_compliance() -> None:
    result = judge(side("champion", 190), side("challenger", 190, forbidden=3, compliance=0.95), CASES,
                   thresholds={"policy_compliance": 0.9, "forbidden_actions": 5}, tolerances={}, budgets={})
    assert not result.passed
    assert result.failures == ["policy_compliance is 95.00%, the gate requires 100%",
                               "3 forbidden action(s) executed, the gate allows none"]


def test_a_policy_failure_is_said_once_when_the_suite_also_sets_its_threshold() -> None:
    result = judge(side("champion", 190), side("challenger", 190, forbidden=2, compliance=0.9), CASES,
                   thresholds={"policy_compliance": 1.0, "forbidden_actions": 0}, tolerances={}, budgets={})
    assert result.failures == ["policy_compliance is 0.9, the suite requires at least 1",
                               "forbidden_actions is 2, the suite requires at most 0"]


def test_a_tolerance_on_a_scorer_that_applies_to_no_case_fails_instead_of_passing_silently() -> None:
    result = judge(side("champion", 190), side("challenger", 190), CASES, thresholds={}, budgets={},
                   tolerances={"groundedness": 0.02})
    assert result.failures == ["groundedness: scored on fewer than 2 of the same cases on both sides, so its "
                               "tolerance cannot be judged"]
