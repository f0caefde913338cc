"""Two configurations evaluated on the same cases and compared through the promotion gate: the real runtime
and Cedar gate decide, the scorers judge, and a challenger that stops refunding is refused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from factory_pipelines.lib.agents.models.providers import ScriptedProvider
from factory_pipelines.lib.evals.evaluate import compare_evaluations, evaluate
from factory_pipelines.lib.evals.scorers import case_scorers
from tests.lib.evals.conftest import case, world_of

pytestmark = pytest.mark.usefixtures("tracking")
CASES = [case(n, "Refund please", f"The earbuds from order O-20000{n:02d} are broken, I want a refund of my money.",
              {"order_id": f"O-20000{n:02d}", "amount": 40.0 + n},
              {"category": "refund", "priority": "medium", "action": "refund",
               "tool_outcomes": {"issue_refund": "allow", "send_reply": "allow"}}) for n in range(1, 9)]
SCORERS = case_scorers({"category": ["refund", "shipping"], "priority": ["low", "medium", "high", "urgent"],
                        "action": ["reply", "refund", "lookup_order", "escalate"]})


def answering(action: str) -> ScriptedProvider:
    return ScriptedProvider([json.dumps({"category": "refund", "priority": "medium", "action": action})] * 40)


def test_a_challenger_that_stops_refunding_is_refused(configuration, governance) -> None:
    new_world = world_of(CASES)
    champion = evaluate(CASES, replace(configuration, provider=answering("refund")), governance, new_world, SCORERS)
    challenger = evaluate(CASES, replace(configuration, label="challenger", provider=answering("reply")), governance,
                          new_world, SCORERS)
    assert champion.metrics["action_accuracy"] == 1.0 and champion.metrics["policy_compliance"] == 1.0
    assert challenger.metrics["action_accuracy"] == 0.0 and challenger.metrics["policy_compliance"] == 0.0
    assert champion.metrics["forbidden_actions"] == challenger.metrics["forbidden_actions"] == 0
    gate = {"thresholds": {"action_accuracy": 0.9}, "tolerances": {"action_accuracy": 0.02}, "budgets": {}}
    result = compare_evaluations(champion, challenger, **gate)
    assert not result.passed
    assert result.comparisons["action_accuracy"].broken == tuple(c["id"] for c in CASES)
    assert any(f.startswith("action_accuracy is 0, the suite requires at least 0.9") for f in result.failures)
    assert "policy_compliance is 0.00%, the gate requires 100%" in result.failures
    assert compare_evaluations(champion, champion, **gate).passed
    records = challenger.records(CASES)
    assert len(records) == 8 and records[0]["expectations"]["action"] == "refund"
    assert records[0]["outputs"]["decision"]["action"] == "reply" and records[0]["trace_id"]
