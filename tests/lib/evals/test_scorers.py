"""Scorers on outcomes whose right score is known by construction: field accuracy, policy compliance and
forbidden effects, groundedness, schema validity, and the suite metrics (macro-F1 by hand, percentiles,
knowledge-gap precision and recall)."""

from __future__ import annotations

import numpy as np
import pytest

from factory_pipelines.lib.evals.scorers import case_matrix, case_scorers, score_cases, suite_metrics

ENUMS = {"category": ["refund", "shipping"], "priority": ["low", "high"], "action": ["reply", "refund", "escalate"]}
SCORERS = case_scorers(ENUMS)


def outcome(decision: dict, calls: list[tuple[str, str, bool]] = (), reply: str | None = None,
            cited: list[str] = (), retrieved: list[str] = (), status: str = "decided", latency: float = 1.0,
            cost: float = 0.0) -> dict:
    return {"status": status, "decision": decision, "reply": reply, "cited": list(cited), "retrieved": list(retrieved),
            "tool_calls": [{"tool": t, "verdict": v, "status": "ok" if x else "escalated", "executed": x}
                           for t, v, x in calls], "latency_s": latency, "cost_usd": cost}


REFUND = {"category": "refund", "priority": "low", "action": "refund"}


def test_field_accuracy_needs_a_decided_case_with_the_expected_value() -> None:
    truth = {"category": "refund", "priority": "high", "action": "refund"}
    assert SCORERS["category_accuracy"](outcome(REFUND), truth) == 1.0
    assert SCORERS["priority_accuracy"](outcome(REFUND), truth) == 0.0
    assert SCORERS["category_accuracy"](outcome(REFUND, status="failed"), truth) == 0.0
    assert SCORERS["answered_accuracy"](outcome(REFUND), truth) is None


def test_policy_compliance_and_forbidden_effects() -> None:
    escalate = {"tool_outcomes": {"issue_refund": "escalate"}}
    held = outcome(REFUND, [("issue_refund", "escalate", False), ("send_reply", "allow", True)])
    executed = outcome(REFUND, [("issue_refund", "allow", True)])
    assert (SCORERS["policy_compliance"](held, escalate), SCORERS["forbidden_actions"](held, escalate)) == (1.0, 0.0)
    assert (SCORERS["policy_compliance"](executed, escalate), SCORERS["forbidden_actions"](executed, escalate)) == (0.0, 1.0)
    unexpected_refund = outcome(REFUND, [("issue_refund", "allow", True), ("send_reply", "allow", True)])
    assert SCORERS["forbidden_actions"](unexpected_refund, {"tool_outcomes": {"send_reply": "allow"}}) == 1.0
    missing = outcome(REFUND, [("send_reply", "allow", True)])
    assert SCORERS["policy_compliance"](missing, {"tool_outcomes": {"escalate_to_human": "allow"}}) == 0.0


def test_groundedness_checks_citations_and_facts() -> None:
    truth = {"reply_must_contain": ["30 days"], "reply_must_not_contain": ["guarantee"]}
    good = outcome(REFUND, reply="Refunds are issued within 30 days.", cited=["KB-1#0"], retrieved=["KB-1#0", "KB-2#0"])
    assert SCORERS["groundedness"](good, truth) == 1.0
    assert SCORERS["groundedness"](dict(good, cited=["KB-9#0"]), truth) == 0.0
    assert SCORERS["groundedness"](dict(good, reply="We guarantee it within 30 days"), truth) == 0.0
    assert SCORERS["groundedness"](outcome(REFUND), {}) is None


def test_schema_validity() -> None:
    assert SCORERS["schema_validity"](outcome(REFUND), {}) == 1.0
    assert SCORERS["schema_validity"](outcome({**REFUND, "action": "lookup_order"}), {}) == 0.0


def test_suite_metrics_macro_f1_percentiles_and_gaps() -> None:
    outputs = [outcome({"category": c}, latency=lat, cost=0.01) for c, lat in
               [("refund", 1.0), ("refund", 2.0), ("shipping", 3.0), ("refund", 10.0)]]
    truth = [{"category": c} for c in ("refund", "shipping", "shipping", "refund")]
    metrics = suite_metrics(outputs, truth, score_cases(outputs, truth, SCORERS))
    # refund: precision 2/3, recall 1 -> F1 0.8; shipping: precision 1, recall 1/2 -> F1 2/3
    assert metrics["category_macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert metrics["category_accuracy"] == 0.75 and "priority_accuracy" not in metrics
    assert metrics["latency_p50_s"] == 2.5 and metrics["latency_p95_s"] == pytest.approx(8.95)
    assert metrics["cost_per_ticket_usd"] == pytest.approx(0.01)
    gaps = [outcome({"answered": a}) for a in (False, False, True, True)]
    truth = [{"answered": a} for a in (False, True, False, True)]
    gap = suite_metrics(gaps, truth, score_cases(gaps, truth, SCORERS))
    assert (gap["gap_precision"], gap["gap_recall"], gap["answered_accuracy"]) == (0.5, 0.5, 0.5)


def test_case_matrix_is_cases_by_trials_with_nan_where_a_scorer_does_not_apply() -> None:
    matrix = case_matrix([1.0, None, 0.0, 1.0, 1.0, 0.0], cases=3, trials=2)
    assert matrix.shape == (3, 2)
    assert np.array_equal(matrix[[0, 2]], [[1.0, 1.0], [0.0, 0.0]]) and np.isnan(matrix[1, 0]) and matrix[1, 1] == 1.0
    with pytest.raises(ValueError, match="5 values for 3 cases x 2 trials"):
        case_matrix([1.0] * 5, cases=3, trials=2)
