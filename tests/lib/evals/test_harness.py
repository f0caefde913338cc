"""A configuration decided over golden cases in the scratch world: the real runtime, tools and Cedar gate; the
outcome keeps each tool call's verdict and effect, and trials do not see each other's effects."""

from __future__ import annotations

import pytest

from factory_pipelines.lib.evals.harness import run_cases
from tests.lib.evals.conftest import CASES, world_of

world = world_of(CASES)
pytestmark = pytest.mark.usefixtures("tracking")


def test_each_case_is_decided_by_the_real_runtime_and_gate(configuration, governance) -> None:
    first, second = run_cases(CASES, configuration, governance, world)
    assert (first.status, first.decision["action"]) == ("decided", "lookup_order")
    assert [c["tool"] for c in first.tool_calls][:3] == ["customer_features", "kb_search", "order_lookup"]
    assert first.retrieved and set(first.cited) <= set(first.retrieved)
    refund = next(c for c in second.tool_calls if c["tool"] == "issue_refund")
    assert (refund["verdict"], refund["executed"]) == ("allow", True)
    assert first.trace_id and second.trace_id and first.trace_id != second.trace_id


def test_trials_do_not_see_each_others_effects(configuration, governance) -> None:
    outcomes = run_cases(CASES[1:], configuration, governance, world, trials=2)
    refunds = [next(c for c in o.tool_calls if c["tool"] == "issue_refund") for o in outcomes]
    assert [(o.trial, r["verdict"], r["executed"]) for o, r in zip(outcomes, refunds, strict=True)] == [
        (0, "allow", True), (1, "allow", True)]


def test_the_world_serves_each_ticket_its_own_features_known_before_it(configuration) -> None:
    w = world()
    features = w.online_features({"customer_id": "C-00042", "ticket_id": "T-20260920-00002"})
    assert features["plan"] == "pro" and features["mentions_refund"] is True and features["has_order_ref"] is True
    assert features["plan__ts"] < features["mentions_refund__ts"]
    assert w.con.execute("SELECT amount_usd FROM staging.orders WHERE order_id = 'O-1000002'").fetchall() == [(60.0,)]
    w.close()
