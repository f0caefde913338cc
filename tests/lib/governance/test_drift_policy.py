"""Drift acts through the real Cedar gate and the shipped policies: a refund on a day whose last drift night
reached error level escalates (`data/drift`), the same refund on an ok night or an acknowledged one executes,
reads and replies go on; the status comes from the warehouse (`drift.results`, `alerts.check_failures`)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from factory_pipelines.lib.agents.toolbox import Budget, Toolbox
from factory_pipelines.lib.alerts.store import CheckFailure, ack, record
from factory_pipelines.lib.drift.records import DriftResult, DriftRun, Window
from factory_pipelines.lib.drift.status import drift_status
from factory_pipelines.lib.drift.store import record_night
from factory_pipelines.lib.governance.gate import CedarGate, recorded_request
from factory_pipelines.lib.governance.kill_switches import KillSwitches
from tests.lib.governance.world import AS_OF, CONFIG, DAY, ENGINE, MANIFEST, facts, refund_args, reply_args

NIGHT = date.fromisoformat(DAY) - timedelta(days=1)  # agent day D acts on night D-1


def drifted_night(status: str) -> DriftRun:
    results = (DriftResult("feature", "tenure_days", "wasserstein", 0.05, 0.1, 0.2, "ok", 2000, 400),
               DriftResult("feature", "plan", "jensenshannon", 0.4 if status == "error" else 0.02, 0.1, 0.2, status,
                           2000, 400))
    return DriftRun(MANIFEST.name, NIGHT, Window(NIGHT - timedelta(days=14), NIGHT - timedelta(days=1)),
                    Window(NIGHT, NIGHT), results)


def toolbox(con: Any, switches: KillSwitches) -> Toolbox:
    """The agent day's toolbox as defs/agents/assets.py builds it: the drift status read from the warehouse."""
    from factory_pipelines.lib.agents.toolbox import ToolEnv

    drift = drift_status(con, MANIFEST.name, date.fromisoformat(DAY))
    env = ToolEnv(con=con, online_features=lambda entity: {}, online_features_many=lambda es: [{} for _ in es],
                  kb=None, feature_service=MANIFEST.feature_service, as_of=AS_OF)
    budget = Budget.from_manifest(MANIFEST.budgets, 0)
    gate = CedarGate.for_agent(MANIFEST, ENGINE, switches, CONFIG, con, budget, as_of=AS_OF,
                               drift_status=drift.status, drift_slices=drift.slices)
    return Toolbox(MANIFEST.name, env, gate, budget, run_id="run-1", partition=DAY)


def test_a_refund_on_a_drifted_day_escalates_naming_data_drift(con: Any, switches: KillSwitches) -> None:
    record_night(con, drifted_night("error"), "drift-run")
    tb = toolbox(con, switches)
    refund = tb.call("issue_refund", "T-1", refund_args(), facts())
    assert (refund.status, refund.executed) == ("escalated", False)
    assert refund.verdict.policies == ("data/drift",) and "data/drift" in refund.verdict.reason
    assert refund.verdict.request["context"]["data"]["drift"] == {"status": "error",
                                                                  "slices": ["feature.plan.jensenshannon"]}
    assert con.execute("SELECT count(*) FROM agents.refunds").fetchall() == [(0,)]
    lookup = tb.call("order_lookup", "T-1", {"order_id": "O-1000001"}, facts())
    assert (lookup.status, lookup.verdict.decision) == ("ok", "allow")
    reply = tb.call("send_reply", "T-1", reply_args("We are looking into your order."), facts())
    assert (reply.status, reply.verdict.decision) == ("ok", "allow")


def test_the_same_refund_on_an_ok_day_is_allowed(con: Any, switches: KillSwitches) -> None:
    record_night(con, drifted_night("ok"), "drift-run")
    refund = toolbox(con, switches).call("issue_refund", "T-1", refund_args(), facts())
    assert (refund.status, refund.verdict.decision, refund.executed) == ("ok", "allow", True)
    assert refund.verdict.request["context"]["data"]["drift"] == {"status": "ok", "slices": []}


def test_an_acknowledged_drift_lets_refunds_act_again(con: Any, switches: KillSwitches) -> None:
    record_night(con, drifted_night("error"), "drift-run")
    (alert,) = record(con, [CheckFailure("feature_drift", f"drift/{MANIFEST.name}", "drift-run",
                                         partition=NIGHT.isoformat())], deliver=False)
    ack(con, alert, by="oncall", note="new pricing page, expected")
    refund = toolbox(con, switches).call("issue_refund", "T-1", refund_args(), facts())
    assert (refund.status, refund.executed) == ("ok", True)
    assert refund.verdict.request["context"]["data"]["drift"]["status"] == "acknowledged"


def test_a_request_recorded_before_drift_entered_the_context_is_judged_as_no_drift() -> None:
    old = {"principal": {"type": "Agent", "id": MANIFEST.name}, "action": {"type": "Action", "id": "order_lookup"},
           "resource": {"type": "Order", "id": "O-1000001"},
           "context": {"data": {"contracts_passed": True, "features_age_hours": 3}}}
    assert recorded_request(json.dumps(old))["context"]["data"] == {
        "contracts_passed": True, "features_age_hours": 3, "features_after_ticket": False,
        "drift": {"status": "none", "slices": []}}
