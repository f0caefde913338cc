"""Text, decision and quality drift on seeded data: each family detects its shift and stays quiet without one."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from factory_pipelines.lib.drift.decisions import decision_drift, decision_flags
from factory_pipelines.lib.drift.quality import estimate_accuracy, fit_calibrator, quality_drift
from factory_pipelines.lib.drift.text import text_drift
from tests.lib.drift.conftest import config, tickets

SHIFTED = date(2000, 1, 1)  # drift_from before every day: the whole frame is shifted


def test_text_drift_is_the_domain_classifiers_auc_with_a_plot_of_its_scores() -> None:
    spec = config().text
    reference = tickets(4, 400, seed=11)
    calm = text_drift(reference, tickets(1, 300, seed=12), spec)[0]
    moved = text_drift(reference, tickets(1, 300, drift_from=SHIFTED, seed=13), spec)[0]
    assert calm.status == "ok" and 0.3 < calm.value < 0.6, calm
    assert moved.status == "error" and moved.value > 0.8
    assert moved.method == "domain_classifier_roc_auc" and moved.distribution is not None


def test_a_small_text_reference_is_judged_against_chance_and_too_few_texts_are_insufficient() -> None:
    spec = config(text={"table": "t", "columns": ["subject", "body"], "bound": {"warn": 0.52, "error": 0.7}}).text
    small = text_drift(tickets(1, 300, seed=14), tickets(1, 80, seed=15), spec)[0]
    assert small.warn > 0.52 and "warn bound raised to chance level" in small.message, small
    assert small.status == "ok"
    few = text_drift(tickets(1, 300, seed=14), tickets(1, 20, seed=15), spec)[0]
    assert few.status == "insufficient" and "current 20" in few.message


def test_decision_flags_come_from_actions_and_tool_calls() -> None:
    decisions = pd.DataFrame({"ticket_id": ["a", "b", "c", "d"], "action": ["reply", "escalate", "refund", "refund"]})
    calls = pd.DataFrame({"ticket_id": ["a", "c", "d"], "tool": ["send_reply", "issue_refund", "issue_refund"],
                          "verdict": ["allow", "allow", "deny"], "executed": [True, True, False]})
    flags = decision_flags(decisions, calls)
    assert flags["escalated"].tolist() == [False, True, False, False]
    assert flags["refunded"].tolist() == [False, False, True, False]
    assert flags["denied"].tolist() == [False, False, False, True]


def test_decision_drift_reports_the_mix_the_rates_and_the_cost() -> None:
    cfg, reference = config(), tickets(4, 400, seed=16)
    calm = {r.key: r for r in decision_drift(reference, tickets(1, 400, seed=17), cfg)}
    moved = {r.key: r for r in decision_drift(reference, tickets(1, 400, drift_from=SHIFTED, seed=18), cfg)}
    assert set(calm) == {"decision.category.jensenshannon", "decision.action.jensenshannon",
                         "rate.escalated.abs_change", "cost_per_ticket.cost_usd.rel_change"}
    assert {r.status for r in calm.values()} == {"ok"}
    escalated = moved["rate.escalated.abs_change"]
    assert escalated.status == "error" and escalated.current_value > escalated.reference_value + 0.15
    assert "escalated rate" in escalated.message


def test_cbpe_estimates_accuracy_close_to_the_realized_one_without_labels() -> None:
    rng = np.random.default_rng(19)
    confidence = rng.beta(4, 2, 5000)
    calibrator = fit_calibrator(confidence, rng.random(5000) < confidence)
    new = rng.beta(2, 2, 2000)
    estimate = estimate_accuracy(calibrator, new, (rng.random(2000) < new).astype(float))
    assert abs(estimate.estimated - estimate.realized) < 3 * estimate.standard_error + 0.01
    assert estimate.n == estimate.n_labelled == 2000


def test_quality_drift_records_the_estimate_and_the_realized_accuracy_when_labels_exist() -> None:
    cfg, reference = config(), tickets(4, 400, seed=20)
    unlabelled = tickets(1, 400, drift_from=SHIFTED, seed=21).assign(correct=np.nan)
    (estimated,) = quality_drift(reference, unlabelled, cfg)
    assert estimated.metric == "estimated_accuracy" and estimated.status == "error"
    assert estimated.reference_value - estimated.current_value == estimated.value
    both = {r.metric: r for r in quality_drift(reference, tickets(1, 400, seed=22), cfg)}
    assert set(both) == {"estimated_accuracy", "realized_accuracy"} and both["realized_accuracy"].status == "ok"
    assert "estimate off by" in both["estimated_accuracy"].message
